"""The demo trainers' space checks: None where a trainer runs, else why not, naming the space."""

import pytest
from gymnasium import spaces

from pearll.demo.spaces import (
    GOAL_KEYS,
    dqn_space_problem,
    her_space_problem,
    ppo_space_problem,
    r2d2_space_problem,
)

BOX = spaces.Box(-1, 1, (4,))
IMAGE = spaces.Box(0, 255, (8, 8, 3))
GOAL = spaces.Dict({key: spaces.MultiBinary(4) for key in GOAL_KEYS})
OTHER_DICT = spaces.Dict({"position": BOX})
DISCRETE = spaces.Discrete(3)


@pytest.mark.parametrize(
    ("check", "observation_space", "action_space", "problem"),
    [
        (dqn_space_problem, BOX, DISCRETE, None),
        (dqn_space_problem, IMAGE, DISCRETE, None),
        (dqn_space_problem, GOAL, DISCRETE, None),
        (dqn_space_problem, BOX, BOX, "dqn needs a Discrete action space"),
        (dqn_space_problem, OTHER_DICT, DISCRETE, "dqn needs a Box observation space"),
        (dqn_space_problem, DISCRETE, DISCRETE, "dqn needs a Box observation space"),
        (her_space_problem, GOAL, DISCRETE, None),
        (her_space_problem, BOX, DISCRETE, "her needs a goal Dict"),
        (her_space_problem, OTHER_DICT, DISCRETE, "her needs a goal Dict"),
        (her_space_problem, GOAL, BOX, "her needs a Discrete action space"),
        (ppo_space_problem, BOX, DISCRETE, None),
        (ppo_space_problem, IMAGE, DISCRETE, "ppo needs a 1-D Box"),
        (ppo_space_problem, GOAL, DISCRETE, "ppo needs a 1-D Box"),
        (ppo_space_problem, BOX, spaces.MultiDiscrete([2, 2]), "ppo needs a Discrete action"),
        (r2d2_space_problem, BOX, DISCRETE, None),
        (r2d2_space_problem, GOAL, DISCRETE, "r2d2 needs a Box observation"),
        (r2d2_space_problem, BOX, BOX, "r2d2 needs a Discrete action space"),
    ],
)
def test_space_checks(check, observation_space, action_space, problem):
    found = check(observation_space, action_space)
    if problem is None:
        assert found is None
    else:
        assert problem in found
        assert str(action_space if "action" in problem else observation_space) in found
