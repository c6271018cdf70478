"""Where a buffer's bulk arrays live: in memory, or in memory-mapped files.

``storage="memory"`` (the default) allocates with ``np.zeros``. ``storage="memmap"`` puts the
packed rows (and an Atari buffer's frames) in files under ``storage_dir`` (a fresh
``pearll-*`` directory inside it, removed when the buffer is garbage-collected), so a buffer
can be larger than RAM: the OS pages rows in and out as they are used. Everything else, and
every semantic, is the same. The bookkeeping arrays (transition mask, sum tree, episode index)
stay in memory: they are a byte or a few per row.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from pearll.buffers.storage.memory import check_memory, format_bytes

STORAGES = ("memory", "memmap")


class Placement:
    """Allocates a buffer's bulk arrays in memory or in files, and checks that they fit."""

    def __init__(self, storage: str = "memory", directory: Any = None) -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage: expected one of {STORAGES}, got {storage!r}")
        if directory is not None and storage != "memmap":
            raise ValueError("storage_dir: only used with storage='memmap'")
        self.storage, self.directory = storage, None
        if storage == "memmap":
            root = Path(directory if directory is not None else tempfile.gettempdir())
            root.mkdir(parents=True, exist_ok=True)
            self.directory = Path(tempfile.mkdtemp(prefix="pearll-", dir=root))
            weakref.finalize(self, shutil.rmtree, self.directory, True)

    def zeros(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A zeroed array: in memory, or a new sparse file ``<name>.bin`` mapped into memory."""
        if self.directory is None:
            return np.zeros(shape, dtype=dtype)
        path = self.directory / f"{name}.bin"
        path.unlink(missing_ok=True)  # a reset: mappings of the old file stay valid until dropped
        return np.memmap(path, dtype=dtype, mode="w+", shape=shape)

    def check(self, required: int, bulk: int, what: str) -> None:
        """Raise if ``required`` bytes (``bulk`` of them placed here) cannot fit."""
        if self.directory is None:
            check_memory(required, what)
            return
        check_memory(required - bulk, what)
        free = shutil.disk_usage(self.directory).free
        if bulk > free:
            raise MemoryError(
                f"{what} needs {format_bytes(bulk)} ({bulk} bytes) of disk in {self.directory} "
                f"but only {format_bytes(free)} ({free} bytes) are free: choose another "
                "storage_dir or a smaller buffer_size"
            )
