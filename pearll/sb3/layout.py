"""How SB3's arrays map onto a pearll buffer's: spaces, shapes and frame-stack axes.

SB3 hands a replay buffer its spaces (not an env) and arrays with the sub-env axis first:
observations ``(n_envs, *obs_shape)`` (a dict of them for Dict spaces; Discrete ones ``(n_envs,)``),
actions ``(n_envs, action_dim)`` or ``(n_envs,)``. :class:`Layout` builds the spaces the pearll
buffer is made from and converts SB3's arrays to that buffer's and back:

- Box actions arrive rescaled to [-1, 1] by SAC/TD3 (or as the policy gave them), so they are
  stored in an unbounded Box of SB3's action dtype (float64 becomes float32, as in SB3), without
  a range check against the env's bounds.
- Frame stacks (``VecFrameStack``): SB3 stacks ``k`` frames of ``c`` channels along the channel
  axis, last (``(H, W, k*c)``) or first (``(k*c, H, W)``, also what ``VecTransposeImage``
  gives a CNN policy). pearll stores one frame per row from stacks of shape ``(k, *frame)``, so
  the stack axis is moved to the front on the way in and back on the way out; a frame is
  ``(H, W)`` for one channel, else ``(H, W, c)`` ("last") or ``(c, H, W)`` ("first").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode


class SpacesOnly:
    """What a pearll buffer reads from an env: spaces, sub-env count, autoreset mode.

    SB3 steps its VecEnv itself and gives the buffer each step with the true final observation
    substituted, and the next episode's first observation as the next step's ``obs``: pearll's
    DISABLED mode. It is always a vector env, one sub-env included, so that SB3's
    ``(n_envs, ...)`` arrays pass through unchanged.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, n_envs: int):
        self.observation_space = self.single_observation_space = observation_space
        self.action_space = self.single_action_space = action_space
        self.num_envs = n_envs
        self.metadata = {"autoreset_mode": AutoresetMode.DISABLED}


class Layout:
    """SB3's spaces and arrays on one side, the pearll buffer's on the other."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        frame_stack: int | None = None,
        channels_order: str | None = None,
    ) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self.stored_action_space = _stored_action_space(action_space)
        self.frame_stack = _check_frame_stack(frame_stack)
        self.channels_order: str | None = None
        self.stored_observation_space = observation_space
        self._shape = getattr(observation_space, "shape", None)
        self._obs_dict = isinstance(observation_space, spaces.Dict)
        self._stored_obs_shape = () if self._obs_dict else _stored_shape(observation_space)
        self._discrete_action = isinstance(self.stored_action_space, spaces.Discrete)
        self._action_shape = _stored_shape(self.stored_action_space)
        if self.frame_stack is not None:
            self._setup_frames(observation_space, channels_order)
        elif channels_order is not None:
            raise ValueError(
                f"channels_order={channels_order!r}: describes frame stacks; give frame_stack=k "
                "too (the k of VecFrameStack) or drop it"
            )

    def _setup_frames(self, space: spaces.Space, channels_order: str | None) -> None:
        k = self.frame_stack
        if not isinstance(space, spaces.Box) or len(space.shape) != 3:
            raise ValueError(
                f"frame_stack={k}: expected a Box image space of rank 3 (VecFrameStack's "
                f"(H, W, k*c) or (k*c, H, W)), got {space}"
            )
        order = channels_order or _guess_channels_order(space.shape, k)
        if order not in ("last", "first"):
            raise ValueError(f"channels_order: expected 'last' or 'first', got {order!r}")
        stacked = space.shape[-1] if order == "last" else space.shape[0]
        if stacked % k:
            raise ValueError(
                f"frame_stack={k}, channels_order={order!r}: the stacked axis of {space.shape} "
                f"has {stacked} channels, not a multiple of {k}"
            )
        self.channels_order, self.channels = order, stacked // k
        image = space.shape[:2] if order == "last" else space.shape[1:]
        if self.channels == 1:
            self.frame_shape = tuple(image)
        elif order == "last":
            self.frame_shape = (*image, self.channels)
        else:
            self.frame_shape = (self.channels, *image)
        low, high = float(np.min(space.low)), float(np.max(space.high))
        self.stored_observation_space = spaces.Box(
            low, high, (k, *self.frame_shape), dtype=space.dtype
        )
        self._stored_obs_shape = (k, *self.frame_shape)
        # SB3's VecFrameStack pads episode starts with zeros.
        self.padding = np.zeros(self.frame_shape, dtype=space.dtype)

    @property
    def stored_observation_shape(self) -> tuple[int, ...] | None:
        """The shape of one sub-env's observation as stored, when SB3's arrays of that shape
        need no conversion (None: Dict spaces, channels-last stacks)."""
        if self._obs_dict or self.channels_order == "last":
            return None
        return self._stored_obs_shape

    @property
    def stored_action_shape(self) -> tuple[int, ...]:
        """The shape of one sub-env's action as the pearll buffer takes it (``()``: Discrete)."""
        return () if self._discrete_action else self._action_shape

    def pearll_frame_stack(self) -> Any:
        """The ``frame_stack=`` option of the pearll buffer: ``(k, zero frame)`` or None."""
        return None if self.frame_stack is None else (self.frame_stack, self.padding)

    # --- SB3 -> pearll ------------------------------------------------------------------------

    def observations_in(self, obs: Any, n_envs: int) -> Any:
        """SB3's ``(n_envs, ...)`` observations as the pearll buffer stores them."""
        if self._obs_dict:
            return {
                key: _reshape_leaf(np.asarray(obs[key]), sub, n_envs)
                for key, sub in self.observation_space.spaces.items()
            }
        shape = self.stored_observation_shape
        if shape is not None and obs.__class__ is np.ndarray and obs.shape == (n_envs, *shape):
            return obs  # already as stored (plain Box spaces; one-channel "first" stacks)
        array = _reshape_leaf(np.asarray(obs), self.observation_space, n_envs)
        if self.frame_stack is None:
            return array
        k, c = self.frame_stack, self.channels
        if self.channels_order == "first":
            return array.reshape(n_envs, k, *self.frame_shape)
        height, width = array.shape[1:3]
        stacks = array.reshape(n_envs, height, width, k, c)
        stacks = np.moveaxis(stacks, 3, 1)
        return stacks.reshape(n_envs, k, *self.frame_shape)

    def actions_in(self, action: Any, n_envs: int) -> np.ndarray:
        """SB3's actions ``(n_envs, action_dim)`` (or ``(n_envs,)``) for the pearll buffer."""
        if self._discrete_action:  # the (E,) that pearll's hot path takes
            if action.__class__ is np.ndarray and action.shape == (n_envs,):
                return action
            return np.asarray(action).reshape(n_envs)
        shape = (n_envs, *self._action_shape)
        if action.__class__ is np.ndarray and action.shape == shape:
            return action
        return np.asarray(action).reshape(shape)

    # --- pearll -> SB3 ------------------------------------------------------------------------

    def observations_out(self, obs: Any) -> Any:
        """A sampled batch of stored observations ``(B, ...)`` in SB3's shapes."""
        if self.frame_stack is None:
            return obs
        batch = len(obs)
        if self.channels_order == "first":
            return obs.reshape(batch, *self._shape)
        height, width = self._shape[:2]
        stacks = obs.reshape(batch, self.frame_stack, height, width, self.channels)
        return np.moveaxis(stacks, 1, 3).reshape(batch, *self._shape)


def as_bytes(value: Any) -> Any:
    """An array's bytes, or a tuple of a dict's leaves' bytes (cheap to keep and compare)."""
    if value.__class__ is dict:
        return tuple(as_bytes(leaf) for leaf in value.values())
    return value.tobytes()


def from_bytes(data: Any, like: Any) -> Any:
    """Arrays shaped as ``like`` from what :func:`as_bytes` made of such arrays."""
    if isinstance(like, dict):
        return {key: from_bytes(part, like[key]) for key, part in zip(like, data, strict=True)}
    return np.frombuffer(data, dtype=like.dtype).reshape(like.shape)


def rows_differ(a: Any, b: Any) -> np.ndarray:
    """``(n_envs,)`` whether the per-sub-env values of ``a`` and ``b`` differ in any byte."""
    if isinstance(a, dict):
        return np.logical_or.reduce([rows_differ(a[key], b[key]) for key in a])
    n_envs = len(a)
    left = np.ascontiguousarray(a).view(np.uint8).reshape(n_envs, -1)
    right = np.ascontiguousarray(b).view(np.uint8).reshape(n_envs, -1)
    return (left != right).any(axis=1)


def _reshape_leaf(array: np.ndarray, space: spaces.Space, n_envs: int) -> np.ndarray:
    shape = (n_envs, *_stored_shape(space))
    if array.shape == shape:
        return array
    if array.size != int(np.prod(shape)):
        raise ValueError(f"observation: expected shape {shape} for {space}, got {array.shape}")
    return array.reshape(shape)


def _stored_shape(space: spaces.Space) -> tuple[int, ...]:
    if isinstance(space, spaces.Discrete):
        return (1,)
    if isinstance(space, spaces.MultiBinary):
        return tuple(np.atleast_1d(space.n))
    if isinstance(space, spaces.MultiDiscrete):
        return tuple(space.nvec.shape)
    return tuple(space.shape)


def _stored_action_space(space: spaces.Space) -> spaces.Space:
    if not isinstance(space, spaces.Box):
        return space
    dtype = np.float32 if space.dtype == np.float64 else space.dtype
    return spaces.Box(-np.inf, np.inf, (int(np.prod(space.shape)),), dtype=dtype)


def _check_frame_stack(frame_stack: Any) -> int | None:
    if frame_stack is None:
        return None
    if isinstance(frame_stack, bool) or not isinstance(frame_stack, int | np.integer):
        raise TypeError(f"frame_stack: expected an int >= 2 or None, got {frame_stack!r}")
    if frame_stack < 2:
        raise ValueError(f"frame_stack: expected an int >= 2 or None, got {frame_stack}")
    return int(frame_stack)


def _guess_channels_order(shape: tuple[int, ...], k: int) -> str:
    """SB3's rule for images: the smallest axis at either end holds the channels."""
    if shape[-1] % k == 0 and shape[-1] <= shape[0]:
        return "last"
    return "first"
