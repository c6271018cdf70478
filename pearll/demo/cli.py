"""The command line: ``python -m pearll.demo`` / ``pearll-demo``.

Parses and checks the flags (bad input exits with status 2 and says what the choices are),
runs the chosen algorithm under a progress bar, writes the episode CSV and the learning-curve
PNG to ``--out``, and prints a short summary.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym

from pearll.demo import runners
from pearll.demo.episodes import write_csv
from pearll.demo.progress import RECENT_EPISODES, ProgressReporter, recent_mean_return
from pearll.demo.progress import success_rate as episode_success_rate
from pearll.demo.runners import ALGOS, BUFFERS, Algo, RunConfig, RunResult

# What the demo needs beyond the buffers' own dependencies: pip install 'pearll[demo]'.
DEMO_MODULES = {"torch": "its trainers", "matplotlib": "its learning-curve plot"}

EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    algos = "\n".join(
        f"  {name:4} {algo.help}\n"
        f"       default: --env {algo.default_env} --steps {algo.default_steps}"
        for name, algo in ALGOS.items()
    )
    parser = argparse.ArgumentParser(
        prog="pearll-demo",
        description="Train a reference agent on pearll's buffers: a progress bar while it "
        "trains, then a summary, a CSV of the episodes and a learning-curve PNG.",
        epilog=f"algorithms:\n{algos}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--algo", choices=list(ALGOS), default="dqn", help="default: dqn")
    parser.add_argument("--env", help="a gymnasium env id (default: the algorithm's)")
    parser.add_argument(
        "--steps", type=positive_int, help="env steps to train for (default: the algorithm's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    parser.add_argument("--buffer", choices=BUFFERS, help="replay buffer for dqn (default: replay)")
    parser.add_argument(
        "--n-step", type=positive_int, default=1, help="n-step returns for dqn (default: 1)"
    )
    parser.add_argument(
        "--buffer-size", type=positive_int, help="buffer rows (default: the algorithm's)"
    )
    parser.add_argument(
        "--stop-at",
        type=stop_at,
        default="solved",
        help="stop once the mean return of the last 20 episodes reaches this: a number, "
        "'solved' (the env's reward threshold, 475 for CartPole-v1; the default) or 'never'",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs"),
        help="directory for the CSV and PNG (default: runs/)",
    )
    return parser


def run_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> RunConfig:
    """The parsed flags checked against the algorithm and env, defaults filled in.

    Exits with status 2 (via ``parser.error``) on a flag the algorithm does not take, an
    unknown env id or an env whose spaces the algorithm cannot handle.
    """
    algo = ALGOS[args.algo]
    if args.buffer is not None and args.buffer not in algo.buffers:
        parser.error(f"--buffer {args.buffer}: {args.algo} {_buffer_choices(algo)}")
    if args.n_step != 1 and not algo.n_step:
        parser.error(f"--n-step {args.n_step}: {args.algo} does not take n-step returns")
    if args.buffer_size is not None and algo.default_buffer_size is None:
        parser.error(f"--buffer-size: {args.algo} sizes its own buffer")
    env_id = args.env or algo.default_env
    problem = env_problem(env_id, algo)
    if problem is not None:
        parser.error(f"--env {problem}")
    return RunConfig(
        algo=args.algo,
        env_id=env_id,
        steps=args.steps or algo.default_steps,
        seed=args.seed,
        buffer=args.buffer or (algo.buffers[0] if algo.buffers else None),
        n_step=args.n_step,
        buffer_size=args.buffer_size or algo.default_buffer_size,
        stop_at=gym.spec(env_id).reward_threshold if args.stop_at == "solved" else args.stop_at,
    )


def stop_at(text: str) -> float | str | None:
    """``--stop-at``: a number, ``"solved"`` or ``"never"`` (None)."""
    if text in ("solved", "never"):
        return None if text == "never" else text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number, 'solved' or 'never', got {text!r}"
        ) from None


def _buffer_choices(algo: Algo) -> str:
    if algo.buffers:
        return f"takes --buffer {' or '.join(algo.buffers)}"
    takers = [name for name, a in ALGOS.items() if a.buffers]
    return f"trains on a buffer of its own; --buffer applies to {', '.join(takers)}"


def env_problem(env_id: str, algo: Algo) -> str | None:
    """Why ``algo`` cannot train on ``env_id`` (unknown id, not makeable, wrong spaces), or None.

    An unknown id comes with the registered ids closest to it.
    """
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=5, cutoff=0.6)
        hint = (
            f"close matches: {', '.join(close)}"
            if close
            else "gymnasium.pprint_registry() lists them all"
        )
        return f"{env_id}: not a registered gymnasium env id; {hint}"
    try:
        env = gym.make(env_id)
    except (gym.error.Error, ImportError) as error:
        return f"{env_id}: cannot be made here: {error}"
    try:
        problem = algo.space_problem(env.observation_space, env.action_space)
    finally:
        env.close()
    return None if problem is None else f"{env_id}: {problem}"


def run_name(config: RunConfig) -> str:
    """File stem of a run's outputs, e.g. ``dqn_CartPole-v1_seed0`` or ``dqn-prioritized-n3_…``."""
    algo = ALGOS[config.algo]
    label = config.algo
    if config.buffer is not None and config.buffer != algo.buffers[0]:
        label += f"-{config.buffer}"
    if config.n_step != 1:
        label += f"-n{config.n_step}"
    return f"{label}_{config.env_id.replace('/', '-')}_seed{config.seed}"


def format_summary(
    config: RunConfig,
    result: RunResult,
    wall_time: float,
    files: Sequence[Path],
    setup_time: float | None = None,
) -> str:
    """A few lines: steps, time and rate; final mean return; the buffer; the files written.

    ``wall_time`` is the training's; ``setup_time`` the warm-up's before it, if any.
    """
    rate = result.env_steps / wall_time if wall_time > 0 else float("nan")
    setup = "" if setup_time is None else f" (after {setup_time:.1f} s of setup)"
    lines = [
        f"{config.algo} on {config.env_id}, seed {config.seed}: {result.env_steps:,} env steps "
        f"in {wall_time:.1f} s ({rate:,.0f} steps/s){setup}, {len(result.episodes):,} episodes"
    ]
    mean = recent_mean_return(result.episodes)
    if mean is None:
        lines.append("  no episode finished")
    else:
        recent = result.episodes[-RECENT_EPISODES:]
        threshold = gym.spec(config.env_id).reward_threshold
        solved = "" if threshold is None else f" (solved at {threshold:g})"
        lines.append(f"  final mean return {mean:.1f} over the last {len(recent)} episodes{solved}")
        success = episode_success_rate(recent)
        if success is not None:
            lines.append(f"  success rate {success:.0%} over the last {len(recent)} episodes")
    buffer = result.buffer
    if buffer is None:
        lines.append("  buffer: kept inside the trainer, not reported")
    else:
        lines.append(
            f"  buffer: {type(buffer).__name__} holding {len(buffer):,} transitions in "
            f"{buffer.buffer_size:,} rows, {buffer.nbytes / 1e6:.1f} MB"
        )
    lines.append(f"  wrote {', '.join(str(f) for f in files)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status (0, or 130 after Ctrl-C with the files written)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = run_config(args, parser)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"--out {args.out}: {error}")

    missing = [f"{name} ({why})" for name, why in DEMO_MODULES.items()
               if importlib.util.find_spec(name) is None]  # fmt: skip
    if missing:
        parser.error(
            f"the demo needs {' and '.join(missing)}: install torch for your machine, then "
            "pip install 'pearll[demo]' (or run `make demo`)"
        )
    # Before the bar: on a first run the trainer's import and the kernels' compilation take
    # seconds, which the bar would show as a first step with an absurd ETA.
    print(
        f"{config.algo} on {config.env_id}: importing the trainer and compiling the buffer's "
        "kernels (cached after the first run) ...",
        file=sys.stderr,
        flush=True,
    )
    setup_start = time.perf_counter()
    runners.warm_up(config)
    setup_time = time.perf_counter() - setup_start

    status = 0
    description = f"{config.algo} {config.env_id}"
    with ProgressReporter(config.steps, description, stop_at=config.stop_at) as reporter:
        try:
            result = ALGOS[config.algo].run(config, reporter)
        except KeyboardInterrupt:
            # Keep what was learned so far: the log is in the reporter, the buffer is lost.
            status = EXIT_INTERRUPTED
            result = RunResult(list(reporter.episodes), reporter.env_steps, None)
        wall_time = reporter.elapsed

    from pearll.demo.plotting import plot_learning_curve  # matplotlib: imported when needed

    stem = args.out / run_name(config)
    buffer_name = "" if result.buffer is None else f" ({type(result.buffer).__name__})"
    files = [
        write_csv(result.episodes, stem.with_suffix(".csv")),
        plot_learning_curve(
            result.episodes,
            stem.with_suffix(".png"),
            title=f"{config.algo}{buffer_name} on {config.env_id}, seed {config.seed}",
            reward_threshold=gym.spec(config.env_id).reward_threshold,
        ),
    ]
    print(format_summary(config, result, wall_time, files, setup_time))
    return status
