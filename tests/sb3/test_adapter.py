"""PearllAdapter's add against the true transitions, on random streams: episode ends, steps
that do not follow on, SB3's writes to ``dones``, short episodes. Both the fast path and the
general one are exercised (the fast path takes the plain steps that follow on)."""

from __future__ import annotations

import copy
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.sb3 import ReplayBuffer
from tests.fixtures import sb3_steps, sb3_vec_env
from tests.sb3.test_replay import held_by_ours as held


def true_transitions(step):
    obs, next_obs, action, reward, done, infos = step
    return [
        (obs[e].tobytes(), int(action[e]), float(reward[e]), next_obs[e].tobytes(),
         float(done[e] and not infos[e].get("TimeLimit.truncated", False)))
        for e in range(len(done))
    ]  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(
    num_envs=st.sampled_from([1, 3]),
    plan=st.lists(
        st.tuples(st.sampled_from(["steps", "restart", "mark"]), st.integers(1, 12)),
        min_size=1,
        max_size=8,
    ),
)
def test_holds_exactly_the_true_transitions_whatever_the_stream(num_envs, plan):
    venv = sb3_vec_env(num_envs, max_len=5)
    buffer = ReplayBuffer(2_000 * num_envs, venv.observation_space, venv.action_space,
                          device="cpu", n_envs=num_envs, seed=0)  # fmt: skip
    truth, stream, seed = Counter(), sb3_steps(venv, 10_000), 0
    for action, count in plan:
        if action == "restart":  # a fresh env, as after set_env or a second learn()
            seed += 1
            stream = sb3_steps(sb3_vec_env(num_envs, max_len=5), 10_000, seed=seed)
        elif action == "mark" and buffer.size():  # SB3's write before a second learn()
            buffer.dones[(buffer.pos - 1) % buffer.buffer_size] = True
        for _ in range(count):
            step = next(stream)
            buffer.add(*copy.deepcopy(step))
            truth.update(true_transitions(step))
    assert held(buffer) == truth


def test_a_write_to_dones_through_a_view_ends_the_episode_even_on_the_fast_path():
    venv = sb3_vec_env(2, max_len=50, p_terminate=1.0)
    buffer = ReplayBuffer(200, venv.observation_space, venv.action_space, device="cpu",
                          n_envs=2, seed=0)  # fmt: skip
    steps = sb3_steps(venv, 20)
    for _ in range(5):
        buffer.add(*next(steps))
    assert buffer._fast  # plain steps that follow on
    row = buffer.dones[buffer.pos - 1]
    row[1] = True  # sub-env 1 only, through a view
    assert not buffer._fast
    buffer.add(*next(steps))
    assert buffer.pearll_buffer.truncateds.sum(axis=0).ravel().tolist() == [0, 1]
    assert not buffer.dones.any()  # read, then cleared


def test_short_episodes_hold_fewer_transitions_never_wrong_ones_and_warn_once():
    venv = sb3_vec_env(1, max_len=2)  # episodes of 1 or 2 steps
    buffer = ReplayBuffer(100, venv.observation_space, venv.action_space, device="cpu",
                          seed=0, min_episode_length=10)  # fmt: skip
    truth = Counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in sb3_steps(venv, 400):
            buffer.add(*copy.deepcopy(step))
            truth.update(true_transitions(step))
    short = [w for w in caught if "fewer than" in str(w.message)]
    assert len(short) == 1 and issubclass(short[0].category, RuntimeWarning)
    assert buffer.size() < 100
    assert not held(buffer) - truth  # every held transition is a true one


def test_bad_infos_are_refused_at_an_episode_end():
    venv = sb3_vec_env(2)
    buffer = ReplayBuffer(100, venv.observation_space, venv.action_space, device="cpu",
                          n_envs=2, seed=0)  # fmt: skip
    obs, next_obs, action, reward, _, infos = next(sb3_steps(venv, 1))
    with pytest.raises(ValueError, match="infos: expected 2 dicts"):
        buffer.add(obs, next_obs, action, reward, np.ones(2, bool), infos[:1])
    assert buffer.size() == 0


def test_an_episode_whose_first_observation_repeats_the_last_final_one_is_still_tracked():
    # The step after an episode end looks like a continuation (its obs is the final obs): it
    # must still count as a running episode, so that a later restart is seen.
    space = sb3_vec_env(1).observation_space
    buffer = ReplayBuffer(50, space, sb3_vec_env(1).action_space, device="cpu", seed=0)
    a, b, c, x, y = (np.full((1, 3), v, np.float32) for v in range(5))
    action, reward, infos = np.zeros(1, np.int64), np.ones(1, np.float32), [{}]
    buffer.add(a, b, action, reward, np.ones(1, bool), infos)  # terminates at b
    buffer.add(b, c, action, reward, np.zeros(1, bool), infos)  # a new episode from b
    buffer.add(x, y, action, reward, np.zeros(1, bool), infos)  # a restart
    pairs = Counter({(obs, nxt): n for (obs, _, _, nxt, _), n in held(buffer).items()})
    assert pairs == Counter({(a.tobytes(), b.tobytes()): 1, (b.tobytes(), c.tobytes()): 1,
                             (x.tobytes(), y.tobytes()): 1})  # fmt: skip
