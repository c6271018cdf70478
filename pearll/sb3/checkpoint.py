"""pearll.sb3 buffers in pearll's crash-safe checkpoint format (docs/persistence.md).

``buffer.save_checkpoint(path)`` writes the pearll buffer with pearll's own ``save``: the
transitions, each sub-env's cursor and episode bookkeeping, priorities, HER's episode index and
the generator's state, crash-safe. The adapter's constructor arguments (SB3's spaces, sizes and
the ``replay_buffer_kwargs``) never change after construction and are written next to it, in
``sb3_adapter.pkl``, before the data. The adapter's running state is rebuilt from the data on
``load_checkpoint``: the newest step's next observations (what the next step must continue) and
whether each sub-env's episode is running, from the newest stored transition.

Layout of ``path``: ``sb3_adapter.pkl`` and ``pearll/`` (pearll's checkpoint directory).
``sb3_adapter.pkl`` is a pickle (of spaces and keywords), so load checkpoints you trust only,
as with SB3's own ``load_replay_buffer``.

To resume an SB3 model: ``model.save(p)`` and ``model.replay_buffer.save_checkpoint(d)``;
later ``model = DQN.load(p, env=env)`` and :func:`load_replay_buffer` ``(model, d)``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pearll.buffers import BaseBuffer
from pearll.sb3.layout import as_bytes

ARGS_FILE = "sb3_adapter.pkl"
DATA_DIR = "pearll"
_FORMAT = 1

# Set by load() around the constructor call: _setup takes the loaded pearll buffer from here
# instead of allocating one.
_LOADED_ATTRIBUTE = "_pearll_loaded_buffer"


class Checkpointing:
    """The checkpoint half of :class:`pearll.sb3.adapter.PearllAdapter`."""

    pearll_buffer: Any
    layout: Any

    def save_checkpoint(self, path: str | os.PathLike, progress: bool | None = None) -> Path:
        """Save to directory ``path`` in pearll's crash-safe format (see the module docstring);
        ``progress``: pearll's progress bar (None: for 100 MB or more)."""
        return save(self, path, progress)

    @classmethod
    def load_checkpoint(cls, path: str | os.PathLike, env: Any = None, device: Any = "auto",
                        mmap: bool = False, **options: Any) -> Any:  # fmt: skip
        """A buffer of this class from what :meth:`save_checkpoint` wrote (see :func:`load`)."""
        return load(cls, path, env=env, device=device, mmap=mmap, **options)

    def _checkpoint_options(self) -> dict[str, Any]:
        """This class's own constructor keywords, as given (saved by save_checkpoint)."""
        raise NotImplementedError

    def _pearll_load_overrides(self) -> dict[str, Any]:
        """Keywords for pearll's ``load`` that a checkpoint cannot hold (code, such as HER's
        reward function)."""
        return {}

    def _stored_next_observations(self, record: Any) -> Any:
        """Sub-env-major next observations of a record of one transition per sub-env, as
        ``add`` keeps them (the stored layout, Dict keys in the stored space's order)."""
        value = record.next_observations
        if isinstance(value, dict):
            keys = self.layout.stored_observation_space.spaces
            return {key: np.ascontiguousarray(value[key][:, 0]) for key in keys}
        return np.ascontiguousarray(value[:, 0])


def load_replay_buffer(model: Any, path: str | os.PathLike, truncate_last_traj: bool = True,
                       mmap: bool = False) -> None:  # fmt: skip
    """SB3's ``model.load_replay_buffer`` for pearll's format: ``model.replay_buffer`` becomes
    the buffer saved at ``path`` (of the class it was saved as), on ``model.device``, with the
    model's env (HER: ``truncate_last_traj`` ends its running episodes, as SB3 does)."""
    record = _read_record(Path(path))
    module, _, name = record["class"].partition(":")
    cls = importlib.import_module(module)
    for part in name.split("."):
        cls = getattr(cls, part)
    buffer = load(cls, path, env=model.get_env(), device=model.device, mmap=mmap)
    if truncate_last_traj and hasattr(buffer, "truncate_last_trajectory"):
        buffer.truncate_last_trajectory()
    model.replay_buffer = buffer


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
    record = _read_record(path)
    saved_class = record["class"]
    mine = f"{cls.__module__}:{cls.__qualname__}"
    if saved_class != mine:
        raise TypeError(f"{path}: holds a {saved_class} buffer, not a {mine}; load it with that")
    kwargs = {**record["args"], **record["options"], **options, "device": device}
    if "env" in inspect.signature(cls.__init__).parameters:  # HER: SB3 passes env=
        kwargs["env"] = env
    buffer = cls.__new__(cls)
    setattr(buffer, _LOADED_ATTRIBUTE, (path / DATA_DIR, mmap))
    try:
        buffer.__init__(**kwargs)
    finally:
        buffer.__dict__.pop(_LOADED_ATTRIBUTE, None)
    _restore_running_state(buffer)
    return buffer


def _read_record(path: Path) -> dict[str, Any]:
    if not (path / ARGS_FILE).is_file():
        raise FileNotFoundError(f"{path}: not a pearll.sb3 checkpoint (no {ARGS_FILE})")
    record = pickle.loads((path / ARGS_FILE).read_bytes())
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise ValueError(f"{path / ARGS_FILE}: not a pearll.sb3 checkpoint of format {_FORMAT}")
    return record


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
    buffer._last_next_bytes = as_bytes(buffer._stored_next_observations(newest))
    buffer._over_bytes = over.tobytes()


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
