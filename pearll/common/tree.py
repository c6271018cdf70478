"""Nested observations as one structure: a leaf is an array, a node is a dict of subtrees.

Every buffer operation on observations (allocate, write, gather, convert, count bytes) is a
function on leaves mapped over the structure with :func:`tree_map`, so Dict observation spaces
need no parallel classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


def tree_map(fn: Callable[..., Any], tree: Any, *others: Any) -> Any:
    """Apply ``fn`` leaf by leaf to ``tree`` and to the matching leaves of ``others``."""
    if isinstance(tree, dict):
        return {key: tree_map(fn, tree[key], *(other[key] for other in others)) for key in tree}
    return fn(tree, *others)


def tree_leaves(tree: Any) -> Iterator[Any]:
    """The leaves of ``tree`` in key order."""
    if isinstance(tree, dict):
        for value in tree.values():
            yield from tree_leaves(value)
    else:
        yield tree
