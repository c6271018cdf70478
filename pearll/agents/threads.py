"""torch's thread count for the small networks of the reference trainers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` inside the block, restored after.

    The trainers' MLPs are too small to gain from threads; on a 2-core machine a second
    thread only competes with the env (a 512-step PPO run took 4.4 s with 2, 0.15 s with 1).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
