"""Atari-sized replay: memory per transition and sample(32) of 4x84x84 uint8 stacks.

    make bench                     # part of the full benchmark run
    python -m benchmarks.bench_atari [--quick] [--out FILE]

Every library gets the same stream of frame stacks (each stack the previous one shifted by a
new random frame, as gymnasium's FrameStackObservation makes them, with an episode end every
500 steps). Memory is measured the same way for every library: the growth of the resident set
of a fresh process while it builds the buffer and fills it (``psutil``), divided by the number
of transitions. Speed: sample(32) medians, the libraries interleaved round by round; the floor
is one np.take of 32 * 8 frames (observation and next-observation stacks) from a contiguous
frame array.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from gymnasium import spaces

from benchmarks.bench_buffers import Case, run, table, versions

OUT = Path(__file__).with_name("RESULTS_ATARI.md")
K, FRAME = 4, (84, 84)
EPISODE = 500


class AtariSpaces:
    observation_space = spaces.Box(0, 255, (K, *FRAME), np.uint8)
    action_space = spaces.Discrete(6)
    metadata: dict = {}  # noqa: RUF012


def stream(n: int, seed: int = 0):
    """``n`` (stack, next stack, done) triples of a frame-stacked env."""
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 255, FRAME, dtype=np.uint8) for _ in range(K)]
    for t in range(n):
        new = rng.integers(0, 255, FRAME, dtype=np.uint8)
        stack, following = np.stack(frames), np.stack([*frames[1:], new])
        done = (t + 1) % EPISODE == 0
        yield stack, following, done
        frames = [new] * K if done else [*frames[1:], new]


def build(name: str, capacity: int):
    """The library's replay buffer for Atari stacks, and a function adding one transition."""
    env = AtariSpaces()
    if name == "pearll":
        from pearll.buffers import ReplayBuffer

        buffer = ReplayBuffer(env, capacity, frame_stack=K, seed=0)
        return buffer, lambda s, n, d: buffer.add_trajectory(s, 1, 1.0, n, d), buffer.sample
    if name.startswith("SB3"):
        from stable_baselines3.common.buffers import ReplayBuffer

        buffer = ReplayBuffer(
            capacity, env.observation_space, env.action_space, device="cpu",
            optimize_memory_usage=name == "SB3 optimize_memory_usage",
            handle_timeout_termination=False,
        )  # fmt: skip
        act, rew = np.array([[1]]), np.array([1.0])

        def add(s, n, d):
            buffer.add(s[None], n[None], act, rew, np.array([d]), [{}])

        return buffer, add, buffer.sample
    if name.startswith("cpprb"):
        import cpprb

        compress = {"next_of": "obs", "stack_compress": "obs"} if name != "cpprb" else {}
        buffer = cpprb.ReplayBuffer(
            capacity,
            {"obs": {"shape": (K, *FRAME), "dtype": np.uint8}, "act": {"dtype": np.int64},
             "rew": {}, "done": {}},
            **compress,
        )  # fmt: skip

        def add(s, n, d):
            buffer.add(obs=s, act=1, rew=1.0, next_obs=n, done=d)
            if d:
                buffer.on_episode_end()

        return buffer, add, buffer.sample
    if name == "Tianshou":
        from tianshou.data import Batch, ReplayBuffer

        buffer = ReplayBuffer(capacity, stack_num=K, save_only_last_obs=True)

        def add(s, n, d):
            buffer.add(Batch(obs=s, act=1, rew=1.0, terminated=d, truncated=False, obs_next=n,
                             info={}))  # fmt: skip

        return buffer, add, lambda b: buffer.sample(b)
    if name == "TorchRL":
        import torch
        from tensordict import TensorDict
        from torchrl.data import LazyTensorStorage, ReplayBuffer

        buffer = ReplayBuffer(storage=LazyTensorStorage(capacity), batch_size=None)

        def add(s, n, d):
            buffer.add(TensorDict({"obs": torch.from_numpy(s), "next_obs": torch.from_numpy(n),
                                   "action": torch.tensor(1), "reward": torch.tensor(1.0),
                                   "done": torch.tensor(d)}, batch_size=[]))  # fmt: skip

        return buffer, add, buffer.sample
    raise ValueError(name)


# Each peer in its fastest configuration (SB3's and cpprb's defaults: next observations apart)
# and in the one that saves the most memory.
LIBRARIES = [
    "pearll", "SB3", "SB3 optimize_memory_usage", "cpprb", "cpprb next_of+stack_compress",
    "Tianshou", "TorchRL",
]  # fmt: skip


def measure_memory(name: str, n: int) -> None:
    """In this (fresh) process: RSS growth per transition of ``n`` Atari transitions."""
    import psutil

    # Imports and one-off allocations (compiled code loaded at the first add), not counted.
    _, warm_up, _ = build(name, 16)
    for stack, following, done in stream(2):
        warm_up(stack, following, done)
    process = psutil.Process()
    before = process.memory_info().rss
    _, add, _ = build(name, n)
    for stack, following, done in stream(n):
        add(stack, following, done)
    print(json.dumps({"bytes_per_transition": (process.memory_info().rss - before) / n}))


def memory_table(n: int) -> str:
    lines = ["### memory per Atari transition (RSS growth / transitions)", "",
             f"{n} transitions per library, each in a fresh process.", "",
             "| library | bytes per transition |", "| --- | ---: |"]  # fmt: skip
    for name in LIBRARIES:
        command = [
            sys.executable,
            "-m",
            "benchmarks.bench_atari",
            "--memory-of",
            name,
            "-n",
            str(n),
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            lines.append(f"| {name} | failed: {done.stderr.strip().splitlines()[-1][:80]} |")
            continue
        value = json.loads(done.stdout.strip().splitlines()[-1])["bytes_per_transition"]
        lines.append(f"| {name} | {value:,.0f} |")
    lines.append("| floor: one 84x84 frame | 7,056 |")
    return "\n".join(lines) + "\n"


def speed_cases(capacity: int) -> tuple[Case, Case]:
    """sample(32) from ``capacity`` stored transitions, and add one more, for every library."""
    sample_case = Case(f"sample(32), Atari 4x84x84 uint8 stacks, {capacity:,} stored", "µs")
    add_case = Case("add one transition, Atari 4x84x84 uint8 stacks", "µs")
    # Whole episodes, so that cycling through them keeps each library's stream consistent.
    more = list(stream(2 * EPISODE, seed=1))
    for name in LIBRARIES:
        try:
            _, add, sample = build(name, capacity)
        except ImportError as error:
            print(f"  skipping {name}: {error}")
            continue
        for stack, following, done in stream(capacity):
            add(stack, following, done)
        sample_case.ops[name] = lambda s=sample: s(32)
        steps = itertools.cycle(more)
        add_case.ops[name] = lambda a=add, steps=steps: a(*next(steps))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (capacity, *FRAME), dtype=np.uint8)  # written pages
    # What a sample must move: the 4 frames of each observation and of each next observation.
    sample_case.ops["numpy floor: np.take of 32x8 frames"] = lambda: frames.take(
        rng.integers(0, capacity, 32 * 2 * K), axis=0
    )
    return sample_case, add_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--memory-of", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("-n", type=int, default=20_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_of:
        measure_memory(args.memory_of, args.n)
        return
    capacity, n_memory = (10_000, 5_000) if args.quick else (50_000, 20_000)
    rounds, calls = (7, 50) if args.quick else (21, 100)
    memory = memory_table(n_memory)
    print(memory)
    speed = "\n".join(table(case, run(case, rounds, calls)) for case in speed_cases(capacity))
    print(speed)
    args.out.write_text(
        "# Atari benchmark\n\n"
        f"Command: `python -m benchmarks.bench_atari{' --quick' if args.quick else ''}` "
        f"({rounds} interleaved rounds of {calls} calls). Versions: {versions()}.\n\n"
        + memory
        + "\n"
        + speed
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
