"""The adds real agents make, pearll against SB3, interleaved in one process run.

    .venv-bench/bin/python -m benchmarks.bench_adds [--quick]   # writes RESULTS_ADDS.md

Each case replays a recorded stream of env steps (recorded first, so env stepping is not
timed), one add per call, cycling through the stream; the median over rounds of the mean per
step is reported, with SB3's time divided by pearll's (above 1: pearll is faster):

- Dict observations, the goal-env layout (10 + 3 + 3 float32, Box(4) actions), one env:
  ``ReplayBuffer`` against ``DictReplayBuffer``, and ``HERBuffer`` against ``HerReplayBuffer``.
- 4 CartPole sub-envs in SAME_STEP autoreset mode with their real episode ends: pearll takes
  the step as the env gave it (final observations from ``info``); SB3 is fed as CleanRL feeds
  it, the caller putting the final observations in place first (that copy is timed with it).
"""

from __future__ import annotations

import argparse
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from benchmarks.bench_buffers import Case, run
from pearll.buffers import HERBuffer, ReplayBuffer

RESULTS = Path(__file__).with_name("RESULTS_ADDS.md")
CAPACITY = 100_000
STREAM = 2_000


class GoalEnv(gym.Env):
    """A goal env with the layout of Gymnasium-Robotics' Fetch tasks; episodes of 50 steps."""

    def __init__(self) -> None:
        box = lambda n: spaces.Box(-10.0, 10.0, (n,), np.float32)  # noqa: E731
        self.observation_space = spaces.Dict(
            {"observation": box(10), "achieved_goal": box(3), "desired_goal": box(3)}
        )
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.rng = np.random.default_rng(0)

    def _obs(self) -> dict[str, np.ndarray]:
        return {k: self.rng.normal(size=s.shape).astype(np.float32)
                for k, s in self.observation_space.spaces.items()}  # fmt: skip

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        obs = self._obs()
        reward = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"], {}))
        return obs, reward, False, self.t >= 50, {}

    def compute_reward(self, achieved_goal, desired_goal, info):
        distance = np.linalg.norm(np.asarray(achieved_goal) - desired_goal, axis=-1)
        return -(distance > 0.05).astype(np.float32)


def goal_stream(env: GoalEnv) -> list[tuple]:
    steps, (obs, _) = [], env.reset(seed=0)
    for _ in range(STREAM):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, info = env.step(action)
        steps.append((obs, action, reward, next_obs, terminated, truncated, info))
        obs = next_obs if not (terminated or truncated) else env.reset()[0]
    return steps


def cycling(add, steps: list[tuple]):
    """A zero-argument op adding the next step of ``steps`` each call, round and round."""
    state = {"i": 0}

    def op() -> None:
        i = state["i"]
        add(*steps[i])
        state["i"] = (i + 1) % len(steps)

    return op


def goal_cases() -> list[Case]:
    from stable_baselines3 import HerReplayBuffer
    from stable_baselines3.common.buffers import DictReplayBuffer
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = GoalEnv()
    steps = goal_stream(env)
    dict_case = Case("add, Dict observation (goal-env layout), one env", "µs per step")
    her_case = Case("add, HER (goal-env layout), one env", "µs per step")

    ours = ReplayBuffer(env, CAPACITY, seed=0)
    dict_case.ops["pearll"] = cycling(
        lambda o, a, r, n, te, tr, i: ours.add_trajectory(o, a, r, n, te, tr, i), steps
    )
    sb3 = DictReplayBuffer(CAPACITY, env.observation_space, env.action_space, device="cpu")
    dict_case.ops["SB3"] = cycling(_sb3_add(sb3), steps)

    her = HERBuffer(env, CAPACITY, seed=0)
    her_case.ops["pearll"] = cycling(
        lambda o, a, r, n, te, tr, i: her.add_trajectory(o, a, r, n, te, tr, i), steps
    )
    vec = DummyVecEnv([GoalEnv])
    sb3_her = HerReplayBuffer(
        CAPACITY, env.observation_space, env.action_space, env=vec, device="cpu"
    )
    her_case.ops["SB3"] = cycling(_sb3_add(sb3_her), steps)
    return [dict_case, her_case]


def _sb3_add(buffer: Any):
    """SB3's add of one single-env step, with the batch axis SB3 takes (as SB3's algorithms
    pass it: a VecEnv of one)."""

    def add(obs, action, reward, next_obs, terminated, truncated, info):
        batched = {k: v[None] for k, v in obs.items()}
        next_batched = {k: v[None] for k, v in next_obs.items()}
        infos = [{"TimeLimit.truncated": truncated}]
        buffer.add(batched, next_batched, action[None], np.array([reward]),
                   np.array([terminated or truncated]), infos)  # fmt: skip

    return add


def same_step_case() -> Case:
    from stable_baselines3.common.buffers import ReplayBuffer as SB3ReplayBuffer

    env = gym.make_vec(
        "CartPole-v1", num_envs=4, vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
    )  # fmt: skip
    steps, (obs, _) = [], env.reset(seed=0)
    for _ in range(STREAM):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, info = env.step(action)
        steps.append((obs, action, reward, next_obs, terminated, truncated, info))
        obs = next_obs
    ends = sum(int((s[4] | s[5]).sum()) for s in steps)
    case = Case(
        f"add, 4 CartPole sub-envs, SAME_STEP, real episode ends ({ends} in {STREAM} steps)",
        "µs per vector step",
    )
    ours = ReplayBuffer(env, CAPACITY, seed=0)
    case.ops["pearll"] = cycling(ours.add_trajectory, steps)
    space = env.single_observation_space
    sb3 = SB3ReplayBuffer(
        CAPACITY, space, env.single_action_space, device="cpu", n_envs=4,
        handle_timeout_termination=False,
    )  # fmt: skip

    def cleanrl_add(obs, action, reward, next_obs, terminated, truncated, info):
        # CleanRL's loop: the true final observations of the sub-envs that ended.
        real_next_obs = next_obs.copy()
        if "_final_obs" in info:
            for idx in np.flatnonzero(info["_final_obs"]):
                real_next_obs[idx] = info["final_obs"][idx]
        sb3.add(obs, real_next_obs, action, reward, terminated, [{}] * 4)

    case.ops["SB3"] = cycling(cleanrl_add, steps)
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, calls = (5, 400) if args.quick else (15, 2000)
    lines = [
        "# Adds real agents make: pearll vs SB3 (median µs per step, interleaved)",
        "",
        f"`python -m benchmarks.bench_adds{' --quick' if args.quick else ''}`; "
        f"{platform.python_version()}, numpy {np.__version__}, "
        f"stable-baselines3 {metadata.version('stable-baselines3')}; this machine is shared.",
        "",
        "| add | pearll | SB3 | SB3 / pearll |",
        "| --- | ---: | ---: | ---: |",
    ]
    for case in [*goal_cases(), same_step_case()]:
        medians = run(case, rounds, calls)
        ratio = medians["SB3"] / medians["pearll"]
        row = f"| {case.title} | {medians['pearll']:.2f} | {medians['SB3']:.2f} | {ratio:.2f} |"
        print(row, flush=True)
        lines.append(row)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
