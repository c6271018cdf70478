"""CleanRL-style single-file DQN on pearll's ReplayBuffer (CartPole-v1).

    python examples/cleanrl_dqn.py --total-timesteps 50000 --seed 1

CleanRL's dqn.py, read top to bottom, with its SB3 buffer swapped for pearll's: the env is a
gymnasium vector env passed to the buffer as it is (the buffer drops NEXT_STEP reset steps and
keeps true final observations itself, so there is no ``real_next_obs`` bookkeeping), and
``dones`` are terminations only (a truncated step bootstraps). Prints each episode's return.
"""

from __future__ import annotations

import argparse
import random
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pearll.buffers import ReplayBuffer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CleanRL-style DQN on pearll's ReplayBuffer")
    parser.add_argument("--env-id", default="CartPole-v1")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--total-timesteps", type=int, default=500_000)
    parser.add_argument("--learning-rate", type=float, default=2.5e-4)
    parser.add_argument("--buffer-size", type=int, default=10_000)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--tau", type=float, default=1.0)
    parser.add_argument("--target-network-frequency", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--start-e", type=float, default=1.0)
    parser.add_argument("--end-e", type=float, default=0.05)
    parser.add_argument("--exploration-fraction", type=float, default=0.5)
    parser.add_argument("--learning-starts", type=int, default=10_000)
    parser.add_argument("--train-frequency", type=int, default=10)
    return parser.parse_args(argv)


class QNetwork(nn.Module):
    def __init__(self, env: gym.vector.VectorEnv):
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(int(np.prod(env.single_observation_space.shape)), 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, env.single_action_space.n),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


def linear_schedule(start_e: float, end_e: float, duration: int, t: int) -> float:
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def main(argv: list[str] | None = None) -> list[float]:
    args = parse_args(argv)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    envs = gym.make_vec(args.env_id, num_envs=1)
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    q_network = QNetwork(envs).to(device)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate)
    target_network = QNetwork(envs).to(device)
    target_network.load_state_dict(q_network.state_dict())
    rb = ReplayBuffer(envs, args.buffer_size, device=device, seed=args.seed)

    returns: list[float] = []
    start_time = time.time()
    obs, _ = envs.reset(seed=args.seed)
    for global_step in range(args.total_timesteps):
        duration = int(args.exploration_fraction * args.total_timesteps)
        epsilon = linear_schedule(args.start_e, args.end_e, duration, global_step)
        if random.random() < epsilon:
            actions = envs.action_space.sample()
        else:
            q_values = q_network(torch.as_tensor(obs, device=device))
            actions = torch.argmax(q_values, dim=1).cpu().numpy()

        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        if "episode" in infos:
            for finished in np.flatnonzero(infos["_episode"]):
                returns.append(float(infos["episode"]["r"][finished]))
                print(f"global_step={global_step}, episodic_return={returns[-1]:.0f}")

        # The whole step as the env gave it: pearll handles resets and final observations.
        rb.add_trajectory(obs, actions, rewards, next_obs, terminations, truncations, infos)
        obs = next_obs

        if global_step > args.learning_starts and global_step % args.train_frequency == 0:
            data = rb.sample(args.batch_size, flatten_env=True, dtype="torch")
            with torch.no_grad():
                target_max, _ = target_network(data.next_observations).max(dim=1)
                td_target = data.rewards.flatten() + args.gamma * target_max * (
                    1 - data.dones.flatten()
                )
            old_val = q_network(data.observations).gather(1, data.actions).squeeze()
            loss = F.mse_loss(td_target, old_val)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        if global_step % args.target_network_frequency == 0:
            for target_param, param in zip(
                target_network.parameters(), q_network.parameters(), strict=True
            ):
                target_param.data.copy_(
                    args.tau * param.data + (1.0 - args.tau) * target_param.data
                )
    envs.close()
    print(f"{args.total_timesteps} steps in {time.time() - start_time:.0f} s")
    return returns


if __name__ == "__main__":
    main()
