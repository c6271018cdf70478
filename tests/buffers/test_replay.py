"""ReplayBuffer.end_episodes: a running episode ended at its last stored step, as a truncation."""

from __future__ import annotations

import numpy as np
import pytest

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer
from tests.buffers.test_her import goal_env
from tests.fixtures import MODES, make_env
from tests.reference import ReferenceBuffer, Runner, index_obs
from tests.state import assert_same_state


def streams(num_envs, mode, make):
    """Steps of one run, and steps of a fresh run (the stream a restored buffer gets next)."""
    env = make(num_envs, mode)
    runner = Runner(env, None, ReferenceBuffer(num_envs or 1, 1, True), seed=0)
    first = [runner.step() for _ in range(23)]
    fresh = Runner(make(num_envs, mode), None, ReferenceBuffer(num_envs or 1, 1, True), seed=9)
    return first, [fresh.step() for _ in range(15)]


def add(buffer, steps):
    for args in steps:
        buffer.add_trajectory(*args[:6], info=args[6])


KINDS = [
    (ReplayBuffer, {"n_step": 3, "gamma": 0.9}, make_env),
    (PrioritizedReplayBuffer, {"n_step": 2, "gamma": 0.5}, make_env),
    (HERBuffer, {"n_sampled_goal": 2}, goal_env),
]


@pytest.mark.parametrize(("cls", "kwargs", "make"), KINDS)
@pytest.mark.parametrize(("num_envs", "mode"), [(None, None), (2, MODES[1]), (2, MODES[2])])
def test_end_episodes_is_the_same_as_adding_the_last_step_truncated(
    cls, kwargs, make, num_envs, mode
):
    first, fresh = streams(num_envs, mode, make)
    env = make(num_envs, mode)
    ended, truncated_twin = (cls(env, 16, seed=0, **kwargs) for _ in range(2))
    add(ended, first)
    closing = ended.end_episodes()
    add(truncated_twin, first[:-1])
    obs, action, reward, next_obs, term, trunc, info = first[-1]
    term_any = np.asarray(term) | np.asarray(trunc)
    assert sorted(closing.tolist()) == np.flatnonzero(~np.atleast_1d(term_any)).tolist()
    truncated = np.asarray(trunc) | ~term_any if num_envs else True if not term_any else trunc
    if mode == MODES[1]:  # SAME_STEP: an episode end comes with its final observation
        ending = ~term_any
        final = [index_obs(next_obs, e) for e in range(num_envs)]
        info = {**info, "final_obs": final, "_final_obs": ending | info.get("_final_obs", False)}
    truncated_twin.add_trajectory(obs, action, reward, next_obs, term, truncated, info)
    assert_same_state(ended, truncated_twin)
    assert len(ended.end_episodes()) == 0  # nothing left to end
    add(ended, fresh)
    add(truncated_twin, fresh)
    assert_same_state(ended, truncated_twin)
    np.testing.assert_array_equal(ended.sample(8).rewards, truncated_twin.sample(8).rewards)


def test_without_end_episodes_the_next_add_splices_a_transition_the_env_never_made():
    """What a restored shard did: the last stored step's next observation became the first
    observation of the next stream."""
    first, fresh = streams(None, None, make_env)
    while first[-1][4] or first[-1][5]:  # end on a step inside an episode
        first.pop()
    spliced, ended = ReplayBuffer(make_env(None), 64), ReplayBuffer(make_env(None), 64)
    for buffer in (spliced, ended):
        add(buffer, first)
    ended.end_episodes()
    for buffer in (spliced, ended):
        add(buffer, fresh)
    true_next = {tuple(args[0]): tuple(args[3]) for args in first + fresh}
    for buffer, splices in ((spliced, 1), (ended, 0)):
        got = buffer.all()
        wrong = [
            o for o, n in zip(got.observations, got.next_observations, strict=True)
            if true_next[tuple(o)] != tuple(n)
        ]  # fmt: skip
        assert len(wrong) == splices
