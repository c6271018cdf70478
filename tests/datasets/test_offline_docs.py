"""docs/offline.md and the README's offline section run as written (in a temporary
MINARI_DATASETS_PATH: nothing is downloaded)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("minari", reason="Minari 0.5.4 needs Python >= 3.11")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ROOT = Path(__file__).resolve().parents[2]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_offline_page_runs_in_order():
    namespace: dict = {}
    blocks = python_blocks((ROOT / "docs" / "offline.md").read_text())
    assert len(blocks) >= 5
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/offline.md block {i}", "exec"), namespace)
    assert namespace["batch"].observations.shape == (256, 4)


def test_readme_offline_section_runs():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Offline datasets", 1)[1].split("\n## ", 1)[0]
    (block,) = python_blocks(section)
    namespace: dict = {}
    exec(compile(block, "README offline section", "exec"), namespace)
    assert namespace["batch"].observations.shape == (256, 4)
