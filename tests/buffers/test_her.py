"""HERBuffer against a reference: relabelled goals, rewards and ratio, on every kind of env."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import SyncVectorEnv
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers import HERBuffer, ReplayBuffer
from pearll.common.enumerations import GoalSelectionStrategy
from pearll.envs import BitFlippingEnv
from tests.fixtures import MODES, TaggedEnv
from tests.reference import ReferenceBuffer, Runner

NO_GOAL = np.array([-1.0, -1.0, -1.0], dtype=np.float32)


class GoalTaggedEnv(TaggedEnv):
    """TaggedEnv as a goal env: the achieved goal is ``[tag, episode, step]``, so a relabelled
    goal says by value which step of which episode it came from. The desired goal is NO_GOAL,
    which no step achieves; the reward is minus the L1 distance between the goals."""

    def __init__(self, tag: int = 0, max_len: int = 6, **kwargs: Any) -> None:
        super().__init__(tag, max_len, **kwargs)
        box = spaces.Box(-1e9, 1e9, shape=(3,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {"observation": box, "achieved_goal": box, "desired_goal": box}
        )

    def _obs(self) -> dict[str, np.ndarray]:
        tagged = np.array([self.tag, self.episode, self.t], dtype=np.float32)
        return {"observation": tagged, "achieved_goal": tagged.copy(), "desired_goal": NO_GOAL}

    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        reward = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"], {}))
        return obs, reward, terminated, truncated, info

    def compute_reward(self, achieved_goal, desired_goal, info):
        assert len(np.shape(achieved_goal)) == 1 or len(info) == len(achieved_goal)
        return -np.abs(np.asarray(achieved_goal) - np.asarray(desired_goal)).sum(axis=-1)


def goal_env(num_envs: int | None, mode: Any = None, max_len: int = 6) -> Any:
    if num_envs is None:
        return GoalTaggedEnv(max_len=max_len)
    fns = [(lambda i=i: GoalTaggedEnv(tag=i, max_len=max_len)) for i in range(num_envs)]
    return SyncVectorEnv(fns, autoreset_mode=mode)


def filled(num_envs, mode, capacity, steps, max_len=6, seed=0, chunk=1, **her_kwargs):
    """A HERBuffer and its reference after ``steps`` env steps with random actions, added
    ``chunk`` steps at a time (``add_batch_trajectories`` when ``chunk > 1``)."""
    env = goal_env(num_envs, mode, max_len)
    buffer = HERBuffer(env, capacity, seed=seed, **her_kwargs)
    reference = ReferenceBuffer(num_envs or 1, capacity, spare_rows=True)
    runner = Runner(env, buffer, reference, seed=seed)
    if chunk == 1:
        runner.add(steps)
    for start in range(0, steps if chunk > 1 else 0, chunk):
        batch = [runner.step() for _ in range(min(chunk, steps - start))]
        stacked = [_stack([step[i] for step in batch]) for i in range(6)]
        buffer.add_batch_trajectories(*stacked, infos=[step[6] for step in batch])
    return buffer, reference


def _stack(values: list) -> Any:
    if isinstance(values[0], dict):
        return {k: _stack([v[k] for v in values]) for k in values[0]}
    return np.stack([np.asarray(v) for v in values])


def allowed_steps(strategy: GoalSelectionStrategy, t: int, first_held: int, last: int) -> range:
    """Steps whose achieved goal may relabel the transition at step ``t`` (see the enum doc)."""
    if strategy is GoalSelectionStrategy.FINAL:
        return range(last, last + 1)
    if strategy is GoalSelectionStrategy.FUTURE:
        return range(t + 1, last + 1)
    return range(max(1, first_held), last + 1)


def check_sample(buffer: HERBuffer, reference: ReferenceBuffer, batch_size: int) -> list:
    """Every sampled transition is a retained one, relabelled as the strategy says.

    Returns ``(allowed steps, goal step)`` of every relabelled transition.
    """
    batch = buffer.sample(batch_size)
    relabels = []
    n_relabelled = int(batch_size * buffer.n_sampled_goal // (buffer.n_sampled_goal + 1))
    for env in range(buffer.num_envs):
        retained = {_key(t.obs): t for t in reference.retained(env)}
        last_step, first_held = defaultdict(int), defaultdict(lambda: 10**9)
        for t in reference.transitions[env]:
            episode = _key(t.obs)[0]
            last_step[episode] = max(last_step[episode], _key(t.next_obs)[1])
        for key in retained:
            first_held[key[0]] = min(first_held[key[0]], key[1])
        obs, next_obs = (
            _env_part(batch.observations, buffer, env),
            _env_part(batch.next_observations, buffer, env),
        )
        rewards = _env_part(batch.rewards, buffer, env)
        for i in range(batch_size):
            tag, episode, t = obs["observation"][i].astype(int)
            assert tag == env and (episode, t) in retained
            stored = retained[(episode, t)]
            assert np.array_equal(next_obs["observation"][i], stored.next_obs["observation"])
            goal = obs["desired_goal"][i]
            assert np.array_equal(next_obs["desired_goal"][i], goal)
            if i >= n_relabelled:
                assert np.array_equal(goal, NO_GOAL) and rewards[i, 0] == stored.reward
                continue
            assert goal[0] == env and goal[1] == episode, "goal from another episode"
            steps = allowed_steps(
                buffer.goal_selection_strategy, int(t), first_held[episode], last_step[episode]
            )
            assert int(goal[2]) in steps, f"step {goal[2]} for t={t}, expected one of {steps}"
            want = -np.abs(next_obs["achieved_goal"][i] - goal).sum()
            assert rewards[i, 0] == np.float32(want)
            relabels.append((steps, int(goal[2])))
    return relabels


def _key(obs: Any) -> tuple[int, int]:
    return (int(obs["observation"][1]), int(obs["observation"][2]))


def _env_part(tree: Any, buffer: HERBuffer, env: int) -> Any:
    if isinstance(tree, dict):
        return {k: _env_part(v, buffer, env) for k, v in tree.items()}
    return tree[env] if buffer.env_info.is_vector else tree


@settings(max_examples=60, deadline=None)
@given(
    num_envs=st.sampled_from([None, 1, 3]),
    mode=st.sampled_from(MODES),
    strategy=st.sampled_from(list(GoalSelectionStrategy)),
    n_sampled_goal=st.integers(0, 5),
    capacity=st.integers(3, 16),
    max_len=st.integers(1, 12),
    steps=st.integers(1, 60),
    batch_size=st.integers(1, 24),
    seed=st.integers(0, 2**16),
    chunk=st.sampled_from([1, 1, 7, 40]),
)
def test_samples_relabel_from_own_episode_as_reference_says(
    num_envs, mode, strategy, n_sampled_goal, capacity, max_len, steps, batch_size, seed, chunk
):
    buffer, reference = filled(
        num_envs, mode, capacity, steps, max_len, seed, chunk,
        goal_selection_strategy=strategy, n_sampled_goal=n_sampled_goal,
    )  # fmt: skip
    if min(len(reference.retained(e)) for e in range(num_envs or 1)) == 0:
        return
    check_sample(buffer, reference, batch_size)


@pytest.mark.parametrize("strategy", ["future", "episode"])
def test_goal_steps_are_uniform_over_their_range(strategy):
    buffer, reference = filled(None, None, 40, 200, max_len=10, goal_selection_strategy=strategy)
    by_width = defaultdict(lambda: defaultdict(int))
    for steps, goal_step in check_sample(buffer, reference, 5000):
        by_width[len(steps)][goal_step - steps.start] += 1
    for width, counts in by_width.items():
        total = sum(counts.values())
        if width < 2 or total < 200:
            continue
        expected = total / width
        assert set(counts) == set(range(width))
        worst = max(abs(c - expected) for c in counts.values())
        assert worst < 5 * np.sqrt(expected), (width, dict(counts))


def test_relabel_ratio_is_k_over_k_plus_one():
    buffer, _ = filled(3, MODES[0], 30, 50, n_sampled_goal=3)
    batch = buffer.sample(40)
    relabelled = batch.observations["desired_goal"][..., 0] >= 0
    assert relabelled.shape == (3, 40)
    assert (relabelled.sum(axis=1) == 30).all() and relabelled[:, :30].all()


def test_no_relabelling_with_zero_sampled_goals():
    buffer, _ = filled(None, None, 30, 50, n_sampled_goal=0)
    assert (buffer.sample(64).observations["desired_goal"] == NO_GOAL).all()


def test_sampling_never_writes_storage():
    buffer, _ = filled(3, MODES[1], 12, 40)
    before = {k: v.copy() for k, v in buffer.observations.items()}
    rewards = buffer.rewards.copy()
    for _ in range(5):
        buffer.sample(32)
    assert all(np.array_equal(before[k], buffer.observations[k]) for k in before)
    assert np.array_equal(rewards, buffer.rewards)


def test_output_shapes_and_torch():
    torch = pytest.importorskip("torch")
    buffer, _ = filled(3, MODES[0], 20, 30)
    flat = buffer.sample(8, flatten_env=True, dtype="torch")
    assert isinstance(flat.observations["desired_goal"], torch.Tensor)
    assert flat.observations["desired_goal"].shape == (8, 3)  # B in all, over every sub-env
    assert flat.rewards.shape == (8, 1) and flat.dones.shape == (8, 1)
    assert type(flat).__name__ == "DictTrajectories"


def test_reset_forgets_episodes():
    buffer, _ = filled(None, None, 10, 30)
    buffer.reset()
    with pytest.raises(RuntimeError, match="no transition"):
        buffer.sample(4)
    reference = ReferenceBuffer(1, 10, spare_rows=True)
    Runner(GoalTaggedEnv(), buffer, reference, seed=5).add(25)
    check_sample(buffer, reference, 16)


def test_bit_flipping_rewards_recomputed_with_env_function():
    env = BitFlippingEnv(4)
    buffer = HERBuffer(env, 100, "final", seed=0)
    obs, _ = env.reset(seed=0)
    for _ in range(60):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add_trajectory(obs, action, reward, next_obs, terminated, truncated)
        obs = next_obs if not (terminated or truncated) else env.reset()[0]
    batch = buffer.sample(50)
    want = env.compute_reward(
        batch.next_observations["achieved_goal"], batch.next_observations["desired_goal"], {}
    )
    assert np.array_equal(batch.rewards[:, 0], want)
    assert batch.observations["desired_goal"].dtype == np.int8


def test_default_compute_reward_of_a_vector_env_without_sub_envs():
    calls = []

    class RemoteVectorEnv:  # what AsyncVectorEnv offers: call() but no .envs
        num_envs = 2
        observation_space = single_observation_space = GoalTaggedEnv().observation_space
        action_space = single_action_space = spaces.Discrete(3)
        metadata: ClassVar[dict] = {"autoreset_mode": "same_step"}

        def call(self, name, *args):
            calls.append(name)
            return tuple(getattr(GoalTaggedEnv(), name)(*args) for _ in range(2))

    buffer = HERBuffer(RemoteVectorEnv(), 10, seed=0)
    obs = {k: np.zeros((2, 3), np.float32) for k in ("observation", "achieved_goal")}
    obs["desired_goal"] = np.tile(NO_GOAL, (2, 1))
    buffer.add_trajectory(obs, np.zeros(2, int), np.zeros(2), obs, np.zeros(2, bool))
    buffer.sample(5)
    # Only attributes known to exist are read in workers: has_wrapper_attr asks first.
    assert calls.count("compute_reward") == 1 and set(calls) == {
        "has_wrapper_attr",
        "compute_reward",
    }


class NoGoalEnv(gym.Env):
    observation_space = spaces.Dict({"observation": spaces.Box(0, 1, (2,))})
    action_space = spaces.Discrete(2)


class NoRewardFunctionEnv(GoalTaggedEnv):
    compute_reward = None


@pytest.mark.parametrize(
    ("make", "kwargs", "error", "match"),
    [
        (NoGoalEnv, {}, ValueError, "goal env"),
        (lambda: gym.make("CartPole-v1"), {}, ValueError, "goal env"),
        (NoRewardFunctionEnv, {}, ValueError, "compute_reward"),
        (GoalTaggedEnv, {"goal_selection_strategy": "past"}, ValueError, "'future'"),
        (GoalTaggedEnv, {"n_sampled_goal": -1}, ValueError, ">= 0"),
        (GoalTaggedEnv, {"n_sampled_goal": 2.0}, TypeError, "int"),
        (GoalTaggedEnv, {"compute_reward": 3}, TypeError, "callable"),
        (GoalTaggedEnv, {"buffer_size": 1}, ValueError, ">= 3"),
    ],
)
def test_bad_construction_says_what_was_expected(make, kwargs, error, match):
    kwargs = {"buffer_size": 10, **kwargs}
    with pytest.raises(error, match=match):
        HERBuffer(make(), **kwargs)


def test_strategy_accepts_any_case():
    assert HERBuffer(GoalTaggedEnv(), 4, "FINAL").goal_selection_strategy.value == "final"


def test_unvectorised_compute_reward_is_reported():
    buffer, _ = filled(None, None, 10, 20, compute_reward=lambda a, d, info: 0.0)
    with pytest.raises(ValueError, match="vectorised"):
        buffer.sample(8)


def test_bad_add_leaves_episode_bookkeeping_unchanged():
    buffer, reference = filled(None, None, 10, 20)
    obs = GoalTaggedEnv().reset()[0]
    with pytest.raises(ValueError):
        buffer.add_trajectory(obs, 7, 0.0, obs, False)  # action outside Discrete(3)
    check_sample(buffer, reference, 16)


def test_memory_is_replay_memory_plus_episode_index():
    env = goal_env(3, MODES[0])
    her, replay = HERBuffer(env, 50), ReplayBuffer(env, 50)
    assert her.nbytes == replay.nbytes + 2 * 50 * 3 * 8  # episode ids and final rows, int64
