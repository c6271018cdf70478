"""Crash safety: a save killed at any moment leaves the previous checkpoint or the new one."""

from __future__ import annotations

import errno
import os
import re
import signal
import threading
import time

import numpy as np
import pytest
from gymnasium import spaces

from pearll.buffers import ReplayBuffer, persistence
from pearll.buffers.checkpoint import npy_io
from pearll.buffers.checkpoint.directory import TMP_PREFIX
from pearll.buffers.errors import CheckpointError
from tests.fixtures import TaggedEnv
from tests.state import assert_same_state

BATCH = 400


def state_after(k: int) -> ReplayBuffer:
    """The buffer after k rounds of (add a batch whose rewards are its round, sample)."""
    env = TaggedEnv()
    env.observation_space = spaces.Box(-1e9, 1e9, shape=(256,), dtype=np.float32)
    buffer = ReplayBuffer(env, 4096, seed=7)  # ~4 MiB of observations
    for round_ in range(1, k + 1):
        advance(buffer, round_)
    return buffer


def advance(buffer: ReplayBuffer, round_: int) -> None:
    obs = np.full((BATCH, 256), round_, dtype=np.float32) + np.arange(BATCH)[:, None]
    ends = np.arange(BATCH) % 37 == 36
    buffer.add_batch_trajectories(
        obs, np.zeros(BATCH, dtype=np.int64), np.full(BATCH, float(round_)), obs + 1, ends
    )
    buffer.sample(3)


def saving_child(path, rounds: int = 10**6) -> None:
    """Save rounds 1, 2, 3, ... to ``path`` until killed (runs in a forked process)."""
    try:
        buffer = state_after(0)
        for round_ in range(1, rounds + 1):
            advance(buffer, round_)
            buffer.save(path)
    finally:
        os._exit(0)


def fork(child, *args) -> int:
    pid = os.fork()
    if pid == 0:
        child(*args)
    return pid


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_at_random_moments_always_leaves_a_saved_state(tmp_path):
    path = tmp_path / "ckpt"
    state_after(0).save(path)
    started = time.perf_counter()
    os.waitpid(fork(saving_child, path, 1), 0)
    first_save = time.perf_counter() - started  # from fork to a completed save
    rng = np.random.default_rng(0)
    kills, interrupted, loaded_rounds = 0, 0, set()
    deadline = time.monotonic() + 60  # about 5 s on an idle machine; generous under load
    while kills < 50 and time.monotonic() < deadline:
        pid = fork(saving_child, path)
        time.sleep(rng.uniform(0, 2 * first_save))  # most kills land in the first two saves
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        kills += 1
        interrupted += any(p.name.startswith(TMP_PREFIX) for p in path.iterdir())
        loaded = ReplayBuffer.load(path)
        round_ = int(loaded.last(1).rewards[0, 0]) if len(loaded) else 0
        assert_same_state(loaded, state_after(round_))
        loaded_rounds.add(round_)
    assert kills >= 50, f"only {kills} kills in the time allowed"
    # Both outcomes happened: kills mid-save (temporaries left) and saves completed before a kill.
    assert interrupted > 0, "no kill landed during a save; the test proved nothing"
    assert len(loaded_rounds - {0, 1}) > 0, "no child ever completed a save"
    state_after(2).save(path)  # a completed save clears what the killed ones left
    assert len(list(path.iterdir())) == 2


def small(seed: int = 0) -> ReplayBuffer:
    buffer = ReplayBuffer(TaggedEnv(), 16, seed=seed)
    obs = np.arange(30, dtype=np.float32)[:, None].repeat(3, 1) + seed
    ends = np.arange(30) % 7 == 6
    buffer.add_batch_trajectories(obs, np.zeros(30, dtype=np.int64), np.ones(30), obs + 1, ends)
    return buffer


def test_a_failed_save_cleans_up_and_the_next_one_that_fits_succeeds(tmp_path, monkeypatch):
    """A full disk: the failed save's temporaries used to stay, so every later save failed."""
    path = tmp_path / "ckpt"
    first = small(0)
    first.save(path)
    entries = sorted(p.name for p in path.iterdir())
    real_write = npy_io.write_npy

    def full_disk(file, array, progress):
        if "storage-packed" in file.name:
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_write(file, array, progress)

    monkeypatch.setattr(persistence, "write_npy", full_disk)
    with pytest.raises(OSError, match="No space left"):
        small(1).save(path)
    assert sorted(p.name for p in path.iterdir()) == entries  # nothing of the failed save left
    assert_same_state(ReplayBuffer.load(path), first)  # the previous checkpoint stands
    monkeypatch.setattr(persistence, "write_npy", real_write)
    second = small(2)
    second.save(path)
    assert_same_state(ReplayBuffer.load(path), second)


@pytest.mark.parametrize(
    "name",
    ["snapshot-2024-backup", ".tmp-editor-swap", "CURRENT", "snapshot-1234abcd-1234abcd"],
)
def test_save_never_deletes_a_users_file_that_looks_like_its_own(tmp_path, name):
    path = tmp_path / "ckpt"
    path.mkdir()
    user = path / name
    if name.startswith("snapshot-"):
        user.mkdir()
        (user / "notes.txt").write_text("mine")  # not a file a snapshot holds
    else:
        user.write_text("mine")
    with pytest.raises(FileExistsError, match=re.escape(name)):
        small().save(path)
    assert [p.name for p in path.iterdir()] == [name]
    assert (user / "notes.txt" if user.is_dir() else user).read_text() == "mine"


def test_save_over_a_checkpoint_keeps_a_users_file_put_beside_it(tmp_path):
    path = tmp_path / "ckpt"
    small(0).save(path)
    (path / ".tmp-editor-swap").write_text("mine")
    with pytest.raises(FileExistsError, match="tmp-editor-swap"):
        small(1).save(path)
    assert (path / ".tmp-editor-swap").read_text() == "mine"
    assert_same_state(ReplayBuffer.load(path), small(0))


def test_a_second_saver_to_the_same_path_is_refused_and_the_first_completes(tmp_path, monkeypatch):
    """Two savers at once used to leave CURRENT naming a deleted snapshot, neither raising."""
    path = tmp_path / "ckpt"
    inside, release = threading.Event(), threading.Event()
    real_write = npy_io.write_npy

    def slow_write(file, array, progress):
        if threading.current_thread().name == "first":
            inside.set()
            release.wait(10)
        return real_write(file, array, progress)

    monkeypatch.setattr(persistence, "write_npy", slow_write)
    first, second = small(1), small(2)
    errors = []
    thread = threading.Thread(target=lambda: first.save(path), name="first")
    thread.start()
    assert inside.wait(10)
    try:
        second.save(path)
    except CheckpointError as error:
        errors.append(error)
    release.set()
    thread.join(10)
    assert len(errors) == 1 and "another save to this checkpoint is in progress" in str(errors[0])
    assert_same_state(ReplayBuffer.load(path), first)
    second.save(path)  # once the first is done, saving works again
    assert_same_state(ReplayBuffer.load(path), second)


def test_many_threads_saving_to_one_path_never_break_it(tmp_path):
    path = tmp_path / "ckpt"
    buffers = [small(i) for i in range(6)]
    barrier = threading.Barrier(len(buffers))
    outcomes = []

    def save(buffer):
        barrier.wait()
        try:
            buffer.save(path)
            outcomes.append(buffer)
        except CheckpointError:
            outcomes.append(None)

    threads = [threading.Thread(target=save, args=(b,)) for b in buffers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    saved = [b for b in outcomes if b is not None]
    assert saved, "every save was refused"
    loaded = ReplayBuffer.load(path)
    assert any(_same(loaded, b) for b in saved)


def _same(a, b) -> bool:
    try:
        assert_same_state(a, b)
        return True
    except AssertionError:
        return False
