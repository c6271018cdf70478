"""The replay service under attack: shards and the front killed with ``ray.kill`` (issue 13,
items 12-14). One local Ray instance (conftest.py), one or two shards per service."""

from __future__ import annotations

import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", exc_type=ImportError)

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer  # noqa: E402
from pearll.distributed import EnvSpaces, RateLimit, ReplayService  # noqa: E402
from tests.distributed.streams import episodes, key  # noqa: E402
from tests.fixtures import TaggedEnv  # noqa: E402

pytestmark = pytest.mark.usefixtures("local_ray")
SINGLE = EnvSpaces.of(TaggedEnv())


def one_episode(tag: int, start: int, stop: int) -> tuple[np.ndarray, ...]:
    """Steps ``start .. stop - 1`` of one long episode of sub-env ``tag``: observation
    ``[tag, 0, t]``, next observation ``[tag, 0, t + 1]``, reward ``t + 1``, no end."""
    t = np.arange(start, stop)
    obs = np.stack([np.full(len(t), tag), np.zeros(len(t)), t], axis=1).astype(np.float32)
    next_obs = obs.copy()
    next_obs[:, 2] += 1
    flags = np.zeros(len(t), dtype=bool)
    return obs, np.zeros(len(t), dtype=np.int64), (t + 1).astype(np.float64), next_obs, flags, flags


def wait_for(condition, seconds: float = 30.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_a_restored_shard_never_splices_and_counts_every_acknowledged_step(services, tmp_path, cls):
    """Item 12: the next batch used to be spliced onto the restored, still-open episode (a
    transition 9 -> 20 the env never produced), and steps acknowledged within the ~10 ms
    reporting window before the death were not counted as lost."""
    service = ReplayService.create(
        cls, SINGLE, 64, num_shards=1, checkpoint_dir=str(tmp_path), checkpoint_every=10, seed=0
    )
    services(service)
    service.add_batch_trajectories(0, *one_episode(0, 0, 10))  # checkpointed: steps 0..9
    service.add_batch_trajectories(0, *one_episode(0, 10, 15))  # acknowledged, not checkpointed
    ray.kill(service.shards[0], no_restart=False)  # at once: inside the old reporting window
    [loss] = wait_for(service.losses)
    assert (loss.lost, loss.inserts_before, loss.inserts_in_checkpoint) == (5, 15, 10)
    stats = ray.get(service.shards[0].stats.remote())
    assert stats["episodes_ended_at_restore"] == 1
    service.add_batch_trajectories(0, *one_episode(0, 20, 30))  # the collector goes on
    service.sync()
    batch = service.sample(500)
    pairs = {(key(o)[2], key(n)[2]) for o, n in zip(batch.observations, batch.next_observations,
                                                     strict=True)}  # fmt: skip
    assert all(n == o + 1 for o, n in pairs), sorted(p for p in pairs if p[1] != p[0] + 1)
    assert {o for o, _ in pairs} == set(range(10)) | set(range(20, 30))


def test_samples_go_on_from_the_live_shards_and_failed_ones_are_not_counted(services):
    """Item 13: with a shard dead for good every sample failed, and the limiter counted them."""
    service = ReplayService.create(ReplayBuffer, SINGLE, 64, num_shards=2, max_restarts=0, seed=0)
    services(service)
    for shard in range(2):
        service.add_batch_trajectories(shard, *episodes(shard, 20))
    service.sync()
    assert {key(o)[0] for o in service.sample(200).observations} == {0, 1}
    before = service.stats()["limiter"]["samples"]
    ray.kill(service.shards[1], no_restart=True)
    for _ in range(3):  # the first draw from the dead shard fails, is redrawn, then it is skipped
        batch = service.sample(100)
        assert {key(o)[0] for o in batch.observations} == {0}
    stats = service.stats()
    assert stats["limiter"]["samples"] == before + 300  # every sample that returned, no more
    assert list(stats["unavailable"]) == [1]
    ray.kill(service.shards[0], no_restart=True)
    with pytest.raises(Exception, match=r"unavailable|died|no transition"):
        service.sample(100)
    assert service.stats()["limiter"]["samples"] == before + 300  # the failed one refunded


def test_a_killed_front_restarts_and_rebuilds_from_the_shards(services, tmp_path):
    """Item 14: the front was not fault tolerant."""
    limit = RateLimit(min_size_to_sample=4, samples_per_insert=2.0, error_buffer=200,
                      max_insert=40, max_batch_size=50, timeout=10.0)  # fmt: skip
    service = ReplayService.create(
        PrioritizedReplayBuffer, SINGLE, 128, num_shards=2, rate_limit=limit,
        checkpoint_dir=str(tmp_path), checkpoint_every=10, beta_steps=100, seed=0,
    )  # fmt: skip
    services(service)
    service.add_batch_trajectories(0, *one_episode(0, 0, 10))
    service.add_batch_trajectories(0, *one_episode(0, 10, 14))
    service.add_batch_trajectories(1, *one_episode(1, 0, 30))
    service.sync()
    ray.kill(service.shards[0], no_restart=False)  # a loss the front must remember
    wait_for(service.losses)
    service.sync()
    for _ in range(3):
        service.sample(50)
    service.sync()
    before = service.stats()
    ray.kill(service.front, no_restart=False)
    service.sync()
    after = service.stats()
    for field in ("inserts", "limiter", "losses", "sizes"):
        assert after[field] == before[field], field
    batch = service.sample(50)  # the limiter and the beta schedule go on
    assert len(batch.rewards) == 50
    service.add_batch_trajectories(1, *one_episode(1, 30, 40))
    service.sync()
    assert service.stats()["inserts"] == [10, 40]


def test_an_add_in_flight_when_the_front_dies_raises_a_clear_error(services):
    limit = RateLimit(min_size_to_sample=1, samples_per_insert=1.0, error_buffer=20,
                      max_insert=10, max_batch_size=10, timeout=20.0)  # fmt: skip
    service = ReplayService.create(ReplayBuffer, SINGLE, 64, num_shards=1, rate_limit=limit)
    services(service)
    service.add_batch_trajectories(0, *one_episode(0, 0, 10))
    service.add_batch_trajectories(0, *one_episode(0, 10, 20))  # diff 20, at most 1 + 20
    blocked = service.add_batch_trajectories_async(0, *one_episode(0, 20, 30))
    assert not ray.wait([blocked], timeout=0.5)[0]  # held by the limiter, in the front
    ray.kill(service.front, no_restart=False)
    with pytest.raises(RuntimeError, match=r"front actor died during this add.*was written"):
        ray.get(blocked, timeout=30)
    service.sync()
    assert service.stats()["inserts"] == [20]  # the add that failed is not counted
    service.sample(10)  # the rebuilt limiter: 20 inserts, 10 samples; the retry goes through
    service.add_batch_trajectories(0, *one_episode(0, 20, 30))
    assert service.stats()["inserts"] == [30]


def test_a_new_service_on_old_checkpoints_resumes_its_rate_limiter(services, tmp_path):
    """Item 14: a service started on an existing checkpoint_dir had its limiter at 0 inserts, so
    with a samples-per-insert ratio every sample blocked until new inserts came."""
    limit = RateLimit(min_size_to_sample=4, samples_per_insert=1.0, error_buffer=40,
                      max_insert=20, max_batch_size=20, timeout=1.0)  # fmt: skip
    first = ReplayService.create(
        ReplayBuffer, SINGLE, 64, num_shards=1, rate_limit=limit, checkpoint_dir=str(tmp_path)
    )
    first.add_batch_trajectories(0, *one_episode(0, 0, 20))
    first.sync()
    first.sample(10)
    first.checkpoint()
    first.shutdown()
    second = ReplayService.create(
        ReplayBuffer, SINGLE, 64, num_shards=1, rate_limit=limit, checkpoint_dir=str(tmp_path)
    )
    services(second)
    second.sync()
    stats = second.stats()["limiter"]
    assert (stats["inserts"], stats["samples"], stats["size"]) == (20, 10, 20)
    assert len(second.sample(10, timeout=5).rewards) == 10  # would have blocked at 0 inserts


def test_without_exact_loss_count_adds_are_still_counted_from_the_reports(services):
    service = ReplayService.create(ReplayBuffer, SINGLE, 64, num_shards=1, exact_loss_count=False)
    services(service)
    service.add_batch_trajectories(0, *one_episode(0, 0, 10))
    service.add_batch_trajectories(0, *one_episode(0, 10, 15))
    service.sync()
    stats = service.stats()
    assert stats["inserts"] == [15] and stats["limiter"]["inserts"] == 15
