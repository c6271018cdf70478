"""Frame-stacked observations: one frame per row, stacks rebuilt bit-exactly."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer
from pearll.buffers.storage.frames import FrameStackSpec
from tests.compare import assert_rows_match, env_slice, row, same_transition
from tests.fixtures import MODES, K, stacked_env
from tests.reference import ReferenceBuffer, Runner

# Every test of frame stacks runs on the uncompressed store and on each compressed one.
COMPRESSIONS = [None, "lz4", "zstd"]


def run(
    num_envs, mode, padding, capacity, steps, seed=0, buffer_class=ReplayBuffer,
    compression=None, **kw,
):  # fmt: skip
    env = stacked_env(num_envs, mode, padding, **kw)
    buffer = buffer_class(env, capacity, seed=seed, frame_compression=compression)
    reference = ReferenceBuffer(num_envs or 1, capacity, spare_rows=True)
    runner = Runner(env, buffer, reference, seed=seed)
    return buffer, reference, runner, steps


def assert_exact_suffix(buffer, reference, num_envs):
    """all() returns the newest retained transitions in order, missing at most k - 1 old ones."""
    everything = buffer.all()
    for e in range(num_envs or 1):
        got = env_slice(everything, e) if num_envs else everything
        retained = reference.retained(e)
        count = int(buffer.counts[e])
        assert len(retained) - (K - 1) <= count <= len(retained)
        if num_envs:
            got = env_slice(buffer.all(flatten_env=False), e)  # rectangular: m newest
            m = len(got.rewards)
            assert_rows_match(got, retained[len(retained) - m :])
        else:
            assert_rows_match(got, retained[len(retained) - count :])


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", ["reset", "zero"])
def test_stacks_are_rebuilt_bit_exactly(num_envs, mode, padding, compression):
    if num_envs is None and mode is not MODES[0]:
        return
    buffer, reference, runner, _ = run(num_envs, mode, padding, 16, 0, compression=compression)
    assert buffer.frame_stack.size == K
    assert buffer.observations.shape[-2:] == (2, 3)  # one frame per row
    for _ in range(60):
        runner.add(1)
        assert_exact_suffix(buffer, reference, num_envs)


@given(
    capacity=st.integers(K + 2, 24),
    chunks=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    seed=st.integers(0, 500),
    max_len=st.integers(1, 8),
    compression=st.sampled_from(COMPRESSIONS),
)
@settings(max_examples=40, deadline=None)
def test_batch_adds_and_wraparound_keep_stacks_exact(capacity, chunks, seed, max_len, compression):
    buffer, reference, runner, _ = run(
        2, MODES[0], "reset", capacity, 0, seed, compression=compression, max_len=max_len
    )
    for chunk in chunks:
        runner.add_batch(chunk)
        if len(buffer):
            batch = buffer.all(flatten_env=True)
            stored = [t for e in range(2) for t in reference.retained(e)]
            for i in range(len(batch.rewards)):
                assert any(same_transition(row(batch, i), t) for t in stored)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_samples_are_exact_transitions_with_n_step_and_prioritized(compression):
    for buffer_class in (ReplayBuffer, PrioritizedReplayBuffer):
        buffer, reference, runner, _ = run(
            None, MODES[0], "reset", 32, 0, 3, buffer_class, compression
        )
        runner.add(200)
        batch = buffer.sample(64)
        retained = reference.retained(0)
        for i in range(64):
            assert any(same_transition(row(batch, i), t) for t in retained)


def test_memory_per_atari_transition_is_one_frame_plus_fields():
    env = stacked_env(None)
    atari_space = spaces.Box(0, 255, (K, 84, 84), np.uint8)

    class AtariLike:
        observation_space, action_space, metadata = atari_space, spaces.Discrete(6), {}

    buffer = ReplayBuffer(AtariLike(), 10_000, frame_stack=K)
    per_transition = buffer.nbytes / 10_000
    assert 84 * 84 <= per_transition <= 7_100
    assert ReplayBuffer(env, 10, frame_stack=None).frame_stack is None


def test_a_ring_too_small_for_its_stacks_is_refused():
    with pytest.raises(ValueError, match="expected at least frame_stack \\+ 2 = 6 rows"):
        ReplayBuffer(stacked_env(None), 5)


def test_declared_frame_stack_must_match_the_space():
    class Flat:
        observation_space = spaces.Box(0, 1, (3, 5), np.float32)
        action_space, metadata = spaces.Discrete(2), {}

    with pytest.raises(ValueError, match=r"frame_stack=4: expected a Box observation space"):
        ReplayBuffer(Flat(), 10, frame_stack=4)
    assert ReplayBuffer(Flat(), 10, frame_stack=3).frame_stack == FrameStackSpec(3, "reset")
    padded = ReplayBuffer(Flat(), 10, frame_stack=(3, [0.5] * 5)).frame_stack
    assert padded == FrameStackSpec(3, np.full(5, 0.5, np.float32))
    assert padded != FrameStackSpec(3, "reset")
