"""A buffer's ``_state()`` tree split into the manifest's JSON and its arrays, and joined back.

Arrays become ``{"$npy": file}`` (numpy scalars ``{"$npy": file, "$scalar": true}``, a 0-d
file, so the dtype survives); dicts with str keys and JSON values stay in the manifest. Keys
starting with ``$`` are reserved.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from pearll.buffers.errors import CheckpointError

ARRAY = "$npy"
SCALAR = "$scalar"


def split_state(state: dict[str, Any], owner: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The manifest's state tree (arrays replaced by file names) and the arrays by file name."""
    arrays: dict[str, np.ndarray] = {}

    def visit(node: Any, keys: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            bad = [k for k in node if not isinstance(k, str) or k.startswith("$")]
            if bad:
                raise TypeError(f"{owner}._state(): {'.'.join(keys)}: keys {bad} are not allowed")
            return {k: visit(v, (*keys, k)) for k, v in node.items()}
        if isinstance(node, np.ndarray | np.generic):
            name = f"{len(arrays):03d}-{_file_stem(keys)}.npy"
            arrays[name] = np.asarray(node)
            return {ARRAY: name, SCALAR: True} if isinstance(node, np.generic) else {ARRAY: name}
        check_json(node, f"{owner}._state(): {'.'.join(keys)}")
        return node

    return visit(state, ()), arrays


def join_state(tree: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """The state tree with each ``{"$npy": file}`` replaced by its array (CheckpointError if a
    reference is malformed or names no file)."""
    if isinstance(tree, dict) and (ARRAY in tree or SCALAR in tree):
        name, scalar = tree.get(ARRAY), tree.get(SCALAR, False)
        if set(tree) - {ARRAY, SCALAR} or not isinstance(name, str) or scalar not in (True, False):
            raise CheckpointError(f"{where}: malformed array reference {tree!r}"[:200])
        if name not in arrays:
            raise CheckpointError(f"{where}: names {name!r}, which is not in 'files'"[:200])
        array = arrays[name]
        if scalar and array.ndim != 0:
            raise CheckpointError(f"{where}: a scalar stored as an array of shape {array.shape}")
        return array[()] if scalar else array
    if isinstance(tree, dict):
        return {k: join_state(v, arrays, f"{where}.{k}") for k, v in tree.items()}
    return tree


def check_json(value: Any, where: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{where}: not a numpy array or JSON value ({error})") from None


def _file_stem(keys: tuple[str, ...]) -> str:
    # Keys can be any string (dict observation keys); the file name only needs to be readable.
    return re.sub(r"[^A-Za-z0-9_-]+", "_", ".".join(keys).replace(".", "-"))[:80]
