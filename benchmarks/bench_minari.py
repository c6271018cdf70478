"""Minari loading and mixed-replay sampling, against their baselines in the same run.

1. Loading a 1M-step dataset (D4RL-locomotion-sized: 11-dim float32 observations, 3-dim
   actions, 1,000 episodes of 1,000 steps, half of them truncated): ``ReplayBuffer.from_minari``
   (in memory, and memory-mapped) against Minari's own ``iterate_episodes`` read into numpy
   arrays (observations, next observations, actions, rewards, terminations, truncations: what
   the buffer ends up holding). Rounds are interleaved; medians.
2. Sampling 256 transitions: ``MixedReplay(offline, online, 0.5).sample(256)`` against one
   ``ReplayBuffer.sample(256, flatten_env=True)``, and the prioritized pair, interleaved.

The dataset is written to a temporary MINARI_DATASETS_PATH (nothing is downloaded).

    python -m benchmarks.bench_minari [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from gymnasium import spaces

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer
from pearll.datasets import MixedReplay

OBS = spaces.Box(-np.inf, np.inf, shape=(11,), dtype=np.float32)
ACT = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
EPISODE = 1_000
BATCH = 256


def build_dataset(minari, steps: int, rng: np.random.Generator):
    from minari.data_collector import EpisodeBuffer

    episodes = []
    for i in range(steps // EPISODE):
        ended = np.zeros(EPISODE, bool)
        ended[-1] = True
        episodes.append(
            EpisodeBuffer(
                observations=rng.standard_normal((EPISODE + 1, 11)).astype(np.float32),
                actions=rng.uniform(-1, 1, (EPISODE, 3)).astype(np.float32),
                rewards=rng.standard_normal(EPISODE),
                terminations=ended if i % 2 else np.zeros(EPISODE, bool),
                truncations=np.zeros(EPISODE, bool) if i % 2 else ended,
            )
        )
    return minari.create_dataset_from_buffers(
        "bench/locomotion-v0", episodes, observation_space=OBS, action_space=ACT,
        author="pearll benchmarks", algorithm_name="random",
    )  # fmt: skip


def minari_into_numpy(dataset) -> dict[str, np.ndarray]:
    """The baseline: Minari's iterate_episodes, read into flat numpy arrays."""
    parts: dict[str, list] = {k: [] for k in ("obs", "next", "act", "rew", "term", "trunc")}
    for episode in dataset.iterate_episodes():
        parts["obs"].append(episode.observations[:-1])
        parts["next"].append(episode.observations[1:])
        parts["act"].append(episode.actions)
        parts["rew"].append(episode.rewards)
        parts["term"].append(episode.terminations)
        parts["trunc"].append(episode.truncations)
    return {key: np.concatenate(value) for key, value in parts.items()}


def timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds of ``fn()`` (CPU time: this shared machine's load inflates wall)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def bench_loading(dataset, rounds: int, storage_dir: str) -> dict[str, tuple[float, float]]:
    contenders = {
        "Minari iterate_episodes -> numpy": lambda: minari_into_numpy(dataset),
        "ReplayBuffer.from_minari": lambda: ReplayBuffer.from_minari(dataset, progress=False),
        "ReplayBuffer.from_minari, memmap": lambda: ReplayBuffer.from_minari(
            dataset, storage="memmap", storage_dir=storage_dir, progress=False
        ),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()  # warm-up: imports, compiled code, the file in the page cache
    for _ in range(rounds):
        for name, fn in contenders.items():
            times[name].append(timed(fn))
    return {name: tuple(np.median(np.array(t), axis=0).tolist()) for name, t in times.items()}


def bench_sampling(dataset, calls: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    online_steps = 100_000
    obs = rng.standard_normal((online_steps + 1, 11)).astype(np.float32)
    online_args = (
        obs[:-1], rng.uniform(-1, 1, (online_steps, 3)).astype(np.float32),
        np.ones(online_steps, np.float32), obs[1:], np.zeros(online_steps, bool),
        (np.arange(online_steps) % EPISODE) == EPISODE - 1,
    )  # fmt: skip

    class Spaces:
        observation_space, action_space = OBS, ACT

    setups = {}
    for label, cls in (("uniform", ReplayBuffer), ("prioritized", PrioritizedReplayBuffer)):
        offline = cls.from_minari(dataset, seed=0, progress=False)
        online = cls(Spaces(), 200_000, seed=1)
        online.add_batch_trajectories(*online_args)
        mixed = MixedReplay(offline, online, 0.5, seed=2)
        setups[f"{label}: {cls.__name__}.sample({BATCH})"] = lambda b=offline: b.sample(BATCH)
        setups[f"{label}: MixedReplay.sample({BATCH})"] = lambda m=mixed: m.sample(BATCH)
    times: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(calls // 100):
        for name, fn in setups.items():
            start = time.perf_counter()
            for _ in range(100):
                fn()
            times[name].append((time.perf_counter() - start) / 100)
    return {name: float(np.median(t)) * 1e6 for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k steps, fewer rounds")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_MINARI.md")))
    args = parser.parse_args()
    steps, rounds, calls = (100_000, 3, 1_000) if args.quick else (1_000_000, 5, 5_000)
    with tempfile.TemporaryDirectory() as root:
        os.environ["MINARI_DATASETS_PATH"] = root
        import minari

        warnings.simplefilter("ignore", UserWarning)
        dataset = build_dataset(minari, steps, np.random.default_rng(0))
        loading = bench_loading(dataset, rounds, root)
        sampling = bench_sampling(dataset, calls)
    baseline = loading["Minari iterate_episodes -> numpy"]
    lines = [
        "# Minari loading and mixed replay",
        "",
        f"`python -m benchmarks.bench_minari{' --quick' if args.quick else ''}`; "
        f"{platform.processor() or platform.machine()}, numpy {np.__version__}, "
        f"minari {minari.__version__}; load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores.",
        "",
        f"Loading {steps:,} steps ({steps // EPISODE:,} episodes of {EPISODE:,}; obs 11 float32, "
        f"actions 3 float32), median of {rounds} interleaved rounds:",
        "",
        "| loader | wall s | CPU s | steps/s (wall) | baseline / this (wall) | (CPU) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, (wall, cpu) in loading.items():
        lines.append(
            f"| {name} | {wall:.2f} | {cpu:.2f} | {steps / wall:,.0f} | "
            f"{baseline[0] / wall:.2f} | {baseline[1] / cpu:.2f} |"
        )
    lines += [
        "",
        f"Sampling {BATCH} (offline {steps:,} steps, online 100k; MixedReplay half each), "
        "median µs per call:",
        "",
        "| sampler | µs | mixed / plain |",
        "| --- | ---: | ---: |",
    ]
    names = list(sampling)
    for plain, mixed in zip(names[::2], names[1::2], strict=True):
        lines.append(f"| {plain} | {sampling[plain]:.1f} | |")
        lines.append(
            f"| {mixed} | {sampling[mixed]:.1f} | {sampling[mixed] / sampling[plain]:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
