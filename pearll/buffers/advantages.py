"""GAE and returns for rollouts, at the path the docs name (the code: reading/advantages.py)."""

from pearll.buffers.reading.advantages import gae, monte_carlo_returns, n_step_returns

__all__ = ["gae", "monte_carlo_returns", "n_step_returns"]
