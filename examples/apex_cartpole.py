"""Ape-X on CartPole with the pearll replay service: N collectors, one prioritized learner.

    PYTHONPATH=. python examples/apex_cartpole.py --collectors 2 --max-env-steps 60000

- Collectors (Ray actors): each steps its own CartPole-v1 with an epsilon-greedy copy of the
  Q-network (collector i of N uses epsilon ``0.4 ** (1 + 7 i / (N - 1))``, as in Ape-X), sends
  its steps to its own shard in batches of ``--send-every`` steps, and pulls the newest weights
  from the parameter store every ``--pull-every`` batches.
- The learner (this process): double DQN with 3-step returns on batches drawn across the shards
  with prioritized replay (global importance weights), new priorities ``|TD error|`` sent back;
  it prefetches the next batch while it trains on this one, and publishes its weights every
  ``--publish-every`` updates. The rate limiter holds ``--samples-per-insert`` so collectors and
  learner keep pace on a small machine.
- Every ``--eval-every`` updates the learner plays 10 greedy episodes; the run stops when their
  mean return reaches 475 (CartPole-v1's bar) or after ``--max-env-steps``.

Prints one line per evaluation; exits 0 if the bar was reached, 1 if not.
"""

from __future__ import annotations

import argparse
import sys
import time

import gymnasium as gym
import numpy as np
import ray
import torch
from torch import nn

from pearll.buffers import PrioritizedReplayBuffer
from pearll.distributed import EnvSpaces, RateLimit, ReplayService

GAMMA, N_STEP, SOLVED = 0.99, 3, 475.0


def q_network() -> nn.Module:
    return nn.Sequential(
        nn.Linear(4, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2)
    )


@ray.remote(num_cpus=0)
class ParameterStore:
    """The newest weights (as numpy arrays) with a version, and the collectors' episode returns."""

    def __init__(self) -> None:
        self.weights, self.version, self.returns, self.stop = None, -1, [], False

    def publish(self, weights: dict, version: int) -> None:
        self.weights, self.version = weights, version

    def newer_than(self, version: int) -> tuple[dict | None, int, bool]:
        fresh = self.weights if self.version > version else None
        return fresh, self.version, self.stop

    def report(self, returns: list[float]) -> None:
        self.returns.extend(returns)

    def take_returns(self) -> list[float]:
        returns, self.returns = self.returns, []
        return returns

    def request_stop(self) -> None:
        self.stop = True


@ray.remote(num_cpus=0)
class Collector:
    def __init__(self, index: int, num: int, service: ReplayService, store, send_every: int):
        torch.set_num_threads(1)
        self.index, self.service, self.store, self.send_every = index, service, store, send_every
        self.epsilon = 0.4 ** (1 + 7 * index / max(1, num - 1))
        self.env = gym.make("CartPole-v1")
        self.q = q_network()
        self.rng = np.random.default_rng(index)

    def run(self, pull_every: int) -> int:
        obs, _ = self.env.reset(seed=self.index)
        version, steps, batches, episode_return, finished = -1, 0, 0, 0.0, []
        while True:
            if batches % pull_every == 0:
                weights, version_now, stop = ray.get(self.store.newer_than.remote(version))
                if stop:
                    return steps
                if weights is not None:
                    self.q.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
                    version = version_now
            columns = [[] for _ in range(6)]
            for _ in range(self.send_every):
                action = self._act(obs)
                next_obs, reward, term, trunc, _ = self.env.step(action)
                for column, value in zip(
                    columns, (obs, action, reward, next_obs, term, trunc), strict=True
                ):
                    column.append(value)
                episode_return += reward
                obs = next_obs
                if term or trunc:
                    finished.append(episode_return)
                    episode_return = 0.0
                    obs, _ = self.env.reset()
            # Blocks while the rate limiter says the learner is behind.
            self.service.add_batch_trajectories(self.index, *map(np.array, columns))
            steps, batches = steps + self.send_every, batches + 1
            if finished:
                self.store.report.remote(finished)
                finished = []

    def _act(self, obs: np.ndarray) -> int:
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(2))
        with torch.no_grad():
            return int(self.q(torch.as_tensor(obs)).argmax())


def evaluate(q: nn.Module, episodes: int = 10, seed: int = 10_000) -> float:
    env = gym.make("CartPole-v1")
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            with torch.no_grad():
                action = int(q(torch.as_tensor(obs)).argmax())
            obs, reward, term, trunc, _ = env.step(action)
            total, done = total + reward, term or trunc
        returns.append(total)
    return float(np.mean(returns))


def train_step(q, target, optimizer, batch) -> np.ndarray:
    """One double-DQN update on an n-step PER batch; returns |TD error| per sample."""
    obs = torch.tensor(batch.observations)
    actions = torch.tensor(batch.actions).long()
    rewards, dones = torch.tensor(batch.rewards), torch.tensor(batch.dones)
    discounts, weights = torch.tensor(batch.discounts), torch.tensor(batch.weights)
    next_obs = torch.tensor(batch.next_observations)
    with torch.no_grad():
        best = q(next_obs).argmax(dim=1, keepdim=True)
        bootstrap = target(next_obs).gather(1, best)
        targets = rewards + discounts * (1 - dones) * bootstrap
    values = q(obs).gather(1, actions)
    errors = targets - values
    loss = (weights * nn.functional.smooth_l1_loss(values, targets, reduction="none")).mean()
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(q.parameters(), 10.0)
    optimizer.step()
    return errors.detach().abs().numpy()[:, 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collectors", type=int, default=2)
    parser.add_argument("--max-env-steps", type=int, default=60_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples-per-insert", type=float, default=8.0)
    parser.add_argument("--send-every", type=int, default=50)
    parser.add_argument("--pull-every", type=int, default=4)
    parser.add_argument("--publish-every", type=int, default=50)
    parser.add_argument("--target-every", type=int, default=500)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        return run(args)
    finally:
        ray.shutdown()


def run(args: argparse.Namespace) -> int:
    spi = args.samples_per_insert
    limit = RateLimit(
        min_size_to_sample=1000, samples_per_insert=spi,
        error_buffer=max(args.batch_size, args.send_every * spi) * 4,
        max_batch_size=args.batch_size, max_insert=args.send_every, timeout=120.0,
    )  # fmt: skip
    service = ReplayService.create(
        PrioritizedReplayBuffer, EnvSpaces.of(gym.make("CartPole-v1")), 50_000,
        num_shards=args.collectors, rate_limit=limit, alpha=0.6, beta=0.4, beta_steps=20_000,
        n_step=N_STEP, gamma=GAMMA, seed=args.seed,
    )  # fmt: skip
    q, target = q_network(), q_network()
    target.load_state_dict(q.state_dict())
    optimizer = torch.optim.Adam(q.parameters(), lr=5e-4)
    store = ParameterStore.remote()
    publish = lambda version: store.publish.remote(  # noqa: E731
        {k: v.numpy().copy() for k, v in q.state_dict().items()}, version
    )
    ray.get(publish(0))
    collectors = [
        Collector.remote(i, args.collectors, service, store, args.send_every)
        for i in range(args.collectors)
    ]
    running = [c.run.remote(args.pull_every) for c in collectors]
    start, updates, best, returns = time.time(), 0, 0.0, []
    pending = service.sample_async(args.batch_size)
    solved = False
    while True:
        batch, pending = ray.get(pending), service.sample_async(args.batch_size)
        errors = train_step(q, target, optimizer, batch)
        service.update_priorities_async(batch.indices, errors)
        updates += 1
        if updates % args.target_every == 0:
            target.load_state_dict(q.state_dict())
        if updates % args.publish_every == 0:
            publish(updates)
        if updates % args.eval_every == 0:
            env_steps = sum(service.stats()["inserts"])
            returns += ray.get(store.take_returns.remote())
            score = evaluate(q)
            best = max(best, score)
            recent = np.mean(returns[-20:]) if returns else float("nan")
            print(
                f"updates {updates:6d}  env steps {env_steps:7d}  greedy eval {score:6.1f}  "
                f"collector episodes {len(returns):5d} (last 20 mean {recent:6.1f})  "
                f"{time.time() - start:6.1f} s",
                flush=True,
            )
            if score >= SOLVED:
                solved = True
                break
            if env_steps >= args.max_env_steps:
                break
    ray.get(store.request_stop.remote())
    # A collector waiting in the rate limiter would wait for samples that no longer come.
    ray.wait(running, num_returns=len(running), timeout=2.0)
    for collector in collectors:
        ray.kill(collector)
    steps = service.stats()["inserts"]
    verdict = "solved" if solved else "not solved"
    print(f"{verdict}: best greedy eval {best:.1f}, {steps} steps per shard, {updates} updates")
    service.shutdown()
    return 0 if solved else 1


if __name__ == "__main__":
    sys.exit(main())
