"""``python -m pearll.demo``: fill a ReplayBuffer from a vector CartPole and show what it holds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from pearll.buffers import ReplayBuffer


def main() -> None:
    env = gym.make_vec("CartPole-v1", num_envs=4)
    buffer = ReplayBuffer(env, buffer_size=10_000, seed=0)
    obs, _ = env.reset(seed=0)
    episode_ends = 0
    for _ in range(2_000):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, info = env.step(action)
        buffer.add_trajectory(obs, action, reward, next_obs, terminated, truncated, info)
        episode_ends += int(np.sum(terminated | truncated))
        obs = next_obs
    batch = buffer.sample(256, flatten_env=True)
    print(f"stored {len(buffer)} transitions from 4 sub-envs, {episode_ends} episode ends")
    print(f"buffer memory: {buffer.nbytes / 1e6:.2f} MB")
    print(f"sample(256, flatten_env=True): observations {batch.observations.shape}, ")
    print(f"  terminal transitions in the batch: {int(batch.dones.sum())}")


if __name__ == "__main__":
    main()
