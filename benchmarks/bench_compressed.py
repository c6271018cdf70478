"""Compressed Atari frames (``frame_compression=``) against the uncompressed frame store.

    make bench                                   # part of the full benchmark run
    python -m benchmarks.bench_compressed [--quick] [--out FILE]

Real frames, since random ones do not compress: Pong, Breakout and MsPacman played by a random
policy through ale-py (``gymnasium.make("ALE/<game>-v5", frameskip=1)``, gymnasium's
``AtariPreprocessing`` (84x84 grayscale, frame skip 4) and ``FrameStackObservation(4)``),
recorded once and cached in the temp directory; the stream of (stack, next stack, done)
cycles through the recording. Needs ``pip install -e ".[bench]"`` (ale-py, opencv, lz4,
zstandard).

Memory: as in bench_atari.py, the growth of the resident set of a fresh process while it builds
the buffer and adds ``n`` transitions, divided by ``n``; "wrapped" adds ``2n`` transitions to a
buffer of capacity ``n`` (the ring overwritten once: what freed and reallocated frames cost).
The full run also fills a 1,000,000-transition buffer of the game that compresses worst.
Speed: add one transition and sample(32) medians, the stores interleaved round by round. The
add table also times each codec alone compressing one frame of the same stream (the call the
store makes), interleaved with the adds, and checks the target: a compressed add costs at most
the uncompressed add plus that one compression.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from benchmarks.bench_atari import AtariSpaces
from benchmarks.bench_buffers import Case, run, table, versions

OUT = Path(__file__).with_name("RESULTS_COMPRESSED.md")
K = 4
GAMES = ("Pong", "Breakout", "MsPacman")
WORST = "MsPacman"  # the largest lz4 and zstd frames of the games above
STORES = {"pearll": None, "pearll lz4": "lz4", "pearll zstd": "zstd"}
RECORDED = 20_000  # frames per game


def recording(game: str) -> tuple[np.ndarray, np.ndarray]:
    """``frames`` (m, 84, 84) uint8 of consecutive episodes, and ``first[i]``: frame i is a
    reset observation. Recorded once, then read from the cache."""
    cache = Path(tempfile.gettempdir()) / f"pearll-atari-{game}-{RECORDED}.npz"
    if not cache.exists():
        frames, first = _record(game, RECORDED)
        np.savez(cache, frames=frames, first=first)
    with np.load(cache) as saved:
        return saved["frames"], saved["first"]


def _record(game: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    import ale_py
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gym.register_envs(ale_py)
    env = gym.make(f"ALE/{game}-v5", frameskip=1)
    env = FrameStackObservation(AtariPreprocessing(env, frame_skip=4), K)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    frames, first = [obs[-1]], [True]
    while len(frames) < n:
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        frames.append(obs[-1])
        first.append(False)
        if terminated or truncated:
            obs, _ = env.reset()
            frames.append(obs[-1])
            first.append(True)
    return np.stack(frames[:n]), np.array(first[:n])


def stream(
    frames: np.ndarray, first: np.ndarray, n: int
) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
    """``n`` (stack, next stack, done) triples as FrameStackObservation returns them (episode
    starts padded with the reset frame), cycling through a recording (see :func:`recording`)."""
    produced = 0
    while True:
        for i in range(len(frames) - 1):
            if first[i]:
                start = i
            if first[i + 1]:
                continue  # frame i ended its episode
            done = i + 2 == len(frames) or bool(first[i + 2])
            yield _stack(frames, start, i), _stack(frames, start, i + 1), done
            produced += 1
            if produced == n:
                return


def _stack(frames: np.ndarray, start: int, i: int) -> np.ndarray:
    """The stack ending at frame ``i`` of the episode starting at ``start``: a view of the
    recording, or padded with the episode's first frame."""
    if i - start >= K - 1:
        return frames[i - K + 1 : i + 1]
    padding = np.repeat(frames[start][None], K - 1 - (i - start), axis=0)
    return np.concatenate([padding, frames[start : i + 1]])


def build(compression: str | None, capacity: int):
    from pearll.buffers import ReplayBuffer

    return ReplayBuffer(
        AtariSpaces(), capacity, frame_stack=K, frame_compression=compression, seed=0
    )


def measure_memory(store: str, game: str, n: int, wrapped: bool) -> None:
    """In this (fresh) process: RSS growth per stored transition, printed as JSON."""
    import psutil

    frames, first = recording(game)
    # Imports and one-off allocations (compiled code loaded at the first add), not counted.
    warm_up = build(STORES[store], 16)
    for stack, following, done in stream(frames, first, 2):
        warm_up.add_trajectory(stack, 1, 1.0, following, done)
    process = psutil.Process()
    before = process.memory_info().rss
    start = time.perf_counter()
    buffer = build(STORES[store], n)
    for stack, following, done in stream(frames, first, n * (2 if wrapped else 1)):
        buffer.add_trajectory(stack, 1, 1.0, following, done)
    seconds = time.perf_counter() - start
    growth = process.memory_info().rss - before
    print(json.dumps({"bytes_per_transition": growth / n, "nbytes": buffer.nbytes / n,
                      "seconds": seconds}))  # fmt: skip


def memory_of(store: str, game: str, n: int, wrapped: bool = False) -> dict | str:
    command = [sys.executable, "-m", "benchmarks.bench_compressed", "--memory-of", store,
               "--game", game, "-n", str(n)] + (["--wrapped"] if wrapped else [])  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        return f"failed: {done.stderr.strip().splitlines()[-1][:80]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_table(n: int) -> str:
    lines = [
        "### memory per Atari transition, real frames (RSS growth / transitions)",
        "",
        f"{n:,} transitions per row, each in a fresh process; wrapped: {2 * n:,} adds to a "
        f"buffer of {n:,}. nbytes: what `buffer.nbytes` reports per transition. 1M: the "
        "projection (bytes per transition x 1,000,000).",
        "",
        "| game | store | bytes per transition | wrapped | nbytes | 1M projected |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for game in GAMES:
        for store in STORES:
            print(f"  memory: {game}, {store}", flush=True)
            fresh, wrapped = memory_of(store, game, n), memory_of(store, game, n, wrapped=True)
            if isinstance(fresh, str) or isinstance(wrapped, str):
                lines.append(f"| {game} | {store} | {fresh} | {wrapped} | | |")
                continue
            per = fresh["bytes_per_transition"]
            lines.append(
                f"| {game} | {store} | {per:,.0f} | {wrapped['bytes_per_transition']:,.0f} | "
                f"{fresh['nbytes']:,.0f} | {per * 1e6 / 2**30:.2f} GiB |"
            )
    return "\n".join(lines) + "\n"


def million_table() -> str:
    lines = [
        f"### 1,000,000 transitions of {WORST} (the worst game above), measured",
        "",
        "| store | RSS growth | per transition | fill time (s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for store in ("pearll lz4", "pearll zstd"):
        print(f"  memory: 1M {WORST}, {store}", flush=True)
        result = memory_of(store, WORST, 1_000_000)
        if isinstance(result, str):
            lines.append(f"| {store} | {result} | | |")
            continue
        per = result["bytes_per_transition"]
        lines.append(
            f"| {store} | {per * 1e6 / 2**30:.2f} GiB | {per:,.0f} | {result['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


CODEC_ALONE = "{} alone: compress one frame"
CODEC_KEPT = "{} alone, each output kept (a ring of as many blobs as the buffer)"


def speed_cases(game: str, capacity: int) -> list[Case]:
    from pearll.buffers.storage.codecs import Codec

    add = Case(f"add one transition, real {game} frames", "µs")
    sample = Case(f"sample(32), real {game} frames, {capacity:,} stored", "µs")
    frames, first = recording(game)
    steps = list(stream(frames, first, 2_000))
    for name, compression in STORES.items():
        adder, position = build(compression, capacity), [0]

        def add_one(buffer=adder, position=position) -> None:
            stack, following, done = steps[position[0] % len(steps)]
            buffer.add_trajectory(stack, 1, 1.0, following, done)
            position[0] += 1

        add.ops[name] = add_one
        full = build(compression, capacity)
        for stack, following, done in stream(frames, first, capacity):
            full.add_trajectory(stack, 1, 1.0, following, done)
        sample.ops[name] = lambda buffer=full: buffer.sample(32)
    # The frames as bytes, as the step writer passes them: the codec's time, nothing else.
    newest = [following[-1].tobytes() for _, following, _ in steps]
    for codec in ("lz4", "zstd"):
        compress, position, kept_at = Codec(codec).compress, [0], [0]
        kept: list[bytes] = [b""] * capacity

        def compress_one(compress=compress, position=position) -> None:
            compress(newest[position[0] % len(newest)])
            position[0] += 1

        def compress_kept(compress=compress, position=kept_at, kept=kept) -> None:
            # As a store keeps it: the output lives on, in new memory (not reused at once).
            i = position[0]
            kept[i % len(kept)] = compress(newest[i % len(newest)])
            position[0] += 1

        add.ops[CODEC_ALONE.format(codec)] = compress_one
        add.ops[CODEC_KEPT.format(codec)] = compress_kept
    return [add, sample]


def target_lines(medians: dict[str, float]) -> str:
    """The add target: each compressed add against the uncompressed add plus its codec alone."""
    lines = ["Target: a compressed add <= the uncompressed add + its codec on one frame.", ""]
    for codec in ("lz4", "zstd"):
        add, plain = medians[f"pearll {codec}"], medians["pearll"]
        codec_alone = medians[CODEC_ALONE.format(codec)]
        kept = medians[CODEC_KEPT.format(codec)]
        verdict = "met" if add <= plain + codec_alone else "NOT met"
        lines.append(
            f"- {codec}: {add:.2f} µs <= {plain:.2f} + {codec_alone:.2f} = "
            f"{plain + codec_alone:.2f} µs: {verdict} (margin {plain + codec_alone - add:+.2f} µs;"
            f" with the output kept, {kept:.2f}: margin {plain + kept - add:+.2f} µs)"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--memory-of", choices=list(STORES), help=argparse.SUPPRESS)
    parser.add_argument("--game", choices=GAMES, default=WORST, help=argparse.SUPPRESS)
    parser.add_argument("--wrapped", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-n", type=int, default=20_000, help=argparse.SUPPRESS)
    parser.add_argument("--speed-only", action="store_true", help="skip the memory tables")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="cpu: the thread's CPU clock"
    )
    args = parser.parse_args()
    if args.memory_of:
        measure_memory(args.memory_of, args.game, args.n, args.wrapped)
        return
    for game in GAMES:
        recording(game)  # before any timing
    capacity, n_memory = (10_000, 5_000) if args.quick else (50_000, 20_000)
    rounds, calls = (7, 50) if args.quick else (21, 100)
    sections = [] if args.speed_only else [memory_table(n_memory)]
    if not (args.quick or args.speed_only):
        sections.append(million_table())
    for case in speed_cases(WORST, capacity):
        print(f"{case.title} ...", flush=True)
        medians = run(case, rounds, calls, args.clock)
        sections.append(table(case, medians))
        if CODEC_ALONE.format("lz4") in medians:
            sections.append(target_lines(medians))
            print(sections[-1], flush=True)
    text = "\n".join(sections)
    print(text)
    args.out.write_text(
        "# Compressed Atari frames\n\n"
        f"Command: `python -m benchmarks.bench_compressed{' '.join(['', *sys.argv[1:]])}` "
        f"({rounds} interleaved rounds of {calls} calls, {args.clock} clock; medians; ratios "
        f"vs the uncompressed store). Versions: {versions()}, {codec_versions()}.\n\n" + text
    )
    print(f"wrote {args.out}")


def codec_versions() -> str:
    from importlib import metadata

    found = []
    for name in ("lz4", "zstandard", "ale-py"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


if __name__ == "__main__":
    main()
