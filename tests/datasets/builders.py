"""Minari datasets built locally from numpy arrays, and the naive episodes they hold.

An episode here is a dict of numpy arrays as Minari stores it: ``observations`` ``(T + 1, ...)``
(a dict tree for Dict spaces), ``actions`` ``(T, ...)``, ``rewards`` ``(T,)`` float64,
``terminations`` and ``truncations`` ``(T,)`` bool. Tests compare what comes back with these.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from gymnasium import spaces

SPACES = {
    "box": (
        spaces.Box(-5.0, 5.0, shape=(3,), dtype=np.float32),
        spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
    ),
    "discrete": (spaces.Discrete(7), spaces.Discrete(4)),
    "dict": (
        spaces.Dict(
            {
                "position": spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float64),
                "inner": spaces.Dict(
                    {"flag": spaces.Discrete(3), "patch": spaces.Box(0, 255, (2, 2), np.uint8)}
                ),
            }
        ),
        spaces.Discrete(3),
    ),
    "image": (spaces.Box(0, 255, shape=(8, 8, 3), dtype=np.uint8), spaces.Discrete(2)),
}
# How an episode's last step ends: (terminated, truncated).
END_KINDS = {
    "terminated": (True, False),
    "truncated": (False, True),
    "both": (True, True),
    "neither": (False, False),
}
_ids = itertools.count()


def fresh_id(prefix: str = "test") -> str:
    """A dataset id not used before in this process."""
    return f"{prefix}/data{next(_ids)}-v0"


def sample_values(space: spaces.Space, n: int, rng: np.random.Generator) -> Any:
    """``n`` random values of ``space`` stacked, as Minari stores them."""
    if isinstance(space, spaces.Dict):
        return {key: sample_values(sub, n, rng) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Discrete):
        return rng.integers(space.start, space.start + space.n, size=n).astype(np.int64)
    if np.issubdtype(space.dtype, np.integer):
        return rng.integers(space.low, space.high, size=(n, *space.shape), endpoint=True).astype(
            space.dtype
        )
    return rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(space.dtype)


def random_episode(
    rng: np.random.Generator, kind: str, length: int, end: str = "terminated"
) -> dict[str, Any]:
    obs_space, act_space = SPACES[kind]
    terminated, truncated = END_KINDS[end]
    terminations, truncations = np.zeros(length, bool), np.zeros(length, bool)
    if length:
        terminations[-1], truncations[-1] = terminated, truncated
    return {
        "observations": sample_values(obs_space, length + 1, rng),
        "actions": sample_values(act_space, length, rng),
        "rewards": rng.normal(size=length),
        "terminations": terminations,
        "truncations": truncations,
    }


def make_dataset(dataset_id: str, kind: str, episodes: list[dict[str, Any]]) -> Any:
    """A local Minari dataset of ``episodes`` (stored raw: no JPEG)."""
    import minari
    from minari.data_collector import EpisodeBuffer

    obs_space, act_space = SPACES[kind]
    buffers = [EpisodeBuffer(**episode) for episode in episodes]
    return minari.create_dataset_from_buffers(
        dataset_id, buffers, observation_space=obs_space, action_space=act_space,
        jpeg_encoding=False, author="pearll tests", algorithm_name="random",
    )  # fmt: skip


def assert_tree_equal(got: Any, want: Any, what: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), what
        for key in want:
            assert_tree_equal(got[key], want[key], f"{what}[{key!r}]")
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_array_equal(got, want, err_msg=what)


def assert_same_episode(got: Any, want: dict[str, Any], where: str = "") -> None:
    """A Minari EpisodeData (or dict) holds exactly ``want``, rewards rounded to float32."""
    get = got.__getitem__ if isinstance(got, dict) else lambda key: getattr(got, key)
    assert_tree_equal(get("observations"), want["observations"], f"{where} observations")
    assert_tree_equal(get("actions"), want["actions"], f"{where} actions")
    rewards = np.asarray(get("rewards"))
    np.testing.assert_array_equal(
        rewards.astype(np.float32), np.asarray(want["rewards"]).astype(np.float32), where
    )
    for key in ("terminations", "truncations"):
        assert_tree_equal(np.asarray(get(key)), np.asarray(want[key], bool), f"{where} {key}")


def transitions_of(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Every transition of ``episodes`` in order, as flat arrays in the buffer's output form."""

    def joined(tree_key: str, part: slice) -> Any:
        def join(*leaves: np.ndarray) -> np.ndarray:
            return np.concatenate([leaf[part] for leaf in leaves])

        return _tree_map(join, *(e[tree_key] for e in episodes))

    return {
        "observations": joined("observations", slice(None, -1)),
        "next_observations": joined("observations", slice(1, None)),
        "actions": np.concatenate([e["actions"] for e in episodes]),
        "rewards": np.concatenate([e["rewards"] for e in episodes]).astype(np.float32),
        "dones": np.concatenate([e["terminations"] for e in episodes]).astype(np.float32),
    }


def _tree_map(fn: Any, tree: Any, *others: Any) -> Any:
    if isinstance(tree, dict):
        return {key: _tree_map(fn, tree[key], *(o[key] for o in others)) for key in tree}
    return fn(tree, *others)
