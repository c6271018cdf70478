"""Double DQN with a target network, trained from any pearll replay buffer.

One env, one Q-network (a torch MLP), epsilon-greedy exploration; read top to bottom. The buffer
is used only through ``add_trajectory`` and ``sample``, so ReplayBuffer and its subclasses all
work. Fields the batch may carry are used when present: ``discounts`` (n-step returns replace
``gamma`` by ``gamma ** k``), ``weights`` and ``indices`` (prioritized replay: the loss is
importance-weighted and ``buffer.update_priorities`` gets the new TD errors).

Goal envs (Dict observations with ``"observation"`` and ``"desired_goal"``, e.g. with a
HERBuffer) feed the network the concatenation of the observation and the desired goal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from pearll.agents.threads import torch_threads


@dataclass(frozen=True)
class DQNConfig:
    """Hyperparameters; the defaults solve CartPole-v1. Intervals count env steps."""

    learning_rate: float = 1e-3
    gamma: float = 0.99
    batch_size: int = 128
    hidden_sizes: tuple[int, ...] = (128, 128)
    learning_starts: int = 1_000  # random actions and no learning before this step
    train_frequency: int = 4  # env steps between rounds of gradient steps
    gradient_steps: int = 1  # gradient steps per round
    target_update_interval: int = 4  # env steps between target network updates
    tau: float = 0.02  # 1: copy the online network; < 1: Polyak averaging at each update
    epsilon_start: float = 1.0
    epsilon_end: float = 0.02
    exploration_fraction: float = 0.1  # epsilon decays linearly over this share of total_steps
    max_grad_norm: float = 10.0
    torch_threads: int = 1  # see pearll.agents.threads


@dataclass
class EpisodeRecord:
    """One finished episode: env steps taken so far, its undiscounted return, its success.

    ``success`` is the last step's ``info["is_success"]`` (goal envs), None when absent.
    """

    env_steps: int
    episode_return: float
    success: bool | None = None


@dataclass
class DQNResult:
    """The trained online network and the log of every training episode."""

    q_network: nn.Module
    episodes: list[EpisodeRecord] = field(default_factory=list)
    env_steps: int = 0


def policy_input(observation: Any, batch_dims: int = 0) -> np.ndarray:
    """The network input, float32 ``(*batch, features)``.

    An array observation is flattened after its ``batch_dims`` leading axes; a goal-env dict
    gives ``observation`` and ``desired_goal`` concatenated.
    """
    if isinstance(observation, dict):
        if "desired_goal" not in observation:
            raise ValueError(
                "DQN takes array observations or goal-env dicts with 'observation' and "
                f"'desired_goal'; got a dict with keys {sorted(observation)}"
            )
        parts = [observation["observation"], observation["desired_goal"]]
    else:
        parts = [observation]
    parts = [np.asarray(p, dtype=np.float32) for p in parts]
    lead = parts[0].shape[:batch_dims]
    return np.concatenate([p.reshape(*lead, -1) for p in parts], axis=-1)


def make_q_network(input_size: int, num_actions: int, hidden_sizes: tuple[int, ...]) -> nn.Module:
    """An MLP with ReLU hidden layers: ``(B, input_size)`` -> ``(B, num_actions)`` Q-values."""
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [nn.Linear(input_size, size), nn.ReLU()]
        input_size = size
    layers.append(nn.Linear(input_size, num_actions))
    return nn.Sequential(*layers)


def train_dqn(
    env: Any,
    buffer: Any,
    total_steps: int,
    config: DQNConfig | None = None,
    seed: int = 0,
    callback: Callable[[EpisodeRecord], bool | None] | None = None,
) -> DQNResult:
    """Train double DQN on a single gymnasium ``env`` with a Discrete action space.

    ``buffer`` is a replay buffer built for ``env``; every step goes into it, terminated and
    truncated apart. ``callback`` is called after each finished episode; returning True stops
    training early. Returns the online network and the episode log.
    """
    config = config or DQNConfig()
    with torch_threads(config.torch_threads):
        return _train(env, buffer, total_steps, config, seed, callback)


def _train(
    env: Any,
    buffer: Any,
    total_steps: int,
    config: DQNConfig,
    seed: int,
    callback: Callable[[EpisodeRecord], bool | None] | None,
) -> DQNResult:
    _check_setup(env, buffer, total_steps)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    observation, _ = env.reset(seed=seed)
    q_network = make_q_network(
        policy_input(observation).size, int(env.action_space.n), config.hidden_sizes
    )
    target_network = make_q_network(
        policy_input(observation).size, int(env.action_space.n), config.hidden_sizes
    )
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=config.learning_rate)
    result = DQNResult(q_network)
    episode_return = 0.0

    for step in range(1, total_steps + 1):
        epsilon = _epsilon(config, step, total_steps)
        if step <= config.learning_starts or rng.random() < epsilon:
            action = int(env.action_space.sample())
        else:
            action = greedy_action(q_network, observation)
        next_observation, reward, terminated, truncated, info = env.step(action)
        buffer.add_trajectory(observation, action, reward, next_observation, terminated, truncated)
        episode_return += float(reward)
        observation = next_observation
        result.env_steps = step

        if step > config.learning_starts and step % config.train_frequency == 0:
            for _ in range(config.gradient_steps):
                _gradient_step(q_network, target_network, optimizer, buffer, config)
        if step % config.target_update_interval == 0:
            _update_target(q_network, target_network, config.tau)

        if terminated or truncated:
            success = info.get("is_success")
            record = EpisodeRecord(step, episode_return, None if success is None else bool(success))
            result.episodes.append(record)
            observation, _ = env.reset()
            episode_return = 0.0
            if callback is not None and callback(record):
                break
    return result


def greedy_action(q_network: nn.Module, observation: Any) -> int:
    """The action of highest Q-value for one observation."""
    with torch.no_grad():
        q_values = q_network(torch.as_tensor(policy_input(observation)[None]))
    return int(q_values.argmax(dim=1).item())


def evaluate_dqn(
    env: Any, q_network: nn.Module, episodes: int, seed: int = 0
) -> list[EpisodeRecord]:
    """Run ``episodes`` greedy episodes; ``env_steps`` counts the evaluation's own steps."""
    records, steps = [], 0
    for i in range(episodes):
        observation, _ = env.reset(seed=seed + i)
        done, episode_return, info = False, 0.0, {}
        while not done:
            observation, reward, terminated, truncated, info = env.step(
                greedy_action(q_network, observation)
            )
            episode_return += float(reward)
            steps += 1
            done = terminated or truncated
        success = info.get("is_success")
        records.append(
            EpisodeRecord(steps, episode_return, None if success is None else bool(success))
        )
    return records


def _gradient_step(
    q_network: nn.Module,
    target_network: nn.Module,
    optimizer: torch.optim.Optimizer,
    buffer: Any,
    config: DQNConfig,
) -> None:
    batch = buffer.sample(config.batch_size)
    observations = torch.as_tensor(policy_input(batch.observations, batch_dims=1))
    next_observations = torch.as_tensor(policy_input(batch.next_observations, batch_dims=1))
    actions = torch.as_tensor(batch.actions, dtype=torch.int64).reshape(-1, 1)
    rewards = torch.as_tensor(batch.rewards).reshape(-1, 1)
    not_done = 1.0 - torch.as_tensor(batch.dones).reshape(-1, 1)
    discounts = getattr(batch, "discounts", None)
    discounts = config.gamma if discounts is None else torch.as_tensor(discounts).reshape(-1, 1)
    with torch.no_grad():
        # Double DQN: the online network picks the next action, the target network values it.
        next_actions = q_network(next_observations).argmax(dim=1, keepdim=True)
        next_values = target_network(next_observations).gather(1, next_actions)
        targets = rewards + discounts * not_done * next_values
    values = q_network(observations).gather(1, actions)
    losses = nn.functional.smooth_l1_loss(values, targets, reduction="none")
    weights = getattr(batch, "weights", None)
    if weights is not None:
        losses = losses * torch.as_tensor(weights).reshape(-1, 1)
    optimizer.zero_grad()
    losses.mean().backward()
    nn.utils.clip_grad_norm_(q_network.parameters(), config.max_grad_norm)
    optimizer.step()
    indices = getattr(batch, "indices", None)
    if indices is not None and hasattr(buffer, "update_priorities"):
        td_errors = (targets - values.detach()).abs().reshape(np.shape(indices))
        buffer.update_priorities(indices, td_errors.numpy() + 1e-6)


def _update_target(q_network: nn.Module, target_network: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for target, online in zip(target_network.parameters(), q_network.parameters(), strict=True):
            target.lerp_(online, tau)


def _epsilon(config: DQNConfig, step: int, total_steps: int) -> float:
    decay_steps = max(1.0, config.exploration_fraction * total_steps)
    progress = min(1.0, step / decay_steps)
    return config.epsilon_start + progress * (config.epsilon_end - config.epsilon_start)


def _check_setup(env: Any, buffer: Any, total_steps: int) -> None:
    if hasattr(env, "num_envs"):
        raise ValueError("train_dqn: expected a single gymnasium Env, got a vector env")
    if not isinstance(env.action_space, spaces.Discrete):
        raise ValueError(f"DQN needs a Discrete action space, got {env.action_space}")
    if getattr(getattr(buffer, "env_info", None), "is_vector", False):
        raise ValueError("train_dqn: the buffer was built for a vector env; build it for env")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps: expected a positive int, got {total_steps!r}")
