"""BitFlippingEnv: the HER paper's task, with a vectorised compute_reward."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pearll.envs import BitFlippingEnv


def test_passes_gymnasium_env_checker():
    check_env(BitFlippingEnv(6), skip_render_check=True)


def test_reaching_the_goal_gives_zero_and_terminates():
    env = BitFlippingEnv(8)
    obs, _ = env.reset(seed=3)
    assert not np.array_equal(obs["achieved_goal"], obs["desired_goal"])
    wrong = np.flatnonzero(obs["achieved_goal"] != obs["desired_goal"])
    for i, bit in enumerate(wrong):
        obs, reward, terminated, truncated, info = env.step(int(bit))
        last = i == len(wrong) - 1
        assert reward == (0.0 if last else -1.0)
        assert terminated == last == info["is_success"] and not truncated
    assert np.array_equal(obs["observation"], obs["desired_goal"])


def test_episode_is_truncated_after_n_bits_steps():
    env = BitFlippingEnv(5)
    obs, _ = env.reset(seed=0)
    for step in range(1, 6):
        # Flip a bit that already matches the goal (one exists unless all differ; then undo).
        same = np.flatnonzero(obs["achieved_goal"] == obs["desired_goal"])
        bit = int(same[0]) if len(same) else 0
        obs, reward, terminated, truncated, _ = env.step(bit)
        if terminated:
            return
        assert reward == -1.0 and truncated == (step == 5)


def test_compute_reward_is_vectorised():
    env = BitFlippingEnv(4)
    achieved = np.array([[0, 1, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=np.int8)
    desired = np.array([[0, 1, 0, 1], [1, 1, 1, 0], [0, 0, 0, 0]], dtype=np.int8)
    rewards = env.compute_reward(achieved, desired, [{}] * 3)
    assert rewards.dtype == np.float32
    assert rewards.tolist() == [0.0, -1.0, 0.0]
    assert env.compute_reward(achieved[:, None], desired[:, None], None).shape == (3, 1)


def test_reset_is_seeded_and_goal_differs_from_state():
    first = BitFlippingEnv(1).reset(seed=7)[0]
    assert first["desired_goal"][0] == 1 - first["achieved_goal"][0]
    a, b = BitFlippingEnv(12).reset(seed=1)[0], BitFlippingEnv(12).reset(seed=1)[0]
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("n_bits", [0, -3, 2.5, True])
def test_bad_n_bits_is_rejected(n_bits):
    with pytest.raises(ValueError, match="n_bits"):
        BitFlippingEnv(n_bits)


def test_bad_action_is_rejected():
    env = BitFlippingEnv(3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(3)
