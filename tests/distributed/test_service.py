"""The replay service on a local Ray instance (skipped when Ray is not installed).

One Ray instance for the session (tests/distributed/conftest.py); every test builds its own
service and shuts it down (the ``services`` fixture).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", exc_type=ImportError)  # a broken install skips too

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer  # noqa: E402
from pearll.distributed import EnvSpaces, RateLimit, RateLimitTimeout, ReplayService  # noqa: E402
from pearll.distributed.checkpoint import supports_checkpoints  # noqa: E402
from tests.compare import row, same_transition  # noqa: E402
from tests.distributed.streams import ShardWriter, episodes, key, priority_of, tagged  # noqa: E402
from tests.fixtures import MODES, TaggedEnv  # noqa: E402
from tests.reference import ReferenceBuffer, Runner  # noqa: E402

SINGLE = EnvSpaces.of(TaggedEnv())


pytestmark = pytest.mark.usefixtures("local_ray")


@pytest.mark.parametrize("mode", MODES)
def test_sampled_transitions_are_exact_through_the_service(services, mode):
    envs = [tagged(10 * shard, 2, mode) for shard in range(2)]
    service = ReplayService.create(
        PrioritizedReplayBuffer, EnvSpaces.of(envs[0]), 24, num_shards=2, seed=0
    )
    services(service)
    references = [ReferenceBuffer(2, 24, spare_rows=True) for _ in envs]
    runners = [
        Runner(env, ShardWriter(service, shard), references[shard], seed=shard)
        for shard, env in enumerate(envs)
    ]
    for _ in range(5):
        for runner in runners:
            runner.add_batch(9)
        truth = {key(t.obs): t for ref in references for e in range(2) for t in ref.retained(e)}
        service.sync()
        batch = service.sample(128)
        for i in range(128):
            got = row(batch, i)
            assert same_transition(got, truth[key(got.obs)]), got
        assert sorted(service.stats()["sizes"]) == sorted(
            sum(len(ref.retained(e)) for e in range(2)) for ref in references
        )


def test_prioritized_sampling_across_shards_matches_one_buffer(services):
    service = ReplayService.create(
        PrioritizedReplayBuffer, SINGLE, 256, num_shards=2, alpha=0.7, beta=0.5, seed=3
    )
    services(service)
    single = PrioritizedReplayBuffer(TaggedEnv(), 512, alpha=0.7, beta=0.5, seed=0)
    for shard, n in enumerate((40, 100)):
        stream = episodes(shard, n, seed=shard)
        service.add_batch_trajectories(shard, *stream)
        single.add_batch_trajectories(*stream)
    rows = np.flatnonzero(single._ring.valid[:, 0])
    keys = [key(single.observations[r]) for r in rows]
    single.update_priorities(rows, np.array([priority_of(k) for k in keys]))
    # Give every stored transition its priority through the service's global indices.
    service.sync()
    seen = service.sample(3000)
    service.update_priorities(seen.indices, [priority_of(key(o)) for o in seen.observations])
    service.sync()
    mass = {
        k: single._tree.get(np.array([0]), np.array([r]))[0]
        for k, r in zip(keys, rows, strict=True)
    }
    assert {key(o) for o in seen.observations} == set(mass)
    counts = dict.fromkeys(mass, 0)
    pending = service.sample_async(500)  # prefetch: the next batch is drawn while we count
    weight_of = {}
    for _ in range(30):
        batch, pending = ray.get(pending), service.sample_async(500)
        for obs, weight in zip(batch.observations, batch.weights[:, 0], strict=True):
            counts[key(obs)] += 1
            weight_of[key(obs)] = weight
    ray.get(pending)
    n = sum(counts.values())
    total = sum(mass.values())
    expected = np.array([n * mass[k] / total for k in mass])
    observed = np.array([counts[k] for k in mass])
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    df = len(expected) - 1
    assert chi2 < df * (1 - 2 / (9 * df) + 3.72 * np.sqrt(2 / (9 * df))) ** 3, chi2
    smallest = min(mass.values())
    for k, weight in weight_of.items():
        assert weight == pytest.approx((mass[k] / smallest) ** -0.5, rel=1e-5)


def test_rate_limiter_blocks_and_releases(services):
    limit = RateLimit(
        min_size_to_sample=8, samples_per_insert=1.0, error_buffer=8, max_insert=4,
        max_batch_size=4, timeout=10.0,
    )  # fmt: skip
    service = ReplayService.create(ReplayBuffer, SINGLE, 64, num_shards=2, rate_limit=limit)
    services(service)
    stream = episodes(0, 40)
    batches = [tuple(a[i : i + 4] for a in stream) for i in range(0, 40, 4)]

    sample = service.sample_async(4)  # nothing stored: waits for min_size_to_sample
    assert not ray.wait([sample], timeout=0.5)[0]
    with pytest.raises(RateLimitTimeout, match="blocked"):
        service.sample(4, timeout=0.2)
    service.add_batch_trajectories(0, *batches[0])
    assert not ray.wait([sample], timeout=0.3)[0]  # 4 < 8 stored
    service.add_batch_trajectories(0, *batches[1])
    assert len(ray.get(sample, timeout=5).rewards) == 4  # released

    # diff = inserts - samples may reach 8 * 1 + 8 = 16: 8 - 4 + 4 * 3 = 16.
    for batch in batches[2:5]:
        service.add_batch_trajectories(0, *batch)
    add = service.add_batch_trajectories_async(0, *batches[5])
    assert not ray.wait([add], timeout=0.5)[0]  # the learner is behind: the insert waits
    with pytest.raises(RateLimitTimeout, match=r"insert of 4 steps blocked .* learner"):
        service.add_batch_trajectories(1, *batches[0], timeout=0.2)  # another shard: the same
    with pytest.raises(RateLimitTimeout, match=r"behind earlier adds to this shard"):
        service.add_batch_trajectories(0, *batches[6], timeout=0.2)
    service.sample(4)
    assert ray.get(add, timeout=5) == 4  # released by the sample
    stats = service.stats()["limiter"]
    assert (stats["inserts"], stats["samples"]) == (24, 8)


def test_bad_input_is_refused_and_not_counted(services):
    service = ReplayService.create(ReplayBuffer, SINGLE, 32, num_shards=1)
    services(service)
    obs, actions, rewards, next_obs, term, trunc = episodes(0, 5)
    with pytest.raises(ValueError):
        service.add_batch_trajectories(0, obs[:, :2], actions, rewards, next_obs, term, trunc)
    service.sync()
    assert service.stats()["limiter"]["inserts"] == 0
    with pytest.raises(ValueError, match="shard"):
        service.add_batch_trajectories(1, obs, actions, rewards, next_obs, term, trunc)


def test_killed_shard_comes_back_with_its_checkpoint_and_reports_the_loss(services, tmp_path):
    assert supports_checkpoints(PrioritizedReplayBuffer)
    service = ReplayService.create(
        PrioritizedReplayBuffer, SINGLE, 128, num_shards=2, checkpoint_dir=str(tmp_path),
        checkpoint_every=20, alpha=1.0, seed=0,
    )  # fmt: skip
    services(service)
    stream = episodes(0, 40)
    assert len(stream[0]) >= 40
    for start in (0, 10):  # 20 steps: the shard checkpoints
        service.add_batch_trajectories(0, *(a[start : start + 10] for a in stream))
    service.add_batch_trajectories(1, *episodes(1, 10))
    checkpointed = {key(o) for o in stream[0][:20]}
    # A priority set before the checkpoint survives it.
    batch = service.sample(400)
    mine = np.array([key(o) in checkpointed for o in batch.observations])
    service.update_priorities(batch.indices[mine], np.full(mine.sum(), 5.0))
    service.checkpoint()
    service.add_batch_trajectories(0, *(a[20:30] for a in stream))  # not checkpointed
    service.sync()

    ray.kill(service.shards[0], no_restart=False)
    deadline = time.time() + 30
    while not service.losses() and time.time() < deadline:
        time.sleep(0.2)
    [loss] = service.losses()
    assert (loss.shard, loss.lost, loss.inserts_in_checkpoint) == (0, 10, 20)
    assert ray.get(service.shards[0].stats.remote())["inserts"] == 20
    batch = service.sample(400)
    keys = [key(o) for o in batch.observations]
    from_shard_0 = [k for k in keys if k[0] == 0]
    assert from_shard_0 and set(from_shard_0) <= checkpointed
    weights = batch.weights[:, 0][[k[0] == 0 for k in keys]]
    assert np.allclose(weights, weights.min())  # all restored at priority 5
    service.add_batch_trajectories(0, *(a[30:40] for a in stream))  # and it takes adds again
    service.sync()
    assert service.stats()["inserts"][0] == 30


@ray.remote(num_cpus=0)
class _Collector:
    def send(self, service: ReplayService, stream, start: int, stop: int) -> int:
        return service.add_batch_trajectories(0, *(a[start:stop] for a in stream))


def test_a_dead_collector_loses_only_what_it_had_not_sent(services):
    service = ReplayService.create(PrioritizedReplayBuffer, SINGLE, 64, num_shards=1, seed=0)
    services(service)
    stream = episodes(0, 20)
    collector = _Collector.remote()
    assert ray.get(collector.send.remote(service, stream, 0, 12)) == 12
    ray.kill(collector)
    service.sync()
    assert service.stats()["inserts"] == [12] and service.losses() == []
    batch = service.sample(64, dtype="torch")
    sent = {key(o) for o in stream[0][:12]}
    assert {key(o) for o in batch.observations.numpy()} <= sent
    assert batch.weights.dtype.is_floating_point


def _bit_flipping():
    from pearll.envs.bit_flipping import BitFlippingEnv

    return BitFlippingEnv(n_bits=4)


def test_her_shards_take_an_env_factory_and_relabel(services):
    from pearll.buffers.her import HERBuffer

    service = ReplayService.create(
        HERBuffer, _bit_flipping, 64, num_shards=2, n_sampled_goal=4, seed=0
    )
    services(service)
    env = _bit_flipping()
    for shard in range(2):
        obs, _ = env.reset(seed=shard)
        steps = []
        for _ in range(12):
            action = env.action_space.sample()
            next_obs, reward, term, trunc, _ = env.step(action)
            steps.append((obs, action, reward, next_obs, term, trunc))
            obs = next_obs if not (term or trunc) else env.reset()[0]
        columns = list(zip(*steps, strict=True))
        stack = {k: np.stack([o[k] for o in columns[0]]) for k in columns[0][0]}
        stack_next = {k: np.stack([o[k] for o in columns[3]]) for k in columns[3][0]}
        service.add_batch_trajectories(
            shard, stack, np.array(columns[1]), np.array(columns[2]), stack_next,
            np.array(columns[4]), np.array(columns[5]),
        )  # fmt: skip
    service.sync()
    batch = service.sample(200)
    achieved = batch.next_observations["achieved_goal"]
    desired = batch.observations["desired_goal"]
    recomputed = env.unwrapped.compute_reward(achieved, desired, None)
    assert np.allclose(batch.rewards[:, 0], recomputed)  # relabelled rewards agree with goals
    assert (desired == batch.next_observations["desired_goal"]).all()
