"""``ReplayBuffer`` at the module path of the original Pearl (``pearll.buffers.replay_buffer``).

Code written for the original imports from here; the class lives in
:mod:`pearll.buffers.replay`. Prefer ``from pearll.buffers import ReplayBuffer``.
"""

from pearll.buffers.replay import ReplayBuffer

__all__ = ["ReplayBuffer"]
