"""Integration check: HERBuffer on Gymnasium-Robotics FetchReach (MuJoCo), single and vector envs.

Not part of the test suite (MuJoCo is not a dependency). Needs, in a separate venv:
``pip install gymnasium-robotics "mujoco<3.4"`` (gymnasium-robotics 1.4.2 fails to build the Fetch
envs with mujoco 3.17 and 4.0: an AssertionError in ``set_joint_qpos``, its joint-type check).

    PYTHONPATH=. python benchmarks/her_fetchreach.py

Random actions fill the buffer; a sample's rewards must equal the env's own ``compute_reward``
of (next achieved goal, relabelled desired goal), in every autoreset mode.
"""

from __future__ import annotations

import time

import gymnasium as gym
import gymnasium_robotics
import numpy as np
from gymnasium.vector import AutoresetMode

from pearll.buffers import HERBuffer

ENV_ID = "FetchReach-v4"


def fill(env, buffer, steps: int, vector: bool) -> None:
    obs, _ = env.reset(seed=0)
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, info = env.step(action)
        buffer.add_trajectory(obs, action, reward, next_obs, terminated, truncated, info=info)
        obs = next_obs
        if not vector and (terminated or truncated):
            obs, _ = env.reset()


def check(name: str, buffer: HERBuffer, compute_reward) -> None:
    start = time.perf_counter()
    batch = buffer.sample(256, flatten_env=True)
    seconds = time.perf_counter() - start
    expected = compute_reward(
        batch.next_observations["achieved_goal"], batch.observations["desired_goal"], None
    )
    relabelled = int(256 * buffer.relabel_ratio)
    print(
        f"{name:28s} stored {buffer.counts.tolist()}, rewards == compute_reward: "
        f"{np.allclose(batch.rewards[:, 0], expected)}, success share relabelled "
        f"{np.mean(batch.rewards[:relabelled] == 0):.2f} vs original "
        f"{np.mean(batch.rewards[relabelled:] == 0):.2f}, sample {seconds * 1e3:.2f} ms"
    )


def main() -> None:
    gym.register_envs(gymnasium_robotics)
    env = gym.make(ENV_ID)
    buffer = HERBuffer(env, 1000, "future", 4, seed=0)
    fill(env, buffer, 300, vector=False)
    check(f"{ENV_ID} single env", buffer, env.unwrapped.compute_reward)
    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        envs = gym.make_vec(
            ENV_ID, num_envs=2, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}
        )
        buffer = HERBuffer(envs, 500, "final", 4, seed=0)
        fill(envs, buffer, 200, vector=True)
        check(f"2 envs, {mode.name}", buffer, envs.envs[0].unwrapped.compute_reward)


if __name__ == "__main__":
    main()
