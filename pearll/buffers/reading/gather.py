"""Reading stored transitions: the rows chosen by a sampler, gathered into fresh arrays.

A transition at row r reads ``observations``, ``actions``, ``rewards``, ``extras`` at r and
``dones`` at its last row (r itself, or the last step an n-step sample spans). Its next
observation is the observation of the row after its last row in the ReplayBuffer layout
("spare rows", see core/ring.py), or the ``next_observations`` field otherwise. With frame
stacks the observations are rebuilt from stored frames (storage/frames.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pearll.buffers.storage.packed import PackedStorage
from pearll.common.tree import tree_map

# The stored fields a transition is read from (next observations aside).
READ_FIELDS = ("observations", "actions", "rewards", "dones", "extras")


class Reader:
    """Gathers ``(E, B)`` rows of a buffer's storage into ``(E, B, ...)`` field arrays.

    Parts: the packed storage, its field views (``frame_depth`` among them with frames), the
    frame store or None, whether next observations live in the next row (``spare_rows``).
    """

    def __init__(
        self, packed: PackedStorage, views: dict[str, Any], frames: Any, spare_rows: bool
    ) -> None:
        self.packed, self.views, self.frames, self.spare_rows = packed, views, frames, spare_rows
        self.num_envs = packed.num_envs

    def gather(
        self, rows: np.ndarray, envs: Any = None, last_rows: np.ndarray | None = None
    ) -> dict[str, Any]:
        """The fields of the transitions starting at ``rows`` (E, B) of sub-envs ``envs`` (E,).

        ``last_rows`` (E, B), for samples spanning several steps (n-step returns), is the row of
        each sample's last step: ``next_observations`` and ``dones`` are read there. It
        defaults to ``rows``. ``envs`` defaults to every sub-env in order.
        """
        if self.frames is not None:
            return self._gather_stacks(rows, env_column(self.num_envs, envs), last_rows)
        envs = env_column(self.num_envs, envs) if self.num_envs > 1 else None
        gather, spare = self.packed.gather, self.spare_rows
        if last_rows is None:
            names = READ_FIELDS if spare else (*READ_FIELDS, "next_observations")
            return gather(rows, envs, names, next_observations=spare)
        first = gather(rows, envs, ("observations", "actions", "rewards", "extras"), False)
        last = gather(
            last_rows, envs, ("dones",) if spare else ("dones", "next_observations"), spare
        )
        return first | last

    def _gather_stacks(
        self, rows: np.ndarray, envs: np.ndarray, last_rows: np.ndarray | None
    ) -> dict[str, Any]:
        """``gather`` for frame-stacked observations: stacks rebuilt from stored frames."""
        last = rows if last_rows is None else last_rows
        gather = self.packed.gather
        fields = gather(rows, envs, ("actions", "rewards", "extras", "frame_depth"), False)
        fields |= gather(last, envs, ("dones",), False)
        following = (last + 1) % self.packed.capacity
        next_depth = self.views["frame_depth"][following, envs]
        fields["observations"], fields["next_observations"] = self.frames.stack_pairs(
            rows, following, envs, fields.pop("frame_depth"), next_depth
        )
        return fields


def env_column(num_envs: int, envs: Any = None) -> np.ndarray:
    """``(E, 1)`` sub-env indices (all sub-envs by default) to index ``(row, env)`` arrays."""
    return np.arange(num_envs)[:, None] if envs is None else np.asarray(envs)[:, None]


def concatenate_batches(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Gathered ``(1, B_i, ...)`` field trees joined along the batch axis: ``(1, sum B_i, ...)``."""
    join = lambda *arrays: np.concatenate(arrays, axis=1)  # noqa: E731
    return {name: tree_map(join, *(part[name] for part in parts)) for name in parts[0]}
