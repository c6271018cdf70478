"""PrioritizedDQN: SB3's DQN trained from prioritized replay (importance-weighted Huber loss)."""

from __future__ import annotations

import warnings

import numpy as np
import torch as th
import torch.nn.functional as F
from stable_baselines3 import DQN

from pearll.sb3.prioritized import PrioritizedReplayBuffer


class PrioritizedDQN(DQN):
    """SB3's ``DQN`` whose loss weights each sample's Huber loss by its importance weight and
    that gives each sampled transition the priority ``|TD error|`` after every gradient step.

    Everything else is DQN's (arguments, target network, exploration, n-step discounts from the
    buffer). ``replay_buffer_class`` defaults to :class:`pearll.sb3.PrioritizedReplayBuffer`;
    set ``alpha``, ``beta``, ``beta_steps`` in ``replay_buffer_kwargs``; DQN's ``n_steps=``
    gives it n-step returns. A buffer class without
    ``update_priorities`` is refused.
    """

    def _setup_model(self) -> None:
        default = self.replay_buffer_class is None
        if default:
            self.replay_buffer_class = PrioritizedReplayBuffer
            if self.n_steps > 1:  # DQN's n_steps=, as SB3 passes it to its own n-step buffer
                self.replay_buffer_kwargs = {
                    "n_steps": self.n_steps, "gamma": self.gamma, **self.replay_buffer_kwargs
                }  # fmt: skip
        if not hasattr(self.replay_buffer_class, "update_priorities"):
            raise TypeError(
                "PrioritizedDQN: replay_buffer_class must be a prioritized buffer (with "
                f"update_priorities), got {self.replay_buffer_class.__name__}"
            )
        with warnings.catch_warnings():
            if default:  # SB3 warns that n_steps is ignored for a custom class: not here
                warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored")
            super()._setup_model()

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        losses = []
        for _ in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            with th.no_grad():
                next_q_values = self.q_net_target(replay_data.next_observations)
                next_q_values, _ = next_q_values.max(dim=1)
                next_q_values = next_q_values.reshape(-1, 1)
                target_q_values = (
                    replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values
                )
            current_q_values = self.q_net(replay_data.observations)
            current_q_values = th.gather(current_q_values, dim=1, index=replay_data.actions.long())
            elementwise = F.smooth_l1_loss(current_q_values, target_q_values, reduction="none")
            loss = (replay_data.weights * elementwise).mean()
            losses.append(loss.item())
            self.policy.optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
            td_errors = (current_q_values - target_q_values).detach().abs()
            self.replay_buffer.update_priorities(replay_data.indices, td_errors)
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", np.mean(losses))
