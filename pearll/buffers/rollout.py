"""RolloutBuffer: in-order storage for on-policy learning, next observations stored apart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from pearll.buffers.base import locked
from pearll.buffers.core.checks import check_batch_size
from pearll.buffers.core.spaces import FieldSpec
from pearll.buffers.reading.advantages import gae
from pearll.buffers.reading.output import convert
from pearll.buffers.ring_buffer import RingBuffer
from pearll.buffers.writing.writer import Written
from pearll.common.arguments import check_int
from pearll.common.enumerations import TrajectoryType, parse_trajectory_type
from pearll.common.tree import tree_map
from pearll.common.type_aliases import RolloutBatch, Trajectories

# Per-transition results of compute_advantages, read by minibatches.
ESTIMATES = ("values", "advantages", "returns")
SCALAR = FieldSpec((), np.dtype(np.float32))


class RolloutBuffer(RingBuffer):
    """On-policy rollouts: every step of every sub-env in order, next observations stored apart.

    ``next_observations`` has the shape of ``observations``, so a truncated step keeps its true
    final observation for bootstrapping. Retention: each sub-env keeps its ``buffer_size`` most
    recent transitions (NEXT_STEP reset steps are not transitions and are dropped), so a
    sub-env's stored transitions are always consecutive steps.

    On-policy loop: :meth:`clear`, add a rollout (log-probabilities as an extra field, e.g.
    ``extra_fields={"log_prob": ((), np.float32)}``), :meth:`compute_advantages`, then
    :meth:`minibatches` for the update epochs.
    """

    spare_rows = False

    own_fields = dict.fromkeys(ESTIMATES, SCALAR)

    def __init__(self, env: Any, buffer_size: int, device: Any = "auto", **kwargs: Any) -> None:
        super().__init__(env, buffer_size, device, **kwargs)
        self._estimate = EstimateFlag()  # compute_advantages ran after the last change
        self._parts.add("estimate", self._estimate)
        self._observers.append(self._rollout_written)

    @property
    def next_observations(self):
        return self._public("next_observations")

    @locked
    def clear(self) -> None:
        """Drop every stored transition, but not the env's episode state: for the next rollout.

        Unlike :meth:`reset` (a buffer as new, for a freshly reset env), this remembers whether
        each sub-env's last step ended an episode, so the first step after ``clear`` of a
        NEXT_STEP vector env that keeps running is still recognised as a reset step and
        dropped. Arrays are not zeroed; their rows simply stop being transitions.
        """
        self._ring.clear(keep_episode_state=True)
        self._estimate.current = False

    def _rollout_written(self, written: Written) -> None:
        """The write observer: new transitions have no advantages yet."""
        self._estimate.current = False

    @locked
    def sample(
        self, batch_size: int, flatten_env: bool = False, dtype: str | TrajectoryType = "numpy"
    ) -> Trajectories:
        """A run of ``batch_size`` consecutive transitions per sub-env, in insertion order.

        Each sub-env's run starts at a uniformly drawn position among its stored transitions.
        Shapes ``(B, ...)``, ``(E, B, ...)``, or with ``flatten_env`` the E runs one after
        another, ``(E * B, ...)``: unlike the replay buffers' ``sample``, whose flattened batch
        is B in all, a run belongs to one sub-env (:meth:`minibatches` draws over all of them).
        Raises ValueError if ``batch_size`` exceeds what some sub-env holds.
        """
        check_batch_size(batch_size)
        parse_trajectory_type(dtype)
        self._ring.require_transitions()
        short = np.flatnonzero(self._ring.count < batch_size)
        if len(short):
            raise ValueError(
                f"batch_size: a RolloutBuffer sample is a run of stored transitions, so at most "
                f"{int(self._ring.count.min())} here; got {batch_size}"
            )
        starts = self.rng.integers(0, self._ring.count - batch_size + 1)
        rows = np.stack(
            [self._ring.ordered_rows(e)[s : s + batch_size] for e, s in enumerate(starts)]
        )
        return self._trajectories(rows, flatten_env, dtype)

    # --- advantages and minibatches ---------------------------------------------------------

    @locked
    def compute_advantages(
        self,
        values: np.ndarray,
        next_values: np.ndarray,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
    ) -> tuple[np.ndarray, np.ndarray]:
        """GAE advantages and lambda-returns of every stored transition, kept for minibatches.

        Covers the N = ``len(self)`` stored transitions in the order of
        ``all(flatten_env=True)``: each sub-env's transitions oldest first, sub-env after
        sub-env (sub-envs may hold different counts, since reset steps are dropped).

        Args:
            values: ``(N,)`` V(s) of each transition's observation, in that order: arrays the
                caller computed (e.g. its critic on ``all(flatten_env=True).observations``).
            next_values: ``(N,)`` V(s') of each transition's next observation, in that order.
                A truncated step bootstraps from it (it is the true final observation), a
                terminated one does not, and each sub-env's newest transition bootstraps from
                it as the rollout is cut there.
            gamma: discount in [0, 1].
            gae_lambda: GAE's lambda in [0, 1] (1: Monte-Carlo returns, 0: one-step TD).

        The recursion restarts at every episode end (terminated or truncated); see
        :func:`pearll.buffers.reading.advantages.gae`. Returns ``(advantages, returns)``, ``(N,)``
        float32 in the same order. Raises ValueError for values of the wrong shape or not
        finite (nothing is stored then), RuntimeError if a sub-env holds no transition.
        """
        self._ring.require_transitions()
        rows, envs = self._transition_index()
        values = _per_transition("values", values, len(rows))
        next_values = _per_transition("next_values", next_values, len(rows))
        # A (T, E) grid, each sub-env's transitions at the bottom of its column: the recursion
        # runs backwards in time, so the padding above a short column never reaches it.
        counts = self._ring.count
        steps = np.concatenate([counts.max() - c + np.arange(c) for c in counts])
        grid_shape = (int(counts.max()), self.num_envs)

        def on_grid(flat: np.ndarray) -> np.ndarray:
            grid = np.zeros(grid_shape, dtype=flat.dtype)
            grid[steps, envs] = flat
            return grid

        storage = self._store.fields
        terminated = storage["dones"][rows, envs, 0] > 0
        ended = terminated | storage["truncateds"][rows, envs, 0]
        advantages, returns = gae(
            on_grid(storage["rewards"][rows, envs, 0]),
            on_grid(values),
            on_grid(next_values),
            on_grid(terminated),
            on_grid(ended),
            gamma,
            gae_lambda,
        )
        estimates = {
            "values": values,
            "advantages": advantages[steps, envs],
            "returns": returns[steps, envs],
        }
        for name, flat in estimates.items():
            storage[name][rows, envs] = flat
        self._estimate.current = True
        return storage["advantages"][rows, envs], storage["returns"][rows, envs]

    def minibatches(
        self,
        batch_size: int,
        epochs: int = 1,
        normalize_advantages: bool = False,
        dtype: str | TrajectoryType = "numpy",
    ) -> Iterator[RolloutBatch]:
        """Shuffled minibatches over every stored transition, ``epochs`` times: PPO's update.

        Each epoch draws a fresh permutation of the N stored transitions from ``self.rng`` and
        cuts it into ``ceil(N / batch_size)`` minibatches (the last one smaller when
        ``batch_size`` does not divide N), so every transition comes exactly once per epoch,
        sub-envs mixed. ``normalize_advantages`` shifts and scales each minibatch's advantages
        to mean 0, std 1 (std + 1e-8). Needs :meth:`compute_advantages` after the last add;
        adding while iterating is not supported. Yields :class:`RolloutBatch` of numpy arrays
        or, with ``dtype="torch"``, tensors on the buffer's device.
        """
        check_batch_size(batch_size)
        check_int(epochs, "epochs", 1, wrong_type=ValueError)
        parse_trajectory_type(dtype)
        if not self._estimate.current:
            raise RuntimeError(
                "minibatches: call compute_advantages(values, next_values) after the last add"
            )
        return self._minibatches(batch_size, int(epochs), normalize_advantages, dtype)

    def _minibatches(
        self, batch_size: int, epochs: int, normalize: bool, dtype: str | TrajectoryType
    ) -> Iterator[RolloutBatch]:
        rows, envs = self._transition_index()
        for _ in range(epochs):
            order = self.rng.permutation(len(rows))
            for start in range(0, len(order), batch_size):
                chosen = order[start : start + batch_size]
                yield self._rollout_batch(rows[chosen], envs[chosen], normalize, dtype)

    @locked
    def _rollout_batch(
        self, rows: np.ndarray, envs: np.ndarray, normalize: bool, dtype: str | TrajectoryType
    ) -> RolloutBatch:
        storage = self._store.fields
        fields = {
            name: tree_map(lambda a: a[rows, envs], storage[name])
            for name in ("observations", "actions", "extras", *ESTIMATES)
        }
        if normalize:
            advantages = fields["advantages"]
            fields["advantages"] = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        return RolloutBatch(**convert(fields, dtype, self._device_spec))

    def _transition_index(self) -> tuple[np.ndarray, np.ndarray]:
        """``(N,)`` rows and sub-envs of every stored transition, as ``all(flatten_env=True)``."""
        per_env = [self._ring.ordered_rows(e) for e in range(self.num_envs)]
        rows = np.concatenate(per_env)
        envs = np.repeat(np.arange(self.num_envs), [len(r) for r in per_env])
        return rows, envs


def _per_transition(name: str, values: Any, n: int) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (n,):
        raise ValueError(
            f"{name}: expected shape ({n},), one per stored transition in the order of "
            f"all(flatten_env=True), got {array.shape}"
        )
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: expected finite numbers, got nan or inf")
    return array.astype(np.float32)


class EstimateFlag:
    """Whether the stored advantages and returns are those of the stored steps (a part)."""

    nbytes = 0

    def __init__(self) -> None:
        self.current = False

    def reset(self) -> None:
        self.current = False

    def state(self) -> dict[str, Any]:
        return {"estimated": self.current}

    def set_state(self, state: dict[str, Any]) -> None:
        self.current = bool(state["estimated"])
