"""The docs pages' code blocks run as written (each page's blocks in order, one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["sequences.md"]


@pytest.mark.parametrize("page", PAGES)
def test_code_blocks_run(page):
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)
    assert blocks, f"{page} has no python block"
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{page} block {i}", "exec"), namespace)
