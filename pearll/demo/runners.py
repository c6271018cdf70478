"""One runner per algorithm: build the env and the buffer, call the trainer, return the log.

A runner is ``(config, reporter) -> RunResult``; :data:`ALGOS` maps each ``--algo`` name to
its runner, defaults and the check of which env spaces it can handle. The trainers themselves
(:mod:`pearll.agents`) are reached only through the ``train_*_agent`` functions below, imported
lazily, so the CLI starts and rejects bad input without loading torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import gymnasium as gym
from gymnasium import spaces

from pearll.buffers import BaseBuffer, ReplayBuffer
from pearll.demo.episodes import Episode
from pearll.demo.progress import ProgressReporter, StepProgress
from pearll.demo.spaces import (
    dqn_space_problem,
    her_space_problem,
    ppo_space_problem,
    r2d2_space_problem,
)

BIT_FLIPPING_ID = "pearll/BitFlipping-v0"
if BIT_FLIPPING_ID not in gym.registry:
    # A string entry point: the env module is imported only when the env is made.
    gym.register(BIT_FLIPPING_ID, entry_point="pearll.envs.bit_flipping:BitFlippingEnv")

CARTPOLE_NO_VELOCITY_ID = "pearll/CartPoleNoVelocity-v1"
if CARTPOLE_NO_VELOCITY_ID not in gym.registry:
    gym.register(
        CARTPOLE_NO_VELOCITY_ID,
        entry_point="pearll.envs.cartpole_pomdp:cartpole_no_velocity",
        reward_threshold=475.0,
    )

N_STEP_GAMMA = 0.99  # discount of n-step returns in the buffer; must equal the DQN trainer's
PPO_NUM_ENVS = 4


@dataclass(frozen=True)
class RunConfig:
    """What to run, every default already filled in (see :func:`pearll.demo.cli.run_config`).

    ``buffer``: ``"replay"`` or ``"prioritized"`` for algorithms that take a replay buffer,
    None for those that bring their own. ``n_step``: 1 means one-step returns.
    ``buffer_size``: rows per sub-env; None when the trainer sizes its own buffer.
    ``stop_at``: a return at which the run counts as solved and stops early (None: never).
    """

    algo: str
    env_id: str
    steps: int
    seed: int
    buffer: str | None
    n_step: int
    buffer_size: int | None
    stop_at: float | None = None  # stop once the mean return of the last 20 episodes reaches it


@dataclass(frozen=True)
class RunResult:
    """A finished run: its episode log, env steps taken, and the buffer it trained on.

    ``buffer`` is None when the trainer keeps its buffer to itself.
    """

    episodes: list[Episode]
    env_steps: int
    buffer: BaseBuffer | None


Runner = Callable[[RunConfig, ProgressReporter], RunResult]
EpisodeCallback = Callable[..., None]  # (env_steps, episode_return[, success]) -> None
SpaceCheck = Callable[[spaces.Space, spaces.Space], "str | None"]


# --- Trainer connections: the only code that knows the trainers' signatures. ---------------


def train_dqn_agent(
    env: gym.Env, buffer: BaseBuffer, config: RunConfig, on_episode: EpisodeCallback
) -> int:
    """Double DQN (:mod:`pearll.agents.dqn`) on ``env``, storing into ``buffer``.

    Returns the env steps taken.
    """
    from pearll.agents.dqn import train_dqn

    returns: list[float] = []

    def episode_ended(record) -> bool:
        on_episode(record.env_steps, record.episode_return, record.success)
        returns.append(record.episode_return)
        return solved(returns, config.stop_at)

    result = train_dqn(env, buffer, config.steps, seed=config.seed, callback=episode_ended)
    return result.env_steps


def solved(returns: list[float], stop_at: float | None, window: int = 20) -> bool:
    """Whether the mean of the last ``window`` returns has reached ``stop_at``."""
    recent = returns[-window:]
    return stop_at is not None and len(recent) == window and sum(recent) / window >= stop_at


def train_ppo_agent(
    config: RunConfig, on_episode: EpisodeCallback
) -> tuple[int, BaseBuffer | None]:
    """PPO (:mod:`pearll.agents.ppo`) on ``PPO_NUM_ENVS`` sub-envs of ``config.env_id``.

    Returns the env steps taken (over all sub-envs) and the RolloutBuffer it trained on.
    """
    from pearll.agents.ppo import train_ppo

    result = train_ppo(
        config.env_id, config.steps, seed=config.seed, num_envs=PPO_NUM_ENVS,
        callback=on_episode, target_return=config.stop_at,
    )  # fmt: skip
    return result.env_steps, result.buffer


def train_r2d2_agent(
    env: gym.Env, buffer: BaseBuffer, config: RunConfig, on_episode: EpisodeCallback
) -> int:
    """Recurrent double DQN (:mod:`pearll.agents.r2d2`) on ``env``; returns the env steps."""
    from pearll.agents.r2d2 import train_r2d2

    returns: list[float] = []

    def episode_ended(record) -> bool:
        on_episode(record.env_steps, record.episode_return, record.success)
        returns.append(record.episode_return)
        return solved(returns, config.stop_at)

    result = train_r2d2(env, buffer, config.steps, seed=config.seed, callback=episode_ended)
    return result.env_steps


# --- Buffers. -------------------------------------------------------------------------------


def make_replay_buffer(
    env: gym.Env, config: RunConfig, extra_fields: dict | None = None
) -> BaseBuffer:
    """``ReplayBuffer`` or ``PrioritizedReplayBuffer`` per ``config.buffer``, n-step if asked,
    declaring ``extra_fields`` (if given)."""
    kwargs = {} if config.n_step == 1 else {"n_step": config.n_step, "gamma": N_STEP_GAMMA}
    if extra_fields:
        kwargs["extra_fields"] = extra_fields
    if config.buffer == "prioritized":
        from pearll.buffers import PrioritizedReplayBuffer

        return PrioritizedReplayBuffer(env, config.buffer_size, seed=config.seed, **kwargs)
    return ReplayBuffer(env, config.buffer_size, seed=config.seed, **kwargs)


def make_her_buffer(env: gym.Env, config: RunConfig) -> BaseBuffer:
    """A ``HERBuffer`` relabelling with the default ("future") goal strategy."""
    from pearll.buffers import HERBuffer

    return HERBuffer(env, config.buffer_size, seed=config.seed)


# --- Warm-up. -------------------------------------------------------------------------------

WARM_UP_STEPS = 8


def warm_up(config: RunConfig) -> None:
    """Do before the progress bar starts what the first training step would otherwise do:
    import the trainer (torch) and compile the kernels the run's buffer uses (numba caches
    them on disk, so only a first run compiles), on a tiny buffer of the same kind."""
    trainer = "pearll.agents.ppo" if config.algo == "ppo" else "pearll.agents.dqn"
    importlib.import_module(trainer)
    env = gym.make(config.env_id)
    try:
        if config.algo == "ppo":
            from pearll.buffers import RolloutBuffer

            buffer = RolloutBuffer(env, WARM_UP_STEPS)
        else:
            make = make_her_buffer if config.algo == "her" else make_replay_buffer
            buffer = make(env, replace(config, buffer_size=WARM_UP_STEPS))
        obs, _ = env.reset(seed=config.seed)
        for _ in range(WARM_UP_STEPS):
            action = env.action_space.sample()
            next_obs, reward, terminated, truncated, _ = env.step(action)
            buffer.add_trajectory(obs, action, reward, next_obs, terminated, truncated)
            obs = env.reset()[0] if terminated or truncated else next_obs
        buffer.sample(2)
    finally:
        env.close()


# --- Runners. -------------------------------------------------------------------------------


def run_dqn(config: RunConfig, reporter: ProgressReporter) -> RunResult:
    return _run_dqn_on(make_replay_buffer, config, reporter)


def run_her(config: RunConfig, reporter: ProgressReporter) -> RunResult:
    return _run_dqn_on(make_her_buffer, config, reporter)


def _run_dqn_on(
    make_buffer: Callable[[gym.Env, RunConfig], BaseBuffer],
    config: RunConfig,
    reporter: ProgressReporter,
) -> RunResult:
    # The trainer calls back once per episode; the wrapper moves the bar at every step too.
    env = StepProgress(gym.make(config.env_id), reporter)
    try:
        buffer = make_buffer(env, config)
        env_steps = train_dqn_agent(env, buffer, config, reporter.episode)
    finally:
        env.close()
    return RunResult(list(reporter.episodes), env_steps, buffer)


def run_r2d2(config: RunConfig, reporter: ProgressReporter) -> RunResult:
    from pearll.agents.r2d2 import r2d2_extra_fields

    env = StepProgress(gym.make(config.env_id), reporter)
    try:
        # The actor's LSTM state is stored with each step (R2D2's stored state).
        buffer = make_replay_buffer(env, config, r2d2_extra_fields())
        env_steps = train_r2d2_agent(env, buffer, config, reporter.episode)
    finally:
        env.close()
    return RunResult(list(reporter.episodes), env_steps, buffer)


def run_ppo(config: RunConfig, reporter: ProgressReporter) -> RunResult:
    env_steps, buffer = train_ppo_agent(config, reporter.episode)
    return RunResult(list(reporter.episodes), env_steps, buffer)


# --- What each algorithm can handle. --------------------------------------------------------


@dataclass(frozen=True)
class Algo:
    """An ``--algo`` choice: its runner, defaults, and what it can train on.

    ``buffers``: the ``--buffer`` values it takes, its default first; empty when it brings its
    own buffer. ``default_buffer_size``: None when the trainer sizes its own buffer.
    ``n_step``: whether it takes ``--n-step``.
    """

    run: Runner
    help: str
    default_env: str
    default_steps: int
    default_buffer_size: int | None
    space_problem: SpaceCheck
    buffers: tuple[str, ...] = ()
    n_step: bool = False


BUFFERS = ("replay", "prioritized")

ALGOS: dict[str, Algo] = {
    "dqn": Algo(
        run_dqn,
        "double DQN with a target network on a ReplayBuffer (or PrioritizedReplayBuffer)",
        default_env="CartPole-v1",
        default_steps=100_000,
        default_buffer_size=50_000,
        space_problem=dqn_space_problem,
        buffers=BUFFERS,
        n_step=True,
    ),
    "ppo": Algo(
        run_ppo,
        f"PPO with GAE on a RolloutBuffer over {PPO_NUM_ENVS} sub-envs",
        default_env="CartPole-v1",
        default_steps=200_000,
        default_buffer_size=None,
        space_problem=ppo_space_problem,
    ),
    "r2d2": Algo(
        run_r2d2,
        "recurrent double DQN (LSTM, burn-in) on ReplayBuffer.sample_sequences",
        default_env=CARTPOLE_NO_VELOCITY_ID,
        default_steps=150_000,
        default_buffer_size=100_000,
        space_problem=r2d2_space_problem,
        buffers=BUFFERS,
    ),
    "her": Algo(
        run_her,
        "double DQN on a HERBuffer (hindsight goal relabelling) for goal envs",
        default_env=BIT_FLIPPING_ID,
        default_steps=30_000,
        default_buffer_size=50_000,
        space_problem=her_space_problem,
    ),
}
