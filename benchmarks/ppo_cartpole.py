"""PPO on CartPole-v1 with pearll's RolloutBuffer: env steps and wall time to solve it.

Trains until the last 20 training episodes average >= 475 (or the step budget runs out), then
evaluates the greedy policy on 20 fresh episodes; solved means that mean is >= 475.

    nice -n 10 python benchmarks/ppo_cartpole.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pearll.agents import evaluate, train_ppo

SOLVED = 475.0


def run(seed: int, num_envs: int, total_steps: int) -> dict:
    start = time.perf_counter()
    result = train_ppo(
        "CartPole-v1", total_steps, seed=seed, num_envs=num_envs, target_return=SOLVED
    )
    train_seconds = time.perf_counter() - start
    returns = evaluate(result.agent, "CartPole-v1", episodes=20, seed=10_000 + seed)
    return {
        "seed": seed,
        "env_steps": result.env_steps,
        "updates": result.updates,
        "train_s": train_seconds,
        "eval_mean": float(np.mean(returns)),
        "eval_min": float(np.min(returns)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--total-steps", type=int, default=500_000)
    args = parser.parse_args()
    torch.set_num_threads(1)  # for evaluation too (train_ppo sets it for training)
    print(f"PPO CartPole-v1, {args.num_envs} sub-envs, budget {args.total_steps} env steps")
    print("seed  env_steps  updates  train_s  eval_mean(20)  eval_min  solved")
    for seed in args.seeds:
        r = run(seed, args.num_envs, args.total_steps)
        solved = "yes" if r["eval_mean"] >= SOLVED else "NO"
        print(
            f"{r['seed']:>4}  {r['env_steps']:>9}  {r['updates']:>7}  {r['train_s']:>7.1f}  "
            f"{r['eval_mean']:>13.1f}  {r['eval_min']:>8.1f}  {solved}"
        )


if __name__ == "__main__":
    main()
