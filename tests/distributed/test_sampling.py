"""Cross-shard sampling without Ray: pooled draws are exact, merged draws are one global buffer;
windows are each shard's own, anchored as one global buffer anchors them."""

from __future__ import annotations

import numpy as np
import pytest

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer
from pearll.common.type_aliases import SequenceTrajectories
from pearll.distributed.sampling import (
    draw,
    draw_windows,
    merge,
    pool_mass,
    route_priorities,
    shard_counts,
    split_indices,
)
from tests.compare import row, same_transition
from tests.distributed.streams import check_windows, episodes, key, priority_of
from tests.fixtures import MODES, make_env
from tests.reference import ReferenceBuffer, Runner, Transition


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_pooled_draw_is_exact(cls, mode):
    env = make_env(3, mode)
    buffer = cls(env, 16, seed=0)
    reference = ReferenceBuffer(3, 16, spare_rows=True)
    runner = Runner(env, buffer, reference, seed=1)
    truth = {}
    for _ in range(6):
        runner.add_batch(7)
        truth = {key(t.obs): t for e in range(3) for t in reference.retained(e)}
        drawn = draw(buffer, 64)
        batch = merge({0: drawn}, 1, np.random.default_rng(0), None)
        for i in range(64):
            got = row(batch, i)
            assert same_transition(got, truth[key(got.obs)]), got
        # The slots name the rows the transitions were read from.
        rows, envs = np.divmod(drawn.slots, 3)
        stored = buffer._store.fields["observations"][rows, envs]
        assert (stored == drawn.fields["observations"]).all()
    assert len(truth) == len(buffer)


def _shards_and_single(alpha: float, beta: float, sizes=(40, 90, 25)):
    """PER shards (one TaggedEnv stream each) and one buffer holding all their transitions."""
    streams = [episodes(tag, n, seed=tag) for tag, n in enumerate(sizes)]
    shards = [PrioritizedReplayBuffer(make_env(None), 256, alpha, beta, seed=s) for s in range(3)]
    single = PrioritizedReplayBuffer(make_env(None), 1024, alpha, beta, seed=9)
    for shard, stream in zip(shards, streams, strict=True):
        shard.add_batch_trajectories(*stream)
        single.add_batch_trajectories(*stream)
    for buffer in (*shards, single):
        rows = np.flatnonzero(buffer._ring.valid[:, 0])
        keys = [key(buffer.observations[r]) for r in rows]
        buffer.update_priorities(rows, np.array([priority_of(k) for k in keys]))
    return shards, single


def _front_sample(shards, batch_size, rng, beta):
    masses = [pool_mass(s) for s in shards]
    counts = shard_counts(np.array([m.mass for m in masses]), batch_size, rng)
    draws = {s: draw(shards[s], int(k)) for s, k in enumerate(counts) if k}
    return merge(draws, len(shards), rng, beta, min(m.min_mass for m in masses))


def test_cross_shard_prioritized_sampling_is_one_buffer():
    shards, single = _shards_and_single(alpha=0.7, beta=0.5)
    rows = np.flatnonzero(single._ring.valid[:, 0])
    probability = {
        key(single.observations[r]): single._tree.get(np.array([0]), np.array([r]))[0] for r in rows
    }
    total = sum(probability.values())
    rng = np.random.default_rng(123)
    counts = dict.fromkeys(probability, 0)
    n = 0
    for _ in range(100):
        batch = _front_sample(shards, 200, rng, beta=0.5)
        for obs in batch.observations:
            counts[key(obs)] += 1
        n += len(batch.observations)
    expected = np.array([n * probability[k] / total for k in probability])
    observed = np.array([counts[k] for k in probability])
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    df = len(expected) - 1
    # About the 99.99% quantile of chi2(df) (Wilson-Hilferty); the seed is fixed anyway.
    assert chi2 < df * (1 - 2 / (9 * df) + 3.72 * np.sqrt(2 / (9 * df))) ** 3, chi2


def test_global_weights_are_the_single_buffer_weights():
    shards, single = _shards_and_single(alpha=0.6, beta=0.8)
    reference = single.sample(2000)
    pairs = zip(reference.observations, reference.weights[:, 0], strict=True)
    weight_of = {key(obs): weight for obs, weight in pairs}
    batch = _front_sample(shards, 2000, np.random.default_rng(5), beta=0.8)
    for obs, weight in zip(batch.observations, batch.weights[:, 0], strict=True):
        if key(obs) in weight_of:
            assert weight == pytest.approx(weight_of[key(obs)], rel=1e-6)
    assert batch.weights.max() <= 1.0


def test_global_indices_route_priority_updates_to_their_shard():
    shards, _ = _shards_and_single(alpha=1.0, beta=0.4)
    batch = _front_sample(shards, 300, np.random.default_rng(1), beta=0.4)
    for shard, where in split_indices(batch.indices, 3).items():
        slots = batch.indices[where] // 3
        stored = shards[shard].observations[slots]
        assert (stored == batch.observations[where]).all()


def test_uniform_pool_is_proportional_to_counts():
    buffers = [ReplayBuffer(make_env(None), 256, seed=s) for s in range(2)]
    for tag, (buffer, n) in enumerate(zip(buffers, (30, 120), strict=True)):
        buffer.add_batch_trajectories(*episodes(tag, n, seed=tag))
    rng = np.random.default_rng(0)
    tags = np.concatenate(
        [_front_sample(buffers, 500, rng, None).observations[:, 0] for _ in range(20)]
    )
    share = len(buffers[0]) / (len(buffers[0]) + len(buffers[1]))
    assert (tags == 0).mean() == pytest.approx(share, abs=0.02)


def _history(stream) -> list[Transition]:
    return [Transition(*step) for step in zip(*stream, strict=True)]


def _window_shards(cls, sizes=(40, 90, 25), **kwargs):
    """Single-env shards of one TaggedEnv stream each (nothing overwritten), their histories."""
    streams = [episodes(tag, n, seed=tag) for tag, n in enumerate(sizes)]
    shards = [cls(make_env(None), 256, seed=s, **kwargs) for s in range(len(sizes))]
    for shard, stream in zip(shards, streams, strict=True):
        shard.add_batch_trajectories(*stream)
    if cls is PrioritizedReplayBuffer:
        for buffer in shards:
            rows = np.flatnonzero(buffer._ring.valid[:, 0])
            keys = [key(buffer.observations[r]) for r in rows]
            buffer.update_priorities(rows, np.array([priority_of(k) for k in keys]))
    return shards, {tag: (_history(s), 0) for tag, s in enumerate(streams)}


def _front_windows(shards, batch_size, rng, beta, length, burn_in, boundary):
    masses = [pool_mass(s) for s in shards]
    counts = shard_counts(np.array([m.mass for m in masses]), batch_size, rng)
    draws = {
        s: draw_windows(shards[s], int(k), length, burn_in, boundary)
        for s, k in enumerate(counts)
        if k
    }
    smallest = min(m.min_mass for m in masses)
    return merge(draws, len(shards), rng, beta, smallest, windows=True)


@pytest.mark.parametrize("boundary", ["pad", "cross"])
@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_windows_across_shards_are_each_shards_own(cls, boundary):
    shards, by_tag = _window_shards(cls, alpha=0.7) if cls is PrioritizedReplayBuffer else (
        _window_shards(cls)
    )  # fmt: skip
    beta = 0.5 if cls is PrioritizedReplayBuffer else None
    batch = _front_windows(shards, 300, np.random.default_rng(2), beta, 5, 3, boundary)
    assert isinstance(batch, SequenceTrajectories) and batch.mask.shape == (300, 8)
    anchors = check_windows(batch, by_tag, 3, 5, boundary == "cross")
    # Global indices name each window's anchor in its shard.
    for shard, where in split_indices(batch.indices, 3).items():
        slots = batch.indices[where] // 3
        assert [key(o) for o in shards[shard].observations[slots]] == [anchors[i] for i in where]
    if beta is None:
        assert batch.weights is None
        return
    masses = {key(s.observations[r]): s._tree.get(np.array([0]), np.array([r]))[0]
              for s in shards for r in np.flatnonzero(s._ring.valid[:, 0])}  # fmt: skip
    smallest = min(masses.values())
    expected = [(masses[a] / smallest) ** -beta for a in anchors]
    np.testing.assert_allclose(batch.weights[:, 0], expected, rtol=1e-6)


def test_window_anchors_across_shards_follow_the_priorities():
    shards, _ = _window_shards(PrioritizedReplayBuffer, alpha=0.7)
    mass = {key(s.observations[r]): s._tree.get(np.array([0]), np.array([r]))[0]
            for s in shards for r in np.flatnonzero(s._ring.valid[:, 0])}  # fmt: skip
    counts = dict.fromkeys(mass, 0)
    rng = np.random.default_rng(11)
    for _ in range(60):
        batch = _front_windows(shards, 250, rng, 0.4, 3, 2, "pad")
        for obs in batch.observations[:, 2]:
            counts[key(obs)] += 1
    n, total = sum(counts.values()), sum(mass.values())
    expected = np.array([n * mass[k] / total for k in mass])
    observed = np.array([counts[k] for k in mass])
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    df = len(expected) - 1
    assert chi2 < df * (1 - 2 / (9 * df) + 3.72 * np.sqrt(2 / (9 * df))) ** 3, chi2


def test_sequence_td_errors_routed_to_their_shards_set_r2d2_priorities():
    shards, _ = _window_shards(PrioritizedReplayBuffer, alpha=1.0, eps=0.0, eta=0.9)
    batch = _front_windows(shards, 200, np.random.default_rng(4), 0.4, 6, 2, "pad")
    td = np.random.default_rng(5).normal(size=(200, 6))
    for shard, (slots, values) in route_priorities(batch.indices, td, 3).items():
        assert values.shape == (len(slots), 6)
        shards[shard].update_priorities(slots, values)
    expected = {}
    for b, index in enumerate(batch.indices):  # the last window of an anchor wins
        real = np.abs(td[b])[batch.learn_mask[b, 2:] == 1]
        expected[int(index)] = 0.9 * real.max() + 0.1 * real.mean()
    for index, priority in expected.items():
        slot, shard = divmod(index, 3)
        got = shards[shard]._tree.get(np.array([0]), np.array([slot]))[0]
        assert got == pytest.approx(priority, rel=1e-12)


@pytest.mark.parametrize(
    ("priorities", "match"),
    [
        (np.ones((4, 3, 2)), "expected shape"),
        (np.ones(5), "expected shape"),
        (np.array([1.0, np.nan, 1.0, 1.0]), "finite"),
        (np.array([1.0, -1.0, 1.0, 1.0]), ">= 0"),
        (np.array([[0.1, np.inf]] * 4), "finite"),
    ],
)
def test_bad_priorities_are_refused_before_anything_is_routed(priorities, match):
    with pytest.raises(ValueError, match=match):
        route_priorities(np.arange(4), priorities, 2)
    with pytest.raises(ValueError, match="indices"):
        route_priorities(np.array([0.5, 1.0]), np.ones(2), 2)
    routed = route_priorities(np.arange(4), np.array([[-1.0, 2.0]] * 4), 2)  # signed TD errors
    assert sorted(routed) == [0, 1] and routed[1][1].shape == (2, 2)
    np.testing.assert_array_equal(route_priorities(np.arange(4), np.ones((4, 1)), 2)[0][0], [0, 1])
