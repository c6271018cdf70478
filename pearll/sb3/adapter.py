"""What every pearll.sb3 buffer shares: SB3's constructor, ``add`` and ``sample`` over pearll.

:class:`PearllAdapter` is mixed in before an SB3 buffer class (``class ReplayBuffer(PearllAdapter,
sb3.ReplayBuffer)``), so the result is an instance of SB3's class (``load_replay_buffer``
asserts it) whose storage is a pearll buffer, ``self.pearll_buffer``.

Semantics (SB3's, except where pearll's layout is exact and SB3's is not):

- ``buffer_size`` is the total over sub-envs; each sub-env keeps at least its
  ``buffer_size // n_envs`` most recent transitions, as SB3's does. pearll's one observation
  array costs a row per episode end, so its ring has ``ceil(per_env / min_episode_length) + 1``
  spare rows (``min_episode_length=1``: any episode lengths; more rows can then be held).
- ``pos`` and ``full`` count adds as SB3's do; ``size()`` is the smallest number of transitions a
  sub-env holds; ``dones`` is an SB3-shaped ``(per_env, n_envs)`` float32 array that is there to
  be written: True at the newest position (SB3 writes ``dones[pos - 1] = True`` on a second
  ``learn()`` with ``optimize_memory_usage``) ends that episode there, at the next ``add``. It
  reads as zeros otherwise; the stored done flags are in ``pearll_buffer``.
- ``add``: ``done`` with ``infos[i]["TimeLimit.truncated"]`` is a truncation (it bootstraps from
  the true final observation, which SB3 has put in ``next_obs``); with
  ``handle_timeout_termination=False`` every done is a termination, as in SB3. A step whose
  ``obs`` is not the previous ``next_obs`` of its sub-env (no done between: after a second
  ``learn()``, ``set_env`` or a loaded buffer) ends the previous episode there, truncated:
  no stored transition is ever turned into one the env did not produce.
- ``sample(batch_size, env)``: ``batch_size`` transitions in all, each sub-env equally likely (as
  SB3 draws sub-envs uniformly), uniform within it; tensors on ``self.device`` as it is when
  sampling; observations and rewards normalised through a ``VecNormalize`` ``env``.
- ``seed=`` seeds the buffer's own generator; without it, it is seeded from numpy's global
  generator, which SB3's ``seed=`` seeds, so runs repeat.
"""

from __future__ import annotations

import warnings
from dataclasses import fields
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import BaseBuffer as SB3BaseBuffer

from pearll.sb3.layout import Layout, SpacesOnly, rows_differ


class PearllAdapter:
    """SB3's replay-buffer interface over a pearll buffer (see the module docstring)."""

    pearll_buffer: Any
    layout: Layout

    def _setup(
        self,
        buffer_size: int,
        observation_space: Any,
        action_space: Any,
        device: Any,
        n_envs: int,
        optimize_memory_usage: bool,
        handle_timeout_termination: bool,
        seed: int | np.random.Generator | None,
        min_episode_length: int,
        frame_stack: int | None,
        channels_order: str | None,
    ) -> None:
        """SB3's BaseBuffer attributes, then the pearll buffer (built by ``_make_pearll``)."""
        SB3BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs)
        self.buffer_size = max(int(buffer_size) // n_envs, 1)
        # Accepted with timeouts: pearll's one-array layout is exact at every episode end.
        self.optimize_memory_usage = bool(optimize_memory_usage)
        self.handle_timeout_termination = bool(handle_timeout_termination)
        if isinstance(min_episode_length, bool) or not isinstance(min_episode_length, int):
            raise TypeError(f"min_episode_length: expected an int >= 1, got {min_episode_length!r}")
        if min_episode_length < 1:
            raise ValueError(f"min_episode_length: expected an int >= 1, got {min_episode_length}")
        self.min_episode_length = min_episode_length
        self.layout = Layout(observation_space, action_space, frame_stack, channels_order)
        if seed is None:  # numpy's global generator: SB3's seed= makes runs repeat
            seed = np.random.randint(0, 2**31 - 1, size=4).tolist()
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        spaces_only = SpacesOnly(
            self.layout.stored_observation_space, self.layout.stored_action_space, n_envs
        )
        self.pearll_buffer = self._make_pearll(spaces_only, self._ring_rows(), rng)
        self._reset_adapter_state()

    def _make_pearll(self, env: SpacesOnly, rows: int, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def _ring_rows(self) -> int:
        """Rows per sub-env for ``buffer_size`` transitions plus the episode ends among them."""
        per_env = self.buffer_size
        ends = -(-per_env // self.min_episode_length)
        stack = 0 if self.layout.frame_stack is None else self.layout.frame_stack + 1
        return per_env + ends + 1 + stack

    def _reset_adapter_state(self) -> None:
        self.pos, self.full = 0, False
        # SB3's `dones`, for what SB3 writes into it: True at the newest position ends that
        # episode (read at the next add, then cleared). The done flags live in pearll's buffer.
        self.dones = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self._zero_row_bytes = self.dones[0].tobytes()
        # The newest step's next observations as bytes (cheaper to keep and to compare than
        # arrays): what the next step must continue.
        self._last_next_bytes: Any = None
        self._episode_over = np.ones(self.n_envs, dtype=bool)  # no episode running yet
        self._any_running = False
        self._no_done_bytes = np.zeros(self.n_envs, dtype=bool).tobytes()
        self._all_done_bytes = np.ones(self.n_envs, dtype=bool).tobytes()
        self._no_timeouts = np.zeros(self.n_envs, dtype=bool)
        self._lead = (self.n_envs,)
        self._warned_restart = False

    # --- SB3's bookkeeping -------------------------------------------------------------------

    def size(self) -> int:
        """Transitions held by the sub-env that holds fewest (SB3 counts per sub-env too)."""
        return int(self.pearll_buffer.counts.min())

    def reset(self) -> None:
        self.pearll_buffer.reset()
        self._reset_adapter_state()

    def end_episodes(self, envs: Any = None) -> np.ndarray:
        """End the running episodes of ``envs`` (default all) at their newest step, truncated.

        Returns the sub-envs ended. Done by ``add`` itself when a step does not follow on.
        """
        ended = self.pearll_buffer.end_episodes(envs)
        self._episode_over[ended] = True
        self._any_running = not self._episode_over.all()
        return ended

    # --- adding ------------------------------------------------------------------------------

    def add(
        self,
        obs: Any,
        next_obs: Any,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store one VecEnv step (see the module docstring for done, timeouts and restarts)."""
        # Called once per env step: every line here is on SB3's hot path, so the checks are
        # attribute and byte compares, and the usual case takes no numpy reduction.
        n_envs, layout, lead = self.n_envs, self.layout, self._lead
        obs_in = layout.observations_in(obs, n_envs)
        next_in = layout.observations_in(next_obs, n_envs)
        action_in = layout.actions_in(action, n_envs)
        if not (reward.__class__ is np.ndarray and reward.shape == lead
                and reward.dtype == np.float32):  # fmt: skip
            reward = np.asarray(reward, dtype=np.float32).reshape(n_envs)
        if done.__class__ is np.ndarray and done.shape == lead and done.dtype == np.bool_:
            done = done.copy()  # kept as _episode_over
        else:
            done = np.array(done, dtype=bool).reshape(n_envs)
        if len(infos) != n_envs:
            raise ValueError(f"infos: expected {n_envs} dicts (one per sub-env), got {len(infos)}")
        done_bytes = done.tobytes()
        terminated = timeout = done
        if done_bytes == self._no_done_bytes:
            timeout = self._no_timeouts
        elif self.handle_timeout_termination:
            timeout = done & np.array([bool(i.get("TimeLimit.truncated", False)) for i in infos])
            terminated = done & ~timeout
        else:
            timeout = self._no_timeouts
        restarted = None
        if self._any_running and (
            # SB3 marks the newest step done by writing dones[pos - 1] = True (second learn()).
            self.dones[self.pos - 1].tobytes() != self._zero_row_bytes
            or _as_bytes(obs_in) != self._last_next_bytes
        ):
            restarted = self._restarted(obs_in)
        if layout.frame_stack is not None:
            starting = self._episode_over if restarted is None else self._episode_over | restarted
            self._check_stacks(obs_in, next_in, starting)
        if restarted is not None and np.count_nonzero(restarted):
            self.end_episodes(np.flatnonzero(restarted))
        if n_envs == 1:  # pearll's buffer is a single env: no env axis, scalar flags
            if obs_in.__class__ is dict:
                obs_in, next_in = _first(obs_in), _first(next_in)
            else:
                obs_in, next_in = obs_in[0], next_in[0]
            self._add_step(obs_in, action_in[0], reward[0], next_in, terminated[0], timeout[0])
        else:
            self._add_step(obs_in, action_in, reward, next_in, terminated, timeout)
        self._last_next_bytes = _as_bytes(next_in)
        self._episode_over = done
        self._any_running = done_bytes != self._all_done_bytes
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full, self.pos = True, 0

    def _add_step(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Give the step to the pearll buffer (with the env axis only for several sub-envs)."""
        self.pearll_buffer.add_trajectory(obs, action, reward, next_obs, terminated, truncated)

    def _restarted(self, obs: Any) -> np.ndarray | None:
        """``(n_envs,)`` running episodes that ``obs`` does not continue, or that SB3 marked
        done (once ``add`` has seen that some do)."""
        newest = self.dones[self.pos - 1]  # pos 0: the last row, as SB3's (pos - 1) % size
        last = _from_bytes(self._last_next_bytes, obs)
        restarted = ~self._episode_over & ((newest != 0) | rows_differ(obs, last))
        newest[...] = 0
        return restarted

    def _check_stacks(self, obs: np.ndarray, next_obs: np.ndarray, starting: np.ndarray) -> None:
        """Raise if a next stack is not its stack shifted by a frame (a wrong channels_order);
        warn once if an episode starts with a stack that is not zero-padded (see below)."""
        layout, n_envs = self.layout, self.n_envs
        # Byte compares: no temporaries the size of a stack.
        unshifted = [e for e in range(n_envs) if next_obs[e, :-1].tobytes() != obs[e, 1:].tobytes()]
        if unshifted:
            raise ValueError(
                f"frame_stack={layout.frame_stack}, channels_order={layout.channels_order!r}: "
                f"the next observations of sub-envs {unshifted} are not their observations "
                "shifted by one frame along that axis; give the channels_order of the "
                "observations the buffer receives (a CNN policy's VecTransposeImage makes "
                "them 'first')"
            )
        if self._warned_restart or not np.count_nonzero(starting):
            return
        mid_stack = [e for e in np.flatnonzero(starting) if np.count_nonzero(obs[e, :-1])]
        if mid_stack:
            self._warned_restart = True
            warnings.warn(
                f"sub-envs {mid_stack} start an episode with a stack whose older frames are not "
                "zero (a restart mid-episode, e.g. a buffer loaded into a later run): the "
                "buffer holds no frames from before its first step, so the first stacks of "
                "that episode come back zero-padded",
                RuntimeWarning,
                stacklevel=3,
            )

    # --- sampling ----------------------------------------------------------------------------

    def _draw(self, batch_size: int) -> Any:
        """A pearll record of ``batch_size`` transitions: each sub-env equally likely."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
            raise TypeError(f"batch_size: expected a positive int, got {batch_size!r}")
        per_env = -(-int(batch_size) // self.n_envs)
        # per_env from each sub-env (SB3 draws sub-envs uniformly), the env axis then merged.
        record = self.pearll_buffer.sample(per_env)
        if self.pearll_buffer.env_info.is_vector:
            record = _map_record(record, lambda a: a.reshape(-1, *a.shape[2:]))
        if per_env * self.n_envs == batch_size:
            return record
        pick = self.pearll_buffer.rng.choice(per_env * self.n_envs, batch_size, replace=False)
        return _take(record, np.sort(pick))

    def _tensor(self, array: np.ndarray) -> th.Tensor:
        return th.as_tensor(np.ascontiguousarray(array), device=self.device)

    def _tensors(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self._tensor(leaf) for key, leaf in value.items()}
        return self._tensor(value)

    def _sample_fields(self, record: Any, env: Any) -> dict[str, Any]:
        """SB3's sample fields (tensors) of a pearll record, normalised through ``env``."""
        out = self.layout.observations_out
        observations = self._normalize_obs(out(record.observations), env)
        next_observations = self._normalize_obs(out(record.next_observations), env)
        rewards = self._normalize_reward(record.rewards, env)
        discounts = record.discounts
        return {
            "observations": self._tensors(observations),
            "actions": self._tensor(record.actions),
            "next_observations": self._tensors(next_observations),
            "dones": self._tensor(record.dones),
            "rewards": self._tensor(rewards),
            "discounts": None if discounts is None else self._tensor(discounts),
        }

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} draws its own rows: call sample(batch_size, env)"
        )


def _first(value: Any) -> Any:
    """Sub-env 0's entry of an array or a dict of arrays."""
    if value.__class__ is dict:
        return {key: leaf[0] for key, leaf in value.items()}
    return value[0]


def _as_bytes(value: Any) -> Any:
    if value.__class__ is dict:
        return tuple(_as_bytes(leaf) for leaf in value.values())
    return value.tobytes()


def _from_bytes(data: Any, like: Any) -> Any:
    """Arrays shaped as ``like`` from what :func:`_as_bytes` made of such arrays."""
    if isinstance(like, dict):
        return {key: _from_bytes(part, like[key]) for key, part in zip(like, data, strict=True)}
    return np.frombuffer(data, dtype=like.dtype).reshape(like.shape)


def _take(record: Any, pick: np.ndarray) -> Any:
    """The record with the batch entries ``pick`` of every field."""
    return _map_record(record, lambda array: array[pick])


def _map_record(record: Any, fn: Any) -> Any:
    """The record with ``fn`` applied to every array of every field (None stays None)."""
    values = {f.name: _map_tree(getattr(record, f.name), fn) for f in fields(record)}
    return type(record)(**values)


def _map_tree(value: Any, fn: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {key: _map_tree(leaf, fn) for key, leaf in value.items()}
    return fn(value)
