"""What every pearll.sb3 buffer shares: SB3's constructor, ``add`` and ``sample`` over pearll.

:class:`PearllAdapter` is mixed in before an SB3 buffer class (``class ReplayBuffer(PearllAdapter,
sb3.ReplayBuffer)``), so the result is an instance of SB3's class (``load_replay_buffer``
asserts it) whose storage is a pearll buffer, ``self.pearll_buffer``.

Semantics (SB3's, except where pearll's layout is exact and SB3's is not):

- ``buffer_size`` is the total over sub-envs; each sub-env keeps at least its
  ``buffer_size // n_envs`` most recent transitions, as SB3's does, while its episodes average
  at least ``min_episode_length`` steps: pearll's one observation array costs a row per
  episode end, so its ring has ``ceil(per_env / min_episode_length) + 1`` spare rows. The
  default is 1 (any episode lengths) except with frame stacks, where it is
  :data:`FRAME_STACK_MIN_EPISODE_LENGTH` (one frame per transition; see docs/sb3.md); if
  episodes are shorter the buffer holds fewer transitions (never wrong ones) and warns once.
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
- ``sample``: see :mod:`pearll.sb3.sampling`. ``seed=`` seeds the buffer's own generator;
  without it, it is seeded from numpy's global generator, which SB3's ``seed=`` seeds.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from stable_baselines3.common.buffers import BaseBuffer as SB3BaseBuffer

from pearll.sb3 import checkpoint
from pearll.sb3.checkpoint import Checkpointing
from pearll.sb3.frames import check_stacks
from pearll.sb3.layout import Layout, SpacesOnly, as_bytes, from_bytes, rows_differ
from pearll.sb3.newest_dones import NewestDones
from pearll.sb3.sampling import Sampling

# With frame stacks a spare row costs a whole frame (7,056 bytes at 84x84): rows are reserved
# for episodes (Atari lives, with SB3's AtariWrapper) averaging this many steps or more.
FRAME_STACK_MIN_EPISODE_LENGTH = 500

ndarray = np.ndarray
_BOOL = np.dtype(bool)


class PearllAdapter(Checkpointing, Sampling):
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
        min_episode_length: int | None,
        frame_stack: int | None,
        channels_order: str | None,
    ) -> None:
        """SB3's BaseBuffer attributes, then the pearll buffer (built by ``_make_pearll``)."""
        SB3BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs)
        self.buffer_size = max(int(buffer_size) // n_envs, 1)
        # Accepted with timeouts: pearll's one-array layout is exact at every episode end.
        self.optimize_memory_usage = bool(optimize_memory_usage)
        self.handle_timeout_termination = bool(handle_timeout_termination)
        stored_space = self._stored_observation_space(observation_space)
        self.layout = Layout(stored_space, action_space, frame_stack, channels_order)
        self.min_episode_length = min_episode_length = _min_episode_length(
            min_episode_length, frame_stack
        )
        self._checkpoint_args = {
            "buffer_size": int(buffer_size), "observation_space": observation_space,
            "action_space": action_space, "n_envs": n_envs,
            "optimize_memory_usage": self.optimize_memory_usage,
            "handle_timeout_termination": self.handle_timeout_termination,
            "min_episode_length": min_episode_length,
        }  # fmt: skip
        loaded = checkpoint.take_loaded(self)
        if loaded is not None:  # load_checkpoint: the pearll buffer comes from the checkpoint
            self.pearll_buffer = loaded
        else:
            if seed is None:  # numpy's global generator: SB3's seed= makes runs repeat
                seed = np.random.randint(0, 2**31 - 1, size=4).tolist()
            rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
            self.pearll_buffer = self._make_pearll(self.spaces_only(), self._ring_rows(), rng)
        self._reset_adapter_state()

    def spaces_only(self) -> SpacesOnly:
        """The env-like object the pearll buffer is built from (and checked against on load).

        Always a vector env, one sub-env included: the adapter passes SB3's ``(n_envs, ...)``
        arrays through unchanged."""
        layout = self.layout
        return SpacesOnly(layout.stored_observation_space, layout.stored_action_space, self.n_envs)

    def _make_pearll(self, env: SpacesOnly, rows: int, rng: np.random.Generator) -> Any:
        raise NotImplementedError

    def _stored_observation_space(self, space: Any) -> Any:
        """Hook: the observation space the layout and the pearll buffer see (SB3's here)."""
        return space

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
        self.dones = NewestDones((self.buffer_size, self.n_envs), owner=self)
        # The newest step's next observations as bytes (cheaper to keep and to compare than
        # arrays), what the next step must continue; and its done flags as bytes.
        self._last_next_bytes: Any = None
        self._over_bytes = np.ones(self.n_envs, dtype=bool).tobytes()  # no episode running
        self._no_done_bytes = np.zeros(self.n_envs, dtype=bool).tobytes()
        self._all_done_bytes = self._over_bytes
        self._lead = (self.n_envs,)
        shape = self.layout.stored_observation_shape  # None: never passed through unconverted
        self._obs_shape = None if shape is None else (self.n_envs, *shape)
        self._action_shape = (self.n_envs, *self.layout.stored_action_shape)
        self._warned_restart = self._warned_short = False
        # Steps that need no conversion nor check beyond pearll's own: add's fast path. It is
        # off until an _add_general step ends no episode, and off again from a write to
        # `dones` (NewestDones turns it off) to the next _add_general.
        self._plain = self._obs_shape is not None
        # Frame stacks that need no conversion take the fast path too, after the check that
        # each next stack is its stack shifted by one frame (check_stacks'): bytes of a frame
        # and of a stack, or 0 without frame stacks.
        self._frame_bytes = self._stack_bytes = 0
        if self._plain and self.layout.frame_stack is not None:
            dtype = self.layout.stored_observation_space.dtype
            self._frame_bytes = int(np.prod(self.layout.frame_shape)) * np.dtype(dtype).itemsize
            self._stack_bytes = self._frame_bytes * self.layout.frame_stack
        self._fast = False
        self._pearll_add = self.pearll_buffer.add_trajectory

    @property
    def _episode_over(self) -> np.ndarray:
        """``(n_envs,)`` bool: whether each sub-env's newest step ended its episode."""
        return np.frombuffer(self._over_bytes, dtype=bool).copy()

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
        over = self._episode_over
        over[ended] = True
        self._over_bytes = over.tobytes()
        self._fast = False  # the next add is a general one: it may start an episode
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
        # Called once per env step, so this is SB3's hot path: the usual step (arrays, plain
        # observations, no done, following on, nothing written to `dones`) costs a few
        # attribute compares and one byte compare; pearll's own add checks shapes, dtypes and
        # values (or raises, writing nothing); `infos` are read (and checked) only at a done.
        # Everything else (episode ends and the step after, restarts, frame stacks, Dict
        # observations, other argument types) takes _add_general, which handles every case.
        try:  # free unless raised (an argument that is not an array: _add_general's case)
            next_bytes = next_obs.tobytes()
            fast = (
                self._fast  # see _add_general
                and done.tobytes() == self._no_done_bytes
                and (self._follows_on_stacks(obs, next_obs, next_bytes) if self._frame_bytes
                     else obs.tobytes() == self._last_next_bytes)  # follows on
            )  # fmt: skip
        except AttributeError:
            fast = False
        if fast:
            self._pearll_add(obs, action, reward, next_obs, done, False)
            self._last_next_bytes = next_bytes
            pos = self.pos + 1
            if pos == self.buffer_size:
                self.full, pos = True, 0
            self.pos = pos
            return
        self._add_general(obs, next_obs, action, reward, done, infos)

    def _follows_on_stacks(self, obs: Any, next_obs: Any, next_bytes: bytes) -> bool:
        """``add``'s follow-on test with frame stacks: stacks as stored, ``obs`` the previous
        ``next_obs``, and each next stack its stack shifted by one frame (the check of
        check_stacks). Stacks are 28 KB at 4x84x84: a C-contiguous ``obs`` is compared in place
        (a bytes object's ``startswith`` takes any buffer and compares memory), not copied."""
        if not (obs.shape == self._obs_shape and next_obs.shape == self._obs_shape):
            return False
        try:
            stacks = memoryview(obs).cast("B")
        except TypeError:  # not C-contiguous (VecTransposeImage's transposed views): a copy
            stacks = obs.tobytes()
        last = self._last_next_bytes
        if not (len(stacks) == len(last) and last.startswith(stacks)):
            return False
        frame, stack = self._frame_bytes, self._stack_bytes
        for start in range(0, len(stacks), stack):
            if not next_bytes.startswith(stacks[start + frame : start + stack], start):
                return False
        return True

    def _add_general(self, obs, next_obs, action, reward, done, infos) -> None:
        """``add`` for every step (the fast path in ``add`` is this for the usual one)."""
        n_envs, lead = self.n_envs, self._lead
        if not (obs.__class__ is ndarray and obs.shape == self._obs_shape):
            obs = self.layout.observations_in(obs, n_envs)
        if not (next_obs.__class__ is ndarray and next_obs.shape == self._obs_shape):
            next_obs = self.layout.observations_in(next_obs, n_envs)
        if not (action.__class__ is ndarray and action.shape == self._action_shape):
            action = self.layout.actions_in(action, n_envs)
        if not (reward.__class__ is ndarray and reward.shape == lead):
            reward = np.asarray(reward, dtype=np.float32).reshape(n_envs)
        if not (done.__class__ is ndarray and done.shape == lead and done.dtype == _BOOL):
            done = np.array(done, dtype=bool).reshape(n_envs)
        if len(infos) != n_envs:
            raise ValueError(f"infos: expected {n_envs} dicts (one per sub-env), got {len(infos)}")
        done_bytes = done.tobytes()
        ends = done_bytes != self._no_done_bytes
        terminated, timeout = done, False
        if ends and self.handle_timeout_termination:
            timeout = done & np.array([bool(i.get("TimeLimit.truncated", False)) for i in infos])
            terminated = done & ~timeout
        restarted = None
        # SB3 marks the newest step done by writing dones[pos - 1] = True (second learn()).
        running = self._over_bytes != self._all_done_bytes
        if running and (self.dones.written or as_bytes(obs) != self._last_next_bytes):
            restarted = self._restarted(obs)
        elif self.dones.written:  # a mark with no episode running: nothing to end
            self.dones.take_newest(self.pos)
        if self.layout.frame_stack is not None:
            starting = self._episode_over if restarted is None else self._episode_over | restarted
            self._warned_restart = check_stacks(
                self.layout, obs, next_obs, starting, self._warned_restart
            )
        if restarted is not None and restarted.any():
            self.end_episodes(np.flatnonzero(restarted))
        self._add_step(obs, action, reward, next_obs, terminated, timeout, infos)
        self._last_next_bytes = as_bytes(next_obs)
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full, self.pos = True, 0
        self._over_bytes = done_bytes
        # The next step may take add's fast path if this one ended no episode (so that
        # _over_bytes stays right without the fast path writing it).
        self._fast = self._plain and not ends
        if ends and not self._warned_short:
            self._check_held()

    def _add_step(self, obs, action, reward, next_obs, terminated, truncated, infos) -> None:
        """Give the step to the pearll buffer, sub-env axis first."""
        self.pearll_buffer.add_trajectory(obs, action, reward, next_obs, terminated, truncated)

    def _restarted(self, obs: Any) -> np.ndarray:
        """``(n_envs,)`` running episodes that ``obs`` does not continue, or that SB3 marked
        done; clears SB3's marks."""
        marked = self.dones.take_newest(self.pos) if self.dones.written else False
        last = from_bytes(self._last_next_bytes, obs)
        return ~self._episode_over & (marked | rows_differ(obs, last))

    def _check_held(self) -> None:
        """Warn once when a sub-env holds fewer transitions than SB3's buffer would (episodes
        shorter on average than ``min_episode_length``: their ends used up the spare rows)."""
        wanted = self.buffer_size if self.full else self.pos
        held = self.size()
        if held >= wanted:
            return
        self._warned_short = True
        warnings.warn(
            f"{type(self).__name__}: a sub-env holds {held} transitions, fewer than the "
            f"{wanted} SB3's buffer would: its episodes are shorter than min_episode_length="
            f"{self.min_episode_length} on average, and each episode end costs a row; pass a "
            "smaller min_episode_length in replay_buffer_kwargs to hold them all",
            RuntimeWarning,
            stacklevel=3,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        parent = getattr(super(), "__setstate__", None)  # SB3's HER drops the env there
        if parent is None:
            self.__dict__.update(state)
        else:
            parent(state)
        self.dones = NewestDones.from_array(self.dones, owner=self)  # pickling drops its flag
        self._fast = False  # the next add is a general one


def _min_episode_length(value: int | None, frame_stack: int | None) -> int:
    if value is None:
        return 1 if frame_stack is None else FRAME_STACK_MIN_EPISODE_LENGTH
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        kind = ValueError if isinstance(value, int) and not isinstance(value, bool) else TypeError
        raise kind(f"min_episode_length: expected an int >= 1 or None, got {value!r}")
    return value
