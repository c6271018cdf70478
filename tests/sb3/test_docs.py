"""Every python block of docs/sb3.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "sb3.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_doc_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_block_runs(index):
    exec(compile(BLOCKS[index], f"docs/sb3.md block {index}", "exec"), {})


def test_the_readme_block_on_sb3_runs():
    readme = DOC.parents[1] / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)
    ours = [block for block in blocks if "pearll.sb3" in block]
    assert len(ours) == 1
    namespace: dict = {}
    exec(compile(ours[0], "README sb3 block", "exec"), namespace)
    assert namespace["model"].replay_buffer.size() >= 300
