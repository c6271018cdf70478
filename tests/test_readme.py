"""Every python block of README.md and docs/*.md runs as written, in order.

Each file's blocks run one after another in one fresh Python process (so a later block sees
what an earlier one defined, and a block that starts Ray or writes files cannot disturb the
test process), in a temporary working directory. A block whose line before the fence is
``<!-- doc-test: requires MODULE ... -->`` runs only if those modules are installed; if one is
not, that block and the rest of its file are skipped (later blocks may need it), and the test
says so. Every other block always runs: new docs pages are picked up by the glob.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
# A fence may be indented (a block inside a list item); the marker, if any, is the line before.
BLOCK = re.compile(
    r"^(?:[ \t]*<!-- doc-test: requires (?P<requires>[\w. ]+) -->\n)?"
    r"(?P<indent>[ \t]*)```python\n(?P<code>.*?)^(?P=indent)```",
    flags=re.S | re.M,
)


def python_blocks(path: Path) -> list[tuple[int, list[str], str]]:
    """``(line, required modules, code)`` of every python block of ``path``, in order."""
    text = path.read_text()
    return [
        (
            text.count("\n", 0, m.start("code")) + 1,
            (m["requires"] or "").split(),
            textwrap.dedent(m["code"]),
        )
        for m in BLOCK.finditer(text)
    ]


def test_quickstart_runs():
    blocks = python_blocks(README)
    assert blocks, "README has no python block"
    namespace: dict = {}
    exec(compile(blocks[0][2], "README quickstart", "exec"), namespace)
    assert namespace["flat"].observations.shape == (256, 4)
    assert namespace["td_target"].shape == (256, 1)


def test_marker_comments_are_read():
    text = (
        "a\n<!-- doc-test: requires ray minari -->\n```python\nx = 1\n```\n```python\ny\n```\n"
        "- item\n\n  ```python\n  z = 2\n  ```\n"
    )
    path = ROOT / "tests" / "_marker_probe.md"
    try:
        path.write_text(text)
        assert python_blocks(path) == [
            (4, ["ray", "minari"], "x = 1\n"),
            (7, [], "y\n"),
            (12, [], "z = 2\n"),
        ]
    finally:
        path.unlink()


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_runs_in_order(path, tmp_path):
    blocks = python_blocks(path)
    if not blocks:
        pytest.skip(f"{path.name} has no python block")
    runnable, skipped = [], None
    for line, requires, code in blocks:
        missing = [name for name in requires if importlib.util.find_spec(name) is None]
        if missing:
            skipped = (line, missing)
            break
        # Each block keeps its own line numbers in tracebacks.
        runnable.append(f"exec(compile({code!r}, {f'{path.name}:{line}'!r}, 'exec'))")
    script = "\n".join(runnable)
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=environment,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, f"{path.name}:\n{result.stderr[-4000:]}"
    if skipped:
        line, missing = skipped
        pytest.skip(f"{path.name}: blocks from line {line} on need {missing}, not installed")
