"""The HER paper's bit-flipping result: DQN + HERBuffer solves n = 15 bits, plain replay does not.

Andrychowicz et al. 2017, figure 1: with 15 bits a random walk almost never reaches the goal,
so a DQN whose only reward signal is reaching it learns nothing; relabelling with achieved
goals (strategy "future", k = 4) makes every episode informative. Both runs use the same DQN,
hyperparameters, seed and number of env steps; success is measured on greedy evaluation
episodes (the goal reached within n steps).

    nice -n 10 python benchmarks/her_bitflip.py [--bits 15] [--steps 40000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pearll.agents.dqn import DQNConfig, evaluate_dqn, train_dqn
from pearll.buffers import HERBuffer, ReplayBuffer
from pearll.envs import BitFlippingEnv

# One hidden layer of 256 units, gamma 0.98 and k = 4 "future" goals follow the paper; epsilon
# stays at 0.1 after decaying because bit flipping needs no more exploration than that.
CONFIG = DQNConfig(
    hidden_sizes=(256,),
    gamma=0.98,
    train_frequency=2,
    target_update_interval=2,
    exploration_fraction=0.2,
    epsilon_end=0.1,
)


def run(buffer_name: str, bits: int, steps: int, seed: int, eval_episodes: int) -> dict:
    env = BitFlippingEnv(bits)
    if buffer_name == "her":
        buffer = HERBuffer(env, steps, "future", n_sampled_goal=4, seed=seed)
    else:
        buffer = ReplayBuffer(env, steps, seed=seed)
    start = time.perf_counter()
    result = train_dqn(env, buffer, steps, CONFIG, seed=seed)
    train_seconds = time.perf_counter() - start
    evaluation = evaluate_dqn(BitFlippingEnv(bits), result.q_network, eval_episodes, seed + 10**6)
    return {
        "success": float(np.mean([record.success for record in evaluation])),
        "train_success_last_100": float(np.mean([r.success for r in result.episodes[-100:]])),
        "train_seconds": train_seconds,
        "buffer_mib": buffer.nbytes / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bits", type=int, default=15)
    parser.add_argument("--steps", type=int, default=40_000, help="env steps per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small MLPs: one thread is fastest and leaves a core free

    print(f"bit flipping, n = {args.bits} bits, {args.steps} env steps per run, seed {args.seed}")
    total = time.perf_counter()
    results = {}
    for name in ("her", "replay"):
        results[name] = run(name, args.bits, args.steps, args.seed, args.eval_episodes)
        r = results[name]
        print(
            f"DQN + {'HERBuffer(future, k=4)' if name == 'her' else 'ReplayBuffer':24s} "
            f"success {r['success']:.2f} on {args.eval_episodes} evaluation episodes "
            f"(last 100 training episodes {r['train_success_last_100']:.2f}); "
            f"training {r['train_seconds']:.1f} s; buffer {r['buffer_mib']:.1f} MiB"
        )
    print(f"wall time {time.perf_counter() - total:.1f} s")
    solved = results["her"]["success"] >= 0.9 and results["replay"]["success"] < 0.9
    print("HER result reproduced" if solved else "HER result NOT reproduced")


if __name__ == "__main__":
    main()
