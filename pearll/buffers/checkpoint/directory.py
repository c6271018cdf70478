"""Crash-safe checkpoint directories: snapshots, and a pointer file switched atomically.

A directory cannot be renamed atomically over a non-empty one, so the checkpoint at ``path``
is a directory of snapshots and a pointer to the one in use::

    path/
        CURRENT              one line: the name of the snapshot in use
        snapshot-<id>/       one complete save (manifest.json, manifest.sha256, .npy files)
        .tmp-<id>/           a save in progress, or one that was killed: never read

A save locks ``path``, deletes what killed saves left, writes its files into ``.tmp-<id>`` and
fsyncs them and the directory, renames it to ``snapshot-<id>``, writes the new pointer into
``.tmp-<id>.CURRENT``, fsyncs it and ``os.replace``-s it over ``CURRENT`` (atomic on POSIX and
Windows), fsyncs ``path``, and only then deletes the other snapshots. A process killed at any
moment therefore leaves ``CURRENT`` naming either the previous complete snapshot or the new
one; what a killed save left behind is never read and is deleted by the next save. A save that
fails (a full disk) deletes what it wrote before raising, so the next save has the room it had.
Reading needs no recovery step.

Ownership: a save deletes only entries it can tell it wrote: names of exactly the form above
(``<id>`` is ``<hex time>-<8 hex digits>``), holding only files named as a snapshot's files
are, and a ``CURRENT`` naming one of them. Anything else in ``path`` makes the save raise
FileExistsError before it touches anything.

One save at a time: a second save to the same path (another thread or process) while one is
running raises :class:`~pearll.buffers.errors.CheckpointError` instead of racing it (the lock is
an advisory ``flock`` of the directory ``path`` itself, released by the OS if the saving
process dies; where directories cannot be locked (Windows), saves are not serialised). A
reader in another process may find its snapshot deleted under it if a save finishes meanwhile
(it then fails clearly and can retry).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pearll.buffers.errors import CheckpointError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

POINTER = "CURRENT"
SNAPSHOT_PREFIX = "snapshot-"
TMP_PREFIX = ".tmp-"
_ID = r"[0-9a-f]{1,16}-[0-9a-f]{8}"
_SNAPSHOT_NAME = re.compile(rf"snapshot-{_ID}")
_TMP_NAME = re.compile(rf"\.tmp-{_ID}(\.CURRENT)?")
_SNAPSHOT_FILE = re.compile(r"manifest\.(json|sha256)|[0-9]{3,}-[A-Za-z0-9_-]*\.npy")


def write_snapshot(path: Path, fill: Callable[[Path], None]) -> Path:
    """Make a new snapshot of ``path`` current; ``fill(directory)`` writes and fsyncs its files.

    Creates ``path`` if needed. Raises FileExistsError if ``path`` holds anything that is not
    part of a checkpoint (so a wrong path never deletes someone's files), CheckpointError if
    another save to ``path`` is running. If it fails, what it wrote is deleted and the previous
    checkpoint is still current.
    """
    path.mkdir(parents=True, exist_ok=True)
    with _save_lock(path):
        _check_ours(path)
        _delete_all_but(path, current_name(path))  # what killed saves left
        ident = f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
        staging = path / f"{TMP_PREFIX}{ident}"
        snapshot = path / f"{SNAPSHOT_PREFIX}{ident}"
        pointer = path / f"{TMP_PREFIX}{ident}.{POINTER}"
        switched = False
        try:
            staging.mkdir()
            fill(staging)
            fsync_directory(staging)
            os.rename(staging, snapshot)
            fsync_directory(path)
            with open(pointer, "w", encoding="utf-8") as file:
                file.write(snapshot.name + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(pointer, path / POINTER)
            switched = True
            fsync_directory(path)
        except BaseException:
            if not switched:  # the previous snapshot stays current: remove every trace of this one
                for leftover in (staging, snapshot, pointer):
                    _remove(leftover)
            raise
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
    name = pointer.read_bytes()[:200].decode("utf-8", errors="replace").strip()
    if not _SNAPSHOT_NAME.fullmatch(name):
        raise CheckpointError(f"{pointer}: expected a snapshot name, got {name[:80]!r}")
    snapshot = path / name
    if not snapshot.is_dir():
        raise CheckpointError(f"{pointer}: names {name}, which is missing from {path}")
    return snapshot


def current_name(path: Path) -> str | None:
    """The snapshot ``CURRENT`` names, if it is a well-formed pointer to an existing one."""
    try:
        return current_snapshot(path).name
    except (FileNotFoundError, CheckpointError):
        return None


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


@contextmanager
def _save_lock(path: Path) -> Iterator[None]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory
        yield
        return
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CheckpointError(
                    f"{path}: another save to this checkpoint is in progress (in this process or "
                    "another); wait for it, or save to another path"
                ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_ours(path: Path) -> None:
    foreign = [p.name for p in path.iterdir() if not _is_ours(p)]
    if (path / POINTER).exists() and current_name(path) is None:
        foreign.append(POINTER)  # a CURRENT this format did not write, or a broken one
    if foreign:
        raise FileExistsError(
            f"{path}: holds files that are not part of a pearll checkpoint "
            f"({', '.join(sorted(foreign)[:5])}); save to a new or empty directory"
        )


def _is_ours(entry: Path) -> bool:
    name = entry.name
    if name == POINTER:
        return entry.is_file() and not entry.is_symlink()
    if _TMP_NAME.fullmatch(name) and name.endswith(f".{POINTER}"):
        return entry.is_file() and not entry.is_symlink()
    if _SNAPSHOT_NAME.fullmatch(name) or _TMP_NAME.fullmatch(name):
        return (
            entry.is_dir()
            and not entry.is_symlink()
            and all(_SNAPSHOT_FILE.fullmatch(f.name) and f.is_file() for f in entry.iterdir())
        )
    return False


def _delete_all_but(path: Path, keep: str | None) -> None:
    for entry in path.iterdir():
        if entry.name in (keep, POINTER) or not _is_ours(entry):
            continue
        _remove(entry)


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)
