"""examples/cleanrl_dqn.py runs as written (a short run) and trains from pearll's buffer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cleanrl_dqn.py"


def test_cleanrl_dqn_runs_and_trains():
    spec = importlib.util.spec_from_file_location("cleanrl_dqn", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    returns = module.main(
        ["--total-timesteps", "600", "--learning-starts", "200", "--buffer-size", "500"]
    )
    assert len(returns) > 5 and all(r > 0 for r in returns)
