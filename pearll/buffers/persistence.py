"""Saving and loading buffers: ``buffer.save(path)``, ``Buffer.load(path, env=None, mmap=False)``.

One mechanism serves every buffer class; a buffer takes part through three methods, which
BaseBuffer implements once from the buffer's parts (:mod:`pearll.buffers.core.part`).

The protocol
------------
- ``_config() -> dict``: JSON-able keyword arguments such that ``cls(env, **config)`` builds an
  empty buffer configured like this one: the settings each constructor recorded
  (``_record_settings(alpha=...)``, or ``_record_settings_from(alpha="alpha")`` for one read
  from an attribute when saving), those the class's constructor takes.
- ``_state() -> dict``: everything that changes as the buffer is used, as a tree of dicts with
  str keys whose leaves are numpy arrays (one ``.npy`` file each, written straight from the
  array's memory), numpy scalars (a 0-d ``.npy``, so the dtype survives) or JSON values (kept in
  the manifest). Keys starting with ``$`` are reserved. Each part gives its entries
  (``Part.state()``): the transition store ``storage`` (the packed storage array and its
  layout) and ``frames``, the ring ``ring`` (every field of its
  :class:`~pearll.buffers.core.ring.Ring`), PrioritizedReplayBuffer's priorities its sum trees
  and counters, HERBuffer's episode index ``episodes``; BaseBuffer adds ``rng``
  (``rng.bit_generator.state``). An array whose length varies (compressed frames) is returned
  as ``array.view(AnyLength)``.
- ``_set_state(state)``: put back what ``_state`` returned, into a buffer just built with
  ``cls(env, **config)``: each part's ``set_state`` takes its entries, then the buffer
  rebuilds whatever holds references to replaced arrays (its writers and reader). Arrays may be
  memory-mapped copy-on-write (writable; writes stay in memory).

Before ``_set_state``, ``load`` compares the saved state with the fresh buffer's ``_state()``
(:func:`check_like`: same keys, same array shapes and dtypes, same kinds of JSON values) and
checks its values (:func:`~pearll.buffers.checkpoint.consistency.check_values`: what the
configuration fixes, the bookkeeping's invariants), so a foreign or hand-edited checkpoint
fails with a clear error instead of making a buffer that fails (or hangs) later, and
``_set_state`` need not check anything.

While ``load`` runs the constructor, :func:`rebuilding` is true: the buffer then skips its
memory check (``load`` checks what it reads itself); the zeroed arrays the constructor
allocates are replaced before any page of them is touched, so they cost no memory.

The format
----------
``path`` is a directory of snapshots with a ``CURRENT`` pointer (see
:mod:`pearll.buffers.checkpoint.directory` for why that makes saves crash-safe). A snapshot holds
ordinary ``.npy`` files and ``manifest.json``: the format name and version, the buffer class,
the env's spaces, sub-env count and autoreset mode (so ``load`` needs no env), ``config``, the
``state`` tree with each array leaf replaced by ``{"$npy": file}``, and for every file its
shape, dtype, size in bytes and SHA-256 (``sha256sum`` checks them); ``manifest.sha256`` holds
the manifest's own (format 2; see :mod:`pearll.buffers.checkpoint.manifest`). Without pearll::

    snapshot = path / (path / "CURRENT").read_text().strip()
    manifest = json.loads((snapshot / "manifest.json").read_text())
    storage = manifest["state"]["storage"]
    packed = np.load(snapshot / storage["packed"]["$npy"])  # (E, rows, row_bytes) uint8
    slot = storage["layout"]["actions"]  # {"offset", "dtype", "shape"}
    size = np.dtype(slot["dtype"]).itemsize * int(np.prod(slot["shape"]))
    actions = packed[:, :, slot["offset"] : slot["offset"] + size].copy().view(slot["dtype"])

(``actions`` is then ``(E, rows, size / itemsize)``; reshape to ``slot["shape"]``. With the
ReplayBuffer layout, row ``buffer_size`` mirrors row 0; frame-stacked observations are in
``state["frames"]``.)

Checks on load
--------------
A missing, truncated, altered, foreign or newer-format checkpoint raises
:class:`~pearll.buffers.errors.CheckpointError` naming the file and the problem, whatever the
damage (no other exception escapes from reading a checkpoint). The manifest's checksum, sizes
and ``.npy`` headers are always checked. Checksums are checked for every array read into memory
(``mmap=False``, the default: they are computed while reading, at no extra pass). With
``mmap=True`` arrays of at least :data:`MMAP_MIN_BYTES` are mapped, not read, so their checksums
are only checked when asked (``verify=True`` reads every file once, and
:func:`verify_checkpoint` checks a checkpoint on its own); smaller arrays are still read and
checked.

Threads: ``save`` holds the buffer's lock while it writes, so it captures one consistent state
while other threads keep calling add and sample (they wait until the save is done).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from pearll import __version__
from pearll.buffers.checkpoint.consistency import check_like, check_values
from pearll.buffers.checkpoint.directory import current_snapshot, write_snapshot
from pearll.buffers.checkpoint.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SavedEnv,
    check_env,
    data_bytes,
    env_to_json,
    file_infos,
    info_to_json,
    read_manifest,
    write_manifest,
)
from pearll.buffers.checkpoint.npy_io import open_npy, read_npy, verify_npy, write_npy
from pearll.buffers.checkpoint.protocol import AnyLength, Checkpointable, _rebuilding, rebuilding
from pearll.buffers.checkpoint.state_tree import check_json, join_state, split_state
from pearll.buffers.core.env_info import EnvInfo
from pearll.buffers.errors import CheckpointError
from pearll.buffers.storage.memory import check_memory

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "MMAP_MIN_BYTES",
    "AnyLength",
    "Checkpointable",
    "SavedEnv",
    "check_like",
    "load",
    "rebuilding",
    "save",
    "verify_checkpoint",
]

Buffer = TypeVar("Buffer", bound=Checkpointable)

PROGRESS_MIN_BYTES = 100 * 10**6  # saves and loads at least this big show a progress bar
MMAP_MIN_BYTES = 1 << 20  # smaller arrays are read (and checked) even with mmap=True


def save(buffer: Checkpointable, path: str | os.PathLike, progress: bool | None = None) -> Path:
    """Save ``buffer`` to the checkpoint directory ``path``, atomically; return ``path``.

    ``progress``: show a tqdm bar (default: when the arrays total at least 100 MB). Raises
    FileExistsError if ``path`` holds files that are not a checkpoint's, CheckpointError if
    another save to ``path`` is in progress.
    """
    path = Path(path)
    with buffer._lock:
        tree, arrays = split_state(buffer._state(), type(buffer).__name__)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "pearll_version": __version__,
            "buffer_class": _qualified_name(type(buffer)),
            "env": env_to_json(buffer.env_info),
            "config": buffer._config(),
            "state": tree,
        }
        check_json(manifest["config"], f"{type(buffer).__name__}._config()")

        def fill(directory: Path) -> None:
            total = sum(a.nbytes for a in arrays.values())
            with _progress_bar(total, progress, f"saving {path.name}") as bar:
                files = {
                    name: info_to_json(write_npy(directory / name, array, bar.update))
                    for name, array in arrays.items()
                }
            write_manifest(directory, {**manifest, "files": files})

        write_snapshot(path, fill)
    return path


def load(
    cls: type[Buffer],
    path: str | os.PathLike,
    env: Any = None,
    mmap: bool = False,
    verify: bool | None = None,
    progress: bool | None = None,
    **overrides: Any,
) -> Buffer:
    """The buffer saved at ``path``, behaving exactly as it did when saved.

    Args:
        cls: the class it was saved as, or a base class of it (any imported subclass loads).
        env: the env to serve; None rebuilds its spaces from the checkpoint. If given, its
            spaces, sub-env count and autoreset mode must match the saved ones (ValueError).
        mmap: map large arrays from disk copy-on-write instead of reading them: opening takes
            milliseconds whatever the size, and pages are read when first touched. The files
            are never written to (the checkpoint stays valid whatever the buffer does).
        verify: compare the checksums of memory-mapped arrays too (reads them once); default
            False with ``mmap``. Arrays read into memory are always checked.
        progress: show a tqdm bar (default: when at least 100 MB are read).
        overrides: constructor keyword arguments over the saved ones: what cannot be saved
            (HERBuffer's ``compute_reward``) or should change (``device``).
    """
    snapshot = current_snapshot(Path(path))
    file = snapshot / MANIFEST
    manifest = read_manifest(snapshot)
    buffer_class = _find_class(cls, manifest["buffer_class"], file)
    if env is not None:
        check_env(EnvInfo.of(env, overrides.get("autoreset_mode")), manifest["env"], file)
    stand_in = env if env is not None else SavedEnv.read(manifest["env"], file)
    token = _rebuilding.set(True)
    try:
        buffer = buffer_class(stand_in, **(manifest["config"] | overrides))
    except Exception as error:  # a damaged config, or overrides that do not fit it
        given = f" with the overrides {sorted(overrides)}" if overrides else ""
        raise CheckpointError(
            f"{file}: its config{given} does not build a {buffer_class.__name__}: {error}"[:400]
        ) from error
    finally:
        _rebuilding.reset(token)
    check_env(buffer.env_info, manifest["env"], file, CheckpointError)  # the sections agree
    arrays = _read_arrays(snapshot, manifest, mmap, bool(verify), progress)
    state = join_state(manifest["state"], arrays, "state")
    expected = buffer._state()
    expected["rng"] = state.get("rng")  # any bit generator's state: numpy checks it when set
    check_like(state, expected, "state")
    check_values(state, expected)
    try:
        buffer._set_state(state)
    except CheckpointError:
        raise
    except Exception as error:  # e.g. numpy refusing a malformed bit generator state
        raise CheckpointError(f"{file}: its state cannot be restored ({error!r})"[:300]) from None
    return buffer


def _read_arrays(
    snapshot: Path, manifest: dict[str, Any], mmap: bool, verify_mapped: bool, progress: Any
) -> dict[str, np.ndarray]:
    """Every file of the snapshot by name: read and checked, or (large ones, mmap) mapped."""
    infos = file_infos(manifest, snapshot / MANIFEST)
    for name, info in infos.items():  # sizes first: a bad manifest must not claim memory
        _check_size(snapshot / name, info.file_bytes)
    mapped = {name for name, info in infos.items() if mmap and data_bytes(info) >= MMAP_MIN_BYTES}
    in_memory = sum(data_bytes(info) for name, info in infos.items() if name not in mapped)
    check_memory(in_memory, f"loading {snapshot}")
    to_read = in_memory + (sum(data_bytes(infos[n]) for n in mapped) if verify_mapped else 0)
    with _progress_bar(to_read, progress, f"loading {snapshot.parent.name}") as bar:
        return {
            name: open_npy(snapshot / name, info, verify_mapped, bar.update)
            if name in mapped
            else read_npy(snapshot / name, info, True, bar.update)
            for name, info in infos.items()
        }


def _check_size(file: Path, expected: int) -> None:
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"{file}: missing: the manifest lists this file") from None
    if size != expected:
        problem = "truncated" if size < expected else "longer than recorded"
        raise CheckpointError(f"{file}: {problem}: {size} bytes, the manifest says {expected}")


def verify_checkpoint(path: str | os.PathLike, progress: bool | None = None) -> None:
    """Check the checkpoint at ``path`` file by file (manifest, sizes, headers, checksums);
    raise CheckpointError if anything is wrong."""
    snapshot = current_snapshot(Path(path))
    infos = file_infos(read_manifest(snapshot), snapshot / MANIFEST)
    total = sum(info.file_bytes for info in infos.values())
    with _progress_bar(total, progress, f"verifying {Path(path).name}") as bar:
        for name, info in infos.items():
            verify_npy(snapshot / name, info, bar.update)


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _find_class(cls: type, name: str, manifest: Path) -> type:
    """``cls`` or the imported subclass of it called ``name`` (nothing is imported by name)."""
    pending = [cls]
    while pending:
        candidate = pending.pop()
        if _qualified_name(candidate) == name:
            return candidate
        pending.extend(candidate.__subclasses__())
    raise CheckpointError(
        f"{manifest}: holds a {name[:100]}, which is not {_qualified_name(cls)} or an imported "
        "subclass of it; load it with its own class"
    )


class _NoBar:
    def update(self, n: int) -> None:
        pass


@contextmanager
def _progress_bar(total: int, show: bool | None, description: str) -> Iterator[Any]:
    if not (total >= PROGRESS_MIN_BYTES if show is None else show):
        # No tqdm object at all: tqdm takes a lock shared across fork()ed processes, which a
        # process killed inside tqdm leaves held, so small saves stay clear of it.
        yield _NoBar()
        return
    with tqdm(
        total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1024, leave=False
    ) as bar:
        yield bar
