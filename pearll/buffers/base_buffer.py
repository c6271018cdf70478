"""``BaseBuffer`` at the module path of the original Pearl (``pearll.buffers.base_buffer``).

Code written for the original imports from here; the class lives in
:mod:`pearll.buffers.base`. Prefer ``from pearll.buffers import BaseBuffer``.
"""

from pearll.buffers.base import BaseBuffer

__all__ = ["BaseBuffer"]
