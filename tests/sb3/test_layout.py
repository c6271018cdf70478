"""Frame stacks from SB3's VecFrameStack: one frame per transition, stacks rebuilt bit-exactly.

SB3's own ReplayBuffer, holding whole stacks, is the reference: fed the same steps, ours must
hold exactly its transitions (SB3's zero padding at episode starts included), for channels
last and first, one and several channels per frame, one and several sub-envs, and for what a
CNN policy receives (VecFrameStack, then VecTransposeImage).
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common import buffers as sb3_buffers
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecTransposeImage

from pearll.sb3 import ReplayBuffer
from pearll.sb3.adapter import FRAME_STACK_MIN_EPISODE_LENGTH
from tests.fixtures import ImageEnv, sb3_steps

K = 4


def stacked(num_envs, shape, channels_first=False, transpose=False):
    venv = DummyVecEnv([lambda: ImageEnv(shape, channels_first=channels_first)] * num_envs)
    venv = VecFrameStack(venv, K, channels_order="first" if channels_first else "last")
    return VecTransposeImage(venv) if transpose else venv


def held_by_sb3(buffer):
    rows = buffer.buffer_size if buffer.full else buffer.pos
    return Counter(
        (buffer.observations[r, e].tobytes(), buffer.next_observations[r, e].tobytes(),
         int(buffer.actions[r, e, 0]), float(buffer.dones[r, e] * (1 - buffer.timeouts[r, e])))
        for r in range(rows) for e in range(buffer.n_envs)
    )  # fmt: skip


def held_by_ours(buffer):
    batch = buffer.pearll_buffer.all(flatten_env=True)
    obs = buffer.layout.observations_out(batch.observations)
    next_obs = buffer.layout.observations_out(batch.next_observations)
    return Counter(
        (obs[i].tobytes(), next_obs[i].tobytes(), int(batch.actions[i, 0]),
         float(batch.dones[i, 0]))
        for i in range(len(obs))
    )  # fmt: skip


def feed(buffers, venv, steps):
    for obs, next_obs, action, reward, done, infos in sb3_steps(venv, steps):
        for buffer in buffers:
            buffer.add(copy.deepcopy(obs), copy.deepcopy(next_obs), action, reward, done, infos)


@pytest.mark.parametrize(
    ("shape", "channels_first", "transpose", "order"),
    [
        ((6, 5, 1), False, False, "last"),
        ((6, 5, 2), False, False, "last"),
        ((6, 5, 1), True, False, "first"),
        ((6, 5, 3), True, False, "first"),
        ((6, 5, 1), False, True, "first"),  # what a CNN policy's buffer receives
        ((9, 10, 2), False, True, "first"),
    ],
)
@pytest.mark.parametrize("num_envs", [1, 2])
def test_stacks_are_sb3s_bit_for_bit(shape, channels_first, transpose, order, num_envs):
    venv = stacked(num_envs, shape, channels_first, transpose)
    args = (300 * num_envs, venv.observation_space, venv.action_space)
    theirs = sb3_buffers.ReplayBuffer(*args, device="cpu", n_envs=num_envs)
    ours = ReplayBuffer(*args, device="cpu", n_envs=num_envs, frame_stack=K, channels_order=order,
                        seed=0)  # fmt: skip
    feed([theirs, ours], venv, 120)
    assert held_by_ours(ours) == held_by_sb3(theirs)
    # Samples come back in SB3's layout.
    sample = ours.sample(8)
    assert sample.observations.shape == (8, *venv.observation_space.shape)
    # Each frame is stored once: rows x (one frame + a few bytes of the other fields).
    frame = int(np.prod(shape))
    assert ours.pearll_buffer.nbytes <= ours._ring_rows() * num_envs * (frame + 40) + 64


def test_channels_order_is_guessed_as_sb3_lays_stacks_out():
    last, first = stacked(1, (6, 5, 1)), stacked(1, (6, 5, 1), transpose=True)
    assert ReplayBuffer(10, last.observation_space, last.action_space,
                        frame_stack=K).layout.channels_order == "last"  # fmt: skip
    assert ReplayBuffer(10, first.observation_space, first.action_space,
                        frame_stack=K).layout.channels_order == "first"  # fmt: skip


def test_the_wrong_channels_order_is_an_error_not_garbage():
    venv = stacked(1, (8, 8, 1), transpose=True)  # (4, 8, 8): stacked first
    buffer = ReplayBuffer(50, venv.observation_space, venv.action_space, frame_stack=K,
                          channels_order="last", seed=0)  # fmt: skip
    with pytest.raises(ValueError, match="channels_order='last'"):
        feed([buffer], venv, 5)
    assert buffer.size() == 0


def test_stack_sizes_that_do_not_divide_are_refused():
    venv = stacked(1, (6, 5, 1))
    with pytest.raises(ValueError, match="not a multiple of 3"):
        ReplayBuffer(10, venv.observation_space, venv.action_space, frame_stack=3,
                     channels_order="last")  # fmt: skip


def test_atari_sized_transitions_take_one_frame_each_by_default():
    venv = stacked(1, (84, 84, 1), transpose=True)
    buffer = ReplayBuffer(
        1_000_000, venv.observation_space, venv.action_space, frame_stack=K, seed=0
    )  # fmt: skip (arrays are allocated lazily: this is cheap)
    assert buffer.min_episode_length == FRAME_STACK_MIN_EPISODE_LENGTH
    per_transition = (buffer.pearll_buffer.nbytes + buffer.dones.nbytes) / buffer.buffer_size
    assert 84 * 84 <= per_transition <= 7_100  # SB3: 56,468; 28,244 memory-saving


def test_a_restart_mid_episode_warns_that_its_first_stacks_are_zero_padded():
    venv = stacked(1, (6, 5, 1))
    buffer = ReplayBuffer(100, venv.observation_space, venv.action_space, frame_stack=K, seed=0)
    feed([buffer], venv, 3)
    other = stacked(1, (6, 5, 1))
    other.seed(5)
    # The first step whose stack reaches before its episode's start.
    step = next(s for s in sb3_steps(other, 20, seed=9) if s[0][0, ..., 0].any() and not s[4][0])
    with pytest.warns(RuntimeWarning, match="zero-padded"):
        buffer.add(*step)


def _altered(step, rng, which):
    """A copy of ``step`` with one byte changed in sub-env 0: its observation's oldest frame
    ("obs", so it no longer follows on) or its next observation's oldest frame ("next", so the
    next stack is not the stack shifted)."""
    obs, next_obs, *rest = copy.deepcopy(step)
    target = obs if which == "obs" else next_obs
    target[0, 0].flat[int(rng.integers(target[0, 0].size))] ^= 1
    return (obs, next_obs, *rest)


@settings(max_examples=20, deadline=None)
@given(
    num_envs=st.sampled_from([1, 2]),
    transpose=st.booleans(),  # VecTransposeImage's views, or C-contiguous stacks
    plan=st.lists(
        st.tuples(st.sampled_from(["steps", "restart", "obs", "next"]), st.integers(1, 15)),
        min_size=1,
        max_size=6,
    ),
)
def test_the_fast_path_of_stacks_is_the_general_one(num_envs, transpose, plan):
    """Stacks as stored (channels first) take add's fast path when they follow on; it must
    hold what the general path holds, and refuse what it refuses, on streams with restarts,
    observations that do not follow on by one byte of an old frame, and unshifted stacks."""

    def env():
        return stacked(num_envs, (6, 5, 1), channels_first=not transpose, transpose=transpose)

    venv = env()
    args = (400 * num_envs, venv.observation_space, venv.action_space)
    fast, general = (
        ReplayBuffer(*args, device="cpu", n_envs=num_envs, frame_stack=K, seed=0) for _ in range(2)
    )
    assert fast._frame_bytes  # these stacks can take the fast path
    general._plain = False  # never the fast path
    general_adds = 0
    add_general = fast._add_general

    def counted(*step):
        nonlocal general_adds
        general_adds += 1
        return add_general(*step)

    fast._add_general = counted
    rng, seed = np.random.default_rng(0), 0
    stream = sb3_steps(venv, 10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # restarts mid-episode warn
        for action, count in plan:
            if action == "restart":
                seed += 1
                stream = sb3_steps(env(), 10_000, seed)
            for i in range(count):
                step = next(stream)
                if action in ("obs", "next") and i == count - 1:
                    step = _altered(step, rng, action)
                outcomes = []
                for buffer in (fast, general):
                    try:
                        buffer.add(*copy.deepcopy(step))
                        outcomes.append(None)
                    except ValueError as error:
                        outcomes.append(str(error))
                assert outcomes[0] == outcomes[1]
                if outcomes[0] is not None:  # refused: the stream goes on from a good step
                    seed += 1
                    stream = sb3_steps(env(), 10_000, seed)
    assert held_by_ours(fast) == held_by_ours(general)
    assert (fast.pos, fast.full, fast.size()) == (general.pos, general.full, general.size())
    adds = fast.pos + fast.full * fast.buffer_size
    assert adds < 8 or general_adds < adds  # the fast path was taken
