"""A shard's checkpoints: the buffer in pearll's persistence format, and how many inserts it holds.

Layout of a shard's directory::

    shard-0003/
        LATEST.json          {"name": "00000012", "inserts": 48000, "size": 9999, "samples": ...}
        00000012/            buffer.save(...) of the 12th checkpoint

A checkpoint is written to a new numbered directory by ``buffer.save`` (whatever the
persistence format does inside), then ``LATEST.json`` is replaced atomically (written to a
temporary file, fsynced, renamed) to point at it, then older numbered directories are removed.
A crash at any point leaves ``LATEST.json`` naming a complete checkpoint (or no file at all
before the first), so a restart never loads a half-written one. ``inserts`` is the number of
steps the shard had been given when the checkpoint was taken: the service compares it with
what it counted to report what a restart lost; ``samples`` and ``samples_drawn`` are the front's
sample counters as the shard last heard them, so a new service resumes its rate limiter.

The buffer side is only ``buffer.save(path)`` and ``BufferClass.load(path, env=env)``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LATEST = "LATEST.json"


@dataclass(frozen=True)
class CheckpointInfo:
    name: str  # the numbered directory
    inserts: int  # steps given to the shard before this checkpoint
    size: int  # transitions stored in it
    samples: int = 0  # the front's sample counters when it was taken (0 in older checkpoints)
    samples_drawn: int = 0


def supports_checkpoints(buffer_cls: type) -> bool:
    return callable(getattr(buffer_cls, "save", None)) and callable(
        getattr(buffer_cls, "load", None)
    )


class ShardCheckpoints:
    """Write and read the checkpoints of one shard in ``directory`` (created if missing)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def latest(self) -> CheckpointInfo | None:
        path = self.directory / _LATEST
        if not path.exists():
            return None
        return CheckpointInfo(**json.loads(path.read_text()))

    def write(
        self, buffer: Any, inserts: int, samples: int = 0, samples_drawn: int = 0
    ) -> CheckpointInfo:
        previous = self.latest()
        number = int(previous.name) + 1 if previous else 0
        info = CheckpointInfo(
            f"{number:08d}", int(inserts), len(buffer), int(samples), int(samples_drawn)
        )
        target = self.directory / info.name
        if target.exists():  # left by a crash before LATEST moved to it
            shutil.rmtree(target)
        buffer.save(target)
        self._point_to(info)
        self._remove_all_but(info.name)
        return info

    def read(self, buffer_cls: type, env: Any) -> tuple[Any, CheckpointInfo] | None:
        """The buffer of the latest checkpoint and its info, or None if there is none."""
        info = self.latest()
        if info is None:
            return None
        return buffer_cls.load(self.directory / info.name, env=env), info

    def _point_to(self, info: CheckpointInfo) -> None:
        temporary = self.directory / (_LATEST + ".tmp")
        with open(temporary, "w") as file:
            json.dump(info.__dict__, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.directory / _LATEST)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _remove_all_but(self, keep: str) -> None:
        for child in self.directory.iterdir():
            if child.is_dir() and child.name != keep and child.name.isdigit():
                shutil.rmtree(child, ignore_errors=True)
