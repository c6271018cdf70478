"""The episode log of a training run and its CSV file."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CSV_COLUMNS = ("env_steps", "return", "wall_time", "success")


@dataclass(frozen=True)
class Episode:
    """One finished training episode.

    ``env_steps``: env steps taken in the whole run when it ended (over all sub-envs).
    ``episode_return``: its undiscounted return. ``wall_time``: seconds since training began.
    ``success``: goal envs' ``info["is_success"]`` at its last step, None for other envs.
    """

    env_steps: int
    episode_return: float
    wall_time: float
    success: bool | None = None


def write_csv(episodes: Iterable[Episode], path: str | Path) -> Path:
    """Write one row per episode under the header ``env_steps,return,wall_time,success``.

    ``success`` is 1 or 0, empty when unknown; ``wall_time`` is in seconds. Returns ``path``.
    """
    path = Path(path)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        for e in episodes:
            success = "" if e.success is None else int(e.success)
            writer.writerow([e.env_steps, repr(e.episode_return), f"{e.wall_time:.3f}", success])
    return path


def read_csv(path: str | Path) -> list[Episode]:
    """The episodes of a file written by :func:`write_csv`."""
    with Path(path).open(newline="") as file:
        reader = csv.DictReader(file)
        if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
            raise ValueError(f"{path}: expected columns {CSV_COLUMNS}, got {reader.fieldnames}")
        return [
            Episode(
                int(row["env_steps"]),
                float(row["return"]),
                float(row["wall_time"]),
                None if row["success"] == "" else row["success"] == "1",
            )
            for row in reader
        ]
