"""An add interrupted anywhere (KeyboardInterrupt at any line of pearll's Python code) leaves
every transition a read returns whole, and reads never hang.

The interrupt comes from a trace function, at a random line of the add: the same places a
signal handler's KeyboardInterrupt can reach (Python checks for signals between lines; compiled
calls run to their end). Each transition read back is checked against the env by value: the
TaggedEnv's observations say which step of which episode they are.
"""

from __future__ import annotations

import signal
import sys

import numpy as np
import pytest

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer
from tests.buffers.sampling.test_episodes import relative_extents
from tests.buffers.test_her import goal_env
from tests.fixtures import MODES, make_env
from tests.reference import ReferenceBuffer, Runner, stack


class Interrupt:
    """A trace function raising KeyboardInterrupt at the ``at``-th line run in pearll's code."""

    def __init__(self, at: int) -> None:
        self.at, self.lines, self.fired = at, 0, False

    def __call__(self, frame, event, arg):
        if "pearll" not in frame.f_code.co_filename:
            return None
        if event == "line":
            self.lines += 1
            if self.lines == self.at:
                self.fired = True
                raise KeyboardInterrupt
        return self


def interrupted(add, at: int) -> bool:
    """Run ``add()`` with an interrupt at its ``at``-th line; whether it was interrupted."""
    interrupt = Interrupt(at)
    sys.settrace(interrupt)
    try:
        add()
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
    return interrupt.fired


def produced(runner: Runner) -> dict[tuple, tuple]:
    """Every transition the env produced so far: observation -> (action, reward, next obs)."""
    out = {}
    for env_transitions in runner.reference.transitions:
        for t in env_transitions:
            key = tuple(np.asarray(_flat(t.obs)).tolist())
            out[key] = (np.asarray(t.action).tolist(), float(t.reward), _flat(t.next_obs))
    return out


def _flat(obs):
    if isinstance(obs, dict):
        return np.concatenate([np.ravel(obs[k]) for k in sorted(obs)])
    return np.ravel(obs)


def assert_every_transition_whole(buffer, runner) -> None:
    truth = produced(runner)
    signal.alarm(10)  # a read that hangs fails the test instead of the run
    try:
        if not len(buffer):
            return
        batch = buffer.all(flatten_env=True)
    finally:
        signal.alarm(0)
    obs = batch.observations
    n = len(batch.rewards)
    for i in range(n):
        row = (
            {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]
        )  # fmt: skip
        key = tuple(_flat(row).tolist())
        assert key in truth, f"transition {i}: observation {key} was never produced"
        action, reward, next_obs = truth[key]
        assert np.asarray(batch.actions[i]).reshape(-1).tolist() == np.ravel(action).tolist()
        assert float(batch.rewards[i, 0]) == pytest.approx(reward)
        got_next = batch.next_observations
        got_next = {k: v[i] for k, v in got_next.items()} if isinstance(got_next, dict) else (
            got_next[i])  # fmt: skip
        np.testing.assert_array_equal(_flat(got_next), next_obs)


BUFFERS = {
    "replay": lambda env, size: ReplayBuffer(env, size, seed=0),
    "prioritized": lambda env, size: PrioritizedReplayBuffer(env, size, seed=0),
    "rollout": lambda env, size: RolloutBuffer(env, size, seed=0),
}


def scenario(kind: str, mode, capacity: int, batch: int, seed: int, single: bool):
    """A full buffer, its runner, and the add to interrupt (one step, or ``batch`` steps)."""
    env = make_env(2, mode)
    buffer = BUFFERS[kind](env, capacity)
    runner = Runner(env, buffer, ReferenceBuffer(2, capacity, True), seed)
    runner.add(capacity)  # a full ring: the interrupted add overwrites
    if single:
        args = runner.step()
        return buffer, runner, lambda: buffer.add_trajectory(*args[:6], info=args[6])
    collected = [runner.step() for _ in range(batch)]
    obs, action, reward, next_obs, term, trunc, infos = zip(*collected, strict=True)
    add = lambda: buffer.add_batch_trajectories(  # noqa: E731
        stack(obs), stack(action), stack(reward), stack(next_obs), stack(term), stack(trunc),
        infos=list(infos),
    )  # fmt: skip
    return buffer, runner, add


def lines_run(add) -> int:
    counter = Interrupt(at=0)
    sys.settrace(counter)
    try:
        add()
    finally:
        sys.settrace(None)
    return counter.lines


@pytest.mark.parametrize("kind", sorted(BUFFERS))
@pytest.mark.parametrize("mode", MODES[:2])
@pytest.mark.parametrize("single", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_an_add_interrupted_at_any_line_leaves_every_readable_transition_whole(
    kind, mode, single, seed
):
    # Every line of the add, in turn, is where the interrupt comes.
    args = (kind, mode, 6, 5, seed, single)
    total = lines_run(scenario(*args)[2])
    for at in range(1, total + 1):
        buffer, runner, add = scenario(*args)
        assert interrupted(add, at)
        assert_every_transition_whole(buffer, runner)
        if isinstance(buffer, PrioritizedReplayBuffer) and buffer.counts.min():
            sample = buffer.sample(16)  # only rows that hold transitions have priority
            rows, envs = np.divmod(sample.indices, buffer.num_envs)
            assert buffer._ring.valid[rows, envs].all()
        # And the buffer takes adds again. (What they store is the caller's business now: a
        # lost add may have held an episode end, so the next steps need not follow on.)
        runner.add(3)
        assert len(buffer.all(flatten_env=True).rewards) == len(buffer)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("capacity", [4, 7])
def test_an_interrupted_her_add_leaves_every_readable_transition_whole(seed, capacity):
    def scenario():
        env = goal_env(2, MODES[0])
        buffer = HERBuffer(env, capacity, seed=0)
        runner = Runner(env, buffer, ReferenceBuffer(2, capacity, True), seed)
        runner.add(capacity)
        args = runner.step()
        return buffer, runner, lambda: buffer.add_trajectory(*args[:6], info=args[6])

    for at in range(1, lines_run(scenario()[2]) + 1):
        buffer, runner, add = scenario()
        assert interrupted(add, at)
        assert_every_transition_whole(buffer, runner)
        # The next sample repairs the episode index if the add never reached it: every stored
        # transition's episode is then what the ring says it is.
        buffer.sample(4)
        repaired = relative_extents(buffer)
        ring = buffer._ring
        buffer._episodes.rebuild(ring.valid, ring.pos, ring.size)
        first, last, same_next, unknown_start = relative_extents(buffer)
        np.testing.assert_array_equal(repaired[0][~unknown_start], first[~unknown_start])
        np.testing.assert_array_equal(repaired[1], last)
        np.testing.assert_array_equal(repaired[2], same_next)
