"""``HERBuffer`` at the module path of the original Pearl (``pearll.buffers.her_buffer``).

Code written for the original imports from here; the class lives in
:mod:`pearll.buffers.her`. Prefer ``from pearll.buffers import HERBuffer``.
"""

from pearll.buffers.her import HERBuffer

__all__ = ["HERBuffer"]
