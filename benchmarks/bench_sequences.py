"""Sequence sampling: pearll's ``sample_sequences`` against TorchRL's ``SliceSampler`` (and
flashbax's trajectory buffer on Atari frame stacks, benchmarks/bench_sequences_atari.py).

    PYTHONPATH=. .venv-bench/bin/python -m benchmarks.bench_sequences [--quick] [--only PART]

Both buffers hold the same CartPole-sized steps (4 float32 observations, episodes of 10 to 500
steps, those of 500 truncated, the others terminated) and are timed in turn, round after round
(so machine noise hits both alike); medians per call and the ratio ``peer / pearll`` (above 1,
pearll is faster). TorchRL is timed in two configurations: its default (``end_key``, episode
boundaries found from the stored done flags at each call) and its fastest (``cache_values=True``:
boundaries cached until the storage is written, so in a training loop, with adds between
samples, each sample after an add pays the default's price again). Its slices are
``burn_in + length`` long and end at an episode's end (``strict_length=False``), about what
``boundary="pad"`` gives; TorchRL has no burn-in, masks or true final observations at
truncation. Then pearll's cost as the buffer grows, 1e5 to 1e7 stored steps (memory, and
memmap for the largest), all sizes in one interleaved run, in CPU time, plotted to
benchmarks/sequence_scaling.png. Then 200k stored Atari steps. Writes
benchmarks/RESULTS_SEQUENCES.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import gymnasium as gym
import numpy as np

from pearll.buffers import ReplayBuffer

RESULTS = Path(__file__).with_name("RESULTS_SEQUENCES.md")
PLOT = Path(__file__).with_name("sequence_scaling.png")
CASES = ((32, 80, 40), (16, 64, 0))  # (batch_size, length, burn_in)


def episodes(steps: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``steps`` CartPole-sized steps of episodes of 10..500 steps, as ``(T, ...)`` arrays."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(10, 501, size=steps // 10 + 1)
    ends = np.cumsum(lengths)
    ends = ends[ends <= steps]
    ended = np.zeros(steps, dtype=bool)
    ended[ends - 1] = True
    ended[-1] = False
    full = np.zeros(steps, dtype=bool)
    full[ends - 1] = lengths[: len(ends)] == 500
    obs = rng.standard_normal((steps + 1, 4), dtype=np.float32)
    return {
        "obs": obs[:-1],
        "next_obs": obs[1:],
        "action": rng.integers(0, 2, steps),
        "reward": np.ones(steps, dtype=np.float32),
        "done": ended & ~full,
        "truncated": ended & full,
    }


def fill_pearll(steps: int, **kwargs) -> ReplayBuffer:
    env = gym.make("CartPole-v1")
    buffer = ReplayBuffer(env, steps + steps // 10, seed=0, **kwargs)
    chunk = 200_000
    data = episodes(steps)
    for start in range(0, steps, chunk):
        part = {k: v[start : start + chunk] for k, v in data.items()}
        buffer.add_batch_trajectories(
            part["obs"], part["action"], part["reward"], part["next_obs"], part["done"],
            part["truncated"],
        )  # fmt: skip
    return buffer


def fill_torchrl(steps: int, slice_len: int, batch: int, cached: bool):
    import torch
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage
    from torchrl.data import ReplayBuffer as TorchRLBuffer
    from torchrl.data.replay_buffers.samplers import SliceSampler

    data = episodes(steps)
    sampler = SliceSampler(
        slice_len=slice_len, end_key=("next", "done"), traj_key=None, strict_length=False,
        cache_values=cached,
    )  # fmt: skip
    buffer = TorchRLBuffer(
        storage=LazyTensorStorage(steps), sampler=sampler, batch_size=batch * slice_len
    )
    done = torch.as_tensor(data["done"] | data["truncated"])[:, None]
    buffer.extend(
        TensorDict(
            {
                "obs": torch.as_tensor(data["obs"]),
                "action": torch.as_tensor(data["action"]),
                "reward": torch.as_tensor(data["reward"])[:, None],
                "next": {
                    "obs": torch.as_tensor(data["next_obs"]),
                    "done": done,
                    "truncated": torch.as_tensor(data["truncated"])[:, None],
                },
            },
            batch_size=[steps],
        )
    )
    return buffer


def timed(op: Callable[[], object], calls: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(calls):
        op()
    return (clock() - start) / calls


def interleaved(
    ops: dict[str, Callable[[], object]], rounds: int, calls: int, cpu: bool = False
) -> dict:
    """Median ms per call of each op, the ops timed in turn round after round; wall time, or
    with ``cpu`` this process's CPU time (time spent descheduled on a shared machine not
    counted; single-threaded ops only)."""
    clock = time.process_time if cpu else time.perf_counter
    times: dict[str, list[float]] = {name: [] for name in ops}
    for op in ops.values():
        timed(op, 2, clock)  # warm-up (compilation, caches)
    for _ in range(rounds):
        for name, op in ops.items():
            times[name].append(timed(op, calls, clock) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def peers_table(steps: int, rounds: int, calls: int) -> list[str]:
    lines = [
        f"### {steps:,} stored CartPole steps\n",
        "| call | pearll ms | TorchRL default ms | TorchRL cached ms | default / pearll | "
        "cached / pearll |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    pearll = fill_pearll(steps)
    for batch, length, burn_in in CASES:
        span = burn_in + length
        ops = {
            "pearll": lambda b=batch, n=length, k=burn_in: pearll.sample_sequences(b, n, burn_in=k)
        }
        try:
            default = fill_torchrl(steps, span, batch, cached=False)
            cached = fill_torchrl(steps, span, batch, cached=True)
            ops["default"], ops["cached"] = default.sample, cached.sample
        except ImportError:
            pass
        medians = interleaved(ops, rounds, calls)
        mine = medians["pearll"]
        peer = [medians.get(k) for k in ("default", "cached")]
        cells = [f"{v:.3f}" if v else "-" for v in peer]
        ratios = [f"{v / mine:.1f}x" if v else "-" for v in peer]
        call = f"sample_sequences({batch}, {length}, burn_in={burn_in})"
        lines.append(f"| {call} | {mine:.3f} | {' | '.join(cells)} | {' | '.join(ratios)} |")
        print(lines[-1], flush=True)
    return [*lines, ""]


def growth_table(sizes: list[int], memmap_sizes: list[int], rounds: int, calls: int) -> list:
    """pearll's cost at every size, all buffers built first and timed in one interleaved run
    (so machine load hits every size alike); plotted to PLOT."""
    lines = [
        "### pearll's cost as the buffer grows\n",
        "All sizes built first, then timed in one interleaved run, in CPU time of the process "
        "(pearll samples on one thread; time descheduled on the shared machine is not counted);"
        " memmap pages read once before timing (a buffer that was just written is resident).\n",
        "| stored steps | storage | "
        + " | ".join(f"({b}, {n}, burn_in={k}) ms" for b, n, k in CASES)
        + " |",
        "| --- | --- |" + " --- |" * len(CASES),
    ]
    points = [(s, "memory") for s in sizes] + [(s, "memmap") for s in memmap_sizes]
    with contextlib.ExitStack() as stack:
        ops = {}
        for steps, storage in points:
            kwargs = {}
            if storage == "memmap":
                directory = stack.enter_context(tempfile.TemporaryDirectory())
                kwargs = {"storage": "memmap", "storage_dir": directory}
            buffer = fill_pearll(steps, **kwargs)
            touch(buffer)
            for case, op in sampling_ops(buffer).items():
                ops[(steps, storage, case)] = op
        medians = interleaved(ops, rounds, calls, cpu=True)
    table = {}
    for steps, storage in points:
        cells = [medians[(steps, storage, f"{b},{n},{k}")] for b, n, k in CASES]
        table[(steps, storage)] = cells
        lines.append(f"| {steps:,} | {storage} | {' | '.join(f'{v:.3f}' for v in cells)} |")
    largest = [max(v[i] for v in table.values()) for i in range(len(CASES))]
    smallest = [min(v[i] for v in table.values()) for i in range(len(CASES))]
    spread = ", ".join(
        f"({b}, {n}, burn_in={k}) {hi / lo:.2f}x"
        for (b, n, k), hi, lo in zip(CASES, largest, smallest, strict=True)
    )
    lines += ["", f"Slowest / fastest size: {spread}.", ""]
    print("\n".join(lines[4:]), flush=True)
    plot(table)
    return lines


def touch(buffer: ReplayBuffer) -> None:
    """Read every stored field once (a memmap buffer's pages mapped, as after writing it)."""
    for name in ("observations", "actions", "rewards", "dones", "truncateds"):
        np.asarray(getattr(buffer, name)).sum()


def plot(table: dict[tuple[int, str], list[float]]) -> None:
    """ms per call against stored steps, one line per case, to PLOT (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    figure, axes = plt.subplots(figsize=(6, 4))
    for i, (b, n, k) in enumerate(CASES):
        for storage, style in (("memory", "o-"), ("memmap", "s--")):
            points = [(s, v[i]) for (s, kind), v in table.items() if kind == storage]
            if points:
                xs, ys = zip(*points, strict=True)
                axes.plot(xs, ys, style, color=f"C{i}",
                          label=f"sample_sequences({b}, {n}, burn_in={k}), {storage}")  # fmt: skip
    axes.set_xscale("log")
    axes.set_ylim(bottom=0)
    axes.set_xlabel("stored steps (CartPole-sized)")
    axes.set_ylabel("CPU ms per call (median)")
    axes.set_title("pearll sample_sequences: cost as the buffer grows")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(PLOT, dpi=120)
    print(f"wrote {PLOT}")


def sampling_ops(buffer: ReplayBuffer) -> dict[str, Callable[[], object]]:
    def op(batch: int, length: int, burn_in: int) -> Callable[[], object]:
        return lambda: buffer.sample_sequences(batch, length, burn_in=burn_in)

    return {f"{b},{n},{k}": op(b, n, k) for b, n, k in CASES}


def versions() -> str:
    found = []
    for name in ("numpy", "numba", "torch", "torchrl", "tensordict", "jax", "flashbax"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer rounds")
    parser.add_argument("--memmap", type=int, help="time this many on memmap (default 1e7)")
    parser.add_argument("--atari", type=int, help="stored Atari steps (default 200k; 0: skip)")
    parser.add_argument("--only", choices=["cartpole", "growth", "atari"], nargs="*",
                        help="run only these parts")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="the results file")
    parser.add_argument("--atari-peers", nargs="*", default=["torchrl", "flashbax"],
                        choices=["torchrl", "flashbax"], help="the Atari peers timed")  # fmt: skip
    args = parser.parse_args()
    rounds, calls = (5, 5) if args.quick else (15, 10)
    sizes = [100_000] if args.quick else [100_000, 1_000_000, 3_000_000]
    memmap = args.memmap if args.memmap is not None else (0 if args.quick else 10_000_000)
    atari = args.atari if args.atari is not None else (5_000 if args.quick else 200_000)
    parts = set(args.only or ["cartpole", "growth", "atari"])
    lines = [
        "# Sequence sampling\n",
        f"`python -m benchmarks.bench_sequences` on {platform.processor() or platform.machine()}"
        f", Python {platform.python_version()}, {versions()}; {rounds} interleaved rounds of "
        f"{calls} calls each, medians. Load average at the start: {load()}.\n",
    ]
    if "cartpole" in parts:
        lines += peers_table(1_000_000 if not args.quick else 100_000, rounds, calls)
    if "growth" in parts:
        lines += growth_table(sizes, [memmap] if memmap else [], rounds, calls)
    if "atari" in parts and atari:
        from benchmarks.bench_sequences_atari import atari_tables

        args.out.write_text("\n".join(lines))  # what is done so far, should the rest fail
        settings = (3, 2) if args.quick else (6, 3)
        lines += atari_tables(atari, CASES, interleaved, *settings, only=args.atari_peers)
    lines.append(f"Load average at the end: {load()}.\n")
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


def load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1 / 5 / 15 min)"


if __name__ == "__main__":
    main()
