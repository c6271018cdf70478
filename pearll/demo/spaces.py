"""What each demo trainer can train on: the checks of an env's spaces behind ``--algo``'s
error messages (each returns why a trainer cannot run, or None)."""

from __future__ import annotations

from gymnasium import spaces

GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


def is_goal_dict(space: spaces.Space) -> bool:
    """A Gymnasium-Robotics style goal space: a Dict with observation and both goals."""
    return isinstance(space, spaces.Dict) and all(key in space.spaces for key in GOAL_KEYS)


def _discrete_actions(algo: str, action_space: spaces.Space) -> str | None:
    if isinstance(action_space, spaces.Discrete):
        return None
    return f"{algo} needs a Discrete action space; this env's is {action_space}"


def dqn_space_problem(observation_space: spaces.Space, action_space: spaces.Space) -> str | None:
    """Why DQN cannot run on these spaces, or None: Discrete actions, Box or goal-dict obs."""
    if not (isinstance(observation_space, spaces.Box) or is_goal_dict(observation_space)):
        return (
            f"dqn needs a Box observation space or a goal Dict (keys {', '.join(GOAL_KEYS)}); "
            f"this env's is {observation_space}"
        )
    return _discrete_actions("dqn", action_space)


def her_space_problem(observation_space: spaces.Space, action_space: spaces.Space) -> str | None:
    """Why HER (DQN on a HERBuffer) cannot run on these spaces, or None."""
    if not is_goal_dict(observation_space):
        return (
            f"her needs a goal Dict observation space (keys {', '.join(GOAL_KEYS)}); "
            f"this env's is {observation_space}"
        )
    return _discrete_actions("her", action_space)


def ppo_space_problem(observation_space: spaces.Space, action_space: spaces.Space) -> str | None:
    """Why PPO cannot run on these spaces, or None: a 1-D Box observation, Discrete actions."""
    if not (isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 1):
        return f"ppo needs a 1-D Box observation space; this env's is {observation_space}"
    return _discrete_actions("ppo", action_space)


def r2d2_space_problem(observation_space: spaces.Space, action_space: spaces.Space) -> str | None:
    """Why the recurrent DQN cannot run on these spaces, or None: Box obs, Discrete actions."""
    if not isinstance(observation_space, spaces.Box):
        return f"r2d2 needs a Box observation, got {observation_space}"
    return _discrete_actions("r2d2", action_space)
