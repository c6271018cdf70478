"""Extra per-step fields on any RingBuffer: declared once, validated at add, read back in order."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from pearll.buffers import ReplayBuffer, RolloutBuffer
from tests.fixtures import MODES, make_env
from tests.reference import ReferenceBuffer, Runner

EXTRAS = {"log_prob": ((), np.float32), "hidden": ((2,), np.float64), "option": (1, np.int64)}


def extras_of(obs):
    """Extra values computed from the observation, so a read-back can be checked by value."""
    tagged = np.asarray(obs["tag"] if isinstance(obs, dict) else obs, dtype=np.float64)
    step = tagged[..., 2]
    return {
        "log_prob": step / 4,
        "hidden": np.stack([tagged[..., 0], tagged[..., 1]], axis=-1),
        "option": (step % 3).astype(np.int64)[..., None],
    }


def run(buffer_class, num_envs, mode, dict_obs=False, steps=20, batch=False):
    env = make_env(num_envs, mode, dict_obs=dict_obs)
    buffer = buffer_class(env, 30, seed=0, extra_fields=EXTRAS)
    runner = Runner(env, buffer, ReferenceBuffer(num_envs or 1, 30, buffer_class.spare_rows))
    recorded = [runner.step() for _ in range(steps)]
    if batch:
        stacked = [_stack([r[i] for r in recorded]) for i in range(6)]
        buffer.add_batch_trajectories(
            *stacked, infos=[r[6] for r in recorded], **extras_of(stacked[0])
        )
    else:
        for obs, action, reward, next_obs, term, trunc, info in recorded:
            buffer.add_trajectory(
                obs, action, reward, next_obs, term, trunc, info, **extras_of(obs)
            )
    return buffer, runner


def _stack(values):
    if isinstance(values[0], dict):
        return {k: _stack([v[k] for v in values]) for k in values[0]}
    return np.stack([np.asarray(v) for v in values])


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, RolloutBuffer])
@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch", [False, True])
def test_extra_fields_round_trip_with_their_transitions(buffer_class, num_envs, mode, batch):
    buffer, _ = run(buffer_class, num_envs, mode, dict_obs=batch, batch=batch)
    for out in (buffer.all(flatten_env=True), buffer.last(3), buffer.sample(3)):
        want = extras_of(out.observations)
        assert set(out.extras) == set(EXTRAS)
        for name, (shape, dtype) in EXTRAS.items():
            got = out.extras[name]
            assert got.dtype == dtype
            assert got.shape == out.rewards.shape[:-1] + (
                (shape,) if isinstance(shape, int) else shape
            )
            np.testing.assert_allclose(got, want[name], rtol=1e-6)


def test_extra_fields_in_torch_and_as_arrays():
    torch = pytest.importorskip("torch")
    buffer, _ = run(RolloutBuffer, 3, AutoresetMode.NEXT_STEP)
    out = buffer.last(4, dtype="torch")
    assert isinstance(out.extras["hidden"], torch.Tensor)
    assert out.extras["hidden"].shape == (3, 4, 2)
    assert buffer.extras["log_prob"].shape == (30, 3)
    single, _ = run(ReplayBuffer, None, AutoresetMode.DISABLED)
    assert single.extras["option"].shape == (30, 1)


def test_no_extra_fields_means_empty_extras_and_no_keywords():
    env = make_env(None)
    buffer = RolloutBuffer(env, 5)
    obs = env.reset(seed=0)[0]
    buffer.add_trajectory(obs, 0, 1.0, obs, False)
    assert buffer.all().extras == {}
    with pytest.raises(
        ValueError,
        match=r"expected keyword arguments \[\] \(declared with extra_fields\), got \['value'\]",
    ):
        buffer.add_trajectory(obs, 0, 1.0, obs, False, value=1.0)


def test_nbytes_counts_the_extra_fields():
    env = make_env(2)
    plain, extended = ReplayBuffer(env, 10), ReplayBuffer(env, 10, extra_fields=EXTRAS)
    row_growth = extended._store.packed.row_bytes - plain._store.packed.row_bytes
    # A packed row holds obs 12 + action 8 + reward 4 + done 4 + truncated 1 bytes, the extras'
    # 4 + 16 + 8, and alignment padding.
    assert extended._store.packed.row_bytes >= 12 + 8 + 4 + 4 + 1 + 4 + 16 + 8
    # 10 rows and the mirror of row 0, for each of the 2 sub-envs.
    assert extended.nbytes == plain.nbytes + 11 * 2 * row_growth


def snapshot(buffer):
    return copy.deepcopy(buffer._store.fields), copy.deepcopy(buffer._ring)


def assert_unchanged(buffer, before):
    storage, ring = before
    for name in storage:
        for key, value in _leaves(storage[name]):
            np.testing.assert_array_equal(_get(buffer._store.fields[name], key), value)
    for attr in ("pos", "size", "valid", "count", "prev_ended"):
        np.testing.assert_array_equal(getattr(buffer._ring, attr), getattr(ring, attr))


def _leaves(tree, prefix=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, (*prefix, k))
    else:
        yield prefix, tree


def _get(tree, key):
    for k in key:
        tree = tree[k]
    return tree


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, RolloutBuffer])
def test_bad_extra_input_is_rejected_leaving_the_buffer_unchanged(buffer_class):
    buffer, runner = run(buffer_class, 3, AutoresetMode.NEXT_STEP, steps=12)
    obs, action, reward, next_obs, term, trunc, info = runner.step()
    good = extras_of(obs)
    cases = [
        ({k: v for k, v in good.items() if k != "hidden"}, ValueError, "expected keyword"),
        ({**good, "value": np.zeros(3)}, ValueError, "expected keyword"),
        ({**good, "log_prob": np.zeros(4)}, ValueError, r"log_prob: expected shape \(3,\)"),
        ({**good, "hidden": np.zeros((3, 3))}, ValueError, r"hidden: expected shape \(3, 2\)"),
        ({**good, "option": np.full((3, 1), 0.5)}, TypeError, "option: expected values castable"),
        ({**good, "log_prob": np.array(["a"] * 3)}, TypeError, "log_prob: expected values"),
    ]
    before = snapshot(buffer)
    for extras, error, message in cases:
        with pytest.raises(error, match=message):
            buffer.add_trajectory(obs, action, reward, next_obs, term, trunc, info, **extras)
        assert_unchanged(buffer, before)
    with pytest.raises(ValueError, match="reward"):  # good extras, bad core field
        buffer.add_trajectory(obs, action, reward[:2], next_obs, term, trunc, info, **good)
    assert_unchanged(buffer, before)
    with pytest.raises(ValueError, match="log_prob"):
        buffer.add_batch_trajectories(
            *(_stack([x]) for x in (obs, action, reward, next_obs, term, trunc)),
            infos=[info],
            **{**extras_of(_stack([obs])), "log_prob": np.zeros((1, 2))},
        )
    assert_unchanged(buffer, before)


@pytest.mark.parametrize(
    ("extra_fields", "error", "message"),
    [
        ({"reward": ((), np.float32)}, ValueError, "not usable as a keyword"),
        ({"log prob": ((), np.float32)}, ValueError, "not usable as a keyword"),
        ({"x": np.float32}, ValueError, r"expected \(shape, dtype\)"),
        ({"x": ((-1,), np.float32)}, ValueError, "non-negative ints"),
        ({"x": ((), str)}, ValueError, "numeric dtype"),
        ([("x", ((), np.float32))], TypeError, "expected a dict"),
    ],
)
def test_bad_extra_field_declarations_are_rejected(extra_fields, error, message):
    with pytest.raises(error, match=message):
        RolloutBuffer(make_env(None), 5, extra_fields=extra_fields)
