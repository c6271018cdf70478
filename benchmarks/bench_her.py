"""HER sample(256) at 1e6 capacity: pearll's HERBuffer against SB3's HerReplayBuffer.

    make bench                                   # part of the full benchmark run
    python -m benchmarks.bench_her [--quick] [--out FILE]

Both buffers hold the same stream of 15-bit bit-flipping episodes (random actions, every
episode truncated after 15 steps) and relabel with the "future" strategy, 4 sampled goals per
transition (80% of each batch), rewards recomputed with the env's vectorised compute_reward.
The libraries are timed in turn, round after round; medians and the ratio SB3 / pearll.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.bench_buffers import Case, run, table, versions
from pearll.envs import BitFlippingEnv

OUT = Path(__file__).with_name("RESULTS_HER.md")
BITS = 15


def episodes(n: int, seed: int = 0):
    """``n`` steps of bit-flipping episodes as dict observations (obs, next obs, action, ...)."""
    env = BitFlippingEnv(BITS)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(n):
        action = int(env.action_space.sample())
        next_obs, reward, terminated, truncated, _ = env.step(action)
        yield obs, action, reward, next_obs, terminated, truncated
        obs = env.reset()[0] if terminated or truncated else next_obs


def pearll_sampler(capacity: int):
    from pearll.buffers import HERBuffer

    buffer = HERBuffer(BitFlippingEnv(BITS), capacity, seed=0)
    for step in episodes(capacity):
        buffer.add_trajectory(*step)
    return lambda: buffer.sample(256)


def sb3_sampler(capacity: int):
    from stable_baselines3 import HerReplayBuffer
    from stable_baselines3.common.vec_env import DummyVecEnv

    vec_env = DummyVecEnv([lambda: BitFlippingEnv(BITS)])
    buffer = HerReplayBuffer(
        capacity, vec_env.observation_space, vec_env.action_space, env=vec_env, device="cpu",
        n_sampled_goal=4, goal_selection_strategy="future",
    )  # fmt: skip

    def batch(obs):
        return {key: np.asarray(value)[None] for key, value in obs.items()}

    for obs, action, reward, next_obs, terminated, truncated in episodes(capacity):
        info = [{"TimeLimit.truncated": truncated}]
        buffer.add(batch(obs), batch(next_obs), np.array([[action]]), np.array([reward]),
                   np.array([terminated or truncated]), info)  # fmt: skip
    return lambda: buffer.sample(256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    capacity = 100_000 if args.quick else 1_000_000
    rounds, calls = (7, 50) if args.quick else (21, 200)
    case = Case(f"HER sample(256), bit flipping {BITS} bits, {capacity:,} stored", "µs")
    case.ops["pearll"] = pearll_sampler(capacity)
    try:
        case.ops["SB3"] = sb3_sampler(capacity)
    except ImportError as error:
        print(f"  skipping SB3: {error}")
    result = table(case, run(case, rounds, calls))
    print(result)
    args.out.write_text(
        "# HER benchmark\n\n"
        f"Command: `python -m benchmarks.bench_her{' --quick' if args.quick else ''}` "
        f"({rounds} interleaved rounds of {calls} calls). Versions: {versions()}.\n\n" + result
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
