"""The check of an int argument, written once: every public method that takes a count uses it."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_int(
    value: Any,
    name: str,
    minimum: int,
    wanted: str | None = None,
    wrong_type: type[Exception] = TypeError,
) -> int:
    """``value`` as an int, if it is one (a Python or numpy int; a bool is not) and at least
    ``minimum``. Raises ``wrong_type`` (TypeError; ValueError where an option has always said
    so) for another type and ValueError for a smaller int, both saying ``"{name}: expected
    {wanted}, got ..."`` (``wanted``: by default "a positive int" for ``minimum`` 1, else "an
    int >= minimum")."""
    if wanted is None:
        wanted = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise wrong_type(f"{name}: expected {wanted}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected {wanted}, got {value}")
    return int(value)
