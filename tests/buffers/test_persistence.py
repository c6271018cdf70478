"""save/load round trips: a loaded buffer holds the same state and behaves exactly the same."""

from __future__ import annotations

import copy
import json
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers import (
    BaseBuffer,
    HERBuffer,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    RolloutBuffer,
)
from pearll.buffers.errors import CheckpointError
from pearll.buffers.persistence import verify_checkpoint
from tests.buffers.test_her import goal_env
from tests.compare import FIELDS
from tests.fixtures import MODES, make_env, stacked_env
from tests.reference import ReferenceBuffer, Runner
from tests.state import BUFFER_CLASSES, assert_same_state


def filled(buffer_class, num_envs, steps, mode=MODES[0], dict_obs=False, size=9, seed=0):
    """A buffer after ``steps`` env steps, and a runner that continues the same env."""
    env = make_env(num_envs, mode, dict_obs=dict_obs)
    buffer = buffer_class(env, size, seed=seed)
    runner = Runner(env, buffer, ReferenceBuffer(num_envs or 1, size, buffer_class.spare_rows))
    runner.add(steps)
    return buffer, runner


def assert_same_output(a, b, batch_size=4):
    """Same seeded samples, same ``last`` and ``all`` (the RNGs advance alike)."""
    pairs = [
        (a.sample(batch_size), b.sample(batch_size)),
        (a.sample(batch_size, flatten_env=True), b.sample(batch_size, flatten_env=True)),
        (a.all(flatten_env=True), b.all(flatten_env=True)),
        (a.last(1), b.last(1)),
    ]
    for got, want in pairs:
        for field in FIELDS:
            x, y = getattr(got, field), getattr(want, field)
            if isinstance(x, dict):
                assert all(np.array_equal(x[k], y[k]) for k in x), field
            else:
                assert np.array_equal(x, y), field


@pytest.mark.parametrize("buffer_class", BUFFER_CLASSES)
@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("dict_obs", [False, True])
@pytest.mark.parametrize("steps", [5, 40], ids=["mid-episode", "wrapped"])
@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
def test_loaded_buffer_continues_exactly_like_the_saved_one(
    tmp_path, buffer_class, num_envs, dict_obs, steps, mmap
):
    original, runner = filled(buffer_class, num_envs, steps, dict_obs=dict_obs)
    original.save(tmp_path / "ckpt")
    loaded = buffer_class.load(tmp_path / "ckpt", mmap=mmap)
    assert_same_state(loaded, original)
    assert_same_output(loaded, original)
    for _ in range(30):  # keep adding to both: mid-episode continuation and wraparound
        args = runner.step()
        for buffer in (original, loaded):
            buffer.add_trajectory(*args[:6], info=args[6])
    assert_same_state(loaded, original)
    assert_same_output(loaded, original)


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_keeps_the_autoreset_mode(tmp_path, mode):
    original, runner = filled(ReplayBuffer, 2, 13, mode=mode)
    original.save(tmp_path / "ckpt")
    loaded = ReplayBuffer.load(tmp_path / "ckpt")
    assert loaded.env_info == original.env_info
    for _ in range(20):
        args = runner.step()
        for buffer in (original, loaded):
            buffer.add_trajectory(*args[:6], info=args[6])
    assert_same_state(loaded, original)


def test_load_with_the_env_uses_it_and_checks_it(tmp_path):
    original, runner = filled(ReplayBuffer, 3, 12)
    original.save(tmp_path / "ckpt")
    loaded = ReplayBuffer.load(tmp_path / "ckpt", env=runner.env)
    assert_same_state(loaded, original)
    with pytest.raises(ValueError, match="number of sub-envs 3, this env has 2"):
        ReplayBuffer.load(tmp_path / "ckpt", env=make_env(2))
    with pytest.raises(ValueError, match="observation space"):
        ReplayBuffer.load(tmp_path / "ckpt", env=make_env(3, dict_obs=True))


@pytest.mark.parametrize("saved", MODES)
@pytest.mark.parametrize("given", MODES)
def test_load_with_an_env_that_resets_differently_is_refused(tmp_path, saved, given):
    """A NEXT_STEP checkpoint fed by a SAME_STEP env stored transitions the env never made."""
    original, _ = filled(ReplayBuffer, 2, 13, mode=saved)
    original.save(tmp_path / "ckpt")
    if saved == given:
        assert_same_state(ReplayBuffer.load(tmp_path / "ckpt", env=make_env(2, given)), original)
        return
    expected = f"autoreset mode {saved.name}, this env has {given.name}"
    with pytest.raises(ValueError, match=expected):
        ReplayBuffer.load(tmp_path / "ckpt", env=make_env(2, given))
    # Saying how the env resets (as the constructor's autoreset_mode= does) is taken at its word.
    loaded = ReplayBuffer.load(tmp_path / "ckpt", env=make_env(2, given), autoreset_mode=saved)
    assert_same_state(loaded, original)


def test_base_class_load_finds_the_saved_class_and_others_refuse(tmp_path):
    original, _ = filled(RolloutBuffer, None, 12)
    original.save(tmp_path / "ckpt")
    assert type(BaseBuffer.load(tmp_path / "ckpt")) is RolloutBuffer
    with pytest.raises(CheckpointError, match=r"holds a pearll\.buffers\.rollout\.RolloutBuffer"):
        ReplayBuffer.load(tmp_path / "ckpt")


def test_saving_again_replaces_the_checkpoint_and_keeps_one_snapshot(tmp_path):
    buffer, runner = filled(ReplayBuffer, None, 5)
    path = tmp_path / "ckpt"
    buffer.save(path)
    runner.add(7)
    buffer.save(path)
    assert_same_state(ReplayBuffer.load(path), buffer)
    assert sorted(p.name.split("-")[0] for p in path.iterdir()) == ["CURRENT", "snapshot"]


def test_rng_state_of_any_bit_generator_round_trips(tmp_path):
    env = make_env(None)
    buffer = ReplayBuffer(env, 9, seed=np.random.Generator(np.random.MT19937(5)))
    Runner(env, buffer, ReferenceBuffer(1, 9, True)).add(20)
    buffer.save(tmp_path / "ckpt")
    loaded = ReplayBuffer.load(tmp_path / "ckpt")
    assert isinstance(loaded.rng.bit_generator, np.random.MT19937)
    assert_same_output(loaded, buffer)


def test_empty_buffer_round_trips(tmp_path):
    buffer = RolloutBuffer(make_env(2), 4, seed=1)
    buffer.save(tmp_path / "ckpt")
    loaded = RolloutBuffer.load(tmp_path / "ckpt")
    assert len(loaded) == 0
    assert_same_state(loaded, buffer)


def test_box_action_space_and_numpy_files_readable_without_pearll(tmp_path):
    env = make_env(None)
    env.action_space = spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float64)
    buffer = ReplayBuffer(env, 6, seed=0)
    obs = np.zeros(3, dtype=np.float32)
    buffer.add_trajectory(obs, np.array([0.5, -1.5]), 1.0, obs + 1, False)
    buffer.save(tmp_path / "ckpt")
    snapshot = tmp_path / "ckpt" / (tmp_path / "ckpt" / "CURRENT").read_text().strip()
    manifest = json.loads((snapshot / "manifest.json").read_text())
    storage = manifest["state"]["storage"]
    packed = np.load(snapshot / storage["packed"]["$npy"])  # (E, rows, row_bytes) uint8
    slot = storage["layout"]["actions"]
    dtype, shape = np.dtype(slot["dtype"]), tuple(slot["shape"])
    end = slot["offset"] + dtype.itemsize * int(np.prod(shape))
    actions = packed[:, :6, slot["offset"] : end].copy().view(dtype).reshape(1, 6, *shape)
    assert np.array_equal(actions.swapaxes(0, 1), buffer._store.fields["actions"])
    assert ReplayBuffer.load(tmp_path / "ckpt").env_info.action_space == env.action_space


def test_mmap_load_maps_large_arrays_and_never_writes_the_files(tmp_path):
    env = make_env(None)
    env.observation_space = spaces.Box(-1e9, 1e9, shape=(64,), dtype=np.float32)
    buffer = ReplayBuffer(env, 5000, seed=0)
    obs = np.arange(64, dtype=np.float32)
    buffer.add_batch_trajectories(
        np.stack([obs + t for t in range(300)]), np.zeros(300, dtype=np.int64),
        np.ones(300), np.stack([obs + t + 1 for t in range(300)]), np.zeros(300, dtype=bool),
    )  # fmt: skip
    buffer.save(tmp_path / "ckpt")
    saved = copy.deepcopy(buffer)
    loaded = ReplayBuffer.load(tmp_path / "ckpt", mmap=True)
    assert isinstance(loaded._store.packed.packed, np.memmap)
    assert_same_output(loaded, buffer)
    loaded.add_trajectory(obs, 1, 2.0, obs, True)
    verify_checkpoint(tmp_path / "ckpt")  # the files are as saved
    assert_same_state(ReplayBuffer.load(tmp_path / "ckpt"), saved)


def test_mmap_loaded_buffer_saves_over_its_own_checkpoint(tmp_path):
    env = make_env(None)
    env.observation_space = spaces.Box(-1e9, 1e9, shape=(128,), dtype=np.float32)
    buffer = RolloutBuffer(env, 4096, seed=0)
    obs = np.ones(128, dtype=np.float32)
    for t in range(50):
        buffer.add_trajectory(obs * t, 0, float(t), obs * (t + 1), t % 9 == 8)
    buffer.save(tmp_path / "ckpt")
    mapped = RolloutBuffer.load(tmp_path / "ckpt", mmap=True)
    for t in range(50, 70):
        for b in (buffer, mapped):
            b.add_trajectory(obs * t, 1, float(t), obs * (t + 1), False)
    mapped.save(tmp_path / "ckpt")  # deletes the files it is mapped from
    assert_same_state(mapped, buffer)
    assert_same_state(RolloutBuffer.load(tmp_path / "ckpt"), buffer)


@settings(max_examples=25, deadline=None)
@given(
    buffer_class=st.sampled_from(BUFFER_CLASSES),
    num_envs=st.sampled_from([None, 1, 2]),
    mode=st.sampled_from(MODES),
    size=st.integers(3, 12),
    before=st.integers(0, 40),
    after=st.integers(0, 40),
)
def test_save_load_at_any_point_changes_nothing(buffer_class, num_envs, mode, size, before, after):
    original, runner = filled(buffer_class, num_envs, before, mode=mode, size=size)
    with tempfile.TemporaryDirectory() as directory:
        original.save(Path(directory) / "ckpt")
        loaded = buffer_class.load(Path(directory) / "ckpt")
    for _ in range(after):
        args = runner.step()
        for buffer in (original, loaded):
            buffer.add_trajectory(*args[:6], info=args[6])
    assert_same_state(loaded, original)
    if len(original) and original.counts.min() >= 2:
        assert_same_output(loaded, original, batch_size=2)


def test_pickle_round_trip_despite_the_lock():
    buffer, _ = filled(ReplayBuffer, 2, 15)
    assert_same_state(pickle.loads(pickle.dumps(buffer)), buffer)


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, RolloutBuffer, PrioritizedReplayBuffer])
@pytest.mark.parametrize(
    "duplicate",
    [copy.deepcopy, lambda b: pickle.loads(pickle.dumps(b))],
    ids=["deepcopy", "pickle"],
)
def test_a_copy_keeps_working_like_the_original(buffer_class, duplicate):
    # The copy's field views must share the copy's storage: adds to it must be read back.
    original, runner = filled(buffer_class, 2, 15, size=16)
    duplicate_ = duplicate(original)
    continue_both(runner, (original, duplicate_), 12)
    assert_same_state(duplicate_, original)
    assert_same_output(duplicate_, original)
    # Views are not pickled as arrays of their own: about one copy of the storage.
    assert len(pickle.dumps(original)) < 2 * original._store.packed.nbytes + 10_000


def continue_both(runner, buffers, steps: int) -> None:
    for _ in range(steps):
        args = runner.step()
        for buffer in buffers:
            buffer.add_trajectory(*args[:6], info=args[6])


@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
@pytest.mark.parametrize("padding", ["reset", "zero"])
def test_frame_stacked_buffer_round_trips(tmp_path, num_envs, mmap, padding):
    env = stacked_env(num_envs, padding=padding)
    original = ReplayBuffer(env, 16, seed=0)
    assert original.frame_stack is not None
    runner = Runner(env, original, ReferenceBuffer(num_envs or 1, 16, True), seed=0)
    runner.add(23)
    original.save(tmp_path / "ckpt")
    loaded = ReplayBuffer.load(tmp_path / "ckpt", mmap=mmap)
    assert loaded.frame_stack == original.frame_stack
    assert_same_output(loaded, original)
    continue_both(runner, (original, loaded), 30)
    assert_same_state(loaded, original)
    assert_same_output(loaded, original)


def test_extra_fields_and_n_step_settings_round_trip(tmp_path):
    env = make_env(2)
    extras = {"log_prob": ((), np.float32), "value": ((2,), np.float64)}
    original = ReplayBuffer(env, 12, seed=0, n_step=3, gamma=0.9, extra_fields=extras)
    obs = np.zeros((2, 3), dtype=np.float32)
    for t in range(20):
        original.add_trajectory(
            obs + t, np.array([0, 1]), np.ones(2), obs + t + 1, np.array([t % 5 == 4] * 2),
            log_prob=np.full(2, -t, np.float32), value=np.full((2, 2), t / 2),
        )  # fmt: skip
    original.save(tmp_path / "ckpt")
    loaded = ReplayBuffer.load(tmp_path / "ckpt")
    assert (loaded.n_step, loaded.gamma) == (3, 0.9)
    assert loaded._extra_specs == original._extra_specs
    assert_same_state(loaded, original)
    got, want = loaded.sample(5), original.sample(5)
    assert np.array_equal(got.discounts, want.discounts)
    assert all(np.array_equal(got.extras[k], want.extras[k]) for k in extras)


def test_prioritized_buffer_keeps_priorities_beta_schedule_and_max(tmp_path):
    env = make_env(2)
    original = PrioritizedReplayBuffer(env, 16, alpha=0.7, beta=0.5, beta_steps=10, seed=3)
    runner = Runner(env, original, ReferenceBuffer(2, 16, True), seed=0)
    runner.add(25)
    batch = original.sample(6)
    original.update_priorities(batch.indices, np.arange(12).reshape(2, 6) + 5.0)
    original.save(tmp_path / "ckpt")
    loaded = PrioritizedReplayBuffer.load(tmp_path / "ckpt")
    assert (loaded.alpha, loaded.beta, loaded.beta_steps) == (0.7, original.beta, 10)
    assert_same_state(loaded, original)
    got, want = loaded.sample(6), original.sample(6)
    assert np.array_equal(got.indices, want.indices)
    assert np.array_equal(got.weights, want.weights)
    continue_both(runner, (original, loaded), 10)  # new rows get the same max priority
    assert_same_state(loaded, original)


@pytest.mark.parametrize("num_envs", [None, 2])
def test_her_buffer_keeps_its_episodes_and_takes_compute_reward_from_env_or_keyword(
    tmp_path, num_envs
):
    env = goal_env(num_envs, MODES[0])
    original = HERBuffer(env, 20, "future", 3, seed=0)
    runner = Runner(env, original, ReferenceBuffer(num_envs or 1, 20, True), seed=0)
    runner.add(33)
    original.save(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="compute_reward"):
        HERBuffer.load(tmp_path / "ckpt")  # the saved spaces carry no reward function
    with_env = HERBuffer.load(tmp_path / "ckpt", env=env)
    with_keyword = HERBuffer.load(tmp_path / "ckpt", compute_reward=original.compute_reward)
    for loaded in (with_env, with_keyword):
        assert (loaded.goal_selection_strategy, loaded.n_sampled_goal) == ("future", 3)
        assert_same_state(loaded, original)
    assert_same_output(with_env, original)
    continue_both(runner, (original, with_env), 25)
    assert_same_state(with_env, original)
    assert_same_output(with_env, original)
