"""Recurrent DQN against feed-forward DQN on CartPole with the velocities hidden (a POMDP).

    PYTHONPATH=. .venv/bin/python -m benchmarks.r2d2_cartpole --algo r2d2 --seeds 0 1 2
    PYTHONPATH=. .venv/bin/python -m benchmarks.r2d2_cartpole --algo dqn --seeds 0

Each run trains until the mean return of 20 consecutive training episodes, all begun with
epsilon at its final value (0.01 for r2d2, 0.02 for dqn), reaches 475, or 150k env steps pass,
and prints the env steps, the best such mean and the wall time. ``--curve DIR`` writes each
run's episodes (env steps at its end, return) to ``DIR/<algo>_seed<seed>.csv``; ``--set
name=value`` overrides an R2D2Config field (r2d2 only).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from pearll.buffers import ReplayBuffer
from pearll.envs.cartpole_pomdp import cartpole_no_velocity

STEPS = 150_000
WINDOW, TARGET = 20, 475.0


def run(
    algo: str,
    seed: int,
    overrides: dict[str, str],
    curve: Path | None = None,
    progress: bool = False,
) -> str:
    env = cartpole_no_velocity()
    returns: list[float] = []
    ends: list[int] = []
    best = [0.0]
    if algo == "r2d2":
        from pearll.agents.r2d2 import R2D2Config, r2d2_extra_fields

        fields = {f.name: f.type for f in dataclasses.fields(R2D2Config)}
        parse = {"float": float, "int": int, "bool": lambda v: v.lower() in ("1", "true")}
        typed = {k: parse[fields[k]](v) for k, v in overrides.items()}
        config = R2D2Config(**typed)
        greedy_from = config.exploration_steps  # epsilon is at its final value from here on
        buffer = ReplayBuffer(env, 100_000, seed=seed, extra_fields=r2d2_extra_fields(config))
    else:
        from pearll.agents.dqn import DQNConfig

        config = DQNConfig()
        greedy_from = int(config.exploration_fraction * STEPS)
        buffer = ReplayBuffer(env, 100_000, seed=seed)
    starts: list[int] = []

    def episode_ended(record) -> bool:
        starts.append(ends[-1] if ends else 0)
        ends.append(record.env_steps)
        returns.append(record.episode_return)
        if len(returns) >= WINDOW and starts[-WINDOW] >= greedy_from:
            best[0] = max(best[0], float(np.mean(returns[-WINDOW:])))
        if progress and len(returns) % 25 == 0:
            recent = float(np.mean(returns[-WINDOW:]))
            print(
                f"  seed {seed}: {record.env_steps} steps, last {WINDOW} {recent:.1f}", flush=True
            )
        return best[0] >= TARGET

    start = time.perf_counter()
    if algo == "r2d2":
        from pearll.agents.r2d2 import train_r2d2

        result = train_r2d2(env, buffer, STEPS, config, seed=seed, callback=episode_ended)
    else:
        from pearll.agents.dqn import train_dqn

        result = train_dqn(env, buffer, STEPS, config, seed=seed, callback=episode_ended)
    seconds = time.perf_counter() - start
    if curve is not None:
        curve.mkdir(parents=True, exist_ok=True)
        rows = "".join(f"{s},{r}\n" for s, r in zip(ends, returns, strict=True))
        (curve / f"{algo}_seed{seed}.csv").write_text("env_steps,return\n" + rows)
    return (
        f"{algo} seed {seed}: {'solved' if best[0] >= TARGET else 'not solved'} at "
        f"{result.env_steps} env steps, best mean of {WINDOW} consecutive episodes "
        f"{best[0]:.1f}, {seconds:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--algo", choices=["r2d2", "dqn"], default="r2d2")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="R2D2Config overrides (r2d2 only)")  # fmt: skip
    parser.add_argument("--curve", type=Path, help="write each run's episodes here (CSV)")
    parser.add_argument("--progress", action="store_true", help="print every 25 episodes")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    for seed in args.seeds:
        print(run(args.algo, seed, overrides, args.curve, args.progress), flush=True)


if __name__ == "__main__":
    main()
