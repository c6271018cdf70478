"""Adapters that give every library the same few operations, for the benchmarks.

Each adapter builds its library's replay buffer for an env's spaces and exposes ``add`` (one
transition or one vector step), ``fill`` (reach a given size fast), ``sample(batch)`` and
``nbytes``. Peers are imported only when their adapter is built, so a missing peer is skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Transition:
    """A fixed CartPole-like transition (or a vector step of E of them) to add repeatedly."""

    def __init__(self, obs_shape: tuple[int, ...], obs_dtype: Any, num_envs: int | None):
        lead = () if num_envs is None else (num_envs,)
        self.obs = np.ones(lead + obs_shape, dtype=obs_dtype)
        self.next_obs = self.obs + 1
        self.action = np.ones(lead, dtype=np.int64) if lead else 1
        self.reward = np.ones(lead, dtype=np.float32) if lead else 1.0
        self.done = np.zeros(lead, dtype=bool) if lead else False


class Pearll:
    name = "pearll"

    def __init__(self, env: Any, capacity: int, torch_out: bool = False):
        from pearll.buffers import ReplayBuffer

        self.buffer = ReplayBuffer(env, capacity, device="cpu", seed=0)
        self.dtype = "torch" if torch_out else "numpy"

    def add(self, t: Transition) -> None:
        self.buffer.add_trajectory(t.obs, t.action, t.reward, t.next_obs, t.done, t.done)

    def fill(self, t: Transition, n: int) -> None:
        reps = (n,) + (1,) * np.ndim(t.obs)
        tile = lambda a: np.tile(np.asarray(a), reps[: np.ndim(a) + 1])  # noqa: E731
        done = np.zeros(n, dtype=bool)
        done[::200] = True
        self.buffer.add_batch_trajectories(
            tile(t.obs), np.ones(n, np.int64), np.ones(n, np.float32), tile(t.next_obs), done
        )

    def sample(self, batch: int) -> Any:
        return self.buffer.sample(batch, dtype=self.dtype)

    @property
    def nbytes(self) -> int:
        return self.buffer.nbytes


class SB3:
    """SB3's default: next observations in an array of their own (its fastest)."""

    name = "SB3"
    optimize_memory_usage = False

    def __init__(self, env: Any, capacity: int, torch_out: bool = True):
        from stable_baselines3.common.buffers import ReplayBuffer

        self.buffer = ReplayBuffer(
            capacity, env.observation_space, env.action_space, device="cpu",
            optimize_memory_usage=self.optimize_memory_usage, handle_timeout_termination=False,
        )  # fmt: skip

    def add(self, t: Transition) -> None:
        obs, nxt = t.obs[None], t.next_obs[None]
        self.buffer.add(
            obs, nxt, np.array([t.action]), np.array([t.reward]), np.array([t.done]), [{}]
        )

    def fill(self, t: Transition, n: int) -> None:
        for _ in range(n):
            self.add(t)

    def sample(self, batch: int) -> Any:
        return self.buffer.sample(batch)


class SB3OneArray(SB3):
    """SB3 with ``optimize_memory_usage``: one observation array, as pearll (memory-equal)."""

    name = "SB3 optimize_memory_usage"
    optimize_memory_usage = True


class Cpprb:
    """cpprb's default: next observations in an array of their own (its fastest)."""

    name = "cpprb"
    next_of = False

    def __init__(self, env: Any, capacity: int, torch_out: bool = False):
        import cpprb

        shape = env.observation_space.shape
        atari = env.observation_space.dtype == np.uint8
        env_dict = {
            "obs": {"shape": shape, "dtype": env.observation_space.dtype},
            "act": {"shape": 1, "dtype": np.int64},
            "rew": {},
            "done": {},
        }
        kwargs: dict = {"next_of": "obs"} if self.next_of else {}
        if atari:
            kwargs["stack_compress"] = "obs"
        self.buffer = cpprb.ReplayBuffer(capacity, env_dict, **kwargs)

    def add(self, t: Transition) -> None:
        self.buffer.add(obs=t.obs, act=t.action, rew=t.reward, next_obs=t.next_obs, done=t.done)

    def fill(self, t: Transition, n: int) -> None:
        for _ in range(n):
            self.add(t)

    def sample(self, batch: int) -> Any:
        return self.buffer.sample(batch)


class CpprbNextOf(Cpprb):
    """cpprb with ``next_of="obs"``: one observation array, as pearll (memory-equal)."""

    name = "cpprb next_of"
    next_of = True


class TorchRL:
    name = "TorchRL"

    def __init__(self, env: Any, capacity: int, torch_out: bool = True):
        from torchrl.data import LazyTensorStorage, ReplayBuffer

        self.buffer = ReplayBuffer(storage=LazyTensorStorage(capacity), batch_size=None)

    def _td(self, t: Transition, n: int | None = None) -> Any:
        import torch
        from tensordict import TensorDict

        def tensor(x: Any) -> Any:
            x = torch.as_tensor(np.asarray(x))
            return x if n is None else x.expand(n, *x.shape)

        return TensorDict(
            {"obs": tensor(t.obs), "action": tensor(t.action), "reward": tensor(t.reward),
             "next_obs": tensor(t.next_obs), "done": tensor(t.done)},
            batch_size=[] if n is None else [n],
        )  # fmt: skip

    def add(self, t: Transition) -> None:
        self.buffer.add(self._td(t))

    def fill(self, t: Transition, n: int) -> None:
        self.buffer.extend(self._td(t, n).clone())

    def sample(self, batch: int) -> Any:
        return self.buffer.sample(batch)


class Tianshou:
    """Tianshou's default: ``obs_next`` stored apart (its fastest)."""

    name = "Tianshou"
    ignore_obs_next = False

    def __init__(self, env: Any, capacity: int, torch_out: bool = False):
        from tianshou.data import ReplayBuffer

        self.buffer = ReplayBuffer(capacity, ignore_obs_next=self.ignore_obs_next)

    def add(self, t: Transition) -> None:
        from tianshou.data import Batch

        self.buffer.add(
            Batch(obs=t.obs, act=t.action, rew=t.reward, terminated=t.done, truncated=t.done,
                  obs_next=t.next_obs, info={})
        )  # fmt: skip

    def fill(self, t: Transition, n: int) -> None:
        for _ in range(n):
            self.add(t)

    def sample(self, batch: int) -> Any:
        return self.buffer.sample(batch)


class TianshouOneArray(Tianshou):
    """Tianshou with ``ignore_obs_next``: next observations read from the next index."""

    name = "Tianshou ignore_obs_next"
    ignore_obs_next = True


# Each peer in its fastest configuration and in the one that stores observations once.
PEERS = [SB3, SB3OneArray, Cpprb, CpprbNextOf, TorchRL, Tianshou, TianshouOneArray]
