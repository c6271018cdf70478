"""Per-call speed of pearll's ReplayBuffer against its peers, interleaved in one process run.

    make bench                 # full run, writes benchmarks/RESULTS.md
    make bench ARGS=--quick    # about a minute

For each operation every library is timed in turn, round after round (so machine noise hits all
alike), and the median per-call time of each is reported with its ratio to pearll's
(``peer / pearll``: above 1, pearll is faster). Floors are what bare numpy needs for the same
data movement. Peers missing from the environment are skipped (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import gymnasium as gym
import numpy as np

from benchmarks.peers import PEERS, Pearll, Transition

RESULTS = Path(__file__).with_name("RESULTS.md")
CAPACITY = 100_000


@dataclass
class Case:
    """One operation: per library, a zero-argument function doing ``per_call`` units of work."""

    title: str
    unit: str
    ops: dict[str, Callable[[], object]] = field(default_factory=dict)
    per_call: int = 1


# "cpu" times this thread's CPU time, which time slices given to other processes on a loaded
# machine do not inflate (the wall clock does, by whole slices).
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def timed(
    op: Callable[[], object], calls: int, now: Callable[[], float] = time.perf_counter
) -> float:
    start = now()
    for _ in range(calls):
        op()
    return (now() - start) / calls


def run(case: Case, rounds: int, calls: int, clock: str = "wall") -> dict[str, float]:
    """Median µs per unit of work for each library, the libraries interleaved round by round,
    on the ``clock`` of CLOCKS."""
    now = CLOCKS[clock]
    samples: dict[str, list[float]] = {name: [] for name in case.ops}
    for op in case.ops.values():
        timed(op, max(1, calls // 10), now)  # warm-up
    for _ in range(rounds):
        for name, op in case.ops.items():
            samples[name].append(timed(op, calls, now) * 1e6 / case.per_call)
    return {name: statistics.median(values) for name, values in samples.items()}


def build(library, env, **kwargs):
    try:
        return library(env, CAPACITY, **kwargs)
    except ImportError as error:
        print(f"  skipping {library.name}: {error}")
        return None


def cartpole_cases() -> list[Case]:
    env = gym.make("CartPole-v1")
    one = Transition((4,), np.float32, None)
    add = Case("add one transition, CartPole", "µs")
    sample = Case("sample(256), CartPole, 100k stored, numpy out", "µs")
    sample_torch = Case("sample(256), CartPole, 100k stored, torch out", "µs")
    for library in [Pearll, *PEERS]:
        adder = build(library, env)
        if adder is None:
            continue
        add.ops[library.name] = lambda a=adder: a.add(one)
        full = build(library, env)
        full.fill(one, CAPACITY)
        is_torch = library.name.startswith(("SB3", "TorchRL"))
        (sample_torch if is_torch else sample).ops[library.name] = lambda f=full: f.sample(256)
        if library is Pearll:
            torch_full = build(library, env, torch_out=True)
            torch_full.fill(one, CAPACITY)
            sample_torch.ops["pearll"] = lambda f=torch_full: f.sample(256)
    add.ops["numpy floor (5 row writes)"] = row_writes_floor()
    (
        sample.ops["numpy: 5 fancy-index gathers"],
        sample.ops["numpy floor: np.take of packed rows"],
    ) = gather_floors()
    return [add, sample, sample_torch]


def vector_cases() -> list[Case]:
    env = gym.make_vec("CartPole-v1", num_envs=8)
    step = Transition((4,), np.float32, 8)
    add = Case("add, 8-env vector step, per transition", "µs", per_call=8)
    buffer = Pearll(env, CAPACITY)
    add.ops["pearll"] = lambda: buffer.add(step)
    try:
        from stable_baselines3.common.buffers import ReplayBuffer

        infos = [{}] * 8
        # SB3's default layout, and its memory-saving one (its fastest add: one observation
        # array; it needs handle_timeout_termination=False).
        for name, saving in (("SB3", False), ("SB3 optimize_memory_usage", True)):
            sb3 = ReplayBuffer(CAPACITY, env.single_observation_space, env.single_action_space,
                               device="cpu", n_envs=8, optimize_memory_usage=saving,
                               handle_timeout_termination=False)  # fmt: skip
            add.ops[name] = lambda sb3=sb3: sb3.add(
                step.obs, step.next_obs, step.action[:, None], step.reward, step.done, infos
            )
    except ImportError as error:
        print(f"  skipping SB3: {error}")
    return [add]


def row_writes_floor() -> Callable[[], None]:
    arrays = [np.zeros((CAPACITY, 4), np.float32), np.zeros((CAPACITY, 1), np.int64)]
    arrays += [np.zeros((CAPACITY, 1), np.float32) for _ in range(3)]
    values = [np.ones(4, np.float32), 1, 1.0, 0.0, 0.0]
    position = [0]

    def write() -> None:
        p = position[0] = (position[0] + 1) % CAPACITY
        for array, value in zip(arrays, values, strict=True):
            array[p] = value

    return write


def gather_floors() -> tuple[Callable[[], object], Callable[[], object]]:
    rng = np.random.default_rng(0)
    fields = [np.ones((CAPACITY, 4), np.float32), np.ones((CAPACITY, 1), np.int64),
              np.ones((CAPACITY, 1), np.float32), np.ones((CAPACITY, 4), np.float32),
              np.ones((CAPACITY, 1), np.float32)]  # fmt: skip
    packed = np.ones((CAPACITY, 48), np.uint8)
    out = np.empty((256, 48), np.uint8)

    def fancy() -> object:
        index = rng.integers(0, CAPACITY, 256)
        return [f[index] for f in fields]

    def take() -> object:
        return np.take(packed, rng.integers(0, CAPACITY, 256), axis=0, out=out)

    return fancy, take


def versions() -> str:
    names = ["numpy", "gymnasium", "torch", "stable-baselines3", "cpprb", "torchrl", "tianshou"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def table(case: Case, medians: dict[str, float]) -> str:
    ours = medians.get("pearll")
    lines = [f"### {case.title}", "", f"| library | median ({case.unit}) | vs pearll |",
             "| --- | ---: | ---: |"]  # fmt: skip
    for name, value in sorted(medians.items(), key=lambda item: item[1]):
        ratio = f"{value / ours:.2f}x" if ours else "-"
        lines.append(f"| {name} | {value:.2f} | {ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about a minute)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rounds, calls = (7, 200) if args.quick else (31, 500)
    sections = []
    for case in cartpole_cases() + vector_cases():
        print(f"{case.title} ...", flush=True)
        medians = run(case, rounds, calls)
        sections.append(table(case, medians))
        print(sections[-1])
    header = (
        "# Benchmark results\n\n"
        f"Command: `make bench{' ARGS=--quick' if args.quick else ''}` "
        f"({rounds} interleaved rounds of {calls} calls per library; medians).\n"
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"Python {platform.python_version()}. Versions: {versions()}.\n"
        "Ratio = peer time / pearll time (above 1: pearll is faster).\n\n"
    )
    args.out.write_text(header + "\n".join(sections))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
