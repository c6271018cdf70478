"""The reward rule of every add path: a real number that is finite as float32, or an error.

Rewards are stored as float32. A reward that is NaN or infinite, or whose magnitude exceeds
float32's largest value (about 3.4e38, so it would be stored as infinity), is refused with a
ValueError before anything is written. Refusing is the rule because such a reward cannot be
kept inside its episode: n-step returns multiply the rewards they do not walk by zero, and
GAE multiplies across an episode end by zero, and ``0 * inf`` is NaN, so one infinite reward
would turn the returns and advantages of neighbouring episodes into NaN. Python ints of any
size are accepted when their value fits (``2**70`` as ``add_trajectory`` takes it, and the same
as a list or an object array in ``add_batch_trajectories``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pearll.buffers.core.spaces import SCALAR_FLOAT, coerce

FLOAT32_MAX = float(np.finfo(np.float32).max)


def coerce_rewards(value: Any, lead: tuple[int, ...], name: str = "reward") -> np.ndarray:
    """``value`` as a float32 array of shape ``lead + (1,)``; ValueError if a reward is not
    finite in float32, TypeError if it is not a real number (see the module docstring)."""
    array = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if array.dtype == object:  # Python ints too large for int64 (2**70): as floats
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            pass  # coerce names the dtype
        except OverflowError:  # beyond even float64 (10**400)
            array = np.full(array.shape, np.inf)
    array = coerce(array, SCALAR_FLOAT, lead, name)
    with np.errstate(over="ignore", invalid="ignore"):
        stored = array.astype(np.float32)
    bad = ~np.isfinite(stored)
    if bad.any():
        where = f" at {np.argwhere(bad[..., 0])[:5].tolist()}" if lead else ""
        raise ValueError(
            f"{name}: expected finite values within float32's range (|reward| <= "
            f"{FLOAT32_MAX:.4g}), got {array[bad][:5].tolist()}{where}: a non-finite reward "
            "would leak into the n-step returns and advantages of neighbouring episodes"
        )
    return stored
