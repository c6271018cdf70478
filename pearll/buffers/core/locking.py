"""The lock decorator of buffer methods: one thread may add while another samples."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

Method = TypeVar("Method", bound=Callable[..., Any])


def locked(method: Method) -> Method:
    """``method`` run holding the buffer's lock (``self._lock``, reentrant).

    Every method that changes a buffer's state, or chooses rows and reads them, carries it, so
    that adds and samples may come from different threads (see RingBuffer's docstring).
    """

    @functools.wraps(method)
    def holding_the_lock(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return holding_the_lock  # type: ignore[return-value]
