"""Writing a buffer's complete episodes as a Minari dataset (``buffer.to_minari``).

Every complete episode held, sub-env by sub-env, oldest first (see
:mod:`pearll.datasets.stored_episodes` for which ones are complete), as raw arrays: Minari's
JPEG encoding of image spaces is turned off, so the dataset is lossless. The id is checked
before anything is created, and a write that fails part-way removes the folder it made.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from tqdm.auto import tqdm

from pearll.datasets.minari import PROGRESS_STEPS, MinariExport, import_minari
from pearll.datasets.stored_episodes import StoredEpisode, episode_runs, read_episode

# Episodes are handed to Minari in lists of about this many steps (bounded memory).
WRITE_STEPS = 65_536


def write_dataset(
    buffer: Any, dataset_id: str, progress: bool | None = None, **dataset_metadata: Any
) -> MinariExport:
    """Write the complete episodes ``buffer`` holds as the new Minari dataset ``dataset_id``."""
    minari = import_minari()
    path = check_new_dataset_id(dataset_id)
    taken = {"jpeg_encoding", "observation_space", "action_space", "buffer"} & set(dataset_metadata)
    if taken:
        raise ValueError(f"to_minari sets {sorted(taken)} itself (spaces, lossless); drop them")
    obs_space, act_space = buffer.env_info.observation_space, buffer.env_info.action_space
    from minari.serialization import serialize_space

    for space in (obs_space, act_space):
        serialize_space(space)  # a space Minari cannot store fails here, before any folder
    with buffer._lock:
        runs = episode_runs(buffer)
        if not runs.complete:
            raise ValueError(
                f"{type(buffer).__name__} holds no complete episode ({runs.left_out} left out: "
                "open at the write position or cut by overwriting): nothing to write"
            )
        batches = _episode_buffers(buffer, runs.rows, obs_space, act_space, minari)
        steps = sum(len(rows) - 1 for per_env in runs.rows for rows in per_env)
        show = progress if progress is not None else steps >= PROGRESS_STEPS
        try:
            bar = tqdm(total=steps, unit="step", desc=f"writing {dataset_id}", disable=not show)
            with bar:
                dataset = None
                for batch in batches:
                    if dataset is None:
                        dataset = minari.create_dataset_from_buffers(
                            dataset_id, batch, observation_space=obs_space,
                            action_space=act_space, jpeg_encoding=False, **dataset_metadata,
                        )  # fmt: skip
                    else:
                        dataset.update_dataset_from_buffer(batch)
                    bar.update(sum(len(e.rewards) for e in batch))
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)  # it did not exist before: nothing half-made
            raise
    return MinariExport(dataset, runs.complete, runs.left_out)


def check_new_dataset_id(dataset_id: Any) -> Path:
    """The folder a new dataset ``dataset_id`` will take, after checking that the id is well
    formed and unused (Minari creates the folder before it parses the id)."""
    import_minari()
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.storage.datasets_root_dir import get_dataset_path

    if not isinstance(dataset_id, str):
        raise TypeError(f"dataset_id: expected a str, got {type(dataset_id).__name__}")
    try:
        parse_dataset_id(dataset_id)
    except (TypeError, ValueError):  # a missing version is a TypeError there
        raise ValueError(
            f"dataset_id {dataset_id!r}: expected '(namespace/)name-v<version>', e.g. "
            "'cartpole/random-v0' (letters, digits, '-', '_'; namespaces separated by '/')"
        ) from None
    path = Path(get_dataset_path(dataset_id))
    if path.exists():
        raise FileExistsError(
            f"dataset_id {dataset_id!r}: a dataset already exists at {path}; delete it "
            "(minari.delete_dataset) or choose another version"
        )
    return path


def _episode_buffers(
    buffer: Any, rows: list[list[np.ndarray]], obs_space: Any, act_space: Any, minari: Any
) -> Iterable[list[Any]]:
    """Minari EpisodeBuffers of the episodes at ``rows``, in lists of about 64k steps."""
    batch, staged = [], 0
    for env, per_env in enumerate(rows):
        for episode_rows in per_env:
            episode = read_episode(buffer, env, episode_rows)
            batch.append(_to_minari_episode(episode, obs_space, act_space, minari))
            staged += len(episode.rewards)
            if staged >= WRITE_STEPS:
                yield batch
                batch, staged = [], 0
    if batch:
        yield batch


def _to_minari_episode(episode: StoredEpisode, obs_space: Any, act_space: Any, minari: Any) -> Any:
    return minari.data_collector.EpisodeBuffer(
        observations=_as_space(episode.observations, obs_space),
        actions=_as_space(episode.actions, act_space),
        rewards=episode.rewards,
        terminations=episode.terminations,
        truncations=episode.truncations,
    )


def _as_space(values: Any, space: spaces.Space) -> Any:
    """Stored values ``(N, *stored_shape)`` as the space has them: ``(N, *space.shape)`` in the
    space's dtype (a Discrete value is stored ``(1,)``, a Minari one is a scalar)."""
    if isinstance(space, spaces.Dict):
        return {key: _as_space(values[key], sub) for key, sub in space.spaces.items()}
    array = np.asarray(values)
    return array.reshape(len(array), *space.shape).astype(space.dtype, copy=False)
