"""The hot path: one env step (of a single env, or of every sub-env of a vector env).

``RingBuffer.add_trajectory`` is called once per env step, so its cost matters more than any
other. The general path (validate into ``(T, E, ...)`` arrays, plan rows, scatter, commit) costs
tens of microseconds per step. :class:`StepWriter` does the same for the common case (array
observations, no extra fields, nothing overriding the write hooks): scalar writes and scalar
bookkeeping for a single env, one vectorised write per field for a vector env. It checks the
same things: it accepts only inputs whose shape, dtype and action range it has verified, and
hands anything else back to the general path, which either handles it (a list, a scalar
observation, a SAME_STEP episode end) or raises its detailed error. Tests compare the two paths
byte for byte on random streams.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

SCALAR_NUMBERS = (float, int, np.floating, np.integer)
FLAGS = (bool, np.bool_)


class StepWriter:
    """Writes one validated env step into a RingBuffer's storage and ring."""

    def __init__(self, buffer: Any):
        from pearll.buffers.ring_buffer import RingBuffer

        # The ring is read from the buffer at every call, never kept: reset(), clear() and load()
        # replace it.
        self._buffer = buffer
        self._vector = buffer.env_info.is_vector
        self._mode = buffer.env_info.autoreset_mode
        storage = buffer._storage
        if not self._vector:
            storage = {name: _drop_env_axis(tree) for name, tree in storage.items()}
        self._obs, self._next_obs = storage["observations"], storage.get("next_observations")
        self._fields = (storage["actions"], storage["rewards"], storage["dones"],
                        storage["truncateds"])  # fmt: skip
        lead = (buffer.num_envs,) if self._vector else ()
        self._obs_shape = lead + self._obs.shape[(2 if self._vector else 1) :]
        self._obs_dtypes = _castable_dtypes(self._obs.dtype)
        space = buffer.env_info.action_space
        self._check_action = (_actions_check if self._vector else _action_check)(space, lead)
        self._report = type(buffer)._on_written is not RingBuffer._on_written
        self._all_envs = np.arange(buffer.num_envs)

    @staticmethod
    def applies_to(buffer: Any) -> bool:
        """Whether ``buffer`` can use this writer (else it always takes the general path)."""
        from pearll.buffers.ring_buffer import RingBuffer

        cls = type(buffer)
        return (
            isinstance(buffer._storage["observations"], np.ndarray)
            and buffer._frame_spec is None
            and not buffer._storage["extras"]
            and buffer.buffer_size >= 4  # an episode end's rows always fit (see Ring.plan)
            and cls._add is RingBuffer._add
            and cls._write is RingBuffer._write
        )

    def try_add(
        self, obs: Any, action: Any, reward: Any, next_obs: Any, done: Any, trunc: Any
    ) -> bool:
        """Write the step and return True, or return False (nothing written) if unsure of it."""
        shape, dtypes = self._obs_shape, self._obs_dtypes
        if not (
            type(obs) is np.ndarray and obs.shape == shape and obs.dtype in dtypes
            and type(next_obs) is np.ndarray and next_obs.shape == shape
            and next_obs.dtype in dtypes and self._check_action(action)
        ):  # fmt: skip
            return False
        if self._vector:
            return self._try_vector(obs, action, reward, next_obs, done, trunc)
        if not (isinstance(reward, SCALAR_NUMBERS) and isinstance(done, FLAGS)
                and isinstance(trunc, FLAGS)):  # fmt: skip
            return False
        self._write_single(obs, action, reward, next_obs, bool(done), bool(trunc))
        return True

    # --- a single env: scalar writes ----------------------------------------------------------

    def _write_single(self, obs, action, reward, next_obs, done: bool, trunc: bool) -> None:
        ring = self._buffer._ring
        capacity = ring.capacity
        row = int(ring.pos[0])
        self._obs[row] = obs
        actions, rewards, dones, truncateds = self._fields
        actions[row] = action
        rewards[row] = reward
        dones[row] = done
        truncateds[row] = trunc
        ended = done or trunc
        if ring.spare_rows:
            following = row + 1 if row + 1 < capacity else 0
            self._obs[following] = next_obs
            if row == 0 or following == 0:
                self._buffer._packed.sync_mirror()
            advance = 2 if ended else 1
            passed_over = advance + 1
        else:
            self._next_obs[row] = next_obs
            advance = passed_over = 1
        # Ring.commit for one step: the rows from ``row`` on that the step overwrote or made
        # pending lose their transitions; ``row`` holds the new one.
        valid = ring.valid[:, 0]
        passed = [(row + offset) % capacity for offset in range(passed_over)]
        lost = 0
        for passed_row in passed:
            if valid[passed_row]:
                lost += 1
                valid[passed_row] = False
        valid[row] = True
        ring.count[0] += 1 - lost
        ring.pos[0] = (row + advance) % capacity
        ring.size[0] = min(int(ring.size[0]) + advance, capacity)
        ring.prev_ended[0] = ended
        if self._report:
            envs = np.zeros(len(passed), dtype=np.int64)
            self._buffer._on_written(np.array([row]), envs[:1], np.array(passed), envs)

    # --- a vector env: one vectorised write per field -----------------------------------------

    def _try_vector(self, obs, action, reward, next_obs, done, trunc) -> bool:
        lead = self._obs_shape[:1]
        if not (
            type(reward) is np.ndarray and reward.shape == lead and reward.dtype.kind in "biuf"
            and type(done) is np.ndarray and done.shape == lead and done.dtype == np.bool_
            and type(trunc) is np.ndarray and trunc.shape == lead and trunc.dtype == np.bool_
        ):  # fmt: skip
            return False
        ended = done | trunc
        if self._mode is AutoresetMode.SAME_STEP and ended.any():
            return False  # final observations come from info: the general path
        ring = self._buffer._ring
        if self._mode is AutoresetMode.NEXT_STEP and ring.prev_ended.any():
            envs = np.flatnonzero(~ring.prev_ended)  # the others are reset steps: dropped
            obs, action, reward, next_obs = obs[envs], action[envs], reward[envs], next_obs[envs]
            done, trunc, ended = done[envs], trunc[envs], ended[envs]
        else:
            envs = self._all_envs
        self._write_vector(envs, obs, action, reward, next_obs, done, trunc, ended)
        return True

    def _write_vector(self, envs, obs, action, reward, next_obs, done, trunc, ended) -> None:
        ring = self._buffer._ring
        capacity = ring.capacity
        rows = ring.pos[envs]
        self._obs[rows, envs] = obs
        actions, rewards, dones, truncateds = self._fields
        actions[rows, envs] = action.reshape(len(envs), *actions.shape[2:])
        rewards[rows, envs, 0] = reward
        dones[rows, envs, 0] = done
        truncateds[rows, envs, 0] = trunc
        if ring.spare_rows:
            following = (rows + 1) % capacity
            self._obs[following, envs] = next_obs
            if not (rows.all() and following.all()):
                self._buffer._packed.sync_mirror()
            advance = 1 + ended
            ends = envs[ended]
            passed_rows = np.concatenate([rows, following, (rows[ended] + 2) % capacity])
            passed_envs = np.concatenate([envs, envs, ends])
        else:
            self._next_obs[rows, envs] = next_obs
            advance = 1
            passed_rows, passed_envs = rows, envs
        valid = ring.valid
        lost = np.bincount(passed_envs[valid[passed_rows, passed_envs]], minlength=len(ring.pos))
        valid[passed_rows, passed_envs] = False
        valid[rows, envs] = True
        ring.count[envs] += 1
        ring.count -= lost
        ring.pos[envs] = (rows + advance) % capacity
        ring.size[envs] = np.minimum(ring.size[envs] + advance, capacity)
        ring.prev_ended[:] = False
        ring.prev_ended[envs] = ended
        if self._report:
            self._buffer._on_written(rows, envs, passed_rows, passed_envs)


def _drop_env_axis(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {key: _drop_env_axis(value) for key, value in tree.items()}
    return tree[:, 0]


def _castable_dtypes(target: np.dtype) -> frozenset[np.dtype]:
    """Numeric dtypes the general path accepts for ``target`` (same kind; no float into int)."""
    kinds = "biu" if target.kind in "biu" else "biuf"
    candidates = [np.dtype(c) for c in np.typecodes["AllInteger"] + np.typecodes["Float"] + "?"]
    return frozenset(d for d in candidates if d.kind in kinds)


def _action_check(space: spaces.Space, lead: tuple[int, ...]):
    """A fast predicate for one action: True only if the general path stores it unchanged."""
    if isinstance(space, spaces.Discrete):
        low, high = int(space.start), int(space.start + space.n - 1)
        return lambda a: (
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) and low <= a <= high
        )
    return _actions_check(space, lead)


def _actions_check(space: spaces.Space, lead: tuple[int, ...]):
    """A fast predicate for an array of actions ``lead + action shape``."""
    if isinstance(space, spaces.Discrete):
        shape, dtypes = lead, _castable_dtypes(np.dtype(np.int64))
        low, high = int(space.start), int(space.start + space.n - 1)
    elif isinstance(space, spaces.Box):
        shape, dtypes = lead + space.shape, _castable_dtypes(space.dtype)
        low, high = space.low, space.high
    else:
        return lambda a: False
    return lambda a: (
        type(a) is np.ndarray and a.shape == shape and a.dtype in dtypes
        and bool(((a >= low) & (a <= high)).all())
    )  # fmt: skip
