"""What the buffer lock costs a single thread: add and sample with the RLock and without it.

    PYTHONPATH=. python benchmarks/bench_lock.py [--repeats 5]

Runs each operation with the buffer's real ``threading.RLock`` and with a no-op stand-in
(``contextlib.nullcontext``), interleaved, and prints the fastest repeat's microseconds per call and
the ratio. Single thread only: what every user pays whether or not they use threads.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from functools import partial
from types import SimpleNamespace

import numpy as np
from gymnasium import spaces

from pearll.buffers import ReplayBuffer, RolloutBuffer


def env(num_envs: int | None, obs_dim: int) -> SimpleNamespace:
    spec = SimpleNamespace(
        observation_space=spaces.Box(-1.0, 1.0, shape=(obs_dim,), dtype=np.float32),
        action_space=spaces.Discrete(4),
        metadata={"autoreset_mode": "Disabled"},
    )
    if num_envs is not None:
        spec.num_envs = num_envs
    return spec


def step_args(num_envs: int | None, obs_dim: int, rng: np.random.Generator) -> tuple:
    lead = () if num_envs is None else (num_envs,)
    obs = rng.uniform(-1, 1, size=(*lead, obs_dim)).astype(np.float32)
    return (
        obs,
        rng.integers(0, 4, size=lead),
        np.ones(lead, dtype=np.float32),
        obs,
        np.zeros(lead, dtype=bool),
    )


def time_per_call(fn, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cases = [
        ("Replay  add   1 env, obs 4", ReplayBuffer, None, 4, "add", 20000),
        ("Replay  add   8 envs, obs 64", ReplayBuffer, 8, 64, "add", 10000),
        ("Replay  sample B=256, obs 4", ReplayBuffer, None, 4, "sample", 5000),
        ("Replay  sample B=32, 8 envs", ReplayBuffer, 8, 64, "sample", 5000),
        ("Rollout add   8 envs, obs 64", RolloutBuffer, 8, 64, "add", 10000),
    ]
    print(f"{'operation':32} {'locked µs':>10} {'no lock µs':>11} {'ratio':>6}")
    for name, buffer_class, num_envs, obs_dim, op, calls in cases:
        buffer = buffer_class(env(num_envs, obs_dim), 100_000, seed=0)
        step = step_args(num_envs, obs_dim, rng)
        for _ in range(2000):
            buffer.add_trajectory(*step)
        batch = 256 if num_envs is None else 32
        fn = partial(buffer.add_trajectory, *step) if op == "add" else partial(buffer.sample, batch)
        timings: dict[str, list[float]] = {"locked": [], "unlocked": []}
        for repeat in range(args.repeats):
            locks = {"locked": threading.RLock(), "unlocked": contextlib.nullcontext()}
            order = list(locks.items())[:: 1 if repeat % 2 else -1]  # alternate who goes first
            for kind, lock in order:
                buffer._lock = lock
                timings[kind].append(time_per_call(fn, calls))
        # The fastest repeat: the least disturbed by other processes on a shared machine.
        locked, unlocked = (min(timings[k]) for k in ("locked", "unlocked"))
        print(f"{name:32} {locked:10.2f} {unlocked:11.2f} {locked / unlocked:6.3f}")
    lock = threading.RLock()

    def bare() -> None:
        with lock:
            pass

    print(f"{'bare RLock acquire + release':32} {time_per_call(bare, 1_000_000):10.3f}")


if __name__ == "__main__":
    main()
