"""``RolloutBuffer`` at the module path of the original Pearl (``pearll.buffers.rollout_buffer``).

Code written for the original imports from here; the class lives in
:mod:`pearll.buffers.rollout`. Prefer ``from pearll.buffers import RolloutBuffer``.
"""

from pearll.buffers.rollout import RolloutBuffer

__all__ = ["RolloutBuffer"]
