"""Minari datasets into and out of pearll buffers (``pip install 'pearll[minari]'``).

Minari 0.5.4 needs Python >= 3.11 (pearll itself supports 3.10); it is imported only when one
of these functions runs. The buffers' ``from_minari`` and ``to_minari`` delegate here.

Loading (:func:`load_buffer`): the dataset's episodes become one single-env stream of
episodes, in dataset order, written whole episodes at a time through
``add_batch_trajectories`` (a chunk of about ``chunk_steps`` steps per call). Minari keeps
T + 1 observations per episode, so each episode's true final observation is stored (in the
row after its last transition, as every episode end in a ReplayBuffer), its terminated and
truncated flags are stored apart, and an episode that ends with neither flag is ended with
``episode_ends`` so that it stays apart from the next one. Rewards are stored as float32, as
in every pearll buffer: a float64 dataset's rewards come back rounded to float32. Infos are not
loaded. Episodes of zero steps hold no transition and are skipped.

Writing: :mod:`pearll.datasets.minari_write`.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from pearll.common.tree import tree_leaves, tree_map

INSTALL_HINT = "pip install 'pearll[minari]'"
# Loads and writes of at least this many steps show a progress bar (progress=None).
PROGRESS_STEPS = 100_000


class MinariExport(NamedTuple):
    """What ``to_minari`` returns: the dataset written (a ``minari.MinariDataset``), the number
    of episodes written, and the number left out (open at the write position, or cut by the
    ring's overwriting). Unpacks as ``dataset, n_written, n_left_out = buffer.to_minari(...)``.
    """

    dataset: Any
    n_written: int
    n_left_out: int


def import_minari() -> Any:
    """The minari module, or an ImportError saying how to install it."""
    try:
        import minari
    except ImportError as error:
        raise ImportError(
            f"Minari datasets need the minari package (0.5.4, Python >= 3.11): {INSTALL_HINT}"
        ) from error
    return minari


def resolve_dataset(dataset: Any) -> Any:
    """A MinariDataset as given, or the local dataset of that id (never downloaded)."""
    minari = import_minari()
    if isinstance(dataset, minari.MinariDataset):
        return dataset
    if not isinstance(dataset, str):
        raise TypeError(
            f"dataset: expected a minari.MinariDataset or a dataset id, got {type(dataset)}"
        )
    from minari.storage.datasets_root_dir import get_dataset_path

    try:
        return minari.load_dataset(dataset, download=False)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"dataset {dataset!r}: no local Minari dataset of that id under "
            f"{get_dataset_path()} (MINARI_DATASETS_PATH); pearll never downloads: fetch it "
            f"first (minari download {dataset}) or pass a MinariDataset"
        ) from None


class DatasetSpaces:
    """What a buffer reads of an env, taken from a dataset: a single env with its two spaces.

    ``unwrapped.compute_reward`` (HERBuffer's default reward) is the given env's, if any.
    """

    metadata: dict[str, Any] = {}  # noqa: RUF012 (read only: no autoreset mode)

    def __init__(self, observation_space: Any, action_space: Any, reward_source: Any) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self.unwrapped = self if reward_source is None else reward_source


def load_buffer(
    cls: type,
    dataset: Any,
    *,
    env: Any = None,
    buffer_size: int | None = None,
    storage: str = "memory",
    seed: Any = None,
    progress: bool | None = None,
    chunk_steps: int = 65_536,
    **buffer_kwargs: Any,
) -> Any:
    """A new ``cls`` buffer holding every episode of ``dataset`` (see the module doc)."""
    dataset = resolve_dataset(dataset)
    name = f"dataset {dataset.id!r}"
    obs_space, act_space = dataset.observation_space, dataset.action_space
    if env is not None:
        _check_env_spaces(name, obs_space, act_space, env)
    if buffer_kwargs.get("extra_fields"):
        raise ValueError(f"extra_fields: {name} carries no values for them; build without")
    steps, episodes = int(dataset.total_steps), int(dataset.total_episodes)
    if steps == 0:
        raise ValueError(f"{name} is empty ({episodes} episodes, 0 steps): nothing to load")
    # One row per step, one per episode end (its final observation), one pending row.
    needed = steps + episodes + 1
    if buffer_size is None:
        buffer_size = needed
    elif isinstance(buffer_size, int | np.integer) and 0 < buffer_size < needed:
        raise ValueError(
            f"buffer_size={buffer_size}: {name} needs {needed} rows ({steps} steps + "
            f"{episodes} episode ends + 1); leave buffer_size out, or load a filtered dataset"
        )
    if _is_her(cls) and "compute_reward" not in buffer_kwargs and env is None:
        raise ValueError(f"{cls.__name__}.from_minari: pass compute_reward= or env=")
    stand_in = DatasetSpaces(obs_space, act_space, _reward_source(env))
    try:
        buffer = cls(stand_in, buffer_size, storage=storage, seed=seed, **buffer_kwargs)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{cls.__name__} for {name}: {error}") from error
    show = progress if progress is not None else steps >= PROGRESS_STEPS
    with tqdm(total=steps, unit="step", desc=f"loading {dataset.id}", disable=not show) as bar:
        episodes_read = dataset.storage.get_episodes(dataset.episode_indices)
        for chunk in _chunks(name, episodes_read, chunk_steps):
            _add_chunk(buffer, name, chunk)
            bar.update(sum(len(e["rewards"]) for e in chunk))
    if len(buffer) != steps:  # the row count above guarantees it; never return a partial load
        raise RuntimeError(f"{name}: loaded {len(buffer)} of {steps} steps")
    return buffer


def _is_her(cls: type) -> bool:
    # By what the class offers, not by importing it: pearll.buffers calls into this module.
    return hasattr(cls, "relabel_ratio")


def _env_spaces(env: Any) -> tuple[Any, Any]:
    """The per-sub-env spaces of a gymnasium Env or VectorEnv."""
    if not hasattr(env, "num_envs"):
        return env.observation_space, env.action_space
    obs, act = (
        getattr(env, "single_observation_space", None),
        getattr(env, "single_action_space", None),
    )
    return (
        env.observation_space if obs is None else obs,
        env.action_space if act is None else act,
    )


def _check_env_spaces(name: str, obs_space: Any, act_space: Any, env: Any) -> None:
    env_obs, env_act = _env_spaces(env)
    for what, ours, theirs in (("observation", obs_space, env_obs), ("action", act_space, env_act)):
        if ours != theirs:
            raise ValueError(f"{what} spaces differ: {name} has {ours}, the env has {theirs}")


def _reward_source(env: Any) -> Any:
    """What holds the env's ``compute_reward`` (for HERBuffer's default), or None."""
    if env is None:
        return None
    if not hasattr(env, "num_envs"):
        return getattr(env, "unwrapped", env)
    sub_envs = getattr(getattr(env, "unwrapped", env), "envs", None)
    if sub_envs:
        return sub_envs[0].unwrapped
    if hasattr(env, "call"):
        return SimpleNamespace(
            compute_reward=lambda a, d, i: env.call("compute_reward", a, d, i)[0]
        )
    return None


def _chunks(name: str, episodes: Iterable[dict], chunk_steps: int) -> Iterable[list[dict]]:
    """Checked episodes with at least one step, grouped into chunks of >= chunk_steps steps.

    Joining costs a copy, but one add of many episodes costs less than many adds (measured:
    the per-call bookkeeping of one add per 1,000-step episode outweighs the copy).
    """
    chunk, staged = [], 0
    for episode in episodes:
        length = _check_episode(name, episode)
        if length == 0:
            continue
        chunk.append(episode)
        staged += length
        if staged >= chunk_steps:
            yield chunk
            chunk, staged = [], 0
    if chunk:
        yield chunk


def _check_episode(name: str, episode: dict) -> int:
    """The episode's step count T, after checking its arrays against each other."""
    where = f"{name}, episode {episode['id']}"
    length = len(episode["rewards"])
    for leaf in tree_leaves(episode["observations"]):
        if len(leaf) != length + 1:
            raise ValueError(f"{where}: {len(leaf)} observations for {length} steps, not T + 1")
    for key in ("terminations", "truncations"):
        if len(episode[key]) != length:
            raise ValueError(f"{where}: {len(episode[key])} {key} for {length} steps")
    for leaf in tree_leaves(episode["actions"]):
        if len(leaf) != length:
            raise ValueError(f"{where}: {len(leaf)} actions for {length} steps")
    ended = np.asarray(episode["terminations"], bool) | np.asarray(episode["truncations"], bool)
    early = np.flatnonzero(ended[:-1])
    if len(early):
        raise ValueError(
            f"{where}: step {early[0]} of {length} is terminated or truncated before the "
            "episode's last step (an episode ends at its last step only)"
        )
    return length


def _add_chunk(buffer: Any, name: str, chunk: list[dict]) -> None:
    """Whole episodes at once: T_i steps each, observations[:-1] and observations[1:]."""

    def joined(key: str, part: slice = slice(None)) -> Any:
        if len(chunk) == 1:
            return tree_map(lambda leaf: np.asarray(leaf)[part], chunk[0][key])
        return tree_map(lambda *leaves: np.concatenate([leaf[part] for leaf in leaves]),
                        *(episode[key] for episode in chunk))  # fmt: skip

    terminations = np.asarray(joined("terminations"), bool)
    truncations = np.asarray(joined("truncations"), bool)
    last = np.cumsum([len(e["rewards"]) for e in chunk]) - 1
    episode_ends = np.zeros(len(terminations), dtype=bool)
    episode_ends[last] = ~(terminations[last] | truncations[last])  # ended with neither flag
    try:
        buffer.add_batch_trajectories(
            joined("observations", slice(None, -1)), joined("actions"), joined("rewards"),
            joined("observations", slice(1, None)), terminations, truncations,
            episode_ends=episode_ends,
        )  # fmt: skip
    except (TypeError, ValueError) as error:
        ids = f"{chunk[0]['id']}..{chunk[-1]['id']}"
        raise type(error)(f"{name}, episodes {ids}: {error}") from error
