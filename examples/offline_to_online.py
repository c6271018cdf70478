"""Offline-to-online on MountainCar-v0: a scripted dataset, written and read back through
Minari, then DQN trained online with every batch half offline data (RLPD's symmetric sampling).

    PYTHONPATH=. python examples/offline_to_online.py [--dataset-steps 20000] [--steps 50000]

MountainCar is a hard-exploration task: the reward is -1 per step until the car reaches the
flag, and episodes are truncated at 200 steps, so epsilon-greedy DQN alone rarely finds the
flag in a few tens of thousands of steps. A dataset that contains successes fixes that.

1. Collect: a scripted policy (push in the direction the car moves, pumping energy) with 30%
   random actions, into a ReplayBuffer; every complete episode (terminated at the flag, or
   truncated at 200 steps) is written as the Minari dataset ``pearll/mountaincar/scripted-v0``
   (in a temporary MINARI_DATASETS_PATH unless one is set).
2. Load it back: ``ReplayBuffer.from_minari`` (the whole dataset, exactly).
3. Train DQN online (``pearll.agents.dqn``) for ``--steps`` env steps on a ``MixedReplay`` of
   the offline buffer and an online one, half of each batch from each; then the same DQN, same
   seed and settings, on the online buffer alone. Each is evaluated greedily (20 episodes).

Prints what each run reached; exits 0 if the mixed run's greedy policy reaches the flag.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

import gymnasium as gym
import numpy as np

from pearll.agents.dqn import DQNConfig, evaluate_dqn, train_dqn
from pearll.buffers import ReplayBuffer
from pearll.datasets import MixedReplay

DATASET_ID = "pearll/mountaincar/scripted-v0"
NEVER_REACHED = -200.0  # the return of an episode truncated before the flag


def scripted_action(observation: np.ndarray) -> int:
    """Push right while moving right, left while moving left: each swing climbs higher."""
    return 2 if observation[1] >= 0 else 0


def collect(env: gym.Env, steps: int, epsilon: float, seed: int) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    buffer = ReplayBuffer(env, steps + steps // 8 + 2, seed=seed)
    observation, _ = env.reset(seed=seed)
    returns, episode_return, flags = [], 0.0, 0
    for _ in range(steps):
        action = (
            int(env.action_space.sample())
            if rng.random() < epsilon
            else scripted_action(observation)
        )
        next_observation, reward, terminated, truncated, _ = env.step(action)
        buffer.add_trajectory(observation, action, reward, next_observation, terminated, truncated)
        episode_return += float(reward)
        observation = next_observation
        if terminated or truncated:
            flags += bool(terminated)
            returns.append(episode_return)
            observation, episode_return = env.reset()[0], 0.0
    print(
        f"collected {steps} steps: {len(returns)} episodes ({flags} reached the flag, the rest "
        f"truncated at 200 steps), mean return {np.mean(returns):.1f}"
    )
    return buffer


def run(label: str, env: gym.Env, replay, steps: int, seed: int) -> float:
    """Train DQN for ``steps`` env steps on ``replay``; print and return the greedy evaluation."""
    config = DQNConfig(epsilon_start=0.3, exploration_fraction=0.2)
    start = time.perf_counter()
    result = train_dqn(env, replay, steps, config, seed=seed)
    seconds = time.perf_counter() - start
    returns = [r.episode_return for r in result.episodes]
    reached = sum(r > NEVER_REACHED for r in returns)
    evaluation = [r.episode_return for r in evaluate_dqn(env, result.q_network, 20, seed=1000)]
    print(
        f"{label}: {steps} env steps in {seconds:.0f} s, {len(returns)} training episodes, "
        f"{reached} of them reached the flag; greedy evaluation: mean return "
        f"{np.mean(evaluation):.1f}, flag reached in {sum(r > NEVER_REACHED for r in evaluation)}"
        "/20 episodes"
    )
    return float(np.mean(evaluation))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-steps", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=50_000, help="online env steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("MINARI_DATASETS_PATH", tempfile.mkdtemp(prefix="minari_"))
    warnings.filterwarnings("ignore", module="minari")  # its metadata hints (no author...)
    env = gym.make("MountainCar-v0")

    collected = collect(env, args.dataset_steps, epsilon=0.3, seed=args.seed + 1)
    export = collected.to_minari(DATASET_ID, author="pearll", algorithm_name="scripted+30%random")
    print(
        f"wrote {DATASET_ID}: {export.n_written} episodes ({export.n_left_out} left out: the "
        f"one still open), {export.dataset.total_steps} steps"
    )
    offline = ReplayBuffer.from_minari(DATASET_ID, env=env, seed=args.seed)
    print(f"loaded {len(offline)} transitions into a ReplayBuffer of {offline.buffer_size} rows")

    online = ReplayBuffer(env, 100_000, seed=args.seed)
    mixed = MixedReplay(offline, online, 0.5, seed=args.seed)
    mixed_return = run("DQN + MixedReplay (half offline)", env, mixed, args.steps, args.seed)
    plain = ReplayBuffer(env, 100_000, seed=args.seed)
    run("DQN, online replay only", env, plain, args.steps, args.seed)
    return 0 if mixed_return > NEVER_REACHED else 1


if __name__ == "__main__":
    sys.exit(main())
