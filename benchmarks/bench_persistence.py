"""Save and load throughput (MB/s) and peak memory of a large ReplayBuffer.

    PYTHONPATH=. python benchmarks/bench_persistence.py [--gb 2.0] [--dir /work/tmp-bench]

Builds a ReplayBuffer of Atari-like observations (84x84x4 uint8) of about ``--gb`` GB, fills it
through ``add_batch_trajectories``, then times in one run:

- ``buffer.save`` (chunked writes, SHA-256, fsync, atomic switch);
- ``load`` warm (files in the page cache) and cold (the files' pages dropped from the page cache
  with ``posix_fadvise(DONTNEED)``), reading and checking every checksum;
- ``load(mmap=True)`` (open only) and ``load(mmap=True, verify=True)``;
- baselines on the same buffer and disk: ``pickle.dump`` of the buffer (protocol 5, what
  whole-object checkpointing does) and ``np.save`` of each array (no checksum), each followed
  by an fsync, into new files while the old ones exist, as pearll's crash-safe save does.

Peak memory is the highest RSS above the RSS before the operation, sampled every 2 ms by a
thread (psutil), plus tracemalloc's peak of Python-level allocations (numpy included). A load
into memory must grow by the buffer's size; anything above that is overhead. The files are
deleted at the end. Check free disk first (``df -h``): it needs about 3x ``--gb``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import threading
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import psutil
from gymnasium import spaces

from pearll.buffers import ReplayBuffer

OBS_SHAPE = (84, 84, 4)
MB = 1e6


@contextmanager
def measured(name: str, nbytes: int, results: list):
    """Time the block and record its peak RSS growth and tracemalloc peak."""
    process = psutil.Process()
    base = process.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    tracemalloc.start()
    sampler.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        peak[0] = max(peak[0], process.memory_info().rss)
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        results.append((name, elapsed, nbytes / MB / elapsed, (peak[0] - base) / MB, traced / MB))


def drop_from_page_cache(directory: Path) -> None:
    for file in directory.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def build(gb: float) -> ReplayBuffer:
    env = SimpleNamespace(
        observation_space=spaces.Box(0, 255, shape=OBS_SHAPE, dtype=np.uint8),
        action_space=spaces.Discrete(6),
    )
    rows = int(gb * 1e9 / np.prod(OBS_SHAPE))
    buffer = ReplayBuffer(env, rows, seed=0)
    rng = np.random.default_rng(0)
    chunk = 2000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        obs = rng.integers(0, 256, size=(n + 1, *OBS_SHAPE), dtype=np.uint8)
        ends = rng.random(n) < 0.001
        buffer.add_batch_trajectories(
            obs[:-1], rng.integers(0, 6, n), rng.random(n), obs[1:], ends
        )  # fmt: skip
    return buffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gb", type=float, default=2.0)
    parser.add_argument("--dir", type=Path, default=Path("/work/tmp-bench-persistence"))
    args = parser.parse_args()
    free = shutil.disk_usage(args.dir.parent).free
    if free < 3.5 * args.gb * 1e9:
        raise SystemExit(
            f"needs ~{3.5 * args.gb:.1f} GB free in {args.dir.parent}, has {free / 1e9:.1f}"
        )
    args.dir.mkdir(parents=True, exist_ok=False)
    try:
        run(args.gb, args.dir)
    finally:
        shutil.rmtree(args.dir)


def run(gb: float, directory: Path) -> None:
    started = time.perf_counter()
    buffer = build(gb)
    size = buffer.nbytes
    print(f"buffer: {size / MB:.0f} MB ({buffer.buffer_size} rows of {OBS_SHAPE} uint8), "
          f"filled in {time.perf_counter() - started:.1f} s")  # fmt: skip
    results: list = []
    checkpoint = directory / "ckpt"
    # Every save writes new files while the previous ones still exist, then deletes them (a
    # crash-safe save must), and runs in rounds, alternating: a disk may write fresh blocks
    # slower than reused ones, so only like rounds compare.
    for round_ in (1, 2, 3):
        with measured(f"pearll save #{round_}", size, results):
            buffer.save(checkpoint, progress=False)
        with measured(f"pickle.dump + fsync #{round_}", size, results):
            pickle_dump(buffer, directory / f"buffer-{round_}.pkl")
            (directory / f"buffer-{round_ - 1}.pkl").unlink(missing_ok=True)
        with measured(f"np.save + fsync #{round_}", size, results):
            np_save(buffer, directory / f"plain-{round_}")
            shutil.rmtree(directory / f"plain-{round_ - 1}", ignore_errors=True)

    buffer.rng = np.random.default_rng(0)  # so a loaded copy samples what ``expected`` holds
    expected = buffer.sample(64).observations
    buffer.rng = np.random.default_rng(0)
    buffer.save(checkpoint, progress=False)
    with measured("pearll load warm (checked)", size, results):
        loaded = ReplayBuffer.load(checkpoint, progress=False)
    assert np.array_equal(loaded.sample(64).observations, expected)
    del loaded
    drop_from_page_cache(directory)
    with measured("pearll load cold (checked)", size, results):
        loaded = ReplayBuffer.load(checkpoint, progress=False)
    del loaded
    drop_from_page_cache(directory)
    with measured("pearll load mmap (open only)", size, results):
        mapped = ReplayBuffer.load(checkpoint, mmap=True, progress=False)
    assert np.array_equal(mapped.sample(64).observations, expected)
    del mapped
    drop_from_page_cache(directory)
    with measured("pearll load mmap+verify cold", size, results):
        mapped = ReplayBuffer.load(checkpoint, mmap=True, verify=True, progress=False)
    del mapped
    with measured("pickle.load cold", size, results), open(directory / "buffer-3.pkl", "rb") as f:
        pickle.load(f)
    drop_from_page_cache(directory)
    with measured("np.load cold (no checksum)", size, results):
        for file in sorted((directory / "plain-3").iterdir()):
            np.load(file)

    print(
        f"{'operation':30} {'seconds':>8} {'MB/s':>8} {'peak RSS +MB':>13} {'tracemalloc MB':>15}"
    )
    for name, elapsed, rate, rss, traced in results:
        print(f"{name:30} {elapsed:8.3f} {rate:8.0f} {rss:13.1f} {traced:15.1f}")


def pickle_dump(buffer: ReplayBuffer, file: Path) -> None:
    with open(file, "wb") as handle:
        pickle.dump(buffer, handle, protocol=5)
        handle.flush()
        os.fsync(handle.fileno())


def np_save(buffer: ReplayBuffer, directory: Path) -> None:
    directory.mkdir(exist_ok=True)
    for i, array in enumerate(_leaves(buffer._state())):
        with open(directory / f"{i}.npy", "wb") as handle:
            np.save(handle, array)
            handle.flush()
            os.fsync(handle.fileno())


def _leaves(tree):
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _leaves(value)
    elif isinstance(tree, np.ndarray):
        yield tree


if __name__ == "__main__":
    main()
