"""Checkpoints written by the v1 code (3ee5330) load and draw the very samples they drew then."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer
from tests.buffers.test_her import goal_env
from tests.checkpoints_v1.cases import DATA, MODES, draw

CASES = {
    "replay_single": ReplayBuffer,
    "replay_nstep_vector_next_step": ReplayBuffer,
    "replay_dict_same_step_extras": ReplayBuffer,
    "prioritized_vector": PrioritizedReplayBuffer,
    "frames_vector_same_step": ReplayBuffer,
    "her_vector": HERBuffer,
    "rollout_vector": RolloutBuffer,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_v1_checkpoint_loads_and_draws_the_same_samples(tmp_path, name):
    # Loaded from a copy: a load must never need to write, but a test must not risk the data.
    path = shutil.copytree(DATA / name, tmp_path / name)
    env = goal_env(2, MODES[0]) if CASES[name] is HERBuffer else None
    buffer = CASES[name].load(path, env=env)
    expected = np.load(DATA / f"{name}.expected.npz")
    got = draw(buffer)
    assert sorted(got) == sorted(expected.files)
    for key in expected.files:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
