"""Recurrent DQN against feed-forward DQN on CartPole with the velocities hidden (a POMDP).

    PYTHONPATH=. .venv/bin/python -m benchmarks.r2d2_cartpole --algo r2d2 --seeds 0 1 2
    PYTHONPATH=. .venv/bin/python -m benchmarks.r2d2_cartpole --algo dqn --seeds 0

Each run trains until the mean return of 20 consecutive training episodes reaches 475 (epsilon
at its final 0.01 for r2d2, 0.02 for dqn by then) or 150k env steps pass, and prints the env
steps, the best mean over 20 consecutive episodes and the wall time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pearll.buffers import ReplayBuffer
from pearll.envs.cartpole_pomdp import cartpole_no_velocity

STEPS = 150_000


def run(algo: str, seed: int, learning_rate: float | None = None) -> str:
    env = cartpole_no_velocity()
    buffer = ReplayBuffer(env, 100_000, seed=seed)
    returns: list[float] = []
    best = [0.0]

    def episode_ended(record) -> bool:
        returns.append(record.episode_return)
        if len(returns) >= 20:
            best[0] = max(best[0], float(np.mean(returns[-20:])))
        return best[0] >= 475

    start = time.perf_counter()
    if algo == "r2d2":
        from pearll.agents.r2d2 import R2D2Config, train_r2d2

        config = R2D2Config() if learning_rate is None else R2D2Config(learning_rate=learning_rate)
        result = train_r2d2(env, buffer, STEPS, config, seed=seed, callback=episode_ended)
    else:
        from pearll.agents.dqn import train_dqn

        result = train_dqn(env, buffer, STEPS, seed=seed, callback=episode_ended)
    seconds = time.perf_counter() - start
    return (
        f"{algo} seed {seed}: {'solved' if best[0] >= 475 else 'not solved'} at "
        f"{result.env_steps} env steps, best mean of 20 consecutive episodes {best[0]:.1f}, "
        f"{seconds:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--algo", choices=["r2d2", "dqn"], default="r2d2")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--learning-rate", type=float, help="r2d2 only (default: the config's)")
    args = parser.parse_args()
    for seed in args.seeds:
        print(run(args.algo, seed, args.learning_rate), flush=True)


if __name__ == "__main__":
    main()
