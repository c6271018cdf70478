"""Recurrent double DQN (R2D2-style) trained from ``ReplayBuffer.sample_sequences``.

One env, an LSTM Q-network, epsilon-greedy exploration that carries the recurrent state through
each episode. Learning samples windows of ``burn_in + length`` steps (``boundary="pad"``): the
network is unrolled over the burn-in (R2D2's burn-in: no loss there, so the learned steps
start from a warmed-up state; gradients do flow back through it), then over the learned steps,
and the loss is the double-DQN TD error at each learned step that is real (``learn_mask``),
against R2D2's n-step targets (``n_step`` rewards summed inside the window, fewer at its last
real steps, no bootstrap after a termination, a bootstrap from the true final observation
after a truncation). With ``stored_state`` (the default, R2D2's "stored state") the LSTM state
the actor had before each step is stored with it (the extra field :data:`STATE_FIELD`) and a
window is unrolled from the state stored at its first real step, so training sees the states
of long episodes that acting sees (from a zero state, a window of 30 steps knows nothing of an
episode's step 300); else from the zero state. Acting starts each episode from the zero state.
With a PrioritizedReplayBuffer the loss is importance-weighted and the signed TD errors of the
learned steps go back through ``update_priorities`` (sequence priorities).

Its test env: :func:`pearll.envs.cartpole_pomdp.cartpole_no_velocity` (CartPole observed as
cart position and pole angle only, a POMDP).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from pearll.agents.dqn import EpisodeRecord
from pearll.agents.threads import torch_threads


@dataclass(frozen=True)
class R2D2Config:
    """Hyperparameters; the defaults solve CartPole-v1 with the velocities hidden."""

    learning_rate: float = 1e-3
    gamma: float = 0.99
    batch_size: int = 32  # windows per gradient step
    length: int = 20  # learned steps per window
    burn_in: int = 10
    hidden_size: int = 64
    learning_starts: int = 2_000
    train_frequency: int = 4
    target_update_interval: int = 4
    tau: float = 0.02
    epsilon_start: float = 1.0
    epsilon_end: float = 0.01
    exploration_steps: int = 15_000  # epsilon decays linearly over this many env steps
    max_grad_norm: float = 10.0
    n_step: int = 5  # R2D2's n-step targets inside each window (1: one-step double DQN)
    torch_threads: int = 1
    # Unroll windows from the actor's stored LSTM state (the buffer needs the extra field:
    # extra_fields=r2d2_extra_fields(config)); False: from the zero state.
    stored_state: bool = True


STATE_FIELD = "recurrent_state"


def r2d2_extra_fields(config: R2D2Config | None = None) -> dict[str, tuple]:
    """The ``extra_fields`` a buffer for :func:`train_r2d2` declares: with ``stored_state``
    the actor's LSTM state before each step, ``(2 * hidden_size,)`` float32 (h then c)."""
    config = config or R2D2Config()
    return {STATE_FIELD: ((2 * config.hidden_size,), np.float32)} if config.stored_state else {}


class RecurrentQNetwork(nn.Module):
    """An encoder, an LSTM, a linear head: ``(B, T, inputs)`` -> Q ``(B, T, actions)``."""

    def __init__(self, inputs: int, actions: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.encoder = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU())
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, actions)

    def zero_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(1, batch, self.hidden)
        return zeros, zeros.clone()

    def forward(self, x: torch.Tensor, state: tuple | None = None) -> tuple[torch.Tensor, tuple]:
        out, state = self.lstm(self.encoder(x), state)
        return self.head(out), state


@dataclass
class R2D2Result:
    q_network: nn.Module
    episodes: list[EpisodeRecord] = field(default_factory=list)
    env_steps: int = 0


def train_r2d2(
    env: Any,
    buffer: Any,
    total_steps: int,
    config: R2D2Config | None = None,
    seed: int = 0,
    callback: Callable[[EpisodeRecord], bool | None] | None = None,
) -> R2D2Result:
    """Train recurrent double DQN on a single gymnasium ``env`` with Discrete actions.

    ``buffer``: a ReplayBuffer (or PrioritizedReplayBuffer) built for ``env`` with
    ``extra_fields=r2d2_extra_fields(config)``. ``callback`` is called after each finished
    episode; returning True stops training.
    """
    config = config or R2D2Config()
    with torch_threads(config.torch_threads):
        return _train(env, buffer, total_steps, config, seed, callback)


def _train(env, buffer, total_steps, config, seed, callback) -> R2D2Result:
    if hasattr(env, "num_envs") or not isinstance(env.action_space, gym.spaces.Discrete):
        raise ValueError("train_r2d2: expected a single env with a Discrete action space")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    observation, _ = env.reset(seed=seed)
    inputs, actions = int(np.prod(env.observation_space.shape)), int(env.action_space.n)
    online = RecurrentQNetwork(inputs, actions, config.hidden_size)
    target = RecurrentQNetwork(inputs, actions, config.hidden_size)
    target.load_state_dict(online.state_dict())
    optimizer = torch.optim.Adam(online.parameters(), lr=config.learning_rate)
    result = R2D2Result(online)
    stored = bool(config.stored_state)
    state, episode_return = online.zero_state(1), 0.0
    for step in range(1, total_steps + 1):
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(observation, np.float32).reshape(1, 1, -1))
            q, next_state = online(x, state)
            q = q[:, 0]
        progress = min(1.0, step / config.exploration_steps)
        epsilon = config.epsilon_start + progress * (config.epsilon_end - config.epsilon_start)
        if step <= config.learning_starts or rng.random() < epsilon:
            action = int(env.action_space.sample())
        else:
            action = int(q.argmax(dim=1).item())
        next_observation, reward, terminated, truncated, _ = env.step(action)
        extras = {STATE_FIELD: torch.cat(state, dim=2).reshape(-1).numpy()} if stored else {}
        try:
            buffer.add_trajectory(
                observation, action, reward, next_observation, terminated, truncated, **extras
            )
        except (KeyError, TypeError, ValueError) as error:
            if stored and step == 1:
                raise ValueError(
                    "train_r2d2: config.stored_state needs a buffer built with "
                    f"extra_fields=r2d2_extra_fields(config) ({error})"
                ) from error
            raise
        state = next_state
        episode_return += float(reward)
        observation = next_observation
        result.env_steps = step
        if step > config.learning_starts and step % config.train_frequency == 0:
            _gradient_step(online, target, optimizer, buffer, config)
        if step % config.target_update_interval == 0:
            with torch.no_grad():
                for t, o in zip(target.parameters(), online.parameters(), strict=True):
                    t.lerp_(o, config.tau)
        if terminated or truncated:
            record = EpisodeRecord(step, episode_return)
            result.episodes.append(record)
            observation, _ = env.reset()
            state, episode_return = online.zero_state(1), 0.0
            if callback is not None and callback(record):
                break
    return result


def n_step_targets(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    next_values: torch.Tensor,
    real: torch.Tensor,
    gamma: float,
    n: int,
) -> torch.Tensor:
    """R2D2's n-step double-DQN targets of windows whose real steps are ``0 .. real - 1``.

    ``rewards``, ``dones`` (B, T) per step; ``next_values`` (B, T): the bootstrap value after
    step j (the target network's Q of the online network's greedy action at step j + 1);
    ``real`` (B,). Step j sums the rewards of its next ``m = min(n, real - j)`` steps and
    bootstraps after the last of them unless that step terminated (only a window's last real
    step can: a pad window stays in its episode).
    """
    size, steps = rewards.shape
    j = torch.arange(steps)[None, :]
    m = (real[:, None] - j).clamp(min=1, max=n)
    padded = torch.cat([rewards, rewards.new_zeros(size, n)], dim=1)
    returns = rewards.new_zeros(size, steps)
    for i in range(n):
        returns = returns + gamma**i * padded[:, i : i + steps] * (i < m)
    last = (j + m - 1).clamp(max=steps - 1)
    bootstrap = next_values.gather(1, last) * (1 - dones.gather(1, last))
    return returns + gamma**m * bootstrap


def _gradient_step(online, target, optimizer, buffer, config: R2D2Config) -> None:
    burn_in, length = config.burn_in, config.length
    batch = buffer.sample_sequences(config.batch_size, length, burn_in=burn_in, dtype="torch")
    mask = batch.mask
    size, steps = mask.shape
    # A pad window's real steps are one run of its episode; shifted to start at index 0, the
    # LSTM starts from the zero state at the window's first real step.
    shift = burn_in - mask[:, :burn_in].sum(dim=1).long()
    real = mask.sum(dim=1).long()
    index = (torch.arange(steps + 1)[None, :] + shift[:, None]).clamp(max=steps - 1)

    def aligned(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(size, steps, -1)
        return x.gather(1, index[:, :steps, None].expand(-1, -1, x.shape[2]))

    obs = aligned(batch.observations.float())
    next_obs = aligned(batch.next_observations.float())
    # Inputs: the real steps' observations, then the last one's next observation (the true
    # final observation at an episode end), so step j's next state is input j + 1.
    rows = torch.arange(size)
    inputs = torch.cat([obs, torch.zeros_like(obs[:, :1])], dim=1)
    inputs[rows, real] = next_obs[rows, real - 1]
    learn = aligned(batch.learn_mask)[..., 0] * (torch.arange(steps)[None, :] < real[:, None])
    start = None
    if config.stored_state:
        # The actor's state before the window's first real step (aligned index 0).
        first = aligned(batch.extras[STATE_FIELD].float())[:, 0]
        hidden = first.shape[1] // 2
        start = (first[None, :, :hidden].contiguous(), first[None, :, hidden:].contiguous())
    q_online, _ = online(inputs, start)
    with torch.no_grad():
        q_target, _ = target(inputs, start)
        next_actions = q_online[:, 1:].argmax(dim=2, keepdim=True)
        next_values = q_target[:, 1:].gather(2, next_actions).squeeze(2)
        rewards, dones = aligned(batch.rewards)[..., 0], aligned(batch.dones)[..., 0]
        targets = n_step_targets(rewards, dones, next_values, real, config.gamma, config.n_step)
    actions = aligned(batch.actions.long())
    values = q_online[:, :-1].gather(2, actions).squeeze(2)
    losses = nn.functional.smooth_l1_loss(values, targets, reduction="none") * learn
    per_window = losses.sum(dim=1) / learn.sum(dim=1).clamp(min=1)
    if batch.weights is not None:
        per_window = per_window * batch.weights[:, 0]
    optimizer.zero_grad()
    per_window.mean().backward()
    nn.utils.clip_grad_norm_(online.parameters(), config.max_grad_norm)
    optimizer.step()
    if batch.weights is not None:
        # Back to window positions: learned step i of a window is aligned step i + burn.
        td = (values - targets).detach()
        burn = burn_in - shift
        at = (torch.arange(length)[None, :] + burn[:, None]).clamp(max=steps - 1)
        buffer.update_priorities(batch.indices, td.gather(1, at).numpy())
