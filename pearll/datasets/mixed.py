"""Offline-to-online replay: each batch a fixed share offline data, the rest online data.

RLPD (Ball et al. 2023) samples every batch half from the offline dataset and half from the
online replay ("symmetric sampling"); Cal-QL and others fine-tune the same way with other
shares. :class:`MixedReplay` does this over two ordinary pearll buffers.

Why two buffers and not one buffer with a sampler over two regions:

- the offline data must never be overwritten by online data, while the online buffer is a ring
  that should overwrite its own oldest steps: two rings keep both rules with no new code in the
  ring, and each keeps its own exact episode-boundary bookkeeping;
- their shapes differ: the dataset is one single-env stream of episodes (see
  ``ReplayBuffer.from_minari``), while the online buffer may serve a vector env in any
  autoreset mode; they can also differ in size and storage (a memory-mapped dataset, an
  in-memory online ring) and in kind (prioritized on one side only, say);
- the share is exact in every batch whatever the two sizes are, as RLPD specifies, where a
  single buffer's uniform draw would give the offline data a share that shrinks as online data
  comes in.

The cost: a batch is two draws and one concatenation (``benchmarks/bench_minari.py`` measures
it against one ``ReplayBuffer.sample``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pearll.common.tree import tree_map
from pearll.common.type_aliases import DictTrajectories, PrioritizedTrajectories, Trajectories

FIELDS = ("observations", "actions", "rewards", "next_observations", "dones", "discounts")


class MixedReplay:
    """Batches of ``round(B * offline_fraction)`` offline and the rest online transitions.

    Args:
        offline, online: ReplayBuffer-family buffers (ReplayBuffer, PrioritizedReplayBuffer,
            HERBuffer) with the same per-sub-env spaces, the same ``n_step`` and ``gamma``,
            and the same extra fields. Either may be single-env or vector.
        offline_fraction: the share of each batch drawn from ``offline``, in [0, 1]; RLPD's
            symmetric sampling is 0.5. The count is ``floor(B * offline_fraction + 0.5)``.
        seed: an int or Generator for the one choice this class makes itself (see below);
            the draws themselves come from each buffer's own seeded generator, so the same
            seeds and the same adds give the same batches.

    ``sample(B)`` returns one flat batch of B transitions, ``(B, ...)``, offline ones first.
    From a buffer with E sub-envs, ``k`` transitions are drawn as ``ceil(k / E)`` per sub-env
    (each sub-env independently, as ``ReplayBuffer.sample`` does); if that is more than ``k``,
    ``k`` of them are kept, chosen uniformly without replacement by this class's generator.

    n-step returns: build both buffers with the same ``n_step`` and ``gamma``; ``discounts``
    then comes from each as usual. Prioritized replay: if either buffer is prioritized the batch
    is a :class:`PrioritizedTrajectories`; ``weights`` are each buffer's own importance weights
    (normalised within that buffer; 1 for a uniform buffer's share) and ``indices`` are slots of
    this mixed replay (offline slots first, then the online ones shifted past them; -1 for a
    uniform buffer's share) to pass back to :meth:`update_priorities`.
    """

    def __init__(
        self,
        offline: Any,
        online: Any,
        offline_fraction: float = 0.5,
        *,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        _check_compatible(offline, online)
        if isinstance(offline_fraction, bool) or not isinstance(
            offline_fraction, int | float | np.floating
        ):
            raise TypeError(
                f"offline_fraction: expected a float in [0, 1], got {type(offline_fraction)}"
            )
        if not 0.0 <= float(offline_fraction) <= 1.0:
            raise ValueError(
                f"offline_fraction: expected a float in [0, 1], got {offline_fraction}"
            )
        self.offline, self.online = offline, online
        self.offline_fraction = float(offline_fraction)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.prioritized = _is_prioritized(offline) or _is_prioritized(online)
        self._offline_slots = offline.buffer_size * offline.num_envs

    def __len__(self) -> int:
        """Transitions held by both buffers together."""
        return len(self.offline) + len(self.online)

    def split(self, batch_size: int) -> tuple[int, int]:
        """``(offline, online)`` counts of a batch of ``batch_size``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
            raise TypeError(f"batch_size: expected a positive int, got {type(batch_size)}")
        if batch_size <= 0:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
        offline = int(np.floor(batch_size * self.offline_fraction + 0.5))
        return offline, int(batch_size) - offline

    def add_trajectory(self, *args: Any, **kwargs: Any) -> None:
        """``online.add_trajectory``: online steps go to the online buffer."""
        self.online.add_trajectory(*args, **kwargs)

    def add_batch_trajectories(self, *args: Any, **kwargs: Any) -> None:
        """``online.add_batch_trajectories``."""
        self.online.add_batch_trajectories(*args, **kwargs)

    def sample(self, batch_size: int, dtype: str = "numpy") -> Trajectories:
        """A flat batch of ``batch_size`` transitions, ``(batch_size, ...)``, offline first.

        ``dtype`` ``"numpy"`` or ``"torch"`` (on the online buffer's device). Raises as the
        buffers do (RuntimeError if a buffer that has to give transitions holds none yet).
        """
        if dtype not in ("numpy", "torch"):
            raise ValueError(f"dtype: expected 'numpy' or 'torch', got {dtype!r}")
        n_offline, n_online = self.split(batch_size)
        parts = []
        if n_offline:
            parts.append(self._draw(self.offline, n_offline, 0))
        if n_online:
            parts.append(self._draw(self.online, n_online, self._offline_slots))
        fields = parts[0]
        if len(parts) > 1:
            fields = tree_map(lambda *arrays: np.concatenate(arrays), *parts)
        if dtype == "torch":
            fields = _to_torch(fields, self.online.device)
        if self.prioritized:
            return PrioritizedTrajectories(**fields)
        record = DictTrajectories if isinstance(fields["observations"], dict) else Trajectories
        return record(**fields)

    def _draw(self, buffer: Any, count: int, slot_offset: int) -> dict[str, Any]:
        """``count`` transitions of ``buffer`` as a dict of flat numpy fields."""
        per_env = -(-count // buffer.num_envs)
        batch = buffer.sample(per_env, flatten_env=True)
        fields = {name: getattr(batch, name) for name in FIELDS if getattr(batch, name) is not None}
        fields["extras"] = dict(batch.extras)
        if self.prioritized:
            if _is_prioritized(buffer):
                fields["indices"] = batch.indices + slot_offset
                fields["weights"] = batch.weights
            else:
                fields["indices"] = np.full(per_env * buffer.num_envs, -1, dtype=np.int64)
                fields["weights"] = np.ones((per_env * buffer.num_envs, 1), dtype=np.float32)
        if per_env * buffer.num_envs > count:
            keep = np.sort(self.rng.choice(per_env * buffer.num_envs, count, replace=False))
            fields = tree_map(lambda array: array[keep], fields)
        return fields

    def update_priorities(self, indices: Any, priorities: Any) -> None:
        """Pass each buffer's priorities (of a batch from :meth:`sample`) back to it.

        ``indices`` as ``sample`` returned them (entries of -1, a uniform buffer's share, are
        skipped); ``priorities`` shaped like them (or with a trailing axis of 1), finite and
        >= 0. Everything is checked before either buffer changes.
        """
        indices, priorities = _as_numpy(indices), _as_numpy(priorities)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"indices: expected integers, got dtype {indices.dtype}")
        if priorities.shape not in (indices.shape, (*indices.shape, 1)):
            raise ValueError(
                f"priorities: expected shape {indices.shape} (that of indices) or "
                f"{(*indices.shape, 1)}, got {priorities.shape}"
            )
        indices, priorities = indices.reshape(-1), priorities.reshape(-1)
        real = priorities.dtype.kind in "iuf"
        if not real or not (np.isfinite(priorities) & (priorities >= 0)).all():
            raise ValueError(f"priorities: expected finite reals >= 0, got {priorities[:5]}")
        online_slots = self.online.buffer_size * self.online.num_envs
        sides = (
            (self.offline, (indices >= 0) & (indices < self._offline_slots), 0),
            (self.online, indices >= self._offline_slots, self._offline_slots),
        )
        outside = (indices < -1) | (indices >= self._offline_slots + online_slots)
        for buffer, mine, _ in sides:
            if mine.any() and not _is_prioritized(buffer):
                outside |= mine  # a uniform buffer's share is given as -1
        if outside.any():
            raise ValueError(
                f"indices: expected -1 or slots of the prioritized buffers (offline [0, "
                f"{self._offline_slots}), online from {self._offline_slots}), got "
                f"{indices[outside][:5]}"
            )
        for buffer, mine, offset in sides:
            if mine.any():
                buffer.update_priorities(indices[mine] - offset, priorities[mine])


def _is_prioritized(buffer: Any) -> bool:
    return callable(getattr(buffer, "update_priorities", None))


def _check_compatible(offline: Any, online: Any) -> None:
    """Raise if a batch could not hold transitions of both buffers side by side."""
    for buffer, name in ((offline, "offline"), (online, "online")):
        if not callable(getattr(buffer, "sample", None)) or not hasattr(buffer, "env_info"):
            raise TypeError(f"{name}: expected a pearll replay buffer, got {type(buffer).__name__}")
    checks = (
        ("observation space", lambda b: b.env_info.observation_space),
        ("action space", lambda b: b.env_info.action_space),
        ("n_step", lambda b: getattr(b, "n_step", None)),
        ("gamma", lambda b: getattr(b, "gamma", None)),
        ("extra fields", lambda b: sorted(b.extras)),
    )
    for what, read in checks:
        if read(offline) != read(online):
            raise ValueError(
                f"offline and online buffers differ in {what}: offline has {read(offline)!r}, "
                f"online has {read(online)!r}"
            )


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _to_torch(fields: dict[str, Any], device: Any) -> dict[str, Any]:
    import torch

    return tree_map(lambda array: torch.from_numpy(np.ascontiguousarray(array)).to(device), fields)
