"""Every buffer class on a real AsyncVectorEnv: building the buffer never breaks the env.

A worker asked for an attribute its env lacks raises, and Gymnasium then shuts every worker
down; so these tests build each buffer, then step, add and sample, and reset the env again.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv
from gymnasium.wrappers import FrameStackObservation

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer
from pearll.envs import BitFlippingEnv
from tests.fixtures import FrameEnv, K, TaggedEnv

NUM_ENVS = 2


def async_env(make):
    return AsyncVectorEnv([make] * NUM_ENVS, context="fork")


def run_steps(env, buffer, steps=12):
    obs, _ = env.reset(seed=0)
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, info = env.step(action)
        buffer.add_trajectory(obs, action, reward, next_obs, terminated, truncated, info)
        obs = next_obs


@pytest.mark.parametrize(
    "make_buffer",
    [
        lambda env: ReplayBuffer(env, 64, seed=0),
        lambda env: PrioritizedReplayBuffer(env, 64, seed=0),
        lambda env: RolloutBuffer(env, 64, seed=0),
    ],
    ids=["replay", "prioritized", "rollout"],
)
def test_buffer_leaves_the_async_env_working(make_buffer):
    env = async_env(TaggedEnv)
    try:
        buffer = make_buffer(env)
        run_steps(env, buffer)
        assert buffer.sample(4).observations.shape[:2] == (NUM_ENVS, 4)
        env.reset(seed=1)  # raised "'NoneType' object has no attribute 'send'" before
        assert buffer.frame_stack is None
    finally:
        env.close()


def test_her_buffer_uses_the_workers_compute_reward():
    env = async_env(lambda: BitFlippingEnv(n_bits=4))
    try:
        buffer = HERBuffer(env, 64, n_sampled_goal=4, seed=0)
        run_steps(env, buffer)
        batch = buffer.sample(10)
        relabelled = 10 * 4 // 5
        achieved = batch.next_observations["achieved_goal"][:, :relabelled]
        desired = batch.observations["desired_goal"][:, :relabelled]
        expected = BitFlippingEnv(n_bits=4).compute_reward(
            achieved.reshape(-1, 4), desired.reshape(-1, 4), {}
        )
        np.testing.assert_array_equal(batch.rewards[:, :relabelled, 0].reshape(-1), expected)
        env.reset(seed=1)
    finally:
        env.close()


class NoRewardGoalEnv(gym.Wrapper):
    """A goal env without a compute_reward attribute (the wrapper hides the inner one)."""

    def has_wrapper_attr(self, name):
        return name != "compute_reward" and super().has_wrapper_attr(name)

    def get_wrapper_attr(self, name):
        if name == "compute_reward":
            raise AttributeError(name)
        return super().get_wrapper_attr(name)


def test_her_buffer_without_a_reward_function_is_refused_and_the_env_survives():
    env = async_env(lambda: NoRewardGoalEnv(BitFlippingEnv(n_bits=4)))
    try:
        with pytest.raises(ValueError, match="compute_reward="):
            HERBuffer(env, 64)
        env.reset(seed=1)
        reward = lambda achieved, desired, info: -1.0 * (achieved != desired).any(-1)  # noqa: E731
        buffer = HERBuffer(env, 64, compute_reward=reward, seed=0)
        run_steps(env, buffer)
        assert buffer.sample(4).rewards.shape == (NUM_ENVS, 4, 1)
    finally:
        env.close()


@pytest.mark.parametrize("padding", ["reset", "zero"])
def test_frame_stacks_are_detected_in_async_workers(padding):
    env = async_env(lambda: FrameStackObservation(FrameEnv(), K, padding_type=padding))
    try:
        buffer = ReplayBuffer(env, 64, seed=0)
        assert buffer.frame_stack is not None and buffer.frame_stack.size == K
        expected_padding = "reset" if padding == "reset" else np.zeros((2, 3), np.uint8)
        if padding == "reset":
            assert buffer.frame_stack.padding == expected_padding
        else:
            np.testing.assert_array_equal(buffer.frame_stack.padding, expected_padding)
        run_steps(env, buffer)
        assert buffer.sample(4).observations.shape == (NUM_ENVS, 4, K, 2, 3)
        env.reset(seed=1)
    finally:
        env.close()


def test_a_plain_async_cartpole_env():
    env = gym.make_vec("CartPole-v1", num_envs=NUM_ENVS, vectorization_mode="async")
    try:
        buffer = ReplayBuffer(env, 32)
        run_steps(env, buffer, steps=4)
        env.reset(seed=2)
    finally:
        env.close()
