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
(or a prioritized sample) finds the add unfinished and runs the observers' repairs first (PER:
slots without a transition back to priority 0, transitions left without one given the largest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from pearll.buffers.core.env_info import EnvInfo, reset_steps
from pearll.buffers.core.ring import Ring, WritePlan
from pearll.buffers.core.steps import StepBatch
from pearll.buffers.core.tree import tree_map
from pearll.buffers.storage.packed import PackedStorage

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
        at_steps = (plan.step_t, plan.step_env)
        rows = (plan.step_row, plan.step_env)
        for name in STEP_FIELDS:
            views[name][rows] = getattr(steps, name)[at_steps]
        observations, next_observations = steps.observations, steps.next_observations
        spare = self.ring.spare_rows
        if self.frames is not None:
            observations, next_observations = observations[:, :, -1], next_observations[:, :, -1]
            depth, next_depth = self.frames.depths(plan.keep, plan.ended)
            views["frame_depth"][rows] = depth[at_steps]
            target, source = (plan.next_row, plan.next_env), (plan.next_t, plan.next_env)
            views["frame_depth"][target] = next_depth[source]
        scatter(views["observations"], rows, observations, at_steps)
        scatter(views["extras"], rows, steps.extras, at_steps)
        if spare:
            target, source = (plan.next_row, plan.next_env), (plan.next_t, plan.next_env)
            scatter(views["observations"], target, next_observations, source)
            if not (plan.step_row.all() and plan.next_row.all()):
                self.packed.sync_mirror()
        else:
            scatter(views["next_observations"], rows, steps.next_observations, at_steps)


def scatter(storage: Any, rows: tuple, values: Any, at: tuple) -> None:
    """``storage[rows] = values[at]`` leaf by leaf."""
    tree_map(lambda s, v: s.__setitem__(rows, v[at]), storage, values)
