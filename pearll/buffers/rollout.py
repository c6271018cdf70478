"""RolloutBuffer: in-order storage for on-policy learning, next observations stored apart."""

from __future__ import annotations

import numpy as np

from pearll.buffers.ring_buffer import RingBuffer, _check_batch_size
from pearll.common.enumerations import TrajectoryType, parse_trajectory_type
from pearll.common.type_aliases import Trajectories


class RolloutBuffer(RingBuffer):
    """On-policy rollouts: every step of every sub-env in order, next observations stored apart.

    ``next_observations`` has the shape of ``observations``, so a truncated step keeps its true
    final observation for bootstrapping. Retention: each sub-env keeps its ``buffer_size`` most
    recent transitions (NEXT_STEP reset steps are not transitions and are dropped).
    """

    spare_rows = False

    @property
    def next_observations(self):
        return self._public("next_observations")

    def sample(
        self, batch_size: int, flatten_env: bool = False, dtype: str | TrajectoryType = "numpy"
    ) -> Trajectories:
        """A run of ``batch_size`` consecutive transitions per sub-env, in insertion order.

        Each sub-env's run starts at a uniformly drawn position among its stored transitions.
        Raises ValueError if ``batch_size`` exceeds what some sub-env holds.
        """
        _check_batch_size(batch_size)
        parse_trajectory_type(dtype)
        with self._lock:
            self._ring.require_transitions()
            short = np.flatnonzero(self._ring.count < batch_size)
            if len(short):
                raise ValueError(
                    "batch_size: a RolloutBuffer sample is a run of stored transitions, so at "
                    f"most {int(self._ring.count.min())} here; got {batch_size}"
                )
            starts = self.rng.integers(0, self._ring.count - batch_size + 1)
            rows = np.stack(
                [self._ring.ordered_rows(e)[s : s + batch_size] for e, s in enumerate(starts)]
            )
            return self._trajectories(rows, flatten_env, dtype)
