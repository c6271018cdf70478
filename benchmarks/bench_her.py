"""HER sample(256): pearll's HERBuffer against SB3's HerReplayBuffer, on two goal layouts.

    make bench                                   # part of the full benchmark run
    python -m benchmarks.bench_her [--quick] [--out FILE]

Layouts: 15-bit bit flipping (random actions, every episode truncated after 15 steps; 1e6
stored, 1e5 with --quick) and the Fetch-like Box goal layout of bench_adds (10 + 3 + 3
float32, Box(4) actions, 50-step episodes; 1e5 stored). Both buffers hold the same stream and
relabel with the "future" strategy, 4 sampled goals per transition (80% of each batch), rewards
recomputed with the env's vectorised compute_reward. The libraries are timed in turn, round
after round; medians and the ratio SB3 / pearll.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.bench_adds import GoalEnv
from benchmarks.bench_buffers import Case, run, table, versions
from pearll.envs import BitFlippingEnv

OUT = Path(__file__).with_name("RESULTS_HER.md")
BITS = 15


def episodes(make_env, n: int, seed: int = 0):
    """``n`` steps of ``make_env()``'s episodes, random actions: (obs, action, reward, ...)."""
    env = make_env()
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(n):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        yield obs, action, reward, next_obs, terminated, truncated
        obs = env.reset()[0] if terminated or truncated else next_obs


def pearll_sampler(make_env, capacity: int):
    from pearll.buffers import HERBuffer

    buffer = HERBuffer(make_env(), capacity, seed=0)
    for step in episodes(make_env, capacity):
        buffer.add_trajectory(*step)
    return lambda: buffer.sample(256)


def sb3_sampler(make_env, capacity: int):
    from stable_baselines3 import HerReplayBuffer
    from stable_baselines3.common.vec_env import DummyVecEnv

    vec_env = DummyVecEnv([make_env])
    buffer = HerReplayBuffer(
        capacity, vec_env.observation_space, vec_env.action_space, env=vec_env, device="cpu",
        n_sampled_goal=4, goal_selection_strategy="future",
    )  # fmt: skip

    def batch(obs):
        return {key: np.asarray(value)[None] for key, value in obs.items()}

    for obs, action, reward, next_obs, terminated, truncated in episodes(make_env, capacity):
        info = [{"TimeLimit.truncated": truncated}]
        buffer.add(batch(obs), batch(next_obs), np.asarray(action).reshape(1, -1),
                   np.array([reward]), np.array([terminated or truncated]), info)  # fmt: skip
    return lambda: buffer.sample(256)


def layouts(quick: bool) -> list[tuple[str, object, int]]:
    """(title, env factory, stored transitions) of each goal layout measured."""
    return [
        (f"bit flipping {BITS} bits", lambda: BitFlippingEnv(BITS),
         100_000 if quick else 1_000_000),
        ("Box goal layout (10 + 3 + 3 float32, Box(4))", GoalEnv, 100_000),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rounds, calls = (7, 50) if args.quick else (21, 200)
    results = []
    for title, make_env, capacity in layouts(args.quick):
        case = Case(f"HER sample(256), {title}, {capacity:,} stored", "µs")
        case.ops["pearll"] = pearll_sampler(make_env, capacity)
        try:
            case.ops["SB3"] = sb3_sampler(make_env, capacity)
        except ImportError as error:
            print(f"  skipping SB3: {error}")
        results.append(table(case, run(case, rounds, calls)))
        print(results[-1])
    result = "\n".join(results)
    args.out.write_text(
        "# HER benchmark\n\n"
        f"Command: `python -m benchmarks.bench_her{' --quick' if args.quick else ''}` "
        f"({rounds} interleaved rounds of {calls} calls). Versions: {versions()}.\n\n" + result
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
