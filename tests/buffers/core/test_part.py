"""Parts: a buffer's stateful parts put together (sizes, reset, checkpoint state)."""

import numpy as np
import pytest

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer
from pearll.buffers.core.part import Part, Parts
from tests.buffers.test_her import goal_env
from tests.fixtures import MODES, make_env


class Counter:
    def __init__(self, key: str, size: int) -> None:
        self.key, self.values = key, np.zeros(size)

    @property
    def nbytes(self) -> int:
        return self.values.nbytes

    def reset(self) -> None:
        self.values[:] = 0

    def state(self) -> dict:
        return {self.key: self.values}

    def set_state(self, state: dict) -> None:
        self.values[:] = state[self.key]


def test_parts_sum_sizes_reset_and_round_trip_states():
    a, b = Counter("a", 3), Counter("b", 5)
    parts = Parts()
    parts.add("a", a)
    parts.add("b", b)
    assert parts.nbytes == 8 * 8
    a.values[:], b.values[:] = 1, 2
    state = {k: v.copy() for k, v in parts.state().items()}
    parts.reset()
    assert a.values.sum() == b.values.sum() == 0
    parts.set_state(state)
    assert a.values.tolist() == [1, 1, 1] and b.values.tolist() == [2] * 5


def test_a_name_or_a_state_entry_taken_twice_is_refused():
    parts = Parts()
    parts.add("a", Counter("x", 1))
    with pytest.raises(ValueError, match="part 'a': already added"):
        parts.add("a", Counter("y", 1))
    parts.add("b", Counter("x", 1))
    with pytest.raises(ValueError, match=r"part 'b': state entries \['x'\] already taken"):
        parts.state()


@pytest.mark.parametrize(
    "make",
    [
        lambda: ReplayBuffer(make_env(2), 10),
        lambda: PrioritizedReplayBuffer(make_env(2), 10),
        lambda: RolloutBuffer(make_env(2), 10),
        lambda: HERBuffer(goal_env(2, MODES[0]), 10),
    ],
)
def test_every_buffer_is_its_parts(make):
    buffer = make()
    parts = list(buffer._parts)
    assert all(isinstance(part, Part) for part in parts)
    # What the buffer allocated is what its parts hold; its state is theirs plus the RNG's.
    assert buffer.nbytes == sum(part.nbytes for part in parts) > 0
    entries = set().union(*(part.state() for part in parts))
    assert set(buffer._state()) == entries | {"rng"}
