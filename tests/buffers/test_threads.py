"""Adds from several threads while another samples: no read ever sees a half-written step."""

from __future__ import annotations

import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from gymnasium import spaces

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer

WRITERS = 3
SECONDS = 0.6


def id_env(num_envs: int | None) -> SimpleNamespace:
    """Spaces only. Observation ``[writer, id, ends]``; the action is the id (float64)."""
    env = SimpleNamespace(
        observation_space=spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float64),
        action_space=spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float64),
        metadata={"autoreset_mode": "Disabled"},
    )
    if num_envs is not None:
        env.num_envs = num_envs
    return env


def episode(writer: int, first_id: int, length: int, num_envs: int | None) -> tuple:
    """Batch arguments for one whole episode whose every field encodes the step's id.

    Sub-env e gets ids offset by e * 1000 so sub-envs differ too.
    """
    ids = first_id + np.arange(length, dtype=np.float64)
    if num_envs is not None:
        ids = ids[:, None] + 1000.0 * np.arange(num_envs)
    ends = np.zeros(ids.shape, dtype=bool)
    ends[-1] = True
    obs = np.stack([np.full(ids.shape, float(writer)), ids, ends], axis=-1)
    next_obs = np.stack([np.full(ids.shape, float(writer)), ids + 1, ends], axis=-1)
    return obs, ids[..., None], ids.astype(np.float32), next_obs, ends


def check(batch) -> None:
    obs, next_obs = batch.observations, batch.next_observations
    ids = obs[:, 1]
    assert np.array_equal(next_obs[:, 0], obs[:, 0]), "next observation of another writer"
    assert np.array_equal(next_obs[:, 1], ids + 1), "next observation of another step"
    assert np.array_equal(batch.actions[:, 0], ids), "action of another step"
    assert np.array_equal(batch.rewards[:, 0], ids.astype(np.float32)), "reward of another step"
    assert np.array_equal(batch.dones[:, 0], obs[:, 2]), "done of another step"


@pytest.mark.parametrize(
    ("buffer_class", "num_envs"),
    [(ReplayBuffer, None), (ReplayBuffer, 2), (RolloutBuffer, 2), (PrioritizedReplayBuffer, 2)],
)
def test_every_sample_is_whole_while_threads_add(buffer_class, num_envs):
    buffer = buffer_class(id_env(num_envs), 48, seed=0)
    stop = threading.Event()
    errors: list[BaseException] = []
    samples = [0]

    def write(writer: int) -> None:
        rng = np.random.default_rng(writer)
        next_id = 0
        while not stop.is_set():
            length = int(rng.integers(1, 6))
            first_id = writer * 2**20 + next_id % 2**19  # ids stay exact in float32 rewards
            buffer.add_batch_trajectories(*episode(writer, first_id, length, num_envs))
            next_id += length

    def read() -> None:
        while not stop.is_set():
            if buffer.counts.min() < 8:
                continue
            batch = buffer.sample(8, flatten_env=True)
            check(batch)
            if isinstance(buffer, PrioritizedReplayBuffer):  # its all() fails on main today
                buffer.update_priorities(batch.indices, batch.rewards[:, 0] % 7)
            else:
                check(buffer.all(flatten_env=True))
            samples[0] += 1

    def guarded(fn, *args):
        def run():
            try:
                fn(*args)
            except BaseException as error:  # reported by the test thread
                errors.append(error)
                stop.set()

        return threading.Thread(target=run)

    threads = [guarded(write, w) for w in range(WRITERS)] + [guarded(read)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, to provoke interleavings
    try:
        for thread in threads:
            thread.start()
        time.sleep(SECONDS)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[0]
    assert samples[0] > 10


def test_save_while_a_thread_adds_captures_whole_steps(tmp_path):
    buffer = ReplayBuffer(id_env(2), 48, seed=0)
    stop = threading.Event()

    def write() -> None:
        next_id = 0
        while not stop.is_set():
            buffer.add_batch_trajectories(*episode(0, next_id, 3, 2))
            next_id += 3

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while buffer.counts.min() < 8:
            time.sleep(0.001)
        for _ in range(3):
            buffer.save(tmp_path / "ckpt")
            check(ReplayBuffer.load(tmp_path / "ckpt").all(flatten_env=True))
    finally:
        stop.set()
        writer.join()
