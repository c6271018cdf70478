"""Arrays are allocated from every supported space with the right shapes and dtypes."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from gymnasium import spaces

from pearll.buffers import ReplayBuffer, RolloutBuffer


class SpacesEnv:
    """Just the attributes a buffer reads."""

    metadata: ClassVar[dict] = {}

    def __init__(self, observation_space, action_space, num_envs=None):
        self.observation_space, self.action_space = observation_space, action_space
        if num_envs is not None:
            self.num_envs = num_envs


BOX = spaces.Box(-1, 1, shape=(2, 3), dtype=np.float32)


@pytest.mark.parametrize(
    ("action_space", "shape", "dtype"),
    [
        (spaces.Discrete(4), (1,), np.int64),
        (spaces.MultiDiscrete([3, 4]), (2,), np.int64),
        (spaces.MultiBinary(5), (5,), np.int8),
        (spaces.Box(-2, 2, shape=(3,), dtype=np.float64), (3,), np.float64),
    ],
)
def test_action_arrays_follow_the_space(action_space, shape, dtype):
    buffer = ReplayBuffer(SpacesEnv(BOX, action_space), 10)
    assert buffer.actions.shape == (10, *shape)
    assert buffer.actions.dtype == dtype
    assert buffer.observations.shape == (10, 2, 3)
    assert buffer.observations.dtype == np.float32
    assert buffer.rewards.shape == buffer.dones.shape == (10, 1)


def test_vector_env_adds_an_env_axis():
    buffer = RolloutBuffer(SpacesEnv(BOX, spaces.Discrete(2), num_envs=3), 10)
    assert buffer.observations.shape == buffer.next_observations.shape == (10, 3, 2, 3)
    assert buffer.actions.shape == buffer.rewards.shape == (10, 3, 1)


def test_dict_observations_are_one_array_per_key_nested_too():
    space = spaces.Dict(
        {"image": spaces.Box(0, 255, (4, 4), np.uint8),
         "state": spaces.Dict({"pos": BOX, "mode": spaces.Discrete(3)})}
    )  # fmt: skip
    buffer = ReplayBuffer(SpacesEnv(space, spaces.Discrete(2)), 10)
    assert buffer.observations["image"].shape == (10, 4, 4)
    assert buffer.observations["image"].dtype == np.uint8
    assert buffer.observations["state"]["pos"].shape == (10, 2, 3)
    assert buffer.observations["state"]["mode"].shape == (10, 1)
    obs = {"image": np.ones((4, 4), np.uint8), "state": {"pos": np.zeros((2, 3)), "mode": 2}}
    buffer.add_trajectory(obs, 1, 0.5, obs, True)
    sample = buffer.sample(3)
    assert sample.observations["state"]["mode"].tolist() == [[2]] * 3
    assert type(sample).__name__ == "DictTrajectories"


@pytest.mark.parametrize(
    ("space", "good", "bad"),
    [
        (spaces.MultiDiscrete([3, 4]), [2, 3], [3, 0]),
        (spaces.MultiBinary(2), [1, 0], [2, 0]),
        (spaces.Box(-2, 2, shape=(2,)), [2.0, -2.0], [np.nan, 0.0]),
        (spaces.Discrete(3, start=1), 3, 0),
    ],
)
def test_actions_outside_the_space_are_rejected(space, good, bad):
    buffer = ReplayBuffer(SpacesEnv(BOX, space), 10)
    obs = np.zeros((2, 3), np.float32)
    buffer.add_trajectory(obs, good, 0.0, obs, False)
    with pytest.raises(ValueError, match="outside the space"):
        buffer.add_trajectory(obs, bad, 0.0, obs, False)
    assert len(buffer) == 1


def test_unsupported_space_is_named():
    with pytest.raises(TypeError, match="unsupported space Text"):
        ReplayBuffer(SpacesEnv(spaces.Text(5), spaces.Discrete(2)), 10)


def test_nbytes_counts_every_allocated_array():
    buffer = ReplayBuffer(SpacesEnv(BOX, spaces.Discrete(2), num_envs=2), 10)
    packed_row = 6 * 4 + 8 + 4 + 4 + 1 + 7  # obs, action, reward, done, truncated, padding
    # 10 rows + a mirror of row 0 per sub-env, and a transition flag per row.
    assert buffer.nbytes == 11 * 2 * packed_row + 10 * 2


# --- one cast rule on every path: a value that converts exactly is stored, others refused ----

EXACT_CASES = [  # (value, dtype it goes into, holds exactly)
    (np.array([1.0, -3.0]), np.int64, True),
    (np.array([0.5]), np.int64, False),
    (np.array([np.nan]), np.int64, False),
    (np.array([np.inf]), np.int64, False),
    (np.array([2.0**63]), np.int64, False),
    (np.array([-(2.0**63)]), np.int64, True),
    (np.array([255.0, 0.0]), np.uint8, True),
    (np.array([300.0]), np.uint8, False),
    (np.array([300, -1], np.int64), np.uint8, False),
    (np.array([255, 0], np.int64), np.uint8, True),
    (np.array([300], np.int64), np.int8, False),
    (np.array([2**64 - 1], np.uint64), np.int64, False),
    (np.array([5], np.uint64), np.int64, True),
    (np.array([0.0, 1.0]), np.bool_, True),
    (np.array([0.5]), np.bool_, False),
    (np.array([2]), np.bool_, False),
    (np.array([1, 0], np.int64), np.int8, True),
    (np.array([1e300]), np.float32, True),  # float fields round (here to inf)
    (np.array([np.nan], np.float16), np.int8, False),
    (np.array([-np.inf], np.float16), np.int64, False),
    (np.array([True]), np.uint8, True),
]


@pytest.mark.parametrize(("value", "dtype", "holds"), EXACT_CASES, ids=repr)
def test_check_exact_decides_by_value(value, dtype, holds):
    from pearll.buffers.core.spaces import always_exact, check_exact

    dtype = np.dtype(dtype)
    if holds:
        check_exact(value, dtype, "x")
        np.testing.assert_array_equal(value.astype(dtype), value) if dtype.kind != "f" else None
    else:
        with pytest.raises(TypeError, match=f"x: expected values castable to {dtype}, got dtype"):
            check_exact(value, dtype, "x")
        assert not always_exact(value.dtype, dtype)  # the hot path never takes it unchecked


def test_always_exact_is_never_wrong_for_any_pair_of_dtypes():
    from pearll.buffers.core.spaces import always_exact, check_exact

    numeric = [np.dtype(c) for c in np.typecodes["AllInteger"] + np.typecodes["Float"] + "?"]
    for got in numeric:
        if got.kind == "f":
            with np.errstate(over="ignore"):  # float16 holds 1e30 as inf
                values = np.array([0.5, -1.0, np.nan, 1e30, -1e30]).astype(got)
        elif got.kind == "b":
            values = np.array([True, False])
        else:
            info = np.iinfo(got)
            values = np.array([info.min, info.max, 0, 1], dtype=got)
        for want in numeric:
            if always_exact(got, want):
                check_exact(values, want, "x")  # never raises for an always-exact pair
                if want.kind != "f":
                    assert (values.astype(want) == values).all(), (got, want)


class CastEnv:
    """A 2-env SAME_STEP vector-like env: uint8 observations, Discrete actions, MultiBinary goal."""

    num_envs = 2
    metadata: ClassVar[dict] = {"autoreset_mode": "same_step"}
    single_observation_space = spaces.Box(0, 255, (2,), np.uint8)
    single_action_space = spaces.Discrete(3)


def cast_buffers(**kwargs):
    """Two ReplayBuffers on CastEnv: the first with the hot path, the second without."""
    buffers = [ReplayBuffer(CastEnv(), 8, seed=0, **kwargs) for _ in range(2)]
    buffers[1]._fast_writer = None
    return buffers


def step(obs=None, action=None, reward=None, next_obs=None, done=None, trunc=None, info=None):
    zeros = np.zeros((2, 2), np.uint8)
    return (
        zeros if obs is None else obs,
        np.zeros(2, np.int64) if action is None else action,
        np.zeros(2) if reward is None else reward,
        zeros + 1 if next_obs is None else next_obs,
        np.zeros(2, bool) if done is None else done,
        np.zeros(2, bool) if trunc is None else trunc,
        info,
    )


ENDED = np.array([True, False])


def final_obs(first):
    """A SAME_STEP ``info["final_obs"]`` as Gymnasium builds it: an object array of
    observations, set for sub-env 0 only."""
    final = np.empty(2, dtype=object)
    final[0] = np.asarray(first)
    return {"final_obs": final, "_final_obs": ENDED}


ACCEPTED = {
    "float observations holding integers": step(obs=np.full((2, 2), 7.0)),
    "int64 observations in range": step(next_obs=np.full((2, 2), 255, np.int64)),
    "float64 Discrete actions": step(action=np.array([1.0, 2.0])),
    "float dones": step(
        done=np.array([1.0, 0.0]),
        next_obs=np.full((2, 2), 3),
        info=final_obs([9.0, 250.0]),
    ),
    "integer dones": step(
        done=np.array([1, 0]), next_obs=np.full((2, 2), 3), info=final_obs([9, 250])
    ),
    "int rewards": step(reward=np.array([3, -2])),
}
REFUSED = {
    "fractional observations": step(obs=np.full((2, 2), 7.5)),
    "int64 300 into uint8": step(next_obs=np.array([[300, -1], [0, 0]], np.int64)),
    "NaN observations": step(obs=np.full((2, 2), np.nan)),
    "fractional actions": step(action=np.array([0.5, 1.0])),
    "done 0.5": step(done=np.array([0.5, 0.0])),
    "done 2": step(done=np.array([2, 0])),
    "SAME_STEP final observations 1.7, 300.9": step(done=ENDED, info=final_obs([1.7, 300.9])),
    "SAME_STEP int64 300, -1": step(done=ENDED, info=final_obs(np.array([300, -1], np.int64))),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ACCEPTED))
@pytest.mark.parametrize("batched", [False, True], ids=["add_trajectory", "add_batch"])
def test_exact_casts_are_stored_on_every_path(name, batched):
    args = ACCEPTED[name]
    for buffer in cast_buffers():
        add(buffer, args, batched)
        batch = buffer.all()
        want_next = args[3] if not args[4][0] else [[9, 250], [3, 3]]
        np.testing.assert_array_equal(batch.observations[:, 0], args[0])
        np.testing.assert_array_equal(batch.next_observations[:, 0], want_next)
        np.testing.assert_array_equal(batch.actions[:, 0, 0], args[1])
        np.testing.assert_array_equal(batch.dones[:, 0, 0], args[4])


@pytest.mark.parametrize("name", sorted(REFUSED))
@pytest.mark.parametrize("batched", [False, True], ids=["add_trajectory", "add_batch"])
def test_inexact_casts_are_refused_on_every_path_and_nothing_is_written(name, batched):
    messages = []
    for buffer in cast_buffers():
        before = buffer._store.packed.packed.copy()
        with pytest.raises(TypeError, match="expected values castable to") as error:
            add(buffer, REFUSED[name], batched)
        messages.append(str(error.value))
        np.testing.assert_array_equal(buffer._store.packed.packed, before)
        assert len(buffer) == 0
    assert messages[0] == messages[1]


def add(buffer, args, batched):
    if not batched:
        buffer.add_trajectory(*args)
        return
    *arrays, info = args
    buffer.add_batch_trajectories(*(np.asarray(a)[None] for a in arrays), infos=[info])


@pytest.mark.parametrize(
    ("value", "stored"),
    [(np.array([3.0, -1.0]), True), (np.array([300, 1]), False), (np.array([0.5, 1]), False)],
)
def test_extra_fields_follow_the_rule_on_both_paths(value, stored):
    for buffer in cast_buffers(extra_fields={"option": ((), np.int8)}):
        if stored:
            buffer.add_trajectory(*step()[:-1], option=value)
            np.testing.assert_array_equal(buffer.all().extras["option"][:, 0], value)
        else:
            with pytest.raises(TypeError, match="option: expected values castable to int8"):
                buffer.add_trajectory(*step()[:-1], option=value)
            assert len(buffer) == 0


def test_multibinary_goals_given_as_floats():
    from pearll.buffers import HERBuffer
    from pearll.envs import BitFlippingEnv

    env = BitFlippingEnv(n_bits=3)
    buffer = HERBuffer(env, 8, seed=0)
    obs = {k: np.array([0.0, 1.0, 1.0]) for k in ("observation", "achieved_goal", "desired_goal")}
    buffer.add_trajectory(obs, 1, -1.0, obs, 0.0)
    np.testing.assert_array_equal(buffer.all().observations["achieved_goal"], [[0, 1, 1]])
    obs["desired_goal"] = np.array([0.0, 0.5, 1.0])
    with pytest.raises(TypeError, match="desired_goal'\\]: expected values castable to int8"):
        buffer.add_trajectory(obs, 1, -1.0, obs, False)


class DictCastEnv:
    """CastEnv with a Dict observation: a uint8 leaf and a nested int8 one."""

    num_envs = 2
    metadata: ClassVar[dict] = {"autoreset_mode": "same_step"}
    single_observation_space = spaces.Dict(
        {"u": spaces.Box(0, 255, (2,), np.uint8), "n": spaces.Dict({"i": spaces.Discrete(3)})}
    )
    single_action_space = spaces.Discrete(3)


@pytest.mark.parametrize(
    ("leaf", "stored"),
    [
        (np.full((2, 2), 7.0), True),
        (np.full((2, 2), 7, np.uint8), True),
        (np.full((2, 2), 7.5), False),
        (np.full((2, 2), 300, np.int64), False),
    ],
)
def test_dict_observation_leaves_follow_the_rule_on_both_paths(leaf, stored):
    buffers = [ReplayBuffer(DictCastEnv(), 8, seed=0) for _ in range(2)]
    buffers[1]._fast_writer = None
    zeros = {"u": np.zeros((2, 2), np.uint8), "n": {"i": np.zeros(2, np.int64)}}
    step_args = ({"u": leaf, "n": {"i": np.ones(2)}}, np.zeros(2, np.int64), np.zeros(2), zeros,
                 np.zeros(2, bool), np.zeros(2, bool))  # fmt: skip
    for buffer in buffers:
        if stored:
            buffer.add_trajectory(*step_args)
            np.testing.assert_array_equal(buffer.all().observations["u"][:, 0], leaf)
            np.testing.assert_array_equal(buffer.all().observations["n"]["i"][:, 0, 0], [1, 1])
        else:
            with pytest.raises(TypeError, match="observation\\['u'\\]: expected values castable"):
                buffer.add_trajectory(*step_args)
            assert len(buffer) == 0
