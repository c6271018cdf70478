"""The compiled staging (stage_kernel.py) against its specification, the Python staging.

Three buffers take the same vector-env steps: one as usual (steps whose arrays have their
fields' own dtypes, bool flags included, take the compiled staging), one with the
compiled staging off (the step writer stages in Python), one with no step writer at all (the
general path). They must end with the same bytes and bookkeeping, and raise the same errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer
from tests.buffers.core.test_spaces import SpacesEnv
from tests.buffers.writing.test_step_writer import assert_same_state
from tests.fixtures import MODES, make_env, stacked_env


def three_buffers(env, buffer_class, capacity, **options):
    """(compiled staging, Python staging, general path) buffers, and the list the compiled
    staging's uses are counted in."""
    buffers = [buffer_class(env, capacity, seed=0, **options) for _ in range(3)]
    compiled, python, general = buffers
    assert compiled._fast_writer._stage_and_write is not None
    python._fast_writer._stage_and_write = None
    general._fast_writer = None
    used = []
    write_compiled = compiled._fast_writer._write_compiled

    def counted(*args):
        used.append(True)
        return write_compiled(*args)

    compiled._fast_writer._write_compiled = counted
    return buffers, used


def assert_all_same(buffers):
    """The three buffers hold the same bytes and bookkeeping."""
    for other in buffers[1:]:
        assert_same_state(buffers[0], other)


def add_to_all(buffers, *step, **kwargs):
    """The step added to each buffer: the error each raised (type and message), or None."""
    outcomes = []
    for buffer in buffers:
        try:
            buffer.add_trajectory(*step, **kwargs)
            outcomes.append(None)
        except (TypeError, ValueError) as error:
            outcomes.append((type(error), str(error)))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    return outcomes[0]


def run_env(buffers, env, steps, seed):
    """``steps`` steps of a vector env, given as users do: the truncated flags as the env
    returned them, or (one time in two, where no sub-env was truncated) ``truncated=False``."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        action = rng.integers(0, env.single_action_space.n, env.num_envs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        trunc = False if not truncated.any() and rng.random() < 0.5 else truncated
        add_to_all(buffers, obs, action, reward, next_obs, terminated, trunc, info)
        obs = next_obs
        ended = terminated | truncated
        if env.metadata["autoreset_mode"] is AutoresetMode.DISABLED and ended.any():
            obs, _ = env.reset(options={"reset_mask": ended})


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, RolloutBuffer, PrioritizedReplayBuffer])
@pytest.mark.parametrize("mode", MODES)
@given(
    num_envs=st.integers(1, 4),
    capacity=st.integers(4, 12),
    steps=st.integers(1, 40),
    seed=st.integers(0, 1000),
    max_len=st.integers(1, 6),
)
@settings(max_examples=10, deadline=None)
def test_env_streams_end_the_same_in_every_autoreset_mode(
    buffer_class, mode, num_envs, capacity, steps, seed, max_len
):
    env = make_env(num_envs, mode, max_len=max_len)
    buffers, used = three_buffers(env, buffer_class, capacity)
    run_env(buffers, env, steps, seed)
    assert len(used) == steps  # the compiled staging took every step
    assert_all_same(buffers)


@pytest.mark.parametrize("mode", MODES)
@given(
    num_envs=st.integers(1, 3),
    capacity=st.integers(8, 16),
    steps=st.integers(1, 40),
    seed=st.integers(0, 1000),
)
@settings(max_examples=10, deadline=None)
def test_frame_stacks_end_the_same(mode, num_envs, capacity, steps, seed):
    env = stacked_env(num_envs, mode)
    buffers, used = three_buffers(env, ReplayBuffer, capacity, frame_stack=4)
    run_env(buffers, env, steps, seed)
    assert len(used) == steps
    assert_all_same(buffers)


SPACES = [
    (spaces.Box(-10.0, 10.0, (4,), np.float32), spaces.Discrete(4, start=-1)),
    (spaces.Box(0, 255, (3,), np.uint8), spaces.Box(-2.0, 2.0, (2,), np.float32)),
    (spaces.Box(-1.0, 1.0, (2, 3), np.float64), spaces.MultiDiscrete([3, 4])),
]


@pytest.mark.parametrize(("observation_space", "action_space"), SPACES, ids=str)
@given(num_envs=st.integers(1, 5), seed=st.integers(0, 1000), capacity=st.integers(4, 9))
@settings(max_examples=10, deadline=None)
def test_values_out_of_range_are_refused_alike(observation_space, action_space, num_envs,
                                               seed, capacity):  # fmt: skip
    # Actions in and (sometimes) out of range or NaN, rewards finite or not, float32 or
    # float64: the compiled staging takes each step first, and what its kernel refuses goes
    # on to the general path's error, unwritten.
    env = SpacesEnv(observation_space, action_space, num_envs)
    buffers, used = three_buffers(env, ReplayBuffer, capacity)
    rng = np.random.default_rng(seed)
    field = buffers[0]._store.packed.slots["actions"].dtype
    for _ in range(30):
        obs, next_obs = (rng.uniform(0, 9, (num_envs, *observation_space.shape))
                         .astype(observation_space.dtype) for _ in range(2))  # fmt: skip
        action = np.asarray([action_space.sample() for _ in range(num_envs)]).astype(field)
        if rng.random() < 0.2:
            action.flat[0] = 9 if field.kind in "iu" else np.nan
        reward = rng.normal(size=num_envs).astype(rng.choice([np.float32, np.float64]))
        with np.errstate(over="ignore"):  # 1e300 overflows float32 (here, and when staged)
            if rng.random() < 0.1:
                reward[-1] = rng.choice([np.inf, np.nan, 1e300])
            done = rng.random(num_envs) < 0.2
            trunc = rng.random(num_envs) < 0.2 if rng.random() < 0.5 else False
            add_to_all(buffers, obs, action, reward, next_obs, done, trunc)
    assert used
    assert_all_same(buffers)


def test_arrays_of_any_strides_are_staged():
    # Views with strides (a transposed observation, every other action) take the compiled
    # staging too: it is compiled for arrays of any layout.
    env = SpacesEnv(spaces.Box(-1.0, 1.0, (3,), np.float32), spaces.Discrete(3), 2)
    buffers, used = three_buffers(env, ReplayBuffer, 8)
    rng = np.random.default_rng(0)
    for _ in range(10):
        obs, next_obs = (rng.uniform(-1, 1, (3, 2)).astype(np.float32).T for _ in range(2))
        action = np.arange(4)[::2] % 3
        add_to_all(buffers, obs, action, np.ones(2), next_obs, np.zeros(2, bool))
    assert len(used) == 10
    assert_all_same(buffers)


@pytest.mark.parametrize("layout", ["transposed", "reversed"])
def test_frame_stacks_of_any_strides_are_staged(layout):
    # Stacks as VecTransposeImage gives them (an (E, H, W, k) array seen as (E, k, H, W)), or
    # with negative strides: the element-by-element copy of the compiled staging.
    env = SpacesEnv(spaces.Box(0, 255, (4, 6, 5), np.uint8), spaces.Discrete(3), 2)
    buffers, used = three_buffers(env, ReplayBuffer, 16, frame_stack=4)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 6, 5, 30), dtype=np.uint8)

    def stack(t):
        window = frames[..., t : t + 4]  # (E, H, W, k)
        view = np.moveaxis(window, -1, 1)  # (E, k, H, W), strided
        return (
            view if layout == "transposed" else np.ascontiguousarray(view[:, :, ::-1])[:, :, ::-1]
        )

    for t in range(20):
        done = np.array([t % 7 == 6, False])
        add_to_all(buffers, stack(t), np.arange(2) % 3, np.ones(2), stack(t + 1), done)
    assert len(used) == 20
    assert_all_same(buffers)
