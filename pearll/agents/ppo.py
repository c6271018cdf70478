"""PPO (clipped objective) for discrete-action gymnasium envs, on pearll's RolloutBuffer.

One module that reads top to bottom, CleanRL style: an actor-critic MLP, a loop that collects a
rollout from a vector env into a :class:`~pearll.buffers.RolloutBuffer`, GAE computed by the
buffer, and shuffled minibatch epochs of the clipped surrogate loss. No printing or plotting:
progress goes to an optional per-episode callback, results come back in :class:`PPOResult`.

What the buffer does for us: the vector env autoresets (NEXT_STEP), and the buffer drops the
reset steps itself, so every stored step is a true transition; a time-limit truncation keeps
its true final observation in ``next_observations``, and ``compute_advantages`` bootstraps
from its value instead of treating the time limit as a terminal state.

Needs torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from pearll.agents import threads
from pearll.buffers import RolloutBuffer


@dataclass
class PPOConfig:
    """Hyperparameters (CleanRL's classic-control defaults unless noted)."""

    num_steps: int = 128  # steps per sub-env in each rollout
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True  # linearly to 0 over total_steps
    gamma: float = 0.99
    gae_lambda: float = 0.95
    epochs: int = 4  # passes over each rollout
    minibatch_size: int = 128
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64
    # Threads torch may use while training (restored after). For MLPs this small, extra threads
    # only add synchronisation; on a busy 2-core machine 2 threads ran 30x slower than 1.
    torch_threads: int = 1


class ActorCritic(nn.Module):
    """Two tanh MLPs: logits over the actions, and the state value."""

    def __init__(self, obs_dim: int, num_actions: int, hidden: int = 64) -> None:
        super().__init__()

        def mlp(out: int, out_gain: float) -> nn.Sequential:
            layers = [nn.Linear(obs_dim, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, out)]
            for layer, gain in zip(layers, (np.sqrt(2), np.sqrt(2), out_gain), strict=True):
                nn.init.orthogonal_(layer.weight, gain)
                nn.init.zeros_(layer.bias)
            return nn.Sequential(layers[0], nn.Tanh(), layers[1], nn.Tanh(), layers[2])

        # Small final gains: an almost uniform first policy, value estimates near 0.
        self.actor = mlp(num_actions, 0.01)
        self.critic = mlp(1, 1.0)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B,)`` V(s) of ``(B, obs_dim)`` observations."""
        return self.critic(obs).squeeze(-1)

    def policy(self, obs: torch.Tensor) -> Categorical:
        return Categorical(logits=self.actor(obs))

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions (int64, batch shape of ``obs``) for numpy observations: greedy or sampled."""
        dist = self.policy(torch.as_tensor(obs, dtype=torch.float32))
        action = dist.probs.argmax(-1) if deterministic else dist.sample()
        return action.numpy()


@dataclass
class PPOResult:
    """A trained agent and how training went.

    ``episodes`` lists ``(env_steps, episode_return)`` for every training episode, in the order
    they ended; ``env_steps`` counts steps over all sub-envs (including NEXT_STEP reset steps,
    as gymnasium counts them) when the episode ended. ``env_steps`` (the field) is the total.
    """

    agent: ActorCritic
    buffer: RolloutBuffer | None = None  # the rollout buffer it trained on
    episodes: list[tuple[int, float]] = field(default_factory=list)
    env_steps: int = 0
    updates: int = 0
    seed: int = 0


def train_ppo(
    env_id: str = "CartPole-v1",
    total_steps: int = 200_000,
    seed: int = 0,
    num_envs: int = 4,
    callback: Callable[[int, float], object] | None = None,
    target_return: float | None = None,
    config: PPOConfig | None = None,
) -> PPOResult:
    """Train PPO on ``num_envs`` sub-envs of ``env_id`` for up to ``total_steps`` env steps.

    ``callback(env_steps, episode_return)`` is called as each training episode ends. With
    ``target_return``, training stops after the first update at which the last 20 training
    episodes average at least that much (the learning-rate schedule still spans
    ``total_steps``). Seeds the env, the buffer and torch's global RNG from ``seed``.
    The observation space must be a flat Box and the action space Discrete.
    """
    config = config or PPOConfig()
    with threads.torch_threads(config.torch_threads):
        return _train(env_id, total_steps, seed, num_envs, callback, target_return, config)


def _train(
    env_id: str,
    total_steps: int,
    seed: int,
    num_envs: int,
    callback: Callable[[int, float], object] | None,
    target_return: float | None,
    config: PPOConfig,
) -> PPOResult:
    torch.manual_seed(seed)
    envs = gym.wrappers.vector.RecordEpisodeStatistics(
        gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")
    )
    envs.action_space.seed(seed)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    agent = ActorCritic(obs_dim, int(envs.single_action_space.n), config.hidden)
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5)
    buffer = RolloutBuffer(
        envs, config.num_steps, device="cpu", seed=seed, extra_fields={"log_prob": ((), np.float32)}
    )
    result = PPOResult(agent, buffer, seed=seed)
    num_updates = max(1, -(-total_steps // (config.num_steps * num_envs)))

    obs, _ = envs.reset(seed=seed)
    for update in range(num_updates):
        if config.anneal_lr:
            optimizer.param_groups[0]["lr"] = config.learning_rate * (1 - update / num_updates)

        # 1. Collect a rollout. Reset steps go in too: the buffer recognises and drops them.
        buffer.clear()
        for _ in range(config.num_steps):
            with torch.no_grad():
                dist = agent.policy(torch.as_tensor(obs, dtype=torch.float32))
                action = dist.sample()
            next_obs, reward, terminated, truncated, info = envs.step(action.numpy())
            buffer.add_trajectory(
                obs, action.numpy(), reward, next_obs, terminated, truncated, info,
                log_prob=dist.log_prob(action).numpy(),
            )  # fmt: skip
            result.env_steps += num_envs
            _log_episodes(info, result, callback)
            obs = next_obs

        # 2. Advantages. V(s') of every next observation, not just the last one: a truncated
        # step bootstraps from the value of its true final observation.
        rollout = buffer.all(flatten_env=True, dtype="torch")
        with torch.no_grad():
            values = agent.value(rollout.observations).numpy()
            next_values = agent.value(rollout.next_observations).numpy()
        buffer.compute_advantages(values, next_values, config.gamma, config.gae_lambda)

        # 3. Epochs of shuffled minibatches of the clipped surrogate loss.
        for batch in buffer.minibatches(
            config.minibatch_size, config.epochs, normalize_advantages=True, dtype="torch"
        ):
            loss = _ppo_loss(agent, batch, config)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), config.max_grad_norm)
            optimizer.step()
        result.updates += 1

        recent = [ret for _, ret in result.episodes[-20:]]
        if target_return is not None and len(recent) == 20 and np.mean(recent) >= target_return:
            break
    envs.close()
    return result


def _ppo_loss(agent: ActorCritic, batch, config: PPOConfig) -> torch.Tensor:
    dist = agent.policy(batch.observations)
    log_prob = dist.log_prob(batch.actions[:, 0])
    ratio = torch.exp(log_prob - batch.log_probs)
    advantages = batch.advantages
    clipped = torch.clamp(ratio, 1 - config.clip_coef, 1 + config.clip_coef)
    policy_loss = -torch.min(ratio * advantages, clipped * advantages).mean()
    value_loss = 0.5 * (agent.value(batch.observations) - batch.returns).pow(2).mean()
    entropy = dist.entropy().mean()
    return policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy


def _log_episodes(info: dict, result: PPOResult, callback: Callable | None) -> None:
    """Record the returns of the episodes that ended at this step (RecordEpisodeStatistics)."""
    if "episode" not in info:
        return
    for env in np.flatnonzero(info["_episode"]):
        episode_return = float(info["episode"]["r"][env])
        result.episodes.append((result.env_steps, episode_return))
        if callback is not None:
            callback(result.env_steps, episode_return)


def evaluate(
    agent: ActorCritic,
    env_id: str = "CartPole-v1",
    episodes: int = 20,
    seed: int = 10_000,
    deterministic: bool = True,
    torch_threads: int = 1,
) -> list[float]:
    """Returns of ``episodes`` full episodes of ``agent`` on a fresh single env (greedy by default).

    Episode i starts from ``env.reset(seed=seed + i)``.
    """
    with threads.torch_threads(torch_threads):
        return _evaluate(agent, gym.make(env_id), episodes, seed, deterministic)


def _evaluate(agent, env, episodes, seed, deterministic) -> list[float]:
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            action = agent.act(obs[None], deterministic)[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns
