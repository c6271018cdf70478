"""What comes back after sample_sequences: sequence priorities, stored-state write-back."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer
from tests.fixtures import MODES, make_env


def run(buffer, env, steps, state):
    """Step ``env`` ``steps`` times with action 0 into ``buffer`` (extra field ``h`` zero)."""
    vector = hasattr(env, "num_envs")
    obs = state.get("obs")
    if obs is None:
        obs, _ = env.reset(seed=0)
    for _ in range(steps):
        action = np.zeros(env.num_envs, np.int64) if vector else 0
        nxt, rew, term, trunc, info = env.step(action)
        h = np.zeros((env.num_envs, 2) if vector else 2, np.float32)
        buffer.add_trajectory(obs, action, rew, nxt, term, trunc, info=info, h=h)
        obs = env.reset()[0] if not vector and (term or trunc) else nxt
    state["obs"] = obs


def make(buffer_class=ReplayBuffer, num_envs=None, capacity=40, steps=60, **kwargs):
    env = make_env(num_envs, MODES[1], max_len=5)
    buffer = buffer_class(env, capacity, seed=3, extra_fields={"h": ((2,), np.float32)}, **kwargs)
    state = {}
    run(buffer, env, steps, state)
    return buffer, env, state


def codes(observations):
    """A number for each step: (episode, step) from TaggedEnv's observation."""
    return observations[..., 1] * 100 + observations[..., 2] + 1


def columns(buffer, name):
    """``(capacity, E, ...)`` view of a stored field whatever the env axis."""
    array = np.asarray(getattr(buffer, name) if name != "h" else buffer.extras["h"])
    return array if buffer.env_info.is_vector else array[:, None]


@pytest.mark.parametrize("num_envs", [None, 2])
@pytest.mark.parametrize("boundary", ["pad", "cross"])
def test_update_extras_writes_the_real_steps_of_each_window(num_envs, boundary):
    buffer, _, _ = make(num_envs=num_envs)
    out = buffer.sample_sequences(6, 5, burn_in=3, boundary=boundary)
    # Each step's value depends only on the step, so overlapping windows agree; padding -1.
    values = np.repeat(codes(out.observations)[..., None], 2, axis=-1).astype(np.float32)
    values[out.mask == 0] = -1
    buffer.update_extras(out.indices, "h", values)
    h, obs, valid = columns(buffer, "h"), columns(buffer, "observations"), buffer._ring.valid
    written = set()
    for e in range(buffer.num_envs):
        real = (out.mask[e] if num_envs else out.mask) == 1
        sampled = set(codes(out.observations[e] if num_envs else out.observations)[real])
        for row in range(buffer.buffer_size):
            code = codes(obs[row, e])
            if valid[row, e] and code in sampled:
                assert np.all(h[row, e] == code), "a sampled step was not written"
                written.add((row, e))
            else:
                assert np.all(h[row, e] == 0), "a step outside the windows was written"
    assert written


def test_update_extras_skips_steps_overwritten_since():
    buffer, env, state = make(capacity=30)
    out = buffer.sample_sequences(8, 4, burn_in=3)
    sampled = set(codes(out.observations)[out.mask == 1])
    run(buffer, env, 12, state)  # overwrites the oldest rows
    values = np.full((8, 7, 2), 7.0, np.float32)
    buffer.update_extras(out.indices, "h", values)
    h, obs, valid = columns(buffer, "h"), columns(buffer, "observations"), buffer._ring.valid
    marked = np.all(h[:, 0] == 7, axis=-1)
    assert marked.any()
    for row in np.flatnonzero(marked):
        assert valid[row, 0] and codes(obs[row, 0]) in sampled


def test_update_extras_refuses_bad_input_and_changes_nothing():
    buffer, _, _ = make()
    out = buffer.sample_sequences(4, 3, burn_in=1)
    before = buffer._store.packed.packed.copy()
    with pytest.raises(KeyError, match="nope"):
        buffer.update_extras(out.indices, "nope", np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match="shape"):
        buffer.update_extras(out.indices, "h", np.zeros((4, 3, 2)))
    never = np.setdiff1d(np.arange(buffer.buffer_size), out.indices)[:1]
    with pytest.raises(ValueError, match="anchor"):
        buffer.update_extras(never, "h", np.zeros((1, 4, 2)))
    np.testing.assert_array_equal(buffer._store.packed.packed, before)


@pytest.mark.parametrize("num_envs", [None, 2])
def test_prioritized_anchors_and_weights_are_those_of_sample(num_envs):
    buffer, _, _ = make(PrioritizedReplayBuffer, num_envs=num_envs, alpha=0.7, beta=0.5)
    slots = buffer.sample(50).indices
    buffer.update_priorities(slots, np.linspace(0.1, 5, slots.size).reshape(slots.shape))
    twin = copy.deepcopy(buffer)
    windows = buffer.sample_sequences(16, 4, burn_in=2)
    transitions = twin.sample(16)
    np.testing.assert_array_equal(windows.indices, transitions.indices)
    np.testing.assert_array_equal(windows.weights, transitions.weights)
    assert windows.weights.shape == (*windows.indices.shape, 1)
    assert buffer.rng.bit_generator.state == twin.rng.bit_generator.state


@pytest.mark.parametrize("num_envs", [None, 2])
def test_sequence_priorities_mix_max_and_mean_over_real_learned_steps(num_envs):
    buffer, _, _ = make(PrioritizedReplayBuffer, num_envs=num_envs, alpha=0.6, eta=0.8)
    out = buffer.sample_sequences(12, 6, burn_in=2)
    td = np.random.default_rng(0).normal(size=(*out.indices.shape, 6))
    buffer.update_priorities(out.indices, td)
    learn = out.learn_mask[..., 2:] == 1
    magnitude = np.abs(td)
    expected = 0.8 * np.where(learn, magnitude, 0).max(-1) + 0.2 * (
        np.where(learn, magnitude, 0).sum(-1) / learn.sum(-1)
    )
    flat_idx, flat_expected = out.indices.reshape(-1), expected.reshape(-1)
    last = {int(i): v for i, v in zip(flat_idx, flat_expected, strict=True)}  # last one wins
    rows, envs = np.divmod(np.array(list(last)), buffer.num_envs)
    got = buffer._tree.get(envs, rows)
    want = (np.array(list(last.values())) + buffer.eps) ** 0.6
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_sequence_priorities_skip_windows_overwritten_since():
    buffer, env, state = make(PrioritizedReplayBuffer, capacity=20)
    out = buffer.sample_sequences(10, 3)
    run(buffer, env, 5, state)
    rows = out.indices
    before = buffer._tree.get(np.zeros_like(rows), rows)
    now = codes(columns(buffer, "observations")[rows, 0])
    overwritten = (now != codes(out.observations[:, 0])) | ~buffer._ring.valid[rows, 0]
    assert overwritten.any() and not overwritten.all()
    buffer.update_priorities(out.indices, np.full((10, 3), 50.0))
    after = buffer._tree.get(np.zeros_like(rows), rows)
    np.testing.assert_array_equal(after[overwritten], before[overwritten])
    assert np.all(after[~overwritten] == (50.0 + buffer.eps) ** buffer.alpha)


@pytest.mark.parametrize(
    ("td", "match"),
    [
        (np.zeros((5, 4)), "shape"),
        (np.full((5, 3), np.nan), "finite"),
        (np.zeros((5, 3, 2)), "shape"),
    ],
)
def test_bad_td_errors_are_refused_and_change_nothing(td, match):
    buffer, _, _ = make(PrioritizedReplayBuffer)
    out = buffer.sample_sequences(5, 3)
    sums = buffer._tree._sums.copy()
    with pytest.raises(ValueError, match=match):
        buffer.update_priorities(out.indices, td)
    np.testing.assert_array_equal(buffer._tree._sums, sums)


def test_reset_forgets_the_windows():
    buffer, env, state = make()
    out = buffer.sample_sequences(3, 2)
    buffer.reset()
    state.clear()
    run(buffer, env, 10, state)
    with pytest.raises(ValueError, match="sample_sequences"):
        buffer.update_extras(out.indices, "h", np.zeros((3, 2, 2)))
