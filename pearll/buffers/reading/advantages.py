"""Advantages and returns of a rollout: GAE, n-step and Monte-Carlo returns, in pure numpy.

Every function takes arrays with time first, ``(T, ...)``: T consecutive steps of a rollout as
the env produced them, of one env ``(T,)`` or of E sub-envs at once ``(T, E)``. The loops run
over time only; the trailing axes are computed together.

Conventions (the same in every function):

- ``values[t]`` is V(s_t); ``next_values[t]`` is V(s'_t), the value of the step's *true* next
  observation: for a truncated step, the episode's final observation (not the reset one).
- ``terminated[t]``: s'_t is terminal, so its value counts as 0: no bootstrap.
- ``ended[t]``: terminated or truncated: the episode ends after step t, so nothing from step
  t + 1 on belongs to it and the recursion restarts there.
- The rollout's last step (t = T - 1) bootstraps from ``next_values[T - 1]`` unless terminated:
  the end of the rollout cuts the episode like a truncation.

Inside an episode ``next_values[t]`` equals ``values[t + 1]`` (same observation); the functions
read ``next_values`` throughout, which is what keeps the next episode's first value out of a
truncated episode's estimate.
"""

from __future__ import annotations

import numpy as np

from pearll.common.arguments import check_int


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    ended: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates (Schulman et al. 2016) and their lambda-returns.

    ``delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)``,
    ``A_t = delta_t + gamma * gae_lambda * (1 - ended_t) * A_{t+1}``, ``A_T = 0``, and
    ``returns_t = A_t + V(s_t)``. ``gae_lambda=1`` gives Monte-Carlo advantages, ``0`` one-step
    TD errors. Returns ``(advantages, returns)``, both of the inputs' shape, in their float dtype
    (at least float32).
    """
    r, v, next_v = _floats(rewards=rewards, values=values, next_values=next_values)
    term, end = _flags(r.shape, terminated=terminated, ended=ended)
    _check_unit("gamma", gamma)
    _check_unit("gae_lambda", gae_lambda)
    deltas = r + gamma * np.where(term, 0.0, next_v) - v
    carry = np.where(end, 0.0, gamma * gae_lambda).astype(r.dtype)
    advantages = np.empty_like(deltas)
    running = np.zeros(r.shape[1:], dtype=r.dtype)
    for t in reversed(range(len(deltas))):
        running = deltas[t] + carry[t] * running
        advantages[t] = running
    return advantages, advantages + v


def monte_carlo_returns(
    rewards: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    ended: np.ndarray,
    gamma: float,
) -> np.ndarray:
    """Discounted sum of rewards to the end of each step's episode.

    Where the episode is cut before it terminates (truncation, or the end of the rollout) the
    sum is completed with ``gamma^k * V(s')`` of the last step; pass zeros as ``next_values``
    for a pure reward sum. Equals the returns of :func:`gae` with ``gae_lambda=1``.
    """
    r, bootstrap, cut = _targets(rewards, next_values, terminated, ended, gamma)
    returns = np.empty_like(r)
    running = np.zeros(r.shape[1:], dtype=r.dtype)
    for t in reversed(range(len(r))):
        running = r[t] + gamma * np.where(cut[t], bootstrap[t], running)
        returns[t] = running
    return returns


def n_step_returns(
    rewards: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    ended: np.ndarray,
    gamma: float,
    n: int,
) -> np.ndarray:
    """n-step TD targets: ``m`` discounted rewards, then ``gamma^m * V(s')`` of the m-th step.

    ``m = min(n, steps to the end of the episode, steps to the end of the rollout)`` counting
    step t itself; the bootstrap is 0 if that m-th step terminated. ``n=1`` gives the one-step
    target ``r_t + gamma * (1 - terminated_t) * V(s'_t)``; ``n >= T`` the Monte-Carlo returns.
    """
    check_int(n, "n", 1, wrong_type=ValueError)
    r, bootstrap, cut = _targets(rewards, next_values, terminated, ended, gamma)
    horizon = len(r)
    returns = np.zeros_like(r)
    alive = np.ones(r.shape, dtype=bool)  # step t's sum has not reached its last step yet
    # Pass k adds the k-th following step to every sum still running: T steps at once.
    for k in range(min(n, horizon)):
        starts, steps = slice(0, horizon - k), slice(k, horizon)
        running = alive[starts]
        stop = np.ones_like(cut[steps]) if k == n - 1 else cut[steps]
        returns[starts] += np.where(running, gamma**k * r[steps], 0.0)
        last = running & stop
        returns[starts] += np.where(last, gamma ** (k + 1) * bootstrap[steps], 0.0)
        alive[starts] &= ~stop
    return returns


def _targets(
    rewards: np.ndarray, next_values: np.ndarray, terminated: np.ndarray, ended: np.ndarray, gamma
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked rewards, the value each step bootstraps from, and where each sum must stop."""
    r, next_v = _floats(rewards=rewards, next_values=next_values)
    term, end = _flags(r.shape, terminated=terminated, ended=ended)
    _check_unit("gamma", gamma)
    cut = end.copy()
    if len(cut):
        cut[-1] = True  # the end of the rollout cuts every episode still running
    return r, np.where(term, 0.0, next_v).astype(r.dtype), cut


def _floats(**arrays: np.ndarray) -> list[np.ndarray]:
    """The arrays in one float dtype (at least float32), all of the first one's shape."""
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    dtype = np.result_type(*arrays.values(), np.float32)
    if dtype.kind != "f":
        raise TypeError(f"{sorted(arrays)}: expected real numbers, got dtype {dtype}")
    shape = next(iter(arrays.values())).shape
    _check_shapes(shape, arrays)
    return [a.astype(dtype, copy=False) for a in arrays.values()]


def _flags(shape: tuple[int, ...], **arrays: np.ndarray) -> list[np.ndarray]:
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    _check_shapes(shape, arrays)
    return [a.astype(bool) for a in arrays.values()]


def _check_shapes(shape: tuple[int, ...], arrays: dict[str, np.ndarray]) -> None:
    for name, array in arrays.items():
        if array.ndim == 0 or array.shape != shape:
            raise ValueError(
                f"{name}: expected the rewards' shape {shape}, time first ((T,) or (T, E)), "
                f"got {array.shape}"
            )


def _check_unit(name: str, x: float) -> None:
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {x!r}")
