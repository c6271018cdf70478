"""pearll.sb3 buffers in pearll's crash-safe checkpoint format (docs/persistence.md).

``buffer.save_checkpoint(path)`` writes the pearll buffer with pearll's own ``save``: the
transitions, each sub-env's cursor and episode bookkeeping, priorities, HER's episode index and
the generator's state, crash-safe. The adapter's constructor arguments (SB3's spaces, sizes and
the ``replay_buffer_kwargs``) never change after construction and are written next to it, in
``sb3_adapter.pkl``, before the data. The adapter's running state is rebuilt from the data on
``load_checkpoint``: the newest step's next observations (what the next step must continue) and
whether each sub-env's episode is running, from the newest stored transition.

Layout of ``path``: ``sb3_adapter.pkl`` and ``pearll/`` (pearll's checkpoint directory).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pearll.buffers import BaseBuffer

ARGS_FILE = "sb3_adapter.pkl"
DATA_DIR = "pearll"
_FORMAT = 1

# Set by load() around the constructor call: _setup takes the loaded pearll buffer from here
# instead of allocating one.
_LOADED_ATTRIBUTE = "_pearll_loaded_buffer"


def save(buffer: Any, path: str | os.PathLike, progress: bool | None = None) -> Path:
    """Write ``buffer`` to directory ``path`` (created if missing); returns ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    record = {
        "format": _FORMAT,
        "class": f"{type(buffer).__module__}:{type(buffer).__qualname__}",
        "args": buffer._checkpoint_args,
        "options": buffer._checkpoint_options(),
    }
    _write_atomically(path / ARGS_FILE, pickle.dumps(record))
    buffer.pearll_buffer.save(path / DATA_DIR, progress=progress)
    return path


def load(cls: type, path: str | os.PathLike, env: Any = None, device: Any = "auto",
         mmap: bool = False, **options: Any) -> Any:  # fmt: skip
    """A ``cls`` buffer holding what ``save`` wrote to ``path``, ready for more adds.

    ``env``: the VecEnv (HerReplayBuffer's reward function comes from it; others ignore it);
    ``device``: where samples go (SB3's ``load_replay_buffer`` sets the model's); ``mmap``:
    pearll's lazily read load; ``options``: constructor keywords over the saved ones (such
    as ``seed``, which the saved generator state then replaces).
    """
    path = Path(path)
    if not (path / ARGS_FILE).is_file():
        raise FileNotFoundError(f"{path}: not a pearll.sb3 checkpoint (no {ARGS_FILE})")
    record = pickle.loads((path / ARGS_FILE).read_bytes())
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise ValueError(f"{path / ARGS_FILE}: not a pearll.sb3 checkpoint of format {_FORMAT}")
    saved_class = record["class"]
    mine = f"{cls.__module__}:{cls.__qualname__}"
    if saved_class != mine:
        raise TypeError(f"{path}: holds a {saved_class} buffer, not a {mine}; load it with that")
    kwargs = {**record["args"], **record["options"], **options, "device": device}
    if env is not None and "env" in cls.__init__.__code__.co_varnames:
        kwargs["env"] = env
    elif "env" in cls.__init__.__code__.co_varnames:
        kwargs["env"] = None
    buffer = cls.__new__(cls)
    setattr(buffer, _LOADED_ATTRIBUTE, (path / DATA_DIR, mmap))
    try:
        buffer.__init__(**kwargs)
    finally:
        buffer.__dict__.pop(_LOADED_ATTRIBUTE, None)
    _restore_running_state(buffer)
    return buffer


def take_loaded(buffer: Any) -> Any:
    """The pearll buffer ``load`` is giving ``buffer``'s constructor, or None (a new buffer)."""
    pending = buffer.__dict__.pop(_LOADED_ATTRIBUTE, None)
    if pending is None:
        return None
    data, mmap = pending
    overrides = buffer._pearll_load_overrides()
    # env= checks the saved spaces and sub-env count against the ones this buffer expects.
    loaded = BaseBuffer.load(data, env=buffer.spaces_only(), mmap=mmap, **overrides)
    rows = buffer._ring_rows()
    if loaded.buffer_size != rows:
        raise ValueError(
            f"{data}: holds {loaded.buffer_size} rows per sub-env, expected {rows} for these "
            "arguments (buffer_size, n_envs, min_episode_length, frame_stack)"
        )
    return loaded


def _restore_running_state(buffer: Any) -> None:
    """pos, full and the newest step (its next observations, whether it terminated) from the
    stored transitions.

    A sub-env whose newest step was truncated counts as running: the next step, a new
    episode's first, then does not continue it, and ending an episode that has ended is a
    no-op, so the next add is exact either way."""
    pearll = buffer.pearll_buffer
    held = int(pearll.counts.min())
    buffer.full = held >= buffer.buffer_size
    buffer.pos = held % buffer.buffer_size
    if held == 0:
        return
    newest = pearll.last(1)
    over = np.asarray(newest.dones).reshape(buffer.n_envs) != 0
    buffer._last_next_bytes = _as_bytes(buffer._stored_next_observations(newest))
    buffer._over_bytes = over.tobytes()


def _as_bytes(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(leaf.tobytes() for leaf in value.values())
    return value.tobytes()


def _write_atomically(target: Path, data: bytes) -> None:
    """``data`` into ``target`` through a synced temporary file and a rename."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
