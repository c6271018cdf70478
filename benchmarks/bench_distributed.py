"""The replay service against the same buffer in-process: inserts/s by collectors, samples/s.

    PYTHONPATH=. python benchmarks/bench_distributed.py [--seconds 5] [--buffer prioritized]

CartPole-shaped transitions (4 float32 observations, Discrete(2)), made up front so the figures
are the buffer's and the service's, not an env's. Inserts: each collector (a Ray actor) sends
``--insert-batch`` steps per ``add_batch_trajectories`` to its own shard for ``--seconds``, with
1, 2 and 4 collectors at once (no rate limit). Samples: the learner draws ``--batch-size``
batches from a filled service, one call after another, and with one batch prefetched
(``sample_async``). In-process: the same buffer class, same calls, no Ray. Results are
transitions per second; on a 2-core machine the collectors, shards, front and learner share
two cores, so more collectors cannot add throughput beyond what two cores give.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import ray

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer
from pearll.distributed import EnvSpaces, ReplayService

SPACES = EnvSpaces(gym.spaces.Box(-5, 5, (4,), np.float32), gym.spaces.Discrete(2))
CLASSES = {"uniform": ReplayBuffer, "prioritized": PrioritizedReplayBuffer}


def steps(n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """``n`` CartPole-like steps, an episode ending every 200."""
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n + 1, 4)).astype(np.float32)
    ends = (np.arange(n) % 200) == 199
    return obs[:-1], rng.integers(0, 2, n), np.ones(n, np.float32), obs[1:], ends, np.zeros(n, bool)


@ray.remote(num_cpus=0)
class Feeder:
    def feed(self, service: ReplayService, shard: int, batch: int, seconds: float) -> int:
        data = steps(batch, seed=shard)
        added, start = 0, time.perf_counter()
        pending = None
        while time.perf_counter() - start < seconds:
            # One add in flight while the next is sent: a collector does not wait for the ack.
            ref = service.add_batch_trajectories_async(shard, *data)
            if pending is not None:
                added += ray.get(pending)
            pending = ref
        added += ray.get(pending)
        return added


def rate(fn, seconds: float) -> float:
    """Calls of ``fn`` per second over about ``seconds`` (after one warm-up call)."""
    fn()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls / (time.perf_counter() - start)


def in_process(cls: type, args: argparse.Namespace) -> dict[str, float]:
    buffer = cls(SPACES, args.capacity, seed=0)
    data = steps(args.insert_batch)
    inserts = rate(lambda: buffer.add_batch_trajectories(*data), args.seconds)
    samples = rate(lambda: buffer.sample(args.batch_size), args.seconds)
    return {"insert": inserts * args.insert_batch, "sample": samples * args.batch_size}


def service_inserts(cls: type, collectors: int, args: argparse.Namespace) -> float:
    service = ReplayService.create(cls, SPACES, args.capacity, num_shards=collectors, seed=0)
    feeders = [Feeder.remote() for _ in range(collectors)]
    start = time.perf_counter()
    added = ray.get(
        [f.feed.remote(service, i, args.insert_batch, args.seconds) for i, f in enumerate(feeders)]
    )
    elapsed = time.perf_counter() - start
    for feeder in feeders:
        ray.kill(feeder)
    service.shutdown()
    return sum(added) / elapsed


def service_samples(cls: type, shards: int, args: argparse.Namespace) -> dict[str, float]:
    service = ReplayService.create(cls, SPACES, args.capacity, num_shards=shards, seed=0)
    for shard in range(shards):
        service.add_batch_trajectories(shard, *steps(args.capacity // 2, seed=shard))
    sequential = rate(lambda: service.sample(args.batch_size), args.seconds)
    pending = [service.sample_async(args.batch_size)]

    def prefetched() -> None:
        pending.append(service.sample_async(args.batch_size))
        ray.get(pending.pop(0))

    overlapped = rate(prefetched, args.seconds)
    ray.get(pending)
    service.shutdown()
    return {"sequential": sequential * args.batch_size, "prefetch": overlapped * args.batch_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--buffer", choices=sorted(CLASSES), default="prioritized")
    parser.add_argument("--capacity", type=int, default=100_000)
    parser.add_argument("--insert-batch", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    cls = CLASSES[args.buffer]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        local = in_process(cls, args)
        print(f"{cls.__name__}, inserts of {args.insert_batch} steps, samples of {args.batch_size}")
        print(f"in-process       insert {local['insert']:12,.0f} steps/s")
        for collectors in (1, 2, 4):
            inserted = service_inserts(cls, collectors, args)
            print(
                f"service, {collectors} coll.  insert {inserted:12,.0f} steps/s  "
                f"({inserted / local['insert']:.3f} of in-process)"
            )
        print(f"in-process       sample {local['sample']:12,.0f} transitions/s")
        for shards in (1, 2, 4):
            sampled = service_samples(cls, shards, args)
            print(
                f"service, {shards} shards  sample {sampled['sequential']:12,.0f} transitions/s "
                f"sequential, {sampled['prefetch']:12,.0f} with prefetch "
                f"({sampled['prefetch'] / local['sample']:.3f} of in-process)"
            )
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
