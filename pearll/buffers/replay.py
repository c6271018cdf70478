"""ReplayBuffer: uniform sampling for off-policy learning, one observation array for s and s'."""

from __future__ import annotations

from pearll.buffers.ring_buffer import RingBuffer, _check_batch_size
from pearll.common.enumerations import TrajectoryType, parse_trajectory_type
from pearll.common.type_aliases import Trajectories


class ReplayBuffer(RingBuffer):
    """Off-policy replay: ``sample`` draws uniformly, with replacement, per sub-env.

    Observations and next observations share one array (half the observation memory): the
    transition in row r has its next observation in row r + 1. Episode ends stay exact: the
    final observation of an episode (terminated or truncated) is kept in the row after its last
    transition, and that row is never sampled as a transition. So every returned transition is
    one the env produced, at the cost of one row per episode end.

    Retention: each sub-env keeps at least its ``buffer_size - ends - 1`` most recent
    transitions, ``ends`` being the episode ends among them; nothing overwritten is returned.

    Assumes that within an episode each step's ``observation`` equals the previous step's
    ``next_observation`` (gymnasium's contract); the newer value is kept if they differ.
    """

    spare_rows = True

    def sample(
        self, batch_size: int, flatten_env: bool = False, dtype: str | TrajectoryType = "numpy"
    ) -> Trajectories:
        """``batch_size`` transitions per sub-env, drawn uniformly with replacement.

        Shapes ``(B, ...)``, ``(E, B, ...)`` (each sub-env drawn independently), or
        ``(E * B, ...)`` with ``flatten_env``.
        """
        _check_batch_size(batch_size)
        parse_trajectory_type(dtype)
        with self._lock:
            rows = self._ring.uniform_rows(self.rng, batch_size)
            return self._trajectories(rows, flatten_env, dtype)
