"""pearll.distributed reads buffers through their public surface only (issue 15 item 4): no
private attribute of a buffer is touched, and no buffer class is recognised by its methods."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pearll" / "distributed"
MODULES = sorted(PACKAGE.glob("*.py"))


def _private_reads_on_buffers(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        private = node.attr.startswith("_") and not node.attr.startswith("__")
        if private and "buffer" in ast.unparse(node.value).lower():
            found.append(ast.unparse(node))
        # Eligibility by method identity: ``type(buffer).sample is ...`` and the like.
        of_a_type = isinstance(node.value, ast.Call) and ast.unparse(node.value.func) == "type"
        if of_a_type and node.attr not in ("__name__", "__qualname__"):
            found.append(ast.unparse(node))
    return found


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.name)
def test_no_buffer_internals_are_read(module):
    assert _private_reads_on_buffers(module.read_text()) == []


def test_the_check_catches_what_it_should():
    caught = _private_reads_on_buffers(
        "buffer._tree.total()\nself.buffer._ring\ntype(buffer).sample in (A.sample,)\n"
    )
    assert sorted(caught) == ["buffer._tree", "self.buffer._ring", "type(buffer).sample"]
    assert _private_reads_on_buffers("self._front.x\ntype(buffer).__name__\n") == []
