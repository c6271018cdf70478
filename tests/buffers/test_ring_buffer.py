"""Every returned transition is one the env produced: both buffers against the reference model.

Covers single envs and vector envs in each gymnasium autoreset mode, Box and Dict observations,
one-step and batch adds, wraparound, and the retention rules of ReplayBuffer and RolloutBuffer.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer
from pearll.envs import BitFlippingEnv
from tests.compare import assert_rows_match, env_slice, row, same_transition
from tests.fixtures import MODES, make_env
from tests.reference import ReferenceBuffer, Runner

BUFFERS = [ReplayBuffer, RolloutBuffer]


def build(buffer_class, num_envs, mode, capacity=7, seed=0, **env_kwargs):
    env = make_env(num_envs, mode, **env_kwargs)
    buffer = buffer_class(env, capacity, seed=seed)
    reference = ReferenceBuffer(num_envs or 1, capacity, buffer_class.spare_rows)
    return buffer, reference, Runner(env, buffer, reference, seed=seed + 1)


def flat_expected(reference, num_envs):
    return [t for e in range(num_envs or 1) for t in reference.retained(e)]


@pytest.mark.parametrize("buffer_class", BUFFERS)
@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dict_obs", [False, True])
def test_all_equals_reference_after_every_step(buffer_class, num_envs, mode, dict_obs):
    buffer, reference, runner = build(buffer_class, num_envs, mode, dict_obs=dict_obs)
    for _ in range(40):
        runner.add(1)
        assert_rows_match(buffer.all(flatten_env=True), flat_expected(reference, num_envs))


@pytest.mark.parametrize("buffer_class", BUFFERS)
@pytest.mark.parametrize("num_envs", [None, 2])
@pytest.mark.parametrize("mode", MODES)
def test_batch_add_stores_what_one_step_adds_store(buffer_class, num_envs, mode):
    one, _, one_runner = build(buffer_class, num_envs, mode, capacity=9)
    batch, _, batch_runner = build(buffer_class, num_envs, mode, capacity=9)
    for chunk in [1, 3, 5, 12, 2, 30, 4]:
        one_runner.add(chunk)
        batch_runner.add_batch(chunk)
        # Rows that hold no transition may keep different stale bytes: compare what is stored.
        one_all, batch_all = one.all(flatten_env=True), batch.all(flatten_env=True)
        for name in ("observations", "actions", "rewards", "next_observations", "dones"):
            np.testing.assert_array_equal(getattr(one_all, name), getattr(batch_all, name))
        for name in ("pos", "size", "valid", "count", "prev_ended"):
            np.testing.assert_array_equal(getattr(one._ring, name), getattr(batch._ring, name))


@pytest.mark.parametrize("buffer_class", BUFFERS)
def test_last_is_the_newest_in_order_for_each_sub_env(buffer_class):
    buffer, reference, runner = build(buffer_class, 3, MODES[0], capacity=10)
    runner.add(50)
    k = int(buffer.counts.min())
    last = buffer.last(k)
    for e in range(3):
        assert_rows_match(env_slice(last, e), reference.retained(e)[-k:])
    flat = buffer.last(k, flatten_env=True)
    assert_rows_match(flat, [t for e in range(3) for t in reference.retained(e)[-k:]])
    with pytest.raises(ValueError, match="most recent"):
        buffer.last(int(buffer.counts.max()) + 1)


def test_all_with_env_axis_gives_the_smallest_count_of_each_sub_env():
    buffer, reference, runner = build(ReplayBuffer, 3, MODES[0], capacity=10)
    runner.add(37)
    m = int(buffer.counts.min())
    everything = buffer.all()
    assert everything.rewards.shape == (3, m, 1)
    for e in range(3):
        assert_rows_match(env_slice(everything, e), reference.retained(e)[-m:])


@pytest.mark.parametrize("num_envs", [None, 2])
def test_replay_sample_draws_only_stored_transitions_uniformly(num_envs):
    buffer, reference, runner = build(ReplayBuffer, num_envs, MODES[0], capacity=24, max_len=3)
    runner.add(100)
    batch = buffer.sample(20_000)
    for e in range(num_envs or 1):
        drawn = env_slice(batch, e) if num_envs else batch
        retained = reference.retained(e)
        by_key = {tuple(np.asarray(t.obs)): t for t in retained}
        keys = [tuple(k) for k in np.asarray(drawn.observations)]
        for i in range(0, 20_000, 97):
            assert same_transition(row(drawn, i), by_key[keys[i]])
        counts = np.array([keys.count(k) for k in by_key])
        expected = 20_000 / len(retained)
        chi_square = ((counts - expected) ** 2 / expected).sum()
        assert chi_square < 3 * len(retained) + 30, (chi_square, counts)


@pytest.mark.parametrize("num_envs", [None, 2])
def test_rollout_sample_is_a_contiguous_run_in_order(num_envs):
    buffer, reference, runner = build(RolloutBuffer, num_envs, MODES[0], capacity=12)
    runner.add(30)
    for _ in range(20):
        batch = buffer.sample(5)
        for e in range(num_envs or 1):
            drawn = env_slice(batch, e) if num_envs else batch
            retained = reference.retained(e)
            starts = [
                s for s in range(len(retained) - 4) if same_transition(row(drawn, 0), retained[s])
            ]
            assert len(starts) == 1
            assert_rows_match(drawn, retained[starts[0] : starts[0] + 5])


def test_sub_envs_are_sampled_independently():
    buffer, _, runner = build(ReplayBuffer, 2, MODES[0], capacity=50)
    runner.add(60)
    batch = buffer.sample(64)
    assert batch.observations.shape == (2, 64, 3)
    np.testing.assert_array_equal(batch.observations[:, :, 0], [[0] * 64, [1] * 64])
    assert not np.array_equal(batch.observations[0, :, 1:], batch.observations[1, :, 1:])


@pytest.mark.parametrize("buffer_class", BUFFERS)
def test_torch_output_equals_numpy_output(buffer_class):
    buffer, _, runner = build(buffer_class, 2, MODES[0], dict_obs=True)
    runner.add(20)
    as_numpy, as_torch = buffer.all(), buffer.all(dtype="torch")
    assert as_torch.observations["tag"].device.type == "cpu"
    for name in ("actions", "rewards", "dones"):
        np.testing.assert_array_equal(getattr(as_torch, name).numpy(), getattr(as_numpy, name))
    for key in ("tag", "parity"):
        np.testing.assert_array_equal(
            as_torch.next_observations[key].numpy(), as_numpy.next_observations[key]
        )


def test_returned_arrays_do_not_alias_the_storage():
    buffer, reference, runner = build(ReplayBuffer, None, MODES[0])
    runner.add(10)
    batch = buffer.all()
    batch.observations[:] = -1
    batch.next_observations[:] = -1
    assert_rows_match(buffer.all(), reference.retained(0))


def test_reset_empties_the_buffer():
    buffer, _, runner = build(ReplayBuffer, 2, MODES[0])
    runner.add(10)
    buffer.reset()
    assert len(buffer) == 0
    assert not buffer.observations.any()
    with pytest.raises(RuntimeError, match="holds no transition"):
        buffer.sample(1)


class BufferMachine(RuleBasedStateMachine):
    """Random interleavings of adds and reads, checked against the reference after each."""

    @initialize(
        buffer_class=st.sampled_from(BUFFERS),
        num_envs=st.sampled_from([None, 1, 3]),
        mode=st.sampled_from(MODES),
        dict_obs=st.booleans(),
        capacity=st.integers(3, 12),
        max_len=st.integers(1, 6),
        p_terminate=st.sampled_from([0.0, 0.5, 1.0]),
        seed=st.integers(0, 10_000),
    )
    def setup(self, buffer_class, num_envs, mode, dict_obs, capacity, max_len, p_terminate, seed):
        self.num_envs = num_envs
        self.buffer, self.reference, self.runner = build(
            buffer_class, num_envs, mode, capacity, seed,
            dict_obs=dict_obs, max_len=max_len, p_terminate=p_terminate,
        )  # fmt: skip

    @rule(steps=st.integers(1, 5))
    def add_steps(self, steps):
        self.runner.add(steps)

    @rule(steps=st.integers(0, 15))
    def add_batch(self, steps):
        self.runner.add_batch(steps) if steps else None

    @invariant()
    def counts_match_reference(self):
        if hasattr(self, "buffer"):
            expected = [len(self.reference.retained(e)) for e in range(self.num_envs or 1)]
            assert self.buffer.counts.tolist() == expected

    @rule()
    def all_matches_reference(self):
        if len(self.buffer):
            assert_rows_match(
                self.buffer.all(flatten_env=True), flat_expected(self.reference, self.num_envs)
            )

    @rule(k=st.integers(1, 8))
    def last_matches_reference(self, k):
        if self.buffer.counts.min() < k:
            return
        last = self.buffer.last(k, flatten_env=True)
        expected = [t for e in range(self.num_envs or 1) for t in self.reference.retained(e)[-k:]]
        assert_rows_match(last, expected)

    @rule(batch_size=st.integers(1, 6))
    def samples_are_stored_transitions(self, batch_size):
        if self.buffer.counts.min() < batch_size:
            return
        batch = self.buffer.sample(batch_size)
        for e in range(self.num_envs or 1):
            drawn = env_slice(batch, e) if self.num_envs else batch
            retained = self.reference.retained(e)
            for i in range(batch_size):
                assert any(same_transition(row(drawn, i), t) for t in retained)


TestBufferMachine = BufferMachine.TestCase
TestBufferMachine.settings = settings(
    max_examples=150,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_all_includes_sub_envs_that_hold_nothing_yet():
    # Adds always store the newest transition of every sub-env that stepped (buffer_size >= 3),
    # so a sub-env without one is made here by dropping its only transition from the ring.
    buffer = ReplayBuffer(make_env(2, max_len=1), 3)
    obs = np.zeros((2, 3), np.float32)
    buffer.add_trajectory(obs, [0, 1], [1.0, 2.0], obs + 1, [True, False])
    assert buffer.counts.tolist() == [1, 1]
    buffer._ring.invalidate_slots(np.array([0]), np.array([0]))
    assert buffer.counts.tolist() == [0, 1]
    assert buffer.all(flatten_env=True).rewards.tolist() == [[2.0]]
    assert buffer.all().rewards.shape == (2, 0, 1)


# --- retention: the README's promise, exactly -------------------------------------------------


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, PrioritizedReplayBuffer, HERBuffer])
@pytest.mark.parametrize("buffer_size", [0, 1, 2])
def test_a_ring_too_small_for_a_terminal_step_is_refused_with_the_minimum(
    buffer_class, buffer_size
):
    env = make_env(None, dict_obs=False) if buffer_class is not HERBuffer else BitFlippingEnv(3)
    with pytest.raises(ValueError, match=">= 3 rows per sub-env" if buffer_size else "positive"):
        buffer_class(env, buffer_size)


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, PrioritizedReplayBuffer, RolloutBuffer])
@pytest.mark.parametrize("num_envs", [None, 2])
def test_the_smallest_ring_stores_every_newest_transition_terminal_ones_too(buffer_class, num_envs):
    smallest = 3 if buffer_class.spare_rows else 1
    buffer, reference, runner = build(buffer_class, num_envs, MODES[0], capacity=smallest,
                                      max_len=2, p_terminate=1.0)  # fmt: skip
    for _ in range(30):
        runner.add(1)
        for env in range(num_envs or 1):
            history = reference.transitions[env]
            if history:  # the newest transition given is stored, terminal or not
                newest = row(env_slice(buffer.last(1), env) if num_envs else buffer.last(1), 0)
                assert buffer.counts[env] >= 1 and same_transition(newest, history[-1])


@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("capacity", [3, 4, 7, 12])
@pytest.mark.parametrize("p_terminate", [0.0, 0.5, 1.0])
def test_retention_promise_holds_exactly(num_envs, capacity, p_terminate):
    # README: each sub-env keeps its newest transitions that fit in buffer_size - 1 rows (a
    # row each, one more per episode end among them): at least buffer_size - ends - 2 of them,
    # and buffer_size - ends - 1 unless the next older transition ended an episode.
    tight = 0
    for seed in range(8):
        buffer, reference, runner = build(ReplayBuffer, num_envs, MODES[0], capacity, seed,
                                          max_len=3, p_terminate=p_terminate)  # fmt: skip
        for _ in range(6 * capacity):
            runner.add(1)
            for env in range(num_envs or 1):
                history = reference.transitions[env]
                kept = int(buffer.counts[env])
                assert kept == len(reference.retained(env))
                ends = sum(t.done or t.truncated for t in history[len(history) - kept :])
                assert kept + ends <= capacity - 1
                if kept == len(history):
                    continue  # nothing was overwritten yet
                older = history[len(history) - kept - 1]
                older_ended = older.done or older.truncated
                assert kept >= capacity - ends - 1 - older_ended
                tight += kept == capacity - ends - 2
    if p_terminate > 0 and capacity > 3:
        assert tight  # the -2 case happens: "at least buffer_size - ends - 1" would be false
