"""storage="memmap": the same buffers, their transitions in memory-mapped files."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import numpy as np
import pytest

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer
from pearll.buffers.storage import placement as placement_module
from pearll.envs import BitFlippingEnv
from tests.buffers.test_ring_buffer import flat_expected
from tests.compare import FIELDS, assert_rows_match
from tests.fixtures import MODES, make_env, stacked_env
from tests.reference import ReferenceBuffer, Runner


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, RolloutBuffer, PrioritizedReplayBuffer])
@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("mode", MODES)
def test_memmap_buffers_match_the_reference(tmp_path, buffer_class, num_envs, mode):
    env = make_env(num_envs, mode, dict_obs=True)
    buffer = buffer_class(env, 9, seed=0, storage="memmap", storage_dir=tmp_path)
    reference = ReferenceBuffer(num_envs or 1, 9, buffer_class.spare_rows)
    runner = Runner(env, buffer, reference, seed=1)
    for chunk in (1, 4, 1, 13, 1, 1, 7):
        runner.add(chunk) if chunk == 1 else runner.add_batch(chunk)
        assert_rows_match(buffer.all(flatten_env=True), flat_expected(reference, num_envs))
    assert isinstance(buffer._store.packed.packed, np.memmap)


@pytest.mark.parametrize(
    ("buffer_class", "new_env"),
    [
        (ReplayBuffer, lambda: make_env(2)),
        (ReplayBuffer, lambda: stacked_env(2)),
        (HERBuffer, lambda: BitFlippingEnv(4)),
    ],
    ids=["replay", "frame-stacked", "her"],
)
def test_memmap_and_memory_buffers_sample_alike(tmp_path, buffer_class, new_env):
    samples = []
    for kwargs in ({}, {"storage": "memmap", "storage_dir": tmp_path}):
        env = new_env()
        buffer = buffer_class(env, 50, seed=0, **kwargs)
        Runner(env, buffer, ReferenceBuffer(buffer.num_envs, 50, True), seed=4).add(120)
        samples.append(buffer.sample(16, flatten_env=True))
    memory, mapped = samples
    for field in FIELDS:
        got, want = getattr(mapped, field), getattr(memory, field)
        if isinstance(got, dict):
            for key in got:
                np.testing.assert_array_equal(got[key], want[key])
        else:
            np.testing.assert_array_equal(got, want)


def test_files_live_in_storage_dir_and_go_with_the_buffer(tmp_path):
    buffer = ReplayBuffer(stacked_env(None), 64, storage="memmap", storage_dir=tmp_path)
    (directory,) = tmp_path.iterdir()
    assert sorted(p.name for p in directory.iterdir()) == ["frames.bin", "packed.bin"]
    buffer.reset()
    assert sorted(p.name for p in directory.iterdir()) == ["frames.bin", "packed.bin"]
    del buffer
    gc.collect()
    assert not directory.exists()


def test_not_enough_disk_is_refused_before_allocating(tmp_path, monkeypatch):
    monkeypatch.setattr(
        placement_module.shutil, "disk_usage", lambda path: SimpleNamespace(free=1000)
    )
    with pytest.raises(MemoryError, match=r"of disk in .* but only 1000 B \(1000 bytes\) are free"):
        ReplayBuffer(make_env(None), 10_000, storage="memmap", storage_dir=tmp_path)


def test_memmap_buffer_saves_and_loads(tmp_path):
    env = make_env(2)
    buffer = ReplayBuffer(env, 20, seed=0, storage="memmap", storage_dir=tmp_path / "store")
    Runner(env, buffer, ReferenceBuffer(2, 20, True), seed=2).add(30)
    buffer.save(tmp_path / "ckpt")
    loaded = ReplayBuffer.load(tmp_path / "ckpt", storage_dir=tmp_path / "store")
    np.testing.assert_array_equal(loaded.sample(8).observations, buffer.sample(8).observations)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"storage": "disk"}, r"storage: expected one of \('memory', 'memmap'\), got 'disk'"),
        ({"storage_dir": "/tmp"}, "storage_dir: only used with storage='memmap'"),
    ],
)
def test_bad_storage_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReplayBuffer(make_env(None), 10, **kwargs)
