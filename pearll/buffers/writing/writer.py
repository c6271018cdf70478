"""The general add path: validated steps -> plan -> invalidate -> write -> commit -> observers.

Every add that the step writer (step_writer.py, the hot path for one env step) declines comes
here, and so does every batch add. This path is also the specification of the hot one: tests
compare the two byte for byte.

Order, and why: the slots a write will overwrite (and the frame stacks it will break) stop
being transitions *before* any byte of them changes, the data is written next, and the ring is
committed last, when every new row is whole. So an exception at any point, KeyboardInterrupt
included, leaves every transition that a read can return whole: an interrupted add has
either not made its new transitions readable yet, or made all of them readable, and the only
other change it can leave is that some of the oldest transitions, the ones it was about to
overwrite, are gone. Observers (PER's priorities, HER's episode index, a rollout's estimate)
hear of the write once it is committed; if an interrupt comes before they have, the next add
(or a prioritized or HER sample) finds the add unfinished and runs the observers' repairs
first (PER: slots without a transition back to priority 0, transitions left without one given
the largest; HER: its episode index worked out again from the ring).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from pearll.buffers.core.env_info import EnvInfo, reset_steps
from pearll.buffers.core.ring import Ring, WritePlan
from pearll.buffers.core.steps import StepBatch
from pearll.buffers.storage.packed import PackedStorage
from pearll.common.tree import tree_map

STEP_FIELDS = ("actions", "rewards", "dones", "truncateds")


class Written(NamedTuple):
    """What one add changed, as ``(row, env)`` slots of the ring.

    ``rows[i], envs[i]`` now hold new transitions. The ``passed`` slots were overwritten, made
    pending, or lost their frame stack: they hold no transition unless they are among the first.
    ``plan`` is the ``(T, E)`` plan of a general-path write; the step writer (one step, T = 1)
    gives ``ended`` instead, ``(E,)`` bool: whether each sub-env's step ended its episode.
    (A NamedTuple: made on every hot-path add that has observers, so it must be cheap.)
    """

    rows: np.ndarray
    envs: np.ndarray
    passed_rows: np.ndarray
    passed_envs: np.ndarray
    plan: WritePlan | None = None
    ended: np.ndarray | None = None
    closed: np.ndarray | None = None  # end_episodes: sub-envs whose episode it ended


# A part that keeps state about stored rows (priorities, episodes) in step with the writes:
# called with what changed after every committed add, by both write paths.
WriteObserver = Callable[[Written], None]


class Writer:
    """Writes validated steps into a buffer's storage and ring (the general path).

    Parts, all taken as they are and never replaced behind its back (a buffer makes a new
    writer when it allocates new storage): the env's facts, the packed storage and its field
    views (``views``: name -> array tree; ``observations`` may be a frame store's view), the
    frame store or None, the ring, and the observers told of every write (a list the buffer
    may extend after building the writer).
    """

    def __init__(
        self,
        env_info: EnvInfo,
        packed: PackedStorage,
        views: dict[str, Any],
        frames: Any,
        ring: Ring,
        observers: Sequence[WriteObserver] = (),
        repairs: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.env_info, self.packed, self.views = env_info, packed, views
        self.frames, self.ring, self.observers = frames, ring, observers
        self.repairs = repairs
        # True from the start of an add until its observers are told: still True at the next
        # add or sample, it means that add was interrupted, and the repairs run.
        self.unfinished = False

    def recover_if_interrupted(self) -> None:
        """Run the observers' repairs if the last add never finished (see the module doc)."""
        if self.unfinished:
            for repair in self.repairs:
                repair()
            self.unfinished = False

    def add(self, steps: StepBatch) -> None:
        """Write ``steps`` ``(T, E, ...)``: drop NEXT_STEP reset steps, then plan, invalidate,
        write, commit, and tell the observers."""
        frames = self.frames
        if frames is not None and len(steps) > frames.max_steps_per_write:
            # Frame stacks stay checkable only if a write never wraps onto its own rows.
            chunk = frames.max_steps_per_write
            for start in range(0, len(steps), chunk):
                self.add(steps.slice(start, start + chunk))
            return
        self.recover_if_interrupted()
        self.unfinished = True
        ring = self.ring
        ended = steps.ended
        keep = ~reset_steps(ended, ring.prev_ended, self.env_info.autoreset_mode)
        plan = ring.plan(keep, ended)
        passed_rows, passed_envs = ring.rows_passed_over(plan.advance)
        broken_rows = broken_envs = np.zeros(0, dtype=np.int64)
        episode_step = None
        if frames is not None:
            broken_rows, broken_envs = self._stacks_to_break(plan)
            episode_step = frames.episode_step.copy()
        ring.invalidate_slots(np.concatenate([passed_rows, broken_rows]),
                              np.concatenate([passed_envs, broken_envs]))  # fmt: skip
        try:
            self._write(plan, steps)
        except BaseException:
            if episode_step is not None:
                frames.episode_step[:] = episode_step  # the depths of steps never committed
            raise
        ring.commit(plan)
        written = Written(
            plan.step_row, plan.step_env,
            np.concatenate([passed_rows, broken_rows]), np.concatenate([passed_envs, broken_envs]),
            plan=plan,
        )  # fmt: skip
        for observer in self.observers:
            observer(written)
        self.unfinished = False

    def end_episodes(self, chosen: np.ndarray) -> np.ndarray:
        """End the running episodes of the sub-envs ``chosen`` (distinct, int64) at their last
        stored step, as truncations (see ``ReplayBuffer.end_episodes``); returns the sub-envs
        whose episode it ended.

        Spare-row layout only: the pending row keeps the final observation, and the ring
        moves one row on, so the next step starts a new episode.
        """
        ring = self.ring
        last = (ring.pos[chosen] - 1) % ring.capacity
        closing = chosen[~ring.prev_ended[chosen] & ring.valid[last, chosen]]
        last = (ring.pos - 1) % ring.capacity
        if len(closing) == 0:
            return closing
        self.recover_if_interrupted()
        self.unfinished = True
        advance = np.zeros(ring.num_envs, dtype=np.int64)
        advance[closing] = 1
        ended_last = ring.prev_ended.copy()
        ended_last[closing] = True
        none, no_steps = np.zeros(0, dtype=np.int64), np.zeros((0, ring.num_envs), dtype=bool)
        plan = WritePlan(*(none,) * 6, advance, ended_last, no_steps, no_steps)
        passed_rows, passed_envs = ring.rows_passed_over(advance)
        ring.invalidate_slots(passed_rows, passed_envs)
        self.views["truncateds"][last[closing], closing] = True
        self.packed.sync_mirror()
        if self.frames is not None:
            self.frames.episode_step[closing] = 0  # the next step starts an episode's stack
        ring.commit(plan)
        for observer in self.observers:
            observer(Written(none, none, passed_rows, passed_envs, closed=closing))
        self.unfinished = False
        return closing

    def _stacks_to_break(self, plan: WritePlan) -> tuple[np.ndarray, np.ndarray]:
        """The transitions whose frame stacks reach rows this write will overwrite.

        Found before anything is written: they are among the k - 1 rows after the newest row
        the write will reach, which it does not touch (a write never wraps onto its own rows).
        """
        ring, envs = self.ring, np.flatnonzero(plan.advance)
        newest = (ring.pos[envs] + plan.advance[envs] - plan.ended_last[envs]) % ring.capacity
        return self.frames.broken_rows(self.views["frame_depth"], ring.valid, newest, envs)

    def _write(self, plan: WritePlan, steps: StepBatch) -> None:
        views = self.views
        fancy = ((plan.step_t, plan.step_env), (plan.step_row, plan.step_env))
        # Runs of consecutive rows (whole episodes of a batch) copy faster as slices.
        parts = (_slice_runs(plan) if self.frames is None else None) or [fancy]
        observations, next_observations = steps.observations, steps.next_observations
        spare = self.ring.spare_rows
        if self.frames is not None:
            observations, next_observations = observations[:, :, -1], next_observations[:, :, -1]
            depth, next_depth = self.frames.depths(plan.keep, plan.ended)
            views["frame_depth"][fancy[1]] = depth[fancy[0]]
            target, source = (plan.next_row, plan.next_env), (plan.next_t, plan.next_env)
            views["frame_depth"][target] = next_depth[source]
        for at_steps, rows in parts:
            for name in STEP_FIELDS:
                views[name][rows] = getattr(steps, name)[at_steps]
            scatter(views["observations"], rows, observations, at_steps)
            scatter(views["extras"], rows, steps.extras, at_steps)
            if not spare:
                scatter(views["next_observations"], rows, next_observations, at_steps)
        if spare:
            target, source = (plan.next_row, plan.next_env), (plan.next_t, plan.next_env)
            scatter(views["observations"], target, next_observations, source)
            if not (plan.step_row.all() and plan.next_row.all()):
                self.packed.sync_mirror()


# Below this many steps per run on average, one fancy-index scatter beats a slice copy per run.
MIN_RUN_STEPS = 32


def _slice_runs(plan: WritePlan) -> list[tuple[tuple, tuple]] | None:
    """The plan's writes as ``(at_steps, rows)`` slice pairs, one per run of consecutive steps
    going to consecutive rows of one sub-env (each whole episode of a single-env batch is
    one), or None when the runs are too short for slices to pay.

    Basic-index copies of long runs cost a fraction of the fancy-index scatter, which was most
    of the time of adding whole episodes (benchmarks/bench_minari.py).
    """
    rows, steps, envs = plan.step_row, plan.step_t, plan.step_env
    n = len(rows)
    if n < MIN_RUN_STEPS:
        return None
    breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(steps) != 1) | (np.diff(envs) != 0))
    if (len(breaks) + 1) * MIN_RUN_STEPS > n:
        return None
    bounds = [0, *(breaks + 1).tolist(), n]
    runs = []
    for start, stop in itertools.pairwise(bounds):
        env, row, step = int(envs[start]), int(rows[start]), int(steps[start])
        length = stop - start
        runs.append(((slice(step, step + length), env), (slice(row, row + length), env)))
    return runs


def scatter(storage: Any, rows: tuple, values: Any, at: tuple) -> None:
    """``storage[rows] = values[at]`` leaf by leaf."""
    tree_map(lambda s, v: s.__setitem__(rows, v[at]), storage, values)
