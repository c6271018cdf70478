"""The command line: bad input exits 2 with the choices; a run writes a CSV, a PNG, a summary."""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pearll.demo import cli, runners
from pearll.demo.episodes import read_csv
from pearll.demo.runners import ALGOS, RunResult
from tests.demo.support import (
    GOAL_ENV_ID,
    assert_drawn_png,
    random_dqn_trainer,
    scripted_ppo_trainer,
)

ROOT = Path(__file__).resolve().parents[2]


def fails_with_usage_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: pearll-demo")
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algo", "sac"], "invalid choice: 'sac' (choose from 'dqn', 'ppo', 'r2d2', 'her')"),
        (["--buffer", "lru"], "invalid choice: 'lru' (choose from 'replay', 'prioritized')"),
        (["--env", "CartPol-v1"], "close matches: CartPole-v1"),
        (["--env", "NoSuchThing"], "not a registered gymnasium env id"),
        (["--env", "Pendulum-v1"], "dqn needs a Discrete action space"),
        (["--algo", "her", "--env", "CartPole-v1"], "her needs a goal Dict observation space"),
        (["--algo", "ppo", "--env", GOAL_ENV_ID], "ppo needs a 1-D Box observation space"),
        (["--algo", "ppo", "--buffer", "prioritized"], "--buffer applies to dqn"),
        (["--algo", "her", "--buffer", "replay"], "--buffer applies to dqn"),
        (["--algo", "her", "--n-step", "3"], "her does not take n-step returns"),
        (["--algo", "ppo", "--buffer-size", "64"], "ppo sizes its own buffer"),
        (["--steps", "0"], "--steps: expected a positive int, got 0"),
        (["--steps", "many"], "--steps: expected a positive int, got 'many'"),
        (["--n-step", "-1"], "--n-step: expected a positive int, got -1"),
    ],
)
def test_bad_input_exits_2_and_says_why(capsys, tmp_path, argv, message):
    err = fails_with_usage_error(capsys, [*argv, "--out", str(tmp_path / "out")])
    assert message in err
    assert not (tmp_path / "out").exists()  # nothing written before the input is checked


def test_an_env_that_cannot_be_made_is_bad_input(capsys, monkeypatch):
    import gymnasium as gym

    monkeypatch.setitem(
        gym.registry,
        "Broken-v0",
        dataclasses.replace(
            gym.spec("CartPole-v1"), id="Broken-v0", entry_point="no_such_module:Env"
        ),
    )
    assert "Broken-v0: cannot be made here" in fails_with_usage_error(
        capsys, ["--env", "Broken-v0"]
    )


def test_python_dash_m_exits_2_on_an_unknown_algo():
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pearll.demo", "--algo", "nope"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "choose from 'dqn', 'ppo', 'r2d2', 'her'" in done.stderr


def test_console_script_points_at_main():
    # A regex, not tomllib: that is 3.11+ and we support 3.10.
    text = (ROOT / "pyproject.toml").read_text()
    scripts = text.split("[project.scripts]", 1)[1]
    module, attribute = re.search(r'^pearll-demo = "(.+):(.+)"$', scripts, re.M).groups()
    assert getattr(importlib.import_module(module), attribute) is cli.main


def run_demo(capsys, tmp_path, argv):
    out = tmp_path / "runs"
    assert cli.main([*argv, "--out", str(out)]) == 0
    return out, capsys.readouterr()


def test_dqn_run_writes_csv_png_and_summary(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(runners, "train_dqn_agent", random_dqn_trainer)
    out, printed = run_demo(capsys, tmp_path, ["--steps", "400", "--buffer-size", "500"])
    assert sorted(p.name for p in out.iterdir()) == [
        "dqn_CartPole-v1_seed0.csv",
        "dqn_CartPole-v1_seed0.png",
    ]
    episodes = read_csv(out / "dqn_CartPole-v1_seed0.csv")
    assert episodes and all(0 < e.env_steps <= 400 for e in episodes)
    assert [e.env_steps for e in episodes] == sorted(e.env_steps for e in episodes)
    assert sum(e.episode_return for e in episodes) <= 400  # CartPole pays 1 per step
    assert_drawn_png(out / "dqn_CartPole-v1_seed0.png")
    assert "dqn on CartPole-v1, seed 0: 400 env steps" in printed.out
    assert "over the last" in printed.out and "(solved at 475)" in printed.out
    assert "ReplayBuffer holding 400 transitions in 500 rows" in printed.out
    assert "step/s" in printed.err  # the progress bar


def test_ppo_run_says_the_buffer_stays_in_the_trainer(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(runners, "train_ppo_agent", scripted_ppo_trainer)
    out, printed = run_demo(capsys, tmp_path, ["--algo", "ppo", "--steps", "200", "--seed", "3"])
    assert [e.episode_return for e in read_csv(out / "ppo_CartPole-v1_seed3.csv")] == [
        10.0, 20.0, 30.0, 40.0,
    ]  # fmt: skip
    assert "final mean return 25.0 over the last 4 episodes" in printed.out
    assert "kept inside the trainer" in printed.out


def test_her_run_on_a_goal_env_reports_success(capsys, tmp_path, monkeypatch):
    def fake_run(config, reporter):
        reporter.episode(6, -6.0, success=False)
        reporter.episode(9, -2.0, success=True)
        return RunResult(list(reporter.episodes), 9, None)

    monkeypatch.setitem(ALGOS, "her", dataclasses.replace(ALGOS["her"], run=fake_run))
    out, printed = run_demo(capsys, tmp_path, ["--algo", "her", "--env", GOAL_ENV_ID])
    assert [e.success for e in read_csv(out / "her_pearll-test-Goal-v0_seed0.csv")] == [
        False,
        True,
    ]
    assert "success rate 50% over the last 2 episodes" in printed.out


def test_ctrl_c_keeps_the_episodes_so_far(capsys, tmp_path, monkeypatch):
    def interrupted_run(config, reporter):
        reporter.episode(10, 10.0)
        reporter.episode(30, 20.0)
        raise KeyboardInterrupt

    monkeypatch.setitem(ALGOS, "dqn", dataclasses.replace(ALGOS["dqn"], run=interrupted_run))
    out = tmp_path / "runs"
    assert cli.main(["--out", str(out)]) == cli.EXIT_INTERRUPTED
    assert len(read_csv(out / "dqn_CartPole-v1_seed0.csv")) == 2
    assert_drawn_png(out / "dqn_CartPole-v1_seed0.png")
    assert "30 env steps" in capsys.readouterr().out


def test_a_run_without_episodes_still_writes_its_files(capsys, tmp_path, monkeypatch):
    def no_episode(config, reporter):
        return RunResult([], config.steps, None)

    monkeypatch.setitem(ALGOS, "dqn", dataclasses.replace(ALGOS["dqn"], run=no_episode))
    out, printed = run_demo(capsys, tmp_path, ["--steps", "5"])
    assert read_csv(out / "dqn_CartPole-v1_seed0.csv") == []
    assert_drawn_png(out / "dqn_CartPole-v1_seed0.png")
    assert "no episode finished" in printed.out


@pytest.mark.parametrize(
    ("argv", "stem"),
    [
        ([], "dqn_CartPole-v1_seed0"),
        (
            ["--buffer", "prioritized", "--n-step", "3", "--seed", "7"],
            "dqn-prioritized-n3_CartPole-v1_seed7",
        ),
        (["--algo", "ppo", "--env", "Acrobot-v1"], "ppo_Acrobot-v1_seed0"),
        (["--algo", "her", "--env", GOAL_ENV_ID], "her_pearll-test-Goal-v0_seed0"),
    ],
)
def test_run_names(argv, stem):
    parser = cli.build_parser()
    assert cli.run_name(cli.run_config(parser.parse_args(argv), parser)) == stem


def test_defaults_come_from_the_algorithm():
    parser = cli.build_parser()
    config = cli.run_config(parser.parse_args([]), parser)
    dqn = ALGOS["dqn"]
    assert (config.algo, config.env_id, config.steps, config.seed) == (
        "dqn",
        "CartPole-v1",
        dqn.default_steps,
        0,
    )
    assert (config.buffer, config.n_step, config.buffer_size) == (
        "replay",
        1,
        dqn.default_buffer_size,
    )


@pytest.mark.parametrize(
    ("flag", "expected"),
    [([], 475.0), (["--stop-at", "never"], None), (["--stop-at", "100"], 100.0)],
)
def test_stop_at_defaults_to_the_env_reward_threshold(flag, expected):
    parser = cli.build_parser()
    config = cli.run_config(parser.parse_args(["--algo", "dqn", *flag]), parser)
    assert config.stop_at == expected


def test_stop_at_rejects_words_it_does_not_know(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--stop-at", "soon"])
    assert exit_.value.code == 2
    assert "expected a number, 'solved' or 'never'" in capsys.readouterr().err


def test_solved_needs_a_full_window_at_the_threshold():
    assert not runners.solved([500.0] * 19, 475.0)
    assert runners.solved([0.0] + [500.0] * 20, 475.0)
    assert not runners.solved([500.0] * 20, None)


@pytest.mark.parametrize(
    ("algo", "buffer_flags", "stem"),
    [
        ("dqn", [], "dqn_CartPole-v1_seed0"),
        (
            "dqn",
            ["--buffer", "prioritized", "--n-step", "3"],
            "dqn-prioritized-n3_CartPole-v1_seed0",
        ),
        ("ppo", [], "ppo_CartPole-v1_seed0"),
        ("her", [], "her_pearll-BitFlipping-v0_seed0"),
    ],
)
def test_each_algo_runs_for_real_and_writes_its_files(capsys, tmp_path, algo, buffer_flags, stem):
    # The real trainers (past DQN's 1,000 warm-up steps): files appear and the CSV parses.
    out, printed = run_demo(capsys, tmp_path, ["--algo", algo, "--steps", "1500", *buffer_flags])
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}.csv", f"{stem}.png"]
    episodes = read_csv(out / f"{stem}.csv")
    assert episodes and all(0 < e.env_steps <= 2048 for e in episodes)
    assert_drawn_png(out / f"{stem}.png")
    assert f"{algo} on " in printed.out


def test_warm_up_runs_before_the_bar_and_its_time_is_reported(capsys, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runners, "train_dqn_agent", random_dqn_trainer)
    monkeypatch.setattr(runners, "warm_up", lambda config: calls.append(config.algo))
    _, printed = run_demo(capsys, tmp_path, ["--steps", "200", "--buffer-size", "300"])
    assert calls == ["dqn"]
    said = printed.err.index("compiling the buffer's kernels")
    assert said < printed.err.index("step/s")  # the warm-up is announced before the bar
    assert "s of setup)" in printed.out
    assert "stops at 475" in printed.err  # the bar shows where the run stops early


def test_warm_up_compiles_on_a_tiny_buffer_of_the_runs_kind():
    for argv in (["--algo", "dqn", "--buffer", "prioritized"], ["--algo", "her"]):
        config = cli.run_config(cli.build_parser().parse_args(argv), cli.build_parser())
        runners.warm_up(config)  # builds, adds and samples without error


def test_a_missing_demo_dependency_is_named(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "DEMO_MODULES", {"no_such_module_here": "testing"})
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--steps", "10", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no_such_module_here (testing)" in err and "pearll[demo]" in err


def test_r2d2_runs_for_real_and_writes_its_files(capsys, tmp_path):
    # The POMDP CartPole it defaults to (training itself: tests/agents/test_r2d2.py).
    argv = ["--algo", "r2d2", "--buffer", "prioritized", "--steps", "300"]
    out, printed = run_demo(capsys, tmp_path, argv)
    stem = "r2d2-prioritized_pearll-CartPoleNoVelocity-v1_seed0"
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}.csv", f"{stem}.png"]
    assert read_csv(out / f"{stem}.csv")
    assert "r2d2 on " in printed.out
