"""Compact learning agents built on pearll's buffers (need torch)."""

from pearll.agents.ppo import PPOConfig, PPOResult, evaluate, train_ppo

__all__ = ["PPOConfig", "PPOResult", "evaluate", "train_ppo"]
