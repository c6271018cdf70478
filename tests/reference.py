"""A naive reference: whole transitions in Python lists, and an env runner that feeds both.

The runner steps an env (single or vector, any autoreset mode), hands the buffer exactly what
the env returned (as a user would), and hands the reference the true transitions, worked out
the slow and obvious way. Tests then compare what the buffer returns with the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode


@dataclass
class Transition:
    obs: Any
    action: Any
    reward: float
    next_obs: Any
    done: bool
    truncated: bool


class ReferenceBuffer:
    """Per sub-env lists of every true transition, and the retention rule of each buffer kind."""

    def __init__(self, num_envs: int, capacity: int, spare_rows: bool):
        self.capacity, self.spare_rows = capacity, spare_rows
        self.transitions: list[list[Transition]] = [[] for _ in range(num_envs)]

    def add(self, env: int, transition: Transition) -> None:
        self.transitions[env].append(transition)

    def retained(self, env: int) -> list[Transition]:
        """What the buffer must hold for sub-env ``env``, oldest first.

        RolloutBuffer: the ``capacity`` newest. ReplayBuffer: walking back from the newest,
        each transition costs a row and an episode end one more (its final observation); one
        row is kept for the newest next observation, so the rows add up to ``capacity - 1``.
        """
        history = self.transitions[env]
        if not self.spare_rows:
            return history[max(0, len(history) - self.capacity) :]
        rows, kept = 0, 0
        for transition in reversed(history):
            rows += 1 + (transition.done or transition.truncated)
            if rows > self.capacity - 1:
                break
            kept += 1
        return history[len(history) - kept :]


def index_obs(obs: Any, i: int) -> Any:
    if isinstance(obs, dict):
        return {k: index_obs(v, i) for k, v in obs.items()}
    return np.asarray(obs)[i]


def stack(values: Any) -> Any:
    """Stack a sequence of arrays, or of dicts of arrays, along a new first axis."""
    if isinstance(values[0], dict):
        return {k: stack([v[k] for v in values]) for k in values[0]}
    return np.stack([np.asarray(v) for v in values])


class Runner:
    """Steps ``env`` with random actions, feeding ``buffer`` and a ReferenceBuffer."""

    def __init__(self, env: Any, buffer: Any, reference: ReferenceBuffer, seed: int = 0):
        self.env, self.buffer, self.reference = env, buffer, reference
        self.vector = hasattr(env, "num_envs")
        self.mode = env.metadata.get("autoreset_mode") if self.vector else None
        self.rng = np.random.default_rng(seed)
        self.obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        self.needs_reset = np.zeros(getattr(env, "num_envs", 1), dtype=bool)

    def step(self) -> tuple:
        """One env step, returning what was given to ``buffer.add_trajectory``."""
        env = self.env
        action = env.action_space.sample()
        next_obs, reward, term, trunc, info = env.step(action)
        args = (self.obs, action, reward, next_obs, term, trunc, info)
        self._record(*args)
        self.obs = next_obs
        if not self.vector and (term or trunc):
            self.obs, _ = env.reset()
        if self.vector and self.mode == AutoresetMode.DISABLED and (term | trunc).any():
            self.obs, _ = env.reset(options={"reset_mask": term | trunc})
        return args

    def add(self, steps: int) -> None:
        """Add ``steps`` steps one at a time."""
        for _ in range(steps):
            args = self.step()
            self.buffer.add_trajectory(*args[:6], info=args[6])

    def add_batch(self, steps: int) -> None:
        """Add ``steps`` steps with one ``add_batch_trajectories`` call."""
        collected = [self.step() for _ in range(steps)]
        obs, action, reward, next_obs, term, trunc, infos = zip(*collected, strict=True)
        self.buffer.add_batch_trajectories(
            stack(obs), stack(action), stack(reward), stack(next_obs), stack(term), stack(trunc),
            infos=list(infos) if self.vector else None,
        )  # fmt: skip

    def _record(self, obs, action, reward, next_obs, term, trunc, info) -> None:
        if not self.vector:
            self.reference.add(0, Transition(obs, action, reward, next_obs, term, trunc))
            return
        for e in range(self.env.num_envs):
            if self.mode == AutoresetMode.NEXT_STEP and self.needs_reset[e]:
                continue  # the reset step: not a transition
            true_next = index_obs(next_obs, e)
            if self.mode == AutoresetMode.SAME_STEP and (term[e] or trunc[e]):
                true_next = info["final_obs"][e]
            self.reference.add(
                e,
                Transition(index_obs(obs, e), action[e], reward[e], true_next, term[e], trunc[e]),
            )
        self.needs_reset = term | trunc


def reference_window(
    history: list[Transition], start: int, i: int, burn_in: int, length: int, cross: bool
) -> tuple[list[Transition | None], list[bool]]:
    """The window a sequence sample anchored at ``history[i]`` must return, worked out on
    whole episodes: ``start`` is the index of the oldest retained transition. Returns the
    ``burn_in + length`` steps (None for padding) and each step's ``is_first``.

    A step starts an episode if the one before it ended one (or it is the first ever), and
    the buffer can tell only if that one is still retained (or nothing was ever dropped).
    """

    def ended(j: int) -> bool:
        return bool(history[j].done or history[j].truncated)

    def first(j: int) -> bool:
        return (j == 0) or (j - 1 >= start and ended(j - 1))

    burn = []
    j = i
    while len(burn) < burn_in and j - 1 >= start and not ended(j - 1):
        j -= 1
        burn.insert(0, j)
    learned = [i]
    while len(learned) < length and learned[-1] + 1 < len(history):
        if ended(learned[-1]) and not cross:
            break
        learned.append(learned[-1] + 1)
    steps = [None] * (burn_in - len(burn)) + burn + learned + [None] * (length - len(learned))
    return (
        [None if j is None else history[j] for j in steps],
        [False if j is None else first(j) for j in steps],
    )
