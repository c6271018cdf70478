"""The hot path: one step of a single env, written without the batch machinery.

``RingBuffer.add_trajectory`` is called once per env step, so its cost matters more than any
other. The general path (validate into ``(T, E, ...)`` arrays, plan rows, scatter, commit) costs
tens of microseconds for one step. This writer does the same for the common case (a single env,
array observations, no extra fields, nothing overriding the write hooks) with scalar writes and
scalar bookkeeping. It checks the same things: it accepts only inputs whose shape, dtype and
action range it has verified, and hands anything else back to the general path, which either
handles it (a scalar observation, a list) or raises its detailed error. Tests compare the two
paths on random streams.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

SCALAR_NUMBERS = (float, int, np.floating, np.integer)
FLAGS = (bool, np.bool_)


class SingleStepWriter:
    """Writes one validated step of a single env into a RingBuffer's storage and ring."""

    def __init__(self, buffer: Any):
        self._buffer = buffer
        single = {name: _drop_env_axis(tree) for name, tree in buffer._storage.items()}
        self._obs = single["observations"]
        self._next_obs = single.get("next_observations")
        self._fields = (single["actions"], single["rewards"], single["dones"], single["truncateds"])
        self._obs_shape = self._obs.shape[1:]
        self._obs_dtypes = _castable_dtypes(self._obs.dtype)
        self._check_action = _action_check(buffer.env_info.action_space)
        from pearll.buffers.ring_buffer import RingBuffer

        self._report = type(buffer)._on_written is not RingBuffer._on_written

    @staticmethod
    def applies_to(buffer: Any) -> bool:
        """Whether ``buffer`` can use this writer (else it always takes the general path)."""
        from pearll.buffers.ring_buffer import RingBuffer

        cls = type(buffer)
        return (
            not buffer.env_info.is_vector
            and isinstance(buffer._storage["observations"], np.ndarray)
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
            and next_obs.dtype in dtypes
            and isinstance(reward, SCALAR_NUMBERS) and isinstance(done, FLAGS)
            and isinstance(trunc, FLAGS) and self._check_action(action)
        ):  # fmt: skip
            return False
        self._write(obs, action, reward, next_obs, bool(done), bool(trunc))
        return True

    def _write(self, obs, action, reward, next_obs, done: bool, trunc: bool) -> None:
        buffer = self._buffer
        ring, capacity = buffer._ring, buffer.buffer_size
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
                buffer._packed.sync_mirror()
            advance = 2 if ended else 1
            passed_over = advance + 1
        else:
            self._next_obs[row] = next_obs
            advance = passed_over = 1
        passed = self._commit(ring, row, advance, passed_over, ended)
        if self._report:
            envs = np.zeros(len(passed), dtype=np.int64)
            buffer._on_written(np.array([row]), envs[:1], np.array(passed), envs)

    @staticmethod
    def _commit(ring: Any, row: int, advance: int, passed_over: int, ended: bool) -> list[int]:
        # Ring.commit for one kept step: the rows from ``row`` on that the step overwrote or
        # made pending lose their transitions; ``row`` holds the new one.
        valid, capacity = ring.valid, ring.capacity
        passed = [(row + offset) % capacity for offset in range(passed_over)]
        lost = 0
        for passed_row in passed:
            lost += bool(valid[passed_row, 0])
            valid[passed_row, 0] = False
        valid[row, 0] = True
        ring.count[0] += 1 - lost
        ring.pos[0] = (row + advance) % capacity
        ring.size[0] = min(int(ring.size[0]) + advance, capacity)
        ring.prev_ended[0] = ended
        return passed


def _drop_env_axis(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {key: _drop_env_axis(value) for key, value in tree.items()}
    return tree[:, 0]


def _castable_dtypes(target: np.dtype) -> frozenset[np.dtype]:
    """Numeric dtypes the general path accepts for ``target`` (same kind; no float into int)."""
    kinds = "biu" if target.kind in "biu" else "biuf"
    candidates = [np.dtype(c) for c in np.typecodes["AllInteger"] + np.typecodes["Float"] + "?"]
    return frozenset(d for d in candidates if d.kind in kinds)


def _action_check(space: spaces.Space):
    """A fast predicate: True only for an action the general path would store unchanged."""
    if isinstance(space, spaces.Discrete):
        low, high = int(space.start), int(space.start + space.n - 1)
        return lambda a: (
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) and low <= a <= high
        )
    if isinstance(space, spaces.Box):
        shape, dtypes, low, high = space.shape, _castable_dtypes(space.dtype), space.low, space.high
        return lambda a: (
            type(a) is np.ndarray and a.shape == shape and a.dtype in dtypes
            and bool(((a >= low) & (a <= high)).all())
        )  # fmt: skip
    return lambda a: False
