"""ReplayBuffer.end_episodes: ending an episode after its last step was added.

The claim: a step added and then ended with ``end_episodes`` leaves the buffer exactly as if it
had been added truncated. Two buffers are fed the same random stream, one with truncations at
random cut points, the other with plain steps and ``end_episodes`` there; every read-out (all,
counts, seeded samples, priorities, HER relabelling, frame stacks) must then be identical, also
after the ring has wrapped.
"""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer


class Spaces:
    """A DISABLED-mode vector env's spaces, no env: what the buffers read from an env."""

    def __init__(self, observation_space, action_space, num_envs):
        self.single_observation_space = observation_space
        self.single_action_space = action_space
        self.num_envs = num_envs
        self.metadata = {"autoreset_mode": "Disabled"}
        self.compute_reward = None


def bit_reward(achieved, desired, info):
    return -(achieved != desired).any(axis=-1).astype(np.float32)


def make(kind, num_envs, capacity, seed=0):
    action = spaces.Discrete(3)
    if kind == "her":
        bits = spaces.MultiBinary(4)
        space = spaces.Dict({"observation": bits, "achieved_goal": bits, "desired_goal": bits})
        env = Spaces(space, action, num_envs)
        return HERBuffer(env, capacity, compute_reward=bit_reward, seed=seed), space
    if kind == "frames":
        space = spaces.Box(0, 255, (4, 2, 3), np.uint8)
        env = Spaces(space, action, num_envs)
        return ReplayBuffer(env, capacity, frame_stack=(4, np.zeros((2, 3))), seed=seed), space
    space = spaces.Box(-10, 10, (3,), np.float32)
    env = Spaces(space, action, num_envs)
    if kind == "per":
        return PrioritizedReplayBuffer(env, capacity, seed=seed), space
    if kind == "nstep":
        return ReplayBuffer(env, capacity, n_step=3, gamma=0.9, seed=seed), space
    return ReplayBuffer(env, capacity, seed=seed), space


def stream(space, num_envs, steps, rng):
    """Random steps of E sub-envs; ``cut`` marks where a non-following step comes next."""
    obs = (
        np.stack([space.sample() for _ in range(num_envs)])
        if not isinstance(space, spaces.Dict)
        else {k: np.stack([space[k].sample() for _ in range(num_envs)]) for k in space.spaces}
    )
    for _ in range(steps):
        if isinstance(space, spaces.Dict):
            nxt = {k: np.stack([space[k].sample() for _ in range(num_envs)]) for k in space.spaces}
        else:
            nxt = np.stack([space.sample() for _ in range(num_envs)])
        action = rng.integers(0, 3, num_envs)
        reward = rng.normal(size=num_envs).astype(np.float32)
        ended = rng.random(num_envs) < 0.15
        term = ended & (rng.random(num_envs) < 0.5)
        trunc = ended & ~term
        cut = ~ended & (rng.random(num_envs) < 0.1)
        yield obs, action, reward, nxt, term, trunc, cut
        obs = nxt


def same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            same(a[key], b[key])
    elif a is None or b is None:
        assert a is b
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def same_records(x, y):
    for name in ("observations", "actions", "rewards", "next_observations", "dones", "discounts"):
        same(getattr(x, name), getattr(y, name))


@pytest.mark.parametrize("kind", ["plain", "nstep", "per", "her", "frames"])
@pytest.mark.parametrize("num_envs", [1, 3])
def test_end_episodes_is_adding_truncated(kind, num_envs):
    truncating, _ = make(kind, num_envs, capacity=23)
    ending, space = make(kind, num_envs, capacity=23)
    rng = np.random.default_rng(7)
    for step, (obs, action, reward, nxt, term, trunc, cut) in enumerate(
        stream(space, num_envs, 150, rng)
    ):
        truncating.add_trajectory(obs, action, reward, nxt, term, trunc | cut)
        ending.add_trajectory(obs, action, reward, nxt, term, trunc)
        ended = ending.end_episodes(np.flatnonzero(cut))
        assert ended.tolist() == np.flatnonzero(cut).tolist()
        np.testing.assert_array_equal(truncating.counts, ending.counts)
        if step % 10 == 9 and (ending.counts > 0).all():
            same_records(truncating.all(flatten_env=True), ending.all(flatten_env=True))
            x, y = truncating.sample(16, flatten_env=True), ending.sample(16, flatten_env=True)
            same_records(x, y)
            if kind == "per":
                same(x.indices, y.indices)
                same(x.weights, y.weights)
                priorities = rng.random(x.indices.shape)
                truncating.update_priorities(x.indices, priorities)
                ending.update_priorities(y.indices, priorities)


def test_end_episodes_leaves_ended_and_empty_sub_envs_alone():
    buffer, _ = make("plain", 2, capacity=10)
    assert buffer.end_episodes().tolist() == []  # nothing stored yet
    obs = np.zeros((2, 3), np.float32)
    buffer.add_trajectory(obs, [0, 1], [1.0, 1.0], obs + 1, [True, False], [False, False])
    assert buffer.end_episodes().tolist() == [1]  # sub-env 0 already ended
    assert buffer.end_episodes().tolist() == []  # and now both have
    assert buffer.all(flatten_env=True).dones.ravel().tolist() == [1.0, 0.0]


def test_end_episodes_rejects_bad_indices_and_changes_nothing():
    buffer, _ = make("plain", 2, capacity=10)
    obs = np.zeros((2, 3), np.float32)
    buffer.add_trajectory(obs, [0, 1], [1.0, 1.0], obs + 1, [False, False], [False, False])
    for bad in ([2], [-1], [[0]]):
        with pytest.raises(ValueError, match="envs: expected sub-env indices"):
            buffer.end_episodes(bad)
    assert buffer.end_episodes([1]).tolist() == [1]
    assert buffer.end_episodes([0, 0]).tolist() == [0]
