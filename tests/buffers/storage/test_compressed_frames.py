"""Compressed frame stores: same output as the uncompressed store, view, persistence, errors.

Bit-exactness against gymnasium's wrapper is in test_frame_stack.py (parametrized over the
codecs); here a compressed buffer is compared with an uncompressed one fed the same steps.
"""

from __future__ import annotations

import copy
import pickle
import sys

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers import ReplayBuffer
from pearll.buffers.errors import CheckpointError
from pearll.buffers.storage.compressed_frames import CompressedFrames
from tests.buffers.test_persistence import assert_same_output
from tests.fixtures import MODES, K, stacked_env
from tests.reference import ReferenceBuffer, Runner
from tests.state import assert_same_state

CODECS = ["lz4", "zstd"]


def twins(codec, num_envs=2, capacity=12, steps=30, padding="reset", seed=0):
    """An uncompressed and a compressed buffer fed the same ``steps`` env steps, and the runner."""
    env = stacked_env(num_envs, MODES[0], padding)
    plain = ReplayBuffer(env, capacity, seed=seed)
    packed = ReplayBuffer(env, capacity, seed=seed, frame_compression=codec)
    runner = Runner(env, plain, ReferenceBuffer(num_envs or 1, capacity, True), seed=seed)
    feed(runner, (plain, packed), steps)
    return plain, packed, runner


def assert_same_all(a, b):
    got, want = a.all(flatten_env=True), b.all(flatten_env=True)
    np.testing.assert_array_equal(got.observations, want.observations)
    np.testing.assert_array_equal(got.next_observations, want.next_observations)
    np.testing.assert_array_equal(got.rewards, want.rewards)


def feed(runner, buffers, steps):
    for _ in range(steps):
        args = runner.step()
        for buffer in buffers:
            buffer.add_trajectory(*args[:6], info=args[6])


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("num_envs", [None, 3])
def test_same_output_and_state_as_the_uncompressed_store(codec, num_envs):
    plain, packed, _ = twins(codec, num_envs, steps=40, padding="zero")
    assert packed.frame_stack == plain.frame_stack
    assert_same_output(packed, plain)
    np.testing.assert_array_equal(np.asarray(packed.observations), plain.observations)
    assert packed.frame_compression == codec and plain.frame_compression is None


# A key for the (row, env) axes of a (12, 2, 2, 3) view: ints, slices, int arrays, bool masks,
# and sometimes a part for the frame axes.
BOUNDS = st.none() | st.integers(-12, 12)
ROW_KEYS = st.one_of(
    st.integers(-12, 11),
    st.builds(slice, BOUNDS, BOUNDS, st.none() | st.sampled_from([1, 2, -1, 3])),
    st.lists(st.integers(-12, 11), max_size=5).map(np.array),
)
ENV_KEYS = st.one_of(st.integers(-2, 1), st.just(slice(None)), st.just(np.array([1, 0, 1])))
FRAME_KEYS = st.one_of(st.just(()), st.just((1,)), st.just((slice(None), 2)))


@given(row=ROW_KEYS, env=ENV_KEYS, frame=FRAME_KEYS, single=st.booleans())
@settings(max_examples=60, deadline=None)
def test_the_view_indexes_like_the_uncompressed_array(row, env, frame, single):
    plain, packed, _ = VIEW_TWINS
    dense, view = (plain.observations, packed.observations)
    if single:  # one sub-env's view: ``view[:, e]``
        dense, view, key = dense[:, 1], view[:, 1], (row, *frame)
        assert isinstance(view, CompressedFrames)
    else:
        key = (row, env, *frame)
    assert view.shape == dense.shape and view.dtype == dense.dtype and len(view) == len(dense)
    try:
        expected = dense[key]
    except IndexError:
        with pytest.raises(IndexError):
            view[key]
        return
    head, rest = key[: view.ndim - 2], key[view.ndim - 2 :]
    arrays = any(isinstance(k, np.ndarray) for k in key)
    if arrays and any(not isinstance(k, slice) for k in head) and rest and rest != (slice(None),):
        with pytest.raises(IndexError, match="index the frames first"):
            view[key]
        return
    np.testing.assert_array_equal(view[key], expected)


VIEW_TWINS = twins("lz4", 2, steps=30)


def test_the_view_writes_whole_frames_only():
    _, packed, _ = twins("lz4", 2, steps=10)
    view = packed.observations
    frame = np.full((2, 3), 7, np.uint8)
    view[3, 1] = frame
    view[[4, 5], 0] = frame
    np.testing.assert_array_equal(view[3, 1], frame)
    np.testing.assert_array_equal(view[[4, 5], 0], [frame, frame])
    with pytest.raises(IndexError, match="replaced whole"):
        view[3, 1, 0] = 1
    with pytest.raises(IndexError, match="Ellipsis"):
        view[..., 0]
    assert "lz4" in repr(view)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
def test_save_load_round_trip(tmp_path, codec, num_envs, mmap):
    plain, packed, runner = twins(codec, num_envs, capacity=16, steps=23)
    packed.save(tmp_path / "ckpt")
    loaded = ReplayBuffer.load(tmp_path / "ckpt", mmap=mmap)
    assert loaded.frame_compression == codec
    assert_same_state(loaded, packed)
    assert_same_output(loaded, packed)
    feed(runner, (plain, packed, loaded), 30)  # adds continue across the ring's wraparound
    assert_same_state(loaded, packed)
    assert_same_output(loaded, packed)
    assert_same_all(loaded, plain)


def test_copies_keep_working():
    plain, packed, runner = twins("zstd", 2, steps=15)
    copies = [copy.deepcopy(packed), pickle.loads(pickle.dumps(packed))]
    feed(runner, (plain, packed, *copies), 12)
    for duplicate in copies:
        assert_same_state(duplicate, packed)
        assert_same_all(duplicate, plain)


def test_frame_lengths_that_do_not_match_the_data_are_refused():
    # A checkpoint whose files pass their checksums but disagree (hand-edited, or foreign).
    _, packed, _ = twins("lz4", 2, steps=10)
    state = packed._store.frames.state()
    state["lengths"] = state["lengths"].copy()
    state["lengths"][0, 0] += 1
    with pytest.raises(CheckpointError, match="frame lengths add up to"):
        packed._store.frames.set_state(state)


def test_memory_reserved_and_used_per_atari_transition():
    class AtariLike:
        observation_space = spaces.Box(0, 255, (K, 84, 84), np.uint8)
        action_space, metadata = spaces.Discrete(6), {}

    plain = ReplayBuffer(AtariLike(), 1_000, frame_stack=K)
    packed = ReplayBuffer(AtariLike(), 1_000, frame_stack=K, frame_compression="lz4")
    assert packed._store.required_bytes < plain._store.required_bytes / 2
    empty = packed.nbytes
    stack = np.zeros((K, 84, 84), np.uint8)
    stack[:, 20:40, 30:50] = 200  # a square: compresses well, as Atari frames do
    for _ in range(100):
        packed.add_trajectory(stack, 1, 0.0, stack, False)
    assert packed.nbytes < plain.nbytes / 10
    assert packed.nbytes != empty  # what the frames take now, not a fixed reservation


def test_options_are_checked():
    env = stacked_env(None)
    with pytest.raises(ValueError, match="expected one of \\('lz4', 'zstd'\\) or None"):
        ReplayBuffer(env, 10, frame_compression="gzip")
    with pytest.raises(TypeError, match="frame_compression"):
        ReplayBuffer(env, 10, frame_compression=True)
    with pytest.raises(ValueError, match="frame_compression='lz4': compresses the frames"):
        ReplayBuffer(env, 10, frame_stack=None, frame_compression="lz4")


@pytest.mark.parametrize(("codec", "module"), [("lz4", "lz4.block"), ("zstd", "zstandard")])
def test_a_missing_codec_package_says_what_to_install(monkeypatch, codec, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'pearll\[compress\]'"):
        ReplayBuffer(stacked_env(None), 10, frame_compression=codec)
