"""n-step returns against a reference that walks each retained episode step by step."""

from __future__ import annotations

import numpy as np
import pytest

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer
from tests.compare import obs_equal
from tests.fixtures import MODES, make_env
from tests.reference import ReferenceBuffer, Runner, Transition

GAMMA = 0.9


def nstep_reference(retained: list[Transition], n: int, gamma: float) -> list[tuple]:
    """(obs, action, reward, next_obs, done, discount) for each retained transition, in order."""
    out = []
    for start, first in enumerate(retained):
        reward, steps, last = 0.0, 0, first
        for last in retained[start : start + n]:
            reward += gamma**steps * float(last.reward)
            steps += 1
            if last.done or last.truncated:
                break
        out.append((first.obs, first.action, reward, last.next_obs, bool(last.done), gamma**steps))
    return out


def records(trajectories) -> list[tuple]:
    """The rows of a flat numpy Trajectories as (obs, action, reward, next_obs, done, discount)."""

    def pick(x, i):
        return {k: pick(v, i) for k, v in x.items()} if isinstance(x, dict) else x[i]

    t = trajectories
    return [
        (
            pick(t.observations, i),
            t.actions[i],
            float(t.rewards[i, 0]),
            pick(t.next_observations, i),
            bool(t.dones[i, 0]),
            float(t.discounts[i, 0]),
        )
        for i in range(len(t.rewards))
    ]


def same(got: tuple, want: tuple) -> bool:
    return (
        obs_equal(got[0], want[0])
        and obs_equal(got[1], want[1])
        and np.isclose(got[2], want[2], rtol=1e-6)
        and obs_equal(got[3], want[3])
        and got[4] == want[4]
        and np.isclose(got[5], want[5], rtol=1e-6)
    )


@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dict_obs", [False, True])
def test_all_equals_the_episode_walk_after_every_step(n_step, num_envs, mode, dict_obs):
    env = make_env(num_envs, mode, dict_obs=dict_obs)
    buffer = ReplayBuffer(env, 9, seed=0, n_step=n_step, gamma=GAMMA)
    reference = ReferenceBuffer(num_envs or 1, 9, spare_rows=True)
    runner = Runner(env, buffer, reference, seed=2)
    for _ in range(45):  # five times round the ring: wraparound and overwritten episodes
        runner.add(1)
        want = [
            r
            for e in range(num_envs or 1)
            for r in nstep_reference(reference.retained(e), n_step, GAMMA)
        ]
        got = records(buffer.all(flatten_env=True))
        assert len(got) == len(want)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert same(g, w), f"transition {i}: got {g}, expected {w}"


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, PrioritizedReplayBuffer])
@pytest.mark.parametrize("num_envs", [None, 2])
def test_sampled_transitions_are_reference_nstep_transitions(buffer_class, num_envs):
    env = make_env(num_envs, MODES[0], max_len=8)
    buffer = buffer_class(env, 30, seed=0, n_step=4, gamma=GAMMA)
    reference = ReferenceBuffer(num_envs or 1, 30, spare_rows=True)
    runner = Runner(env, buffer, reference, seed=3)
    for _ in range(12):
        runner.add(7)
        batch = buffer.sample(32, flatten_env=True)
        envs = range(num_envs or 1)
        want = [r for e in envs for r in nstep_reference(reference.retained(e), 4, GAMMA)]
        for got in records(batch):
            assert any(same(got, w) for w in want), f"{got} is no retained 4-step transition"


def test_n_step_1_is_the_one_step_transition_with_discount_gamma():
    env = make_env(None)
    plain, nstep = ReplayBuffer(env, 20, seed=5), ReplayBuffer(env, 20, seed=5, n_step=1, gamma=0.5)
    runner = Runner(env, plain, ReferenceBuffer(1, 20, True), seed=1)
    for _ in range(30):
        args = runner.step()
        plain.add_trajectory(*args[:6])
        nstep.add_trajectory(*args[:6])
    a, b = plain.sample(50), nstep.sample(50)
    for field in ("observations", "actions", "rewards", "next_observations", "dones"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.discounts is None
    np.testing.assert_array_equal(b.discounts, np.full((50, 1), 0.5, dtype=np.float32))


def test_discounts_shapes_and_torch_output():
    env = make_env(3)
    buffer = ReplayBuffer(env, 20, seed=0, n_step=2, gamma=0.99)
    Runner(env, buffer, ReferenceBuffer(3, 20, True)).add(10)
    assert buffer.sample(4).discounts.shape == (3, 4, 1)
    assert buffer.sample(4, flatten_env=True).discounts.shape == (4, 1)
    assert str(buffer.sample(4, dtype="torch").discounts.dtype) == "torch.float32"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n_step": 3}, ValueError),
        ({"gamma": 0.9}, ValueError),
        ({"n_step": 0, "gamma": 0.9}, ValueError),
        ({"n_step": 2.0, "gamma": 0.9}, ValueError),
        ({"n_step": 2, "gamma": 1.5}, ValueError),
        ({"n_step": 2, "gamma": "0.9"}, TypeError),
    ],
)
def test_bad_n_step_options_are_rejected(kwargs, error):
    with pytest.raises(error, match=r"n_step|gamma"):
        ReplayBuffer(make_env(None), 10, **kwargs)
