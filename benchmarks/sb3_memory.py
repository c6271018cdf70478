"""Memory per Atari transition of pearll.sb3's frame-stack buffer and SB3's ReplayBuffer.

    .venv/bin/python -m benchmarks.sb3_memory          # prints both tables

Two figures: bytes allocated per transition at 1M capacity (``nbytes`` of the arrays; SB3's
from its array shapes, as numpy cannot reserve SB3's 26 GiB here), and the resident memory
(RSS) a buffer of 100k capacity gains per transition while 50k Atari-like steps (4x84x84
uint8 stacks, episodes of 200 steps) are added, each configuration in a fresh process.
"""

from __future__ import annotations

import multiprocessing
import resource

import numpy as np
from gymnasium import spaces

ATARI = spaces.Box(0, 255, (4, 84, 84), np.uint8)
ACTIONS = spaces.Discrete(6)
FRAME_STACK = {"frame_stack": 4, "channels_order": "first"}


def allocated_table() -> list[str]:
    """Bytes allocated per transition at 1M capacity (arrays are allocated lazily: cheap)."""
    from pearll import sb3

    lines = ["### bytes allocated per transition, Atari 4x84x84 uint8 stacks, 1M capacity", "",
             "| buffer | bytes per transition |", "| --- | ---: |"]  # fmt: skip
    n = 1_000_000
    # SB3's arrays, from their shapes: observations (and next observations), int64 actions,
    # float32 rewards, dones and timeouts.
    stack = 4 * 84 * 84
    lines.append(f"| SB3 ReplayBuffer | {2 * stack + 8 + 12:,} |")
    lines.append(f"| SB3 ReplayBuffer, optimize_memory_usage | {stack + 8 + 12:,} |")
    for length in (None, 1, 100, 1000):
        kwargs = {} if length is None else {"min_episode_length": length}
        buffer = sb3.ReplayBuffer(n, ATARI, ACTIONS, device="cpu", **FRAME_STACK, **kwargs)
        per = buffer.pearll_buffer.nbytes / n
        with_dones = (buffer.pearll_buffer.nbytes + buffer.dones.nbytes) / n
        note = f"min_episode_length={buffer.min_episode_length}"
        if length is None:
            note = f"default: {note}"
        lines.append(f"| pearll.sb3 frame_stack=4, {note} | {per:,.0f} "
                     f"({with_dones:,.0f} with the adapter's `dones`) |")  # fmt: skip
        del buffer
    return lines


def _rss_growth(name: str, queue: multiprocessing.Queue) -> None:
    """In a fresh process: RSS gained per transition over 50k adds to a 100k buffer."""
    from stable_baselines3.common import buffers as sb3_buffers

    from benchmarks.bench_sb3 import Stream
    from pearll import sb3

    capacity, steps = 100_000, 50_000
    stream = Stream(ATARI, 1, 2_000, frames=4)
    if name == "pearll.sb3":
        buffer = sb3.ReplayBuffer(capacity, ATARI, ACTIONS, device="cpu", **FRAME_STACK)
    else:
        memory_saving = name.endswith("optimize_memory_usage")
        buffer = sb3_buffers.ReplayBuffer(
            capacity, ATARI, ACTIONS, device="cpu", optimize_memory_usage=memory_saving,
            handle_timeout_termination=not memory_saving,
        )  # fmt: skip
    stream.add_to(buffer)
    before = _rss()
    for _ in range(steps):
        stream.add_to(buffer)
    queue.put((_rss() - before) / steps)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def rss_table() -> list[str]:
    lines = ["### resident memory gained per transition (RSS), 50k Atari steps into a 100k buffer",
             "", "| buffer | bytes per transition |", "| --- | ---: |"]  # fmt: skip
    context = multiprocessing.get_context("spawn")
    for name in ("pearll.sb3", "SB3 ReplayBuffer", "SB3 ReplayBuffer, optimize_memory_usage"):
        queue = context.Queue()
        process = context.Process(target=_rss_growth, args=(name, queue))
        process.start()
        growth = queue.get()
        process.join()
        label = f"{name} (frame_stack=4, defaults)" if name == "pearll.sb3" else name
        lines.append(f"| {label} | {growth:,.0f} |")
    return lines


def main() -> None:
    print("\n".join([*allocated_table(), "", *rss_table()]))


if __name__ == "__main__":
    main()
