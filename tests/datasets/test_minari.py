"""Minari import and export: every transition comes back exactly, both ways.

Datasets are built locally from numpy arrays (tests/datasets/builders.py) in a temporary
MINARI_DATASETS_PATH; nothing is downloaded.
"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer
from pearll.datasets.minari import MinariExport, import_minari, load_buffer
from pearll.envs import BitFlippingEnv
from tests.datasets.builders import (
    END_KINDS,
    SPACES,
    assert_same_episode,
    assert_tree_equal,
    fresh_id,
    make_dataset,
    random_episode,
    transitions_of,
)

minari = pytest.importorskip("minari", reason="Minari 0.5.4 needs Python >= 3.11")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def buffer_form(values, space):
    """Dataset values as the buffer returns them: a Discrete value gets a trailing axis of 1."""
    if isinstance(space, spaces.Dict):
        return {key: buffer_form(values[key], sub) for key, sub in space.spaces.items()}
    return values[:, None] if isinstance(space, spaces.Discrete) else values


def assert_buffer_holds(buffer, episodes, kind):
    """``buffer.all()`` is every transition of ``episodes``, in order, exactly."""
    obs_space, act_space = SPACES[kind]
    want = transitions_of(episodes)
    got = buffer.all()
    for name in ("observations", "next_observations"):
        assert_tree_equal(getattr(got, name), buffer_form(want[name], obs_space), name)
    assert_tree_equal(got.actions, buffer_form(want["actions"], act_space), "actions")
    assert_tree_equal(got.rewards, want["rewards"][:, None], "rewards")
    assert_tree_equal(got.dones, want["dones"][:, None], "dones")


def mixed_episodes(kind, seed=0, lengths=(3, 1, 5, 2, 4, 6, 2, 1)):
    rng = np.random.default_rng(seed)
    ends = list(END_KINDS)
    return [random_episode(rng, kind, n, ends[i % 4]) for i, n in enumerate(lengths)]


@pytest.mark.parametrize("kind", sorted(SPACES))
@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_dataset_to_buffer_to_dataset(kind, cls):
    episodes = mixed_episodes(kind)
    dataset = make_dataset(fresh_id(), kind, episodes)
    buffer = cls.from_minari(dataset.id, seed=0)
    assert len(buffer) == sum(len(e["rewards"]) for e in episodes)
    assert buffer.buffer_size == dataset.total_steps + dataset.total_episodes + 1
    assert_buffer_holds(buffer, episodes, kind)
    export = buffer.to_minari(fresh_id("back"))
    assert isinstance(export, MinariExport)
    assert (export.n_written, export.n_left_out) == (len(episodes), 0)
    reloaded = minari.load_dataset(export.dataset.id)
    assert reloaded.storage.metadata["jpeg_encoding"] is False
    got = list(reloaded.iterate_episodes())
    assert len(got) == len(episodes)
    for i, (episode, want) in enumerate(zip(got, episodes, strict=True)):
        assert_same_episode(episode, want, f"episode {i}")


def test_neither_flag_episodes_stay_apart():
    # Two episodes ending with neither flag: the first one's final observation is kept and the
    # second starts fresh (no transition joins them), and n-step returns stop at the end.
    episodes = mixed_episodes("box", lengths=(4, 3))
    for e in episodes:
        e["terminations"][:], e["truncations"][:] = False, False
    dataset = make_dataset(fresh_id(), "box", episodes)
    buffer = ReplayBuffer.from_minari(dataset, n_step=10, gamma=1.0, seed=0)
    got = buffer.all()
    np.testing.assert_array_equal(got.next_observations[3], episodes[0]["observations"][4])
    np.testing.assert_array_equal(got.observations[4], episodes[1]["observations"][0])
    np.testing.assert_allclose(got.rewards[0, 0], np.float32(episodes[0]["rewards"]).sum())
    assert not buffer.truncateds.any() and not buffer.dones.any()
    back = buffer.to_minari(fresh_id()).dataset
    for got_episode, want in zip(back.iterate_episodes(), episodes, strict=True):
        assert_same_episode(got_episode, want)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(sorted(SPACES)),
    shape=st.lists(
        st.tuples(st.integers(1, 7), st.sampled_from(sorted(END_KINDS))), min_size=1, max_size=8
    ),
    chunk_steps=st.integers(1, 20),
    seed=st.integers(0, 2**16),
)
def test_round_trip_property(kind, shape, chunk_steps, seed):
    rng = np.random.default_rng(seed)
    episodes = [random_episode(rng, kind, n, end) for n, end in shape]
    dataset = make_dataset(fresh_id(), kind, episodes)
    buffer = load_buffer(ReplayBuffer, dataset, seed=seed, chunk_steps=chunk_steps)
    assert_buffer_holds(buffer, episodes, kind)
    export = buffer.to_minari(fresh_id())
    assert (export.n_written, export.n_left_out) == (len(episodes), 0)
    for got, want in zip(export.dataset.iterate_episodes(), episodes, strict=True):
        assert_same_episode(got, want)


def test_memmap_storage(tmp_path):
    episodes = mixed_episodes("dict")
    dataset = make_dataset(fresh_id(), "dict", episodes)
    buffer = ReplayBuffer.from_minari(dataset, storage="memmap", storage_dir=tmp_path, seed=0)
    assert any(tmp_path.iterdir())
    assert_buffer_holds(buffer, episodes, "dict")


def test_float64_rewards_come_back_float32():
    episodes = mixed_episodes("box")
    episodes[0]["rewards"][:] = 0.1  # not a float32
    buffer = ReplayBuffer.from_minari(make_dataset(fresh_id(), "box", episodes))
    assert buffer.all().rewards.dtype == np.float32
    assert buffer.all().rewards[0, 0] == np.float32(0.1)


def test_progress_bar(capsys):
    dataset = make_dataset(fresh_id(), "box", mixed_episodes("box"))
    ReplayBuffer.from_minari(dataset, progress=True)
    assert f"loading {dataset.id}" in capsys.readouterr().err


def test_env_checked_and_vector_env_gives_single_env_buffer():
    space = gym.spaces.Box(-5.0, 5.0, shape=(3,), dtype=np.float32)

    class Env:
        observation_space, action_space = space, SPACES["box"][1]

    dataset = make_dataset(fresh_id(), "box", mixed_episodes("box"))
    assert ReplayBuffer.from_minari(dataset, env=Env()).num_envs == 1
    vector = gym.vector.SyncVectorEnv([lambda: gym.make("MountainCarContinuous-v0")] * 2)
    with pytest.raises(ValueError, match=r"observation spaces differ: dataset .* the env has Box"):
        ReplayBuffer.from_minari(dataset, env=vector)


def test_her_buffer_from_goal_dataset():
    env = BitFlippingEnv(n_bits=4)
    rng = np.random.default_rng(0)
    episodes = []
    for length in (3, 4, 2):
        goal = rng.integers(0, 2, (1, 4)).astype(env.observation_space["desired_goal"].dtype)
        bits = rng.integers(0, 2, (length + 1, 4)).astype(goal.dtype)
        obs = {
            "observation": bits,
            "achieved_goal": bits.copy(),
            "desired_goal": goal.repeat(length + 1, 0),
        }
        episodes.append({
            "observations": obs, "actions": rng.integers(0, 4, length),
            "rewards": -np.ones(length), "terminations": np.eye(length, dtype=bool)[-1],
            "truncations": np.zeros(length, bool),
        })  # fmt: skip
    from minari.data_collector import EpisodeBuffer

    dataset = minari.create_dataset_from_buffers(
        fresh_id(), [EpisodeBuffer(**e) for e in episodes],
        observation_space=env.observation_space, action_space=env.action_space,
    )  # fmt: skip
    with pytest.raises(ValueError, match="compute_reward= or env="):
        HERBuffer.from_minari(dataset)
    buffer = HERBuffer.from_minari(dataset, env=env, seed=0, n_sampled_goal=4)
    assert len(buffer) == 9
    batch = buffer.sample(64)
    relabelled = int(64 * buffer.relabel_ratio)  # the first ones of the batch
    achieved = batch.next_observations["achieved_goal"][:relabelled]
    goals = batch.observations["desired_goal"][:relabelled]
    np.testing.assert_array_equal(
        batch.rewards[:relabelled, 0], env.compute_reward(achieved, goals, None)
    )
    export = buffer.to_minari(fresh_id())
    for got, want in zip(export.dataset.iterate_episodes(), episodes, strict=True):
        assert_same_episode(got, want)


# --- buffer -> dataset -> buffer ---------------------------------------------------------


@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("dict_obs", [False, True])
def test_buffer_to_dataset_to_buffer(num_envs, dict_obs):
    from tests.fixtures import make_env
    from tests.reference import ReferenceBuffer, Runner

    env = make_env(num_envs, AutoresetMode.NEXT_STEP, dict_obs=dict_obs)
    buffer = ReplayBuffer(env, 500, seed=0)
    reference = ReferenceBuffer(num_envs or 1, 500, spare_rows=True)
    Runner(env, buffer, reference, seed=1).add(60)
    export = buffer.to_minari(fresh_id("online"))
    expected = []  # every ended episode of every sub-env (nothing overwritten at this size)
    for e in range(num_envs or 1):
        episode = []
        for transition in reference.transitions[e]:
            episode.append(transition)
            if transition.done or transition.truncated:
                expected.append(episode)
                episode = []
    assert export.n_written == len(expected) and export.n_left_out <= (num_envs or 1)
    back = ReplayBuffer.from_minari(export.dataset.id, env=env, seed=0)
    got = back.all()
    flat = [t for episode in expected for t in episode]
    assert len(back) == len(flat)
    for i, t in enumerate(flat):
        obs = got.observations if not dict_obs else got.observations["tag"]
        want_obs = t.obs if not dict_obs else t.obs["tag"]
        want_next = t.next_obs if not dict_obs else t.next_obs["tag"]
        nxt = got.next_observations if not dict_obs else got.next_observations["tag"]
        np.testing.assert_array_equal(obs[i], want_obs)
        np.testing.assert_array_equal(nxt[i], want_next)
        assert got.actions[i, 0] == t.action and got.rewards[i, 0] == np.float32(t.reward)
        assert got.dones[i, 0] == float(t.done)
    for episode, want in zip(export.dataset.iterate_episodes(), expected, strict=True):
        assert episode.actions.shape == (len(want),)  # a Discrete action is (T,)
        np.testing.assert_array_equal(episode.truncations, [t.truncated for t in want])
        np.testing.assert_array_equal(episode.terminations, [t.done for t in want])


# --- bad input ---------------------------------------------------------------------------


def test_unknown_id_is_never_downloaded(datasets_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        ReplayBuffer.from_minari("nobody/nothing-v0")
    assert not (datasets_path / "nobody").exists()


def test_empty_dataset():
    dataset = make_dataset(fresh_id(), "box", [])  # Minari's HDF5 cannot hold 0-step episodes
    with pytest.raises(ValueError, match="is empty"):
        ReplayBuffer.from_minari(dataset)


class SpacesEnv:
    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space


def test_mismatched_env_names_both_sides():
    dataset = make_dataset(fresh_id(), "discrete", mixed_episodes("discrete"))
    with pytest.raises(
        ValueError,
        match=r"action spaces differ: dataset .* has Discrete\(4\), the env has Discrete\(2\)",
    ):
        ReplayBuffer.from_minari(dataset, env=SpacesEnv(SPACES["discrete"][0], spaces.Discrete(2)))


def test_flag_before_last_step_is_refused():
    episodes = mixed_episodes("box")
    episodes[2]["terminations"][1] = True
    dataset = make_dataset(fresh_id(), "box", episodes)
    with pytest.raises(ValueError, match=r"episode 2: step 1 of 5 is terminated or truncated"):
        load_buffer(ReplayBuffer, dataset, chunk_steps=1)


def test_values_outside_the_buffer_name_the_episodes():
    episodes = mixed_episodes("discrete")
    episodes[3]["actions"][0] = 9  # Discrete(4)
    dataset = make_dataset(fresh_id(), "discrete", episodes)
    with pytest.raises(ValueError, match=r"episodes 3\.\.3: action: \[9\] outside"):
        load_buffer(ReplayBuffer, dataset, chunk_steps=1)


def test_buffer_size_too_small():
    dataset = make_dataset(fresh_id(), "box", mixed_episodes("box"))
    needed = dataset.total_steps + dataset.total_episodes + 1
    with pytest.raises(ValueError, match=f"needs {needed} rows"):
        ReplayBuffer.from_minari(dataset, buffer_size=needed - 1)
    assert len(ReplayBuffer.from_minari(dataset, buffer_size=needed)) == dataset.total_steps


def test_unsupported_space_names_the_dataset():
    from minari.data_collector import EpisodeBuffer

    space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3)))
    episode = EpisodeBuffer(
        observations=(np.zeros(3, int), np.zeros(3, int)), actions=np.zeros(2, int),
        rewards=np.zeros(2), terminations=np.array([0, 1], bool), truncations=np.zeros(2, bool),
    )  # fmt: skip
    dataset = minari.create_dataset_from_buffers(
        fresh_id(), [episode], observation_space=space, action_space=spaces.Discrete(2)
    )
    with pytest.raises(TypeError, match=r"ReplayBuffer for dataset .*unsupported space Tuple"):
        ReplayBuffer.from_minari(dataset)


@pytest.mark.parametrize("bad_id", ["no-version", "two words-v0", "a/b/-v0", "bad..id-v1"])
def test_malformed_id_creates_no_folder(datasets_path, bad_id):
    buffer = ReplayBuffer.from_minari(make_dataset(fresh_id(), "box", mixed_episodes("box")))
    before = sorted(p.relative_to(datasets_path) for p in datasets_path.rglob("*"))
    with pytest.raises(ValueError, match="expected '\\(namespace/\\)name-v<version>'"):
        buffer.to_minari(bad_id)
    assert sorted(p.relative_to(datasets_path) for p in datasets_path.rglob("*")) == before


def test_existing_id_and_reserved_keywords():
    dataset = make_dataset(fresh_id(), "box", mixed_episodes("box"))
    buffer = ReplayBuffer.from_minari(dataset)
    with pytest.raises(FileExistsError, match="already exists"):
        buffer.to_minari(dataset.id)
    with pytest.raises(ValueError, match="jpeg_encoding"):
        buffer.to_minari(fresh_id(), jpeg_encoding=True)


def test_nothing_complete_to_write(datasets_path):
    buffer = ReplayBuffer(gym.make("CartPole-v1"), 100)
    obs = np.zeros(4, np.float32)
    buffer.add_trajectory(obs, 0, 1.0, obs, False, False)
    with pytest.raises(ValueError, match=r"no complete episode \(1 left out"):
        buffer.to_minari("empty/nothing-v0")
    assert not (datasets_path / "empty").exists()


def test_failed_write_leaves_no_folder(datasets_path, monkeypatch):
    episodes = mixed_episodes("box", lengths=(3,) * 30)
    buffer = ReplayBuffer.from_minari(make_dataset(fresh_id(), "box", episodes))
    import pearll.datasets.minari_write as module

    def broken_batches(*args):
        yield from [next(iter(original(*args)))]
        raise OSError("disk full")

    original = module._episode_buffers
    monkeypatch.setattr(module, "_episode_buffers", broken_batches)
    with pytest.raises(OSError, match="disk full"):
        buffer.to_minari("broken/write-v0")
    assert not (datasets_path / "broken" / "write-v0").exists()


def test_frame_stacked_buffer_is_refused():
    from tests.fixtures import stacked_env

    env = stacked_env(None)
    buffer = ReplayBuffer(env, 50)
    with pytest.raises(ValueError, match="frame_stack=4: only buffers that store whole"):
        buffer.to_minari(fresh_id())
    with pytest.raises(ValueError, match="RolloutBuffer"):
        from pearll.datasets.stored_episodes import episode_runs

        episode_runs(RolloutBuffer(gym.make("CartPole-v1"), 10))


def test_missing_minari_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)
    with pytest.raises(ImportError, match=r"pip install 'pearll\[minari\]'"):
        import_minari()
