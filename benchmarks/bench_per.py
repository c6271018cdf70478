"""PER at 1e6 capacity, CartPole-sized transitions: pearll against cpprb and TorchRL, one run.

Each round times, for every library in turn (interleaved, so drift hits all alike): adding one
transition, sample(256) and update_priorities(256) of the indices just sampled. The table gives
the median per operation, its ratio to pearll (> 1: slower than pearll) and a full training
step (the three together). Peers missing from the interpreter are reported and skipped.

    make bench [ARGS=--quick]     (or: python -m benchmarks.bench_per [--quick] [--out FILE])
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import platform
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np

from pearll.buffers import PrioritizedReplayBuffer

CAPACITY = 1_000_000
BATCH = 256
EPISODE = 200  # steps per (truncated) episode in the prefill
ALPHA, BETA, EPS = 0.6, 0.4, 1e-6
OPS = ("add", "sample", "update")
LABELS = {
    "add": "add one transition",
    "sample": f"sample({BATCH})",
    "update": f"update_priorities({BATCH})",
    "step": "add + sample + update",
}


def prefill_data(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    obs = rng.standard_normal((n + 1, 4)).astype(np.float32)
    truncated = (np.arange(n) % EPISODE) == EPISODE - 1
    return {
        "obs": obs[:-1],
        "next_obs": obs[1:],
        "act": rng.integers(0, 2, n),
        "rew": np.ones(n, dtype=np.float32),
        "done": np.zeros(n, dtype=bool),
        "truncated": truncated,
    }


class Pearll:
    name = "pearll"

    def __init__(self, data: dict[str, np.ndarray]) -> None:
        env = gym.make("CartPole-v1")
        self.buffer = PrioritizedReplayBuffer(env, CAPACITY, ALPHA, BETA, EPS, seed=0)
        self.buffer.add_batch_trajectories(
            data["obs"], data["act"], data["rew"], data["next_obs"], data["done"],
            data["truncated"],
        )  # fmt: skip
        self.one = (data["obs"][0], 1, 1.0, data["next_obs"][0], False)
        self.indices = None

    def add(self) -> None:
        self.buffer.add_trajectory(*self.one)

    def sample(self) -> None:
        self.indices = self.buffer.sample(BATCH).indices

    def update(self, priorities: np.ndarray) -> None:
        self.buffer.update_priorities(self.indices, priorities)


class Cpprb:
    name = "cpprb"

    def __init__(self, data: dict[str, np.ndarray]) -> None:
        from cpprb import PrioritizedReplayBuffer as CpprbPER

        spec = {
            "obs": {"shape": 4},
            "act": {"dtype": np.int64},
            "rew": {},
            "next_obs": {"shape": 4},
        }
        self.buffer = CpprbPER(CAPACITY, {**spec, "done": {}}, alpha=ALPHA, eps=EPS)
        self.buffer.add(
            obs=data["obs"], act=data["act"], rew=data["rew"], next_obs=data["next_obs"],
            done=data["done"],
        )  # fmt: skip
        self.one = {"obs": data["obs"][0], "act": 1, "rew": 1.0, "next_obs": data["next_obs"][0]}
        self.indices = None

    def add(self) -> None:
        self.buffer.add(**self.one, done=0.0)

    def sample(self) -> None:
        self.indices = self.buffer.sample(BATCH, beta=BETA)["indexes"]

    def update(self, priorities: np.ndarray) -> None:
        self.buffer.update_priorities(self.indices, priorities)


class TorchRL:
    name = "torchrl"

    def __init__(self, data: dict[str, np.ndarray]) -> None:
        import torch
        from tensordict import TensorDict
        from torchrl.data import LazyTensorStorage, PrioritizedSampler, TensorDictReplayBuffer

        self.torch = torch
        self.buffer = TensorDictReplayBuffer(
            storage=LazyTensorStorage(CAPACITY),
            sampler=PrioritizedSampler(CAPACITY, alpha=ALPHA, beta=BETA, eps=EPS),
            batch_size=BATCH,
        )
        columns = {k: torch.as_tensor(v) for k, v in data.items() if k != "truncated"}
        self.buffer.extend(TensorDict(columns, batch_size=[len(data["rew"])]))
        self.one = TensorDict({k: v[0] for k, v in columns.items()}, batch_size=[])
        self.indices = None

    def add(self) -> None:
        self.buffer.add(self.one)

    def sample(self) -> None:
        self.indices = self.buffer.sample()["index"]

    def update(self, priorities: np.ndarray) -> None:
        self.buffer.update_priority(self.indices, self.torch.as_tensor(priorities))


def build(data: dict[str, np.ndarray]) -> tuple[list, list[str]]:
    libraries, missing = [], []
    for cls in (Pearll, Cpprb, TorchRL):
        try:
            libraries.append(cls(data))
        except (ImportError, RuntimeError) as error:
            # torchrl 0.14.1's compiled segment tree does not load against torch 2.13.0.
            missing.append(f"{cls.name} ({type(error).__name__}: {str(error).splitlines()[0]})")
    return libraries, missing


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(rounds: int, fill: int) -> tuple[dict[str, dict[str, float]], list[str], int]:
    rng = np.random.default_rng(0)
    libraries, missing = build(prefill_data(fill, rng))
    times = {lib.name: {op: [] for op in OPS} for lib in libraries}
    for _ in range(rounds):
        priorities = rng.random(BATCH) * 5
        for lib in libraries:
            times[lib.name]["add"].append(timed(lib.add))
            times[lib.name]["sample"].append(timed(lib.sample))
            times[lib.name]["update"].append(timed(partial(lib.update, priorities)))
    medians = {
        name: {op: float(np.median(values)) * 1e6 for op, values in ops.items()}
        for name, ops in times.items()
    }
    for ops in medians.values():
        ops["step"] = ops["add"] + ops["sample"] + ops["update"]
    return medians, missing, fill


def table(medians: dict[str, dict[str, float]], missing: list[str], fill: int, rounds: int) -> str:
    versions = []
    for package in ("numpy", "numba", "cpprb", "torchrl", "torch"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{package} {importlib.metadata.version(package)}")
    names = list(medians)
    lines = [
        "# PER benchmark (benchmarks/bench_per.py)",
        "",
        f"Capacity {CAPACITY:,}, prefilled with {fill:,} CartPole-sized transitions "
        f"(obs 4 float32), batch {BATCH}, alpha {ALPHA}, beta {BETA}; {rounds} interleaved "
        f"rounds, medians in µs; ratio = peer / pearll (> 1: pearll faster).",
        f"Machine: {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}; {', '.join(versions)}.",
        "",
        "| operation | "
        + " | ".join(names)
        + " | "
        + " | ".join(f"{n} / pearll" for n in names[1:])
        + " |",
        "| --- " * (1 + 2 * len(names) - 1) + "|",
    ]
    for op in (*OPS, "step"):
        label = LABELS[op]
        cells = [f"{medians[n][op]:.1f}" for n in names]
        ratios = [f"{medians[n][op] / medians['pearll'][op]:.2f}" for n in names[1:]]
        lines.append(f"| {label} | " + " | ".join(cells + ratios) + " |")
    if missing:
        lines += ["", "Not measured (not importable here): " + "; ".join(missing)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about a minute)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_PER.md")))
    args = parser.parse_args()
    rounds = 300 if args.quick else 2000
    medians, missing, fill = run(rounds, CAPACITY)
    text = table(medians, missing, fill, rounds)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
