"""Argument checks shared by the buffers' public methods."""

from __future__ import annotations

from typing import Any

from gymnasium.vector import AutoresetMode

from pearll.common.arguments import check_int


def check_batch_size(batch_size: Any) -> None:
    """Raise TypeError unless ``batch_size`` is an int (not a bool), ValueError unless > 0."""
    check_int(batch_size, "batch_size", 1)


def check_episode_ends_allowed(spare_rows: bool, autoreset_mode: AutoresetMode, owner: str) -> None:
    """Raise ValueError unless a buffer may take ``episode_ends`` (see add_batch_trajectories):
    the ReplayBuffer layout (``spare_rows``), and episodes the caller resets."""
    if not spare_rows:
        raise ValueError(
            f"episode_ends: not supported by {owner} (its advantages read episode ends from the "
            "stored terminated/truncated flags); set truncateds instead"
        )
    if autoreset_mode is not AutoresetMode.DISABLED:
        raise ValueError(
            "episode_ends: only for buffers whose episodes the caller resets (a single env "
            "or autoreset mode DISABLED), got a vector env in autoreset mode "
            f"{autoreset_mode.name}, which resets only on terminated/truncated"
        )
