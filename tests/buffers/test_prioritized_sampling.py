"""PrioritizedReplayBuffer's draws (prioritized_sampling.py) beyond ``sample``: pooled windows
at the anchors ``sample_sequences`` drew are its windows, and take the same sequence
priorities. (``draw_slots`` and ``pool_mass`` of both replay classes: test_pool_sampling.py;
``sample``: test_prioritized.py.)"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from pearll.buffers import PrioritizedReplayBuffer
from tests.buffers.test_sample_sequences import filled
from tests.fixtures import MODES


def test_windows_at_the_anchors_sample_sequences_drew_are_its_windows():
    buffer, _ = filled(3, MODES[1], 24, 60, buffer_class=PrioritizedReplayBuffer)
    twin = copy.deepcopy(buffer)
    drawn = buffer.sample_sequences(5, 4, burn_in=2, boundary="cross")
    rows, envs = np.divmod(drawn.indices.reshape(-1), 3)
    read = twin.read_windows(envs, rows, 4, burn_in=2, boundary="cross")
    for name in ("observations", "actions", "rewards", "dones", "truncateds", "mask",
                 "learn_mask", "is_first", "indices"):  # fmt: skip
        got, want = getattr(read, name), getattr(drawn, name)
        np.testing.assert_array_equal(got, want.reshape(got.shape), err_msg=name)


def test_sequence_priorities_of_pooled_windows_are_those_of_sampled_ones():
    buffer, _ = filled(3, MODES[0], 24, 60, buffer_class=PrioritizedReplayBuffer, eta=0.9)
    twin = copy.deepcopy(buffer)
    drawn = buffer.sample_sequences(4, 5, burn_in=1)
    rows, envs = np.divmod(drawn.indices.reshape(-1), 3)
    read = twin.read_windows(envs, rows, 5, burn_in=1)
    td = np.random.default_rng(0).normal(size=(12, 5))
    buffer.update_priorities(drawn.indices, td.reshape(3, 4, 5))
    twin.update_priorities(read.indices, td)
    np.testing.assert_array_equal(twin._tree.get(envs, rows), buffer._tree.get(envs, rows))
    with pytest.raises(ValueError, match="length"):
        twin.update_priorities(read.indices, td[:, :3])
