"""Crash safety: a save killed at any moment leaves the previous checkpoint or the new one."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from gymnasium import spaces

from pearll.buffers import ReplayBuffer
from pearll.buffers.checkpoint.directory import TMP_PREFIX
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
