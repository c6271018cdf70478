"""Which stored episodes are complete, read back whole: compared with the naive reference.

The reference (tests/reference.py) keeps every true transition of every sub-env and knows
which ones the ring retains; from those, the complete episodes held are worked out the slow
way and compared with :func:`episode_runs` / :func:`read_episode`, over random runs that wrap
the ring, for single and vector envs in every autoreset mode, on both add paths.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer
from pearll.datasets.stored_episodes import episode_runs, read_episode
from tests.fixtures import MODES, make_env
from tests.reference import ReferenceBuffer, Runner


def expected_episodes(reference: ReferenceBuffer, env: int) -> tuple[list[list], int]:
    """The complete episodes the ring holds for ``env``, and how many are held only in part.

    Held whole: every transition retained, and ended. Once the ring has wrapped, the row before
    the oldest retained transition is the one written last, so an episode starting exactly
    there (with no row to spare in between) cannot be told from a cut one: left out.
    """
    history, capacity = reference.transitions[env], reference.capacity
    retained = reference.retained(env)
    first = len(history) - len(retained)
    ended = [t.done or t.truncated for t in history]
    wrapped = len(history) + sum(ended) >= capacity
    spare = (capacity - 1) - (len(retained) + sum(ended[first:]))
    complete, partial, start = [], 0, 0
    for i in range(len(history)):
        last = i == len(history) - 1
        if not (ended[i] or last):
            continue
        if i >= first:  # some of the episode is held
            whole = ended[i] and start >= first and not (wrapped and start == first and spare == 0)
            if whole:
                complete.append(history[start : i + 1])
            else:
                partial += 1
        start = i + 1
    return complete, partial


def check_against_reference(buffer, reference, num_envs):
    runs = episode_runs(buffer)
    total_partial = 0
    for env in range(num_envs):
        want, partial = expected_episodes(reference, env)
        total_partial += partial
        assert len(runs.rows[env]) == len(want), f"sub-env {env}"
        for rows, transitions in zip(runs.rows[env], want, strict=True):
            episode = read_episode(buffer, env, rows)
            obs = episode.observations
            obs = obs["tag"] if isinstance(obs, dict) else obs
            np.testing.assert_array_equal(obs[:-1], [_tag(t.obs) for t in transitions])
            np.testing.assert_array_equal(obs[-1], _tag(transitions[-1].next_obs))
            np.testing.assert_array_equal(episode.actions[:, 0], [t.action for t in transitions])
            np.testing.assert_array_equal(episode.rewards, [t.reward for t in transitions])
            np.testing.assert_array_equal(episode.terminations, [t.done for t in transitions])
            np.testing.assert_array_equal(episode.truncations, [t.truncated for t in transitions])
    assert runs.left_out == total_partial


def _tag(obs):
    return obs["tag"] if isinstance(obs, dict) else obs


@settings(max_examples=60, deadline=None)
@given(
    num_envs=st.sampled_from([None, 1, 3]),
    mode=st.sampled_from(MODES),
    capacity=st.integers(2, 30),
    adds=st.lists(st.tuples(st.booleans(), st.integers(1, 40)), min_size=1, max_size=6),
    seed=st.integers(0, 1000),
    cls=st.sampled_from([ReplayBuffer, PrioritizedReplayBuffer]),
)
def test_complete_episodes_match_the_reference(num_envs, mode, capacity, adds, seed, cls):
    env = make_env(num_envs, mode)
    buffer = cls(env, capacity, seed=seed)
    reference = ReferenceBuffer(num_envs or 1, capacity, spare_rows=True)
    runner = Runner(env, buffer, reference, seed=seed)
    for batched, steps in adds:
        runner.add_batch(steps) if batched else runner.add(steps)  # both add paths
        check_against_reference(buffer, reference, num_envs or 1)


def test_her_buffer_episodes():
    from pearll.envs import BitFlippingEnv

    env = BitFlippingEnv(n_bits=3)
    buffer = HERBuffer(env, 40, seed=0)
    obs, _ = env.reset(seed=0)
    ended_episodes = 0
    for _ in range(100):
        action = env.action_space.sample()
        next_obs, reward, term, trunc, _ = env.step(action)
        buffer.add_trajectory(obs, action, reward, next_obs, term, trunc)
        obs = next_obs
        if term or trunc:
            ended_episodes += 1
            obs, _ = env.reset()
    runs = episode_runs(buffer)
    assert 0 < runs.complete < ended_episodes  # the ring wrapped: old episodes are gone
    for rows in runs.rows[0]:
        episode = read_episode(buffer, 0, rows)
        ends = episode.terminations | episode.truncations
        assert ends[-1] and not ends[:-1].any()
        # consecutive observations differ by one flipped bit (the env's dynamics)
        bits = episode.observations["observation"]
        assert (np.abs(np.diff(bits.astype(int), axis=0)).sum(axis=1) == 1).all()
