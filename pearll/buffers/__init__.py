"""Experience buffers: storage, bookkeeping and sampling of env transitions."""

from pearll.buffers.base import BaseBuffer
from pearll.buffers.her import HERBuffer
from pearll.buffers.prioritized import PrioritizedReplayBuffer
from pearll.buffers.replay import ReplayBuffer
from pearll.buffers.rollout import RolloutBuffer

__all__ = ["BaseBuffer", "HERBuffer", "PrioritizedReplayBuffer", "ReplayBuffer", "RolloutBuffer"]
