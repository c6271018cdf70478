"""Crash-safe checkpoint directories: snapshots, and a pointer file switched atomically.

A directory cannot be renamed atomically over a non-empty one, so the checkpoint at ``path``
is a directory of snapshots and a pointer to the one in use::

    path/
        CURRENT              one line: the name of the snapshot in use
        snapshot-<id>/       one complete save (manifest.json and .npy files)
        .tmp-<id>/           a save in progress, or one that was killed: never read

A save writes its files into ``.tmp-<id>`` and fsyncs them and the directory, renames it to
``snapshot-<id>``, writes the new pointer into ``.tmp-<id>.CURRENT``, fsyncs it and
``os.replace``-s it over ``CURRENT`` (atomic on POSIX and Windows), fsyncs ``path``, and only then
deletes the other snapshots and temporaries. A process killed at any moment therefore leaves
``CURRENT`` naming either the previous complete snapshot or the new one; what a killed save left
behind is never read and is deleted by the next save. Reading needs no recovery step.

One process saves to a given path at a time. A reader in another process may find its snapshot
deleted under it if a save finishes meanwhile (it then fails clearly and can retry).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pearll.buffers.errors import CheckpointError

POINTER = "CURRENT"
SNAPSHOT_PREFIX = "snapshot-"
TMP_PREFIX = ".tmp-"
_SNAPSHOT_NAME = re.compile(r"snapshot-[0-9a-f-]+")


def write_snapshot(path: Path, fill: Callable[[Path], None]) -> Path:
    """Make a new snapshot of ``path`` current; ``fill(directory)`` writes and fsyncs its files.

    Creates ``path`` if needed. Raises FileExistsError if ``path`` holds anything that is not
    part of a checkpoint, so a wrong path never deletes someone's files.
    """
    _prepare(path)
    ident = f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
    staging = path / f"{TMP_PREFIX}{ident}"
    staging.mkdir()
    fill(staging)
    fsync_directory(staging)
    snapshot = path / f"{SNAPSHOT_PREFIX}{ident}"
    os.rename(staging, snapshot)
    fsync_directory(path)
    pointer = path / f"{TMP_PREFIX}{ident}.{POINTER}"
    with open(pointer, "w", encoding="utf-8") as file:
        file.write(snapshot.name + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(pointer, path / POINTER)
    fsync_directory(path)
    _delete_all_but(path, snapshot.name)
    return snapshot


def current_snapshot(path: Path) -> Path:
    """The snapshot directory ``CURRENT`` names; FileNotFoundError or CheckpointError if none."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a pearll checkpoint (a file, not a directory)")
    pointer = path / POINTER
    if not pointer.is_file():
        interrupted = any(p.name.startswith(TMP_PREFIX) for p in path.iterdir())
        raise CheckpointError(
            f"{pointer}: missing, so {path} is not a pearll checkpoint"
            + (" (its first save was interrupted before it completed)" if interrupted else "")
        )
    name = pointer.read_text(encoding="utf-8", errors="replace").strip()
    if not _SNAPSHOT_NAME.fullmatch(name):
        raise CheckpointError(f"{pointer}: expected a snapshot name, got {name[:80]!r}")
    snapshot = path / name
    if not snapshot.is_dir():
        raise CheckpointError(f"{pointer}: names {name}, which is missing from {path}")
    return snapshot


def fsync_directory(directory: Path) -> None:
    """Make ``directory``'s entries durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows: directory entries are durable once the files are
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prepare(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    foreign = [p.name for p in path.iterdir() if not _is_ours(p.name)]
    if foreign:
        raise FileExistsError(
            f"{path}: holds files that are not part of a pearll checkpoint "
            f"({', '.join(sorted(foreign)[:5])}); save to a new or empty directory"
        )


def _is_ours(name: str) -> bool:
    return name == POINTER or name.startswith((SNAPSHOT_PREFIX, TMP_PREFIX))


def _delete_all_but(path: Path, keep: str) -> None:
    for entry in path.iterdir():
        if entry.name in (keep, POINTER) or not _is_ours(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
