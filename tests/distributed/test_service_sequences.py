"""sample_sequences through the replay service on a local Ray instance (skipped without Ray):
exact windows of wrapped vector-env shards, R2D2 priorities routed back, uniform anchors over
every shard, the limiter counting learned steps."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray", exc_type=ImportError)  # a broken install skips too

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer  # noqa: E402
from pearll.distributed import EnvSpaces, ReplayService  # noqa: E402
from tests.distributed.streams import (  # noqa: E402
    ShardWriter,
    check_windows,
    episodes,
    histories,
    key,
    tagged,
)
from tests.fixtures import MODES, TaggedEnv  # noqa: E402
from tests.reference import ReferenceBuffer, Runner  # noqa: E402

SINGLE = EnvSpaces.of(TaggedEnv())

pytestmark = pytest.mark.usefixtures("local_ray")


@pytest.mark.parametrize("boundary", ["pad", "cross"])
def test_sequences_through_the_service_are_exact_and_priorities_route_back(services, boundary):
    mode = MODES[0] if boundary == "pad" else MODES[1]
    envs = [tagged(10 * shard, 2, mode) for shard in range(2)]
    service = ReplayService.create(
        PrioritizedReplayBuffer, EnvSpaces.of(envs[0]), 24, num_shards=2, seed=0, alpha=1.0,
        eps=0.0, eta=0.9,
    )  # fmt: skip
    services(service)
    references = [ReferenceBuffer(2, 24, spare_rows=True) for _ in envs]
    runners = [
        Runner(env, ShardWriter(service, shard), references[shard], seed=shard)
        for shard, env in enumerate(envs)
    ]
    for runner in runners:
        runner.add_batch(30)  # wraps: 24 rows per sub-env
    service.sync()
    by_tag = histories({10 * s + e: (references[s], e) for s in range(2) for e in range(2)})
    batch = service.sample_sequences(96, 4, burn_in=2, boundary=boundary)
    assert batch.observations.shape[:2] == (96, 6) and batch.weights.shape == (96, 1)
    check_windows(batch, by_tag, 2, 4, boundary == "cross")
    assert np.allclose(batch.weights, 1.0)  # every priority is still 1
    # R2D2 priorities from the windows' TD errors, set on the shards that drew them.
    td = np.random.default_rng(0).normal(size=(96, 4))
    service.update_priorities(batch.indices, td)
    service.sync()
    priority = {}
    for b, index in enumerate(batch.indices):
        real = np.abs(td[b])[batch.learn_mask[b, 2:] == 1]
        priority[int(index)] = 0.9 * real.max() + 0.1 * real.mean()
    for shard in range(2):
        mine = [p for index, p in priority.items() if index % 2 == shard]
        count = sum(len(references[shard].retained(e)) for e in (0, 1))
        mass = ray.get(service.shards[shard].mass.remote())
        assert mass.mass == pytest.approx(sum(mine) + (count - len(mine)), rel=1e-9)
    with pytest.raises(ValueError, match="expected shape"):
        service.update_priorities(batch.indices, td[:, :, None])
    with pytest.raises(ValueError, match="length"):
        service.sample_sequences(8, 0)


def test_uniform_window_anchors_are_uniform_over_every_shard(services):
    service = ReplayService.create(ReplayBuffer, SINGLE, 256, num_shards=2, seed=1)
    services(service)
    stored = set()
    for shard, n in enumerate((30, 90)):
        stream = episodes(shard, n, seed=shard)
        service.add_batch_trajectories(shard, *stream)
        stored |= {key(o) for o in stream[0]}
    service.sync()
    counts = dict.fromkeys(stored, 0)
    pending = service.sample_sequences_async(400, 3, burn_in=1)
    for _ in range(12):
        batch, pending = ray.get(pending), service.sample_sequences_async(400, 3, burn_in=1)
        assert batch.weights is None
        for obs in batch.observations[:, 1]:
            counts[key(obs)] += 1
    ray.get(pending)
    observed = np.array(list(counts.values()))
    expected = observed.sum() / len(observed)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    df = len(observed) - 1
    assert chi2 < df * (1 - 2 / (9 * df) + 3.72 * np.sqrt(2 / (9 * df))) ** 3, chi2
    assert service.stats()["limiter"]["samples"] == 13 * 400 * 3  # learned steps counted
    torch_batch = service.sample_sequences(8, 3, dtype="torch")
    assert tuple(torch_batch.mask.shape) == (8, 3)
    assert str(torch_batch.is_first.dtype) == "torch.bool"
