"""Check that a buffer fits in memory before allocating it.

numpy allocates lazily (the pages of ``np.zeros`` are only claimed when written), so an
oversized buffer would otherwise be created without complaint and kill the process hours into a
run, when it fills up.
"""

from __future__ import annotations

import warnings

import psutil


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.50 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_memory(required_bytes: int, what: str = "buffer") -> None:
    """Raise MemoryError if ``required_bytes`` exceeds available memory; warn above half of it."""
    available = psutil.virtual_memory().available
    if required_bytes > available:
        raise MemoryError(
            f"{what} needs {format_bytes(required_bytes)} ({required_bytes} bytes) but only "
            f"{format_bytes(available)} ({available} bytes) of memory is available: reduce "
            "buffer_size, the number of envs or the observation size, or free memory."
        )
    if required_bytes > available / 2:
        warnings.warn(
            f"{what} needs {format_bytes(required_bytes)}, more than half of the "
            f"{format_bytes(available)} of memory available now; the rest of training may not fit.",
            ResourceWarning,
            stacklevel=3,
        )
