"""ReplayBuffer.sample_sequences against a reference of whole episodes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pearll.buffers import ReplayBuffer
from pearll.buffers.sampling.sequences import window_rows_spec
from tests.fixtures import MODES, make_env, stacked_env
from tests.reference import ReferenceBuffer, Runner, reference_window

FIELDS = ("obs", "action", "reward", "next_obs", "done", "truncated")


def filled(
    num_envs, mode, capacity, steps, max_len=6, p_terminate=0.5, seed=0, batch=False,
    frames=False, buffer_class=ReplayBuffer, **buffer_kwargs,
):  # fmt: skip
    if frames:
        env = stacked_env(num_envs, mode, max_len=max_len)
    else:
        env = make_env(num_envs, mode, max_len=max_len, p_terminate=p_terminate)
    buffer = buffer_class(env, capacity, seed=seed, **buffer_kwargs)
    reference = ReferenceBuffer(num_envs or 1, capacity, spare_rows=True)
    runner = Runner(env, buffer, reference, seed=seed)
    if batch:
        runner.add_batch(steps)
    else:
        runner.add(steps)
    return buffer, reference


def expected_windows(buffer, reference, env, anchors, burn_in, length, cross):
    """Reference windows of sub-env ``env`` for the anchor rows ``anchors``."""
    history = reference.transitions[env]
    retained = reference.retained(env)
    order = {int(r): k for k, r in enumerate(buffer._ring.ordered_rows(env))}
    # With frame stacks the oldest few may have lost their stacks' frames: a suffix is stored.
    assert len(order) == len(retained) or (buffer.frame_stack and len(order) <= len(retained))
    start = len(history) - len(order)
    return [
        reference_window(history, start, start + order[int(a)], burn_in, length, cross)
        for a in anchors
    ]


def check_against_reference(buffer, reference, batch, burn_in, length, boundary):
    num_envs = buffer.num_envs
    out = buffer.sample_sequences(batch, length, burn_in=burn_in, boundary=boundary)
    steps = burn_in + length
    vector = buffer.env_info.is_vector
    field = lambda a: np.asarray(a) if vector else np.asarray(a)[None]  # noqa: E731
    obs, nxt, act = field(out.observations), field(out.next_observations), field(out.actions)
    rew, done, trunc = field(out.rewards), field(out.dones), field(out.truncateds)
    mask, learn, first = field(out.mask), field(out.learn_mask), field(out.is_first)
    indices = field(out.indices)
    assert obs.shape[:3] == (num_envs, batch, steps) and mask.shape == (num_envs, batch, steps)
    assert mask.dtype == np.float32 and first.dtype == bool and indices.dtype == np.int64
    for e in range(num_envs):
        rows = (indices[e] - e) // num_envs if vector else indices[e]
        assert np.all((indices[e] - e) % num_envs == 0)
        windows = expected_windows(buffer, reference, e, rows, burn_in, length,
                                   boundary == "cross")  # fmt: skip
        for b, (steps_expected, firsts) in enumerate(windows):
            np.testing.assert_array_equal(first[e, b], firsts)
            real = np.array([s is not None for s in steps_expected], dtype=np.float32)
            np.testing.assert_array_equal(mask[e, b], real)
            np.testing.assert_array_equal(learn[e, b, burn_in:], real[burn_in:])
            assert not learn[e, b, :burn_in].any()
            for t, step in enumerate(steps_expected):
                if step is None:
                    for array in (obs, nxt, act, rew, done, trunc):
                        assert not np.any(array[e, b, t]), "padding must be zeros"
                    continue
                np.testing.assert_array_equal(obs[e, b, t], step.obs)
                np.testing.assert_array_equal(nxt[e, b, t], step.next_obs)
                assert act[e, b, t, 0] == step.action
                assert rew[e, b, t, 0] == np.float32(step.reward)
                assert done[e, b, t, 0] == float(step.done)
                assert trunc[e, b, t, 0] == bool(step.truncated)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    num_envs=st.sampled_from([None, 2]),
    mode=st.sampled_from(MODES),
    capacity=st.integers(4, 40),
    steps=st.integers(1, 90),
    max_len=st.integers(1, 8),
    p_terminate=st.sampled_from([0.0, 0.5, 1.0]),
    burn_in=st.integers(0, 4),
    length=st.integers(1, 9),
    boundary=st.sampled_from(["pad", "cross"]),
    batch=st.booleans(),
    seed=st.integers(0, 3),
)
def test_windows_equal_the_reference(
    num_envs, mode, capacity, steps, max_len, p_terminate, burn_in, length, boundary, batch,
    seed,
):  # fmt: skip
    buffer, reference = filled(num_envs, mode, capacity, steps, max_len, p_terminate, seed, batch)
    if not buffer.counts.all():
        return
    check_against_reference(buffer, reference, 12, burn_in, length, boundary)


@settings(max_examples=40, deadline=None)
@given(
    num_envs=st.sampled_from([None, 3]),
    capacity=st.integers(4, 30),
    steps=st.integers(1, 80),
    burn_in=st.integers(0, 4),
    length=st.integers(1, 9),
    cross=st.booleans(),
)
def test_kernel_equals_its_specification_at_every_anchor(
    num_envs, capacity, steps, burn_in, length, cross
):
    buffer, _ = filled(num_envs, MODES[1], capacity, steps, max_len=4)
    ring, views = buffer._ring, buffer._store.fields
    for e in range(buffer.num_envs):
        rows = ring.ordered_rows(e)
        anchors = np.zeros((buffer.num_envs, len(rows)), dtype=np.int64)
        for other in range(buffer.num_envs):  # any stored rows for the other sub-envs
            theirs = ring.ordered_rows(other)
            anchors[other] = theirs[np.arange(len(rows)) % len(theirs)]
        anchors[e] = rows
        args = (ring.valid, views["dones"], views["truncateds"], ring.pos, ring.size, anchors,
                burn_in, length, cross)  # fmt: skip
        got, want = (
            buffer._windows_at(anchors, length, burn_in, "cross" if cross else "pad"),
            (window_rows_spec(*args)),
        )
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    num_envs=st.sampled_from([None, 2]),
    mode=st.sampled_from(MODES),
    capacity=st.integers(6, 30),
    steps=st.integers(1, 70),
    burn_in=st.integers(0, 4),
    length=st.integers(1, 8),
    boundary=st.sampled_from(["pad", "cross"]),
    compression=st.sampled_from([None, "lz4"]),
)
def test_frame_stacked_windows_equal_the_reference(
    num_envs, mode, capacity, steps, burn_in, length, boundary, compression
):
    buffer, reference = filled(
        num_envs, mode, capacity, steps, max_len=7, frames=True, frame_compression=compression
    )
    if not buffer.counts.all():
        return
    assert buffer.frame_stack is not None
    check_against_reference(buffer, reference, 8, burn_in, length, boundary)


@pytest.mark.parametrize("num_envs", [None, 2])
@pytest.mark.parametrize("frames", [False, True])
def test_memmap_windows_equal_the_reference(tmp_path, num_envs, frames):
    for steps in (5, 23, 61):
        buffer, reference = filled(num_envs, MODES[1], 17, steps, frames=frames,
                                   storage="memmap", storage_dir=tmp_path / str(steps))  # fmt: skip
        for boundary in ("pad", "cross"):
            check_against_reference(buffer, reference, 10, 2, 5, boundary)


def test_every_stored_transition_is_an_anchor_uniformly():
    buffer, _ = filled(None, None, 20, 60)
    out = buffer.sample_sequences(4000, 3)
    counts = np.bincount(out.indices, minlength=20)
    stored = buffer._ring.valid[:, 0]
    assert counts[~stored].sum() == 0
    expected = 4000 / stored.sum()
    assert np.all(np.abs(counts[stored] - expected) < 5 * np.sqrt(expected))


def test_truncated_episode_ends_with_its_true_final_observation():
    buffer, reference = filled(None, None, 200, 100, max_len=5, p_terminate=0.0)
    out = buffer.sample_sequences(64, 8)
    newest = reference.transitions[0][-1]
    for b in range(64):
        last = int(out.mask[b].sum()) - 1
        step = out.observations[b, last]
        if not out.truncateds[b, last, 0]:  # only the newest stored step may end a window so
            np.testing.assert_array_equal(step, newest.obs)
            continue
        assert out.next_observations[b, last, 2] == step[2] + 1  # the final observation
        assert out.next_observations[b, last, 1] == step[1]  # of the same episode


@pytest.mark.parametrize("boundary", ["pad", "cross"])
def test_flatten_env_and_torch_give_the_same_windows(boundary):
    torch = pytest.importorskip("torch")
    make = lambda: filled(3, MODES[0], 30, 50)[0]  # noqa: E731
    kwargs = {"burn_in": 2, "boundary": boundary}
    with_axis = make().sample_sequences(5, 4, **kwargs)
    flat = make().sample_sequences(5, 4, flatten_env=True, **kwargs)
    tensors = make().sample_sequences(5, 4, dtype="torch", **kwargs)
    assert flat.observations.shape == (15, 6, 3) and flat.indices.shape == (15,)
    for name in ("observations", "next_observations", "mask", "learn_mask", "is_first", "indices"):
        a = getattr(with_axis, name)
        np.testing.assert_array_equal(a.reshape((15, *a.shape[2:])), getattr(flat, name))
        assert isinstance(getattr(tensors, name), torch.Tensor)
        np.testing.assert_array_equal(getattr(tensors, name).numpy(), a)


def test_extras_are_read_per_step_and_zero_on_padding():
    env = make_env(None, max_len=3)
    buffer = ReplayBuffer(env, 50, seed=1, extra_fields={"h": ((2,), np.float32)})
    obs, _ = env.reset(seed=0)
    for t in range(30):
        nxt, rew, term, trunc, _ = env.step(0)
        buffer.add_trajectory(obs, 0, rew, nxt, term, trunc, h=np.full(2, t, np.float32))
        obs = env.reset()[0] if term or trunc else nxt
    out = buffer.sample_sequences(20, 4, burn_in=1)
    h = out.extras["h"]
    assert h.shape == (20, 5, 2)
    assert np.all(h[out.mask == 0] == 0)
    real = out.mask == 1
    # Consecutive real steps of a window hold consecutive step counters.
    steps = h[..., 0]
    assert np.all(np.diff(steps, axis=1)[(real[:, 1:] & real[:, :-1])] == 1)


BAD = [
    ({"batch_size": 0, "length": 3}, ValueError, "batch_size"),
    ({"batch_size": 2.0, "length": 3}, TypeError, "batch_size"),
    ({"batch_size": 2, "length": 0}, ValueError, "length"),
    ({"batch_size": 2, "length": True}, TypeError, "length"),
    ({"batch_size": 2, "length": 3, "burn_in": -1}, ValueError, "burn_in"),
    ({"batch_size": 2, "length": 3, "boundary": "wrap"}, ValueError, "boundary"),
    ({"batch_size": 2, "length": 3, "dtype": "jax"}, ValueError, "dtype"),
]


@pytest.mark.parametrize(("kwargs", "error", "name"), BAD)
def test_bad_input_is_refused_and_draws_nothing(kwargs, error, name):
    buffer, _ = filled(2, MODES[0], 20, 30)
    state = buffer.rng.bit_generator.state
    packed = buffer._store.packed.packed.copy()
    with pytest.raises(error, match=name):
        buffer.sample_sequences(**kwargs)
    assert buffer.rng.bit_generator.state == state
    np.testing.assert_array_equal(buffer._store.packed.packed, packed)


def test_an_empty_sub_env_is_refused_and_draws_nothing():
    env = make_env(2, MODES[0])
    buffer = ReplayBuffer(env, 10, seed=0)
    state = buffer.rng.bit_generator.state
    with pytest.raises(RuntimeError, match="no transition"):
        buffer.sample_sequences(2, 3)
    assert buffer.rng.bit_generator.state == state


def test_dict_observations_come_as_dicts_of_windows():
    def build(dict_obs):
        env = make_env(2, MODES[0], dict_obs=dict_obs)
        buffer = ReplayBuffer(env, 30, seed=5)
        Runner(env, buffer, ReferenceBuffer(2, 30, True), seed=0).add(40)
        return buffer.sample_sequences(6, 4, burn_in=2, boundary="cross")

    plain, nested = build(False), build(True)
    assert set(nested.observations) == {"tag", "parity"}
    assert nested.observations["tag"].shape == (2, 6, 6, 3)
    np.testing.assert_array_equal(nested.observations["tag"], plain.observations)
    np.testing.assert_array_equal(nested.next_observations["tag"], plain.next_observations)
    np.testing.assert_array_equal(nested.mask, plain.mask)
    parity = nested.observations["parity"][..., 0]  # Discrete leaves keep a trailing axis
    assert np.all(parity[plain.mask == 0] == 0)
    np.testing.assert_array_equal(
        parity[plain.mask == 1], plain.observations[..., 2][plain.mask == 1] % 2
    )
