"""Saving and loading buffers: ``buffer.save(path)``, ``Buffer.load(path, env=None, mmap=False)``.

One mechanism serves every buffer class; a class takes part through three methods.

The protocol
------------
- ``_config() -> dict``: JSON-able keyword arguments such that ``cls(env, **config)`` builds an
  empty buffer configured like this one. BaseBuffer gives ``buffer_size``, ``device``,
  ``autoreset_mode`` and ``extra_fields``; a subclass adds its own constructor arguments
  (ReplayBuffer ``n_step``/``gamma``, PrioritizedReplayBuffer ``alpha``/``beta``/...):
  ``return {**super()._config(), "alpha": self.alpha}``.
- ``_state() -> dict``: everything that changes as the buffer is used, as a tree of dicts with
  str keys whose leaves are numpy arrays (one ``.npy`` file each, written straight from the
  array's memory), numpy scalars (a 0-d ``.npy``, so the dtype survives) or JSON values (kept in
  the manifest). Keys starting with ``$`` are reserved. BaseBuffer gives ``storage`` (the packed
  storage array and its layout) and ``rng`` (``rng.bit_generator.state``); RingBuffer adds
  ``ring`` (every field of its :class:`~pearll.buffers.core.ring.Ring`) and ``frames``;
  PrioritizedReplayBuffer its sum trees and counters. A subclass adds its own:
  ``return {**super()._state(), "priorities": self._tree.nodes, "beta": self.beta}``.
  An array whose length varies (compressed frames) is returned as ``array.view(AnyLength)``.
- ``_set_state(state)``: put back what ``_state`` returned, into a buffer just built with
  ``cls(env, **config)``: call ``super()._set_state(state)`` first, then assign your own keys
  (and rebuild whatever holds references to the replaced arrays). Arrays may be memory-mapped
  copy-on-write (writable; writes stay in memory).

Before ``_set_state``, ``load`` compares the saved state with the fresh buffer's ``_state()``
(:func:`check_like`: same keys, same array shapes and dtypes), so a foreign or hand-edited
checkpoint fails with a clear error instead of making a buffer that fails later, and
``_set_state`` need not check anything.

While ``load`` runs the constructor, :func:`rebuilding` is true: BaseBuffer then skips its
memory check (``load`` checks what it reads itself); the zeroed arrays the constructor
allocates are replaced before any page of them is touched, so they cost no memory.

The format
----------
``path`` is a directory of snapshots with a ``CURRENT`` pointer (see
:mod:`pearll.buffers.checkpoint.directory` for why that makes saves crash-safe). A snapshot holds
ordinary ``.npy`` files and ``manifest.json``: the format name and version, the buffer class,
the env's spaces and sub-env count (so ``load`` needs no env), ``config``, the ``state`` tree with
each array leaf replaced by ``{"$npy": file}``, and for every file its shape, dtype, size in bytes
and SHA-256 (``sha256sum`` checks them). Without pearll::

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
:class:`~pearll.buffers.errors.CheckpointError` naming the file and the problem. Sizes and
``.npy`` headers are always checked. Checksums are checked for every array read into memory
(``mmap=False``, the default: they are computed while reading, at no extra pass). With
``mmap=True`` arrays of at least :data:`MMAP_MIN_BYTES` are mapped, not read, so their checksums
are only checked when asked (``verify=True`` reads every file once, and
:func:`verify_checkpoint` checks a checkpoint on its own); smaller arrays are still read and
checked.

Threads: ``save`` holds the buffer's lock while it writes, so it captures one consistent state
while other threads keep calling add and sample (they wait until the save is done).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from pearll import __version__
from pearll.buffers.checkpoint.directory import current_snapshot, write_snapshot
from pearll.buffers.checkpoint.npy_io import NpyInfo, open_npy, read_npy, verify_npy, write_npy
from pearll.buffers.checkpoint.space_json import space_from_json, space_to_json
from pearll.buffers.errors import CheckpointError
from pearll.buffers.storage.memory import check_memory

if TYPE_CHECKING:
    from pearll.buffers.base import BaseBuffer

    Buffer = TypeVar("Buffer", bound=BaseBuffer)

FORMAT = "pearll-buffer-checkpoint"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PROGRESS_MIN_BYTES = 100 * 10**6  # saves and loads at least this big show a progress bar
MMAP_MIN_BYTES = 1 << 20  # smaller arrays are read (and checked) even with mmap=True
_ARRAY = "$npy"
_SCALAR = "$scalar"

_rebuilding: ContextVar[bool] = ContextVar("pearll_rebuilding_from_checkpoint", default=False)


def rebuilding() -> bool:
    """True while ``load`` runs a buffer's constructor: its arrays will come from the checkpoint."""
    return _rebuilding.get()


def save(buffer: BaseBuffer, path: str | os.PathLike, progress: bool | None = None) -> Path:
    """Save ``buffer`` to the checkpoint directory ``path``, atomically; return ``path``.

    ``progress``: show a tqdm bar (default: when the arrays total at least 100 MB).
    """
    path = Path(path)
    with buffer._lock:
        tree, arrays = _split_state(buffer._state(), type(buffer).__name__)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "pearll_version": __version__,
            "buffer_class": _qualified_name(type(buffer)),
            "env": _env_to_json(buffer),
            "config": buffer._config(),
            "state": tree,
        }
        _check_json(manifest["config"], f"{type(buffer).__name__}._config()")

        def fill(directory: Path) -> None:
            total = sum(a.nbytes for a in arrays.values())
            with _progress_bar(total, progress, f"saving {path.name}") as bar:
                files = {
                    name: _info_to_json(write_npy(directory / name, array, bar.update))
                    for name, array in arrays.items()
                }
            _write_json(directory / MANIFEST, {**manifest, "files": files})

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
            spaces and sub-env count must match the saved ones.
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
    manifest = _read_manifest(snapshot)
    buffer_class = _find_class(cls, manifest["buffer_class"], snapshot / MANIFEST)
    token = _rebuilding.set(True)
    try:
        stand_in = env if env is not None else SavedEnv(manifest["env"])
        buffer = buffer_class(stand_in, **(manifest["config"] | overrides))
    finally:
        _rebuilding.reset(token)
    if env is not None:
        _check_env(buffer, manifest["env"])
    arrays = _read_arrays(snapshot, manifest, mmap, bool(verify), progress)
    state = _join_state(manifest["state"], arrays, snapshot / MANIFEST)
    expected = buffer._state()
    expected["rng"] = state.get("rng")  # any bit generator's state: numpy checks it when set
    check_like(state, expected, "state")
    buffer._set_state(state)
    return buffer


def _read_arrays(
    snapshot: Path, manifest: dict[str, Any], mmap: bool, verify_mapped: bool, progress: Any
) -> dict[str, np.ndarray]:
    """Every file of the snapshot by name: read and checked, or (large ones, mmap) mapped."""
    infos = _file_infos(manifest, snapshot / MANIFEST)
    mapped = {name for name, info in infos.items() if mmap and _data_bytes(info) >= MMAP_MIN_BYTES}
    in_memory = sum(_data_bytes(info) for name, info in infos.items() if name not in mapped)
    check_memory(in_memory, f"loading {snapshot}")
    to_read = in_memory + (sum(_data_bytes(infos[n]) for n in mapped) if verify_mapped else 0)
    with _progress_bar(to_read, progress, f"loading {snapshot.parent.name}") as bar:
        return {
            name: open_npy(snapshot / name, info, verify_mapped, bar.update)
            if name in mapped
            else read_npy(snapshot / name, info, True, bar.update)
            for name, info in infos.items()
        }


def verify_checkpoint(path: str | os.PathLike, progress: bool | None = None) -> None:
    """Check the checkpoint at ``path`` file by file (sizes, headers, checksums); raise if bad."""
    snapshot = current_snapshot(Path(path))
    infos = _file_infos(_read_manifest(snapshot), snapshot / MANIFEST)
    total = sum(info.file_bytes for info in infos.values())
    with _progress_bar(total, progress, f"verifying {Path(path).name}") as bar:
        for name, info in infos.items():
            verify_npy(snapshot / name, info, bar.update)


def check_like(got: Any, expected: Any, where: str) -> None:
    """Raise CheckpointError unless ``got`` has the structure, shapes and dtypes of ``expected``.

    Dicts compare by keys, arrays by shape and dtype (an :class:`AnyLength` array by dtype and
    by every axis but its first); other leaves are not compared.
    """
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            keys = sorted(got) if isinstance(got, dict) else type(got).__name__
            raise CheckpointError(f"{where}: expected keys {sorted(expected)}, got {keys}")
        for key in expected:
            check_like(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, np.ndarray):
        skip = 1 if isinstance(expected, AnyLength) else 0  # the first axis may be any length
        same = (
            isinstance(got, np.ndarray)
            and (got.dtype, got.ndim) == (expected.dtype, expected.ndim)
            and got.shape[skip:] == expected.shape[skip:]
        )
        if not same:
            found = f"{got.dtype} {got.shape}" if isinstance(got, np.ndarray) else repr(got)[:60]
            shape = ("any", *expected.shape[1:]) if skip else expected.shape
            raise CheckpointError(
                f"{where}: expected a {expected.dtype} array of shape {shape}, got {found}"
            )


class AnyLength(np.ndarray):
    """A ``_state()`` array whose first axis varies between buffers of one configuration (e.g.
    compressed frames joined into one array): ``load`` checks its dtype and its other axes.

    Make one with ``array.view(AnyLength)``; it is saved and loaded as a plain array.
    """


class SavedEnv:
    """Stands in for the env a buffer was saved with: its spaces, sub-env count, autoreset mode."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.observation_space = space_from_json(data["observation_space"])
        self.action_space = space_from_json(data["action_space"])
        self.metadata = {"autoreset_mode": data["autoreset_mode"]}
        if data["is_vector"]:
            self.num_envs = int(data["num_envs"])
            self.single_observation_space = self.observation_space
            self.single_action_space = self.action_space

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"{name}: this buffer was loaded without its env, which only knows the spaces; "
            "pass env= to load"
        )


def _split_state(state: dict[str, Any], owner: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The manifest's state tree (arrays replaced by file names) and the arrays by file name."""
    arrays: dict[str, np.ndarray] = {}

    def visit(node: Any, keys: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            bad = [k for k in node if not isinstance(k, str) or k.startswith("$")]
            if bad:
                raise TypeError(f"{owner}._state(): {'.'.join(keys)}: keys {bad} are not allowed")
            return {k: visit(v, (*keys, k)) for k, v in node.items()}
        if isinstance(node, np.ndarray | np.generic):
            name = f"{len(arrays):03d}-{_file_stem(keys)}.npy"
            arrays[name] = np.asarray(node)
            return {_ARRAY: name, _SCALAR: True} if isinstance(node, np.generic) else {_ARRAY: name}
        _check_json(node, f"{owner}._state(): {'.'.join(keys)}")
        return node

    return visit(state, ()), arrays


def _join_state(tree: Any, arrays: dict[str, np.ndarray], manifest: Path) -> Any:
    if isinstance(tree, dict) and _ARRAY in tree:
        name = tree[_ARRAY]
        if name not in arrays:
            raise CheckpointError(f"{manifest}: state names {name!r}, which is not in 'files'")
        return arrays[name][()] if tree.get(_SCALAR) else arrays[name]
    if isinstance(tree, dict):
        return {k: _join_state(v, arrays, manifest) for k, v in tree.items()}
    return tree


def _file_stem(keys: tuple[str, ...]) -> str:
    # Keys can be any string (dict observation keys); the file name only needs to be readable.
    return re.sub(r"[^A-Za-z0-9_-]+", "_", ".".join(keys).replace(".", "-"))[:80]


def _check_json(value: Any, where: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{where}: not a numpy array or JSON value ({error})") from None


def _read_manifest(snapshot: Path) -> dict[str, Any]:
    file = snapshot / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{file}: missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{file}: not valid JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{file}: not a pearll buffer checkpoint (no format {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: format version {version!r}, written by pearll "
            f"{manifest.get('pearll_version')}; this pearll ({__version__}) reads versions up to "
            f"{FORMAT_VERSION}: upgrade pearll"
        )
    missing = {"buffer_class", "env", "config", "state", "files"} - set(manifest)
    if missing:
        raise CheckpointError(f"{file}: incomplete manifest, no {sorted(missing)}")
    return manifest


def _write_json(file: Path, data: dict[str, Any]) -> None:
    with open(file, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def _info_to_json(info: NpyInfo) -> dict[str, Any]:
    return {
        "shape": list(info.shape),
        "dtype": info.dtype,
        "bytes": info.file_bytes,
        "sha256": info.sha256,
    }


def _file_infos(manifest: dict[str, Any], file: Path) -> dict[str, NpyInfo]:
    try:
        return {
            name: NpyInfo(tuple(e["shape"]), np.dtype(e["dtype"]).str, int(e["bytes"]), e["sha256"])
            for name, e in manifest["files"].items()
        }
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{file}: malformed 'files' entry ({error!r})") from None


def _data_bytes(info: NpyInfo) -> int:
    return int(np.prod(info.shape, dtype=np.int64)) * np.dtype(info.dtype).itemsize


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
        f"{manifest}: holds a {name}, which is not {_qualified_name(cls)} or an imported "
        "subclass of it; load it with its own class"
    )


def _env_to_json(buffer: BaseBuffer) -> dict[str, Any]:
    info = buffer.env_info
    return {
        "observation_space": space_to_json(info.observation_space),
        "action_space": space_to_json(info.action_space),
        "num_envs": info.num_envs,
        "is_vector": info.is_vector,
        "autoreset_mode": info.autoreset_mode.value,
    }


def _check_env(buffer: BaseBuffer, saved: dict[str, Any]) -> None:
    info, env = buffer.env_info, SavedEnv(saved)
    pairs = {
        "observation space": (env.observation_space, info.observation_space),
        "action space": (env.action_space, info.action_space),
        "number of sub-envs": (saved["num_envs"] if saved["is_vector"] else None,
                               info.num_envs if info.is_vector else None),
    }  # fmt: skip
    for what, (want, got) in pairs.items():
        if want != got:
            raise ValueError(f"env: the buffer was saved with {what} {want}, this env has {got}")


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
