"""Every returned transition is one the env produced: buffers against the reference model."""

from __future__ import annotations

import pytest

from pearll.buffers import ReplayBuffer, RolloutBuffer
from tests.compare import assert_rows_match
from tests.envs import MODES, make_env
from tests.reference import ReferenceBuffer, Runner


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, RolloutBuffer])
@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dict_obs", [False, True])
def test_all_equals_reference_after_every_step(buffer_class, num_envs, mode, dict_obs):
    env = make_env(num_envs, mode, dict_obs=dict_obs)
    buffer = buffer_class(env, 7, seed=0)
    reference = ReferenceBuffer(num_envs or 1, 7, buffer_class.spare_rows)
    runner = Runner(env, buffer, reference, seed=1)
    for _ in range(40):
        runner.add(1)
        expected = [t for e in range(num_envs or 1) for t in reference.retained(e)]
        assert_rows_match(buffer.all(flatten_env=True), expected)
