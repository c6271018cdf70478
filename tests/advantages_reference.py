"""Naive advantages and returns: Python loops over one episode of one env at a time.

Each function takes one env's rollout as 1-D sequences, in the textbook form: inside an episode
the next state's value is ``values[t + 1]``; only the last step of an episode (or of the
rollout) reads ``final_values[t]``, the value of its true final observation, and only when it
did not terminate.
"""

from __future__ import annotations

from collections.abc import Iterator


def episodes(terminated, truncated) -> Iterator[range]:
    """The steps of each episode (or piece of one, at the rollout's ends), in order."""
    start = 0
    for t in range(len(terminated)):
        if terminated[t] or truncated[t] or t == len(terminated) - 1:
            yield range(start, t + 1)
            start = t + 1


def value_after(t, episode, values, final_values, terminated) -> float:
    if t < episode[-1]:
        return values[t + 1]
    return 0.0 if terminated[t] else final_values[t]


def gae(rewards, values, final_values, terminated, truncated, gamma, lam):
    advantages = [0.0] * len(rewards)
    for episode in episodes(terminated, truncated):
        running = 0.0
        for t in reversed(episode):
            after = value_after(t, episode, values, final_values, terminated)
            delta = rewards[t] + gamma * after - values[t]
            running = delta + gamma * lam * running
            advantages[t] = running
    return advantages, [a + v for a, v in zip(advantages, values, strict=True)]


def n_step_returns(rewards, values, final_values, terminated, truncated, gamma, n):
    returns = [0.0] * len(rewards)
    for episode in episodes(terminated, truncated):
        for t in episode:
            last = min(t + n - 1, episode[-1])
            total = sum(gamma ** (k - t) * rewards[k] for k in range(t, last + 1))
            after = value_after(last, episode, values, final_values, terminated)
            returns[t] = total + gamma ** (last - t + 1) * after
    return returns


def monte_carlo_returns(rewards, values, final_values, terminated, truncated, gamma):
    return n_step_returns(rewards, values, final_values, terminated, truncated, gamma, len(rewards))
