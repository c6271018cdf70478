"""SB3 training on pearll.sb3's buffers against SB3's own buffer: the same algorithm, seeds, steps.

    .venv/bin/python -m benchmarks.sb3_training                 # every task, seeds 0 and 1
    .venv/bin/python -m benchmarks.sb3_training --tasks dqn --seeds 0 --quick

Tasks (hyperparameters from the RL Zoo where it has them):

- ``dqn``: DQN on CartPole-v1, 50k steps, SB3's ReplayBuffer vs ``pearll.sb3.ReplayBuffer``,
  and ``pearll.sb3.PrioritizedDQN`` (its PrioritizedReplayBuffer) on the same settings.
- ``sac``: SAC on Pendulum-v1, 10k steps, SB3's ReplayBuffer vs ``pearll.sb3.ReplayBuffer``.
- ``her``: DQN on SB3's ``BitFlippingEnv`` with 15 bits, 40k steps, SB3's HerReplayBuffer vs
  ``pearll.sb3.HerReplayBuffer`` (k = 4, "future").
- ``atari`` (needs ``ale-py``, whose wheel bundles the ROMs, and ``opencv-python-headless``:
  the ``bench`` extra): a short DQN (CnnPolicy) run, ``--atari-game`` (Breakout) for
  ``--atari-steps`` (50k), ``VecFrameStack(4)``, three greedy episodes at the end; ours
  against SB3's buffer, default and memory-saving. The RSS growth per step shows what each
  buffer's transitions cost (and the network, optimiser and env: a short run).

Statistics: the mean return of all training episodes (the area under the learning curve), of
the last 20 training episodes, and of greedy evaluation episodes at the end (for HER: the
greedy success rate). One torch thread; results go to ``--out`` (default
``benchmarks/RESULTS_SB3_TRAINING.md``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from stable_baselines3 import DQN, SAC
from stable_baselines3.common import buffers as sb3_buffers
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import BitFlippingEnv
from stable_baselines3.her.her_replay_buffer import HerReplayBuffer as SB3Her

from pearll import sb3

RESULTS = Path(__file__).with_name("RESULTS_SB3_TRAINING.md")

DQN_CARTPOLE = {
    "learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000,
    "learning_starts": 1_000, "gamma": 0.99, "target_update_interval": 10,
    "train_freq": 256, "gradient_steps": 128, "exploration_fraction": 0.16,
    "exploration_final_eps": 0.04, "policy_kwargs": {"net_arch": [256, 256]},
}  # fmt: skip
HER_BITFLIP = {
    "learning_rate": 1e-3, "batch_size": 128, "buffer_size": 40_000, "learning_starts": 1_000,
    "gamma": 0.98, "train_freq": 2, "gradient_steps": 1, "tau": 0.05,
    "target_update_interval": 2, "exploration_fraction": 0.2, "exploration_final_eps": 0.1,
    "policy_kwargs": {"net_arch": [256]},
}  # fmt: skip


class Episodes(BaseCallback):
    """Collects the return of every finished training episode (Monitor's ``info["episode"]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.returns: list[float] = []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.returns.append(float(info["episode"]["r"]))
        return True


def buffer_bytes(buffer) -> float:
    """Bytes the buffer's arrays take per transition of its capacity (pearll's: its buffer
    and the adapter's ``dones``; SB3's: every array attribute)."""
    capacity = buffer.buffer_size * buffer.n_envs
    if hasattr(buffer, "pearll_buffer"):
        return (buffer.pearll_buffer.nbytes + buffer.dones.nbytes) / capacity
    arrays = [v for v in vars(buffer).values() if isinstance(v, np.ndarray)]
    arrays += [a for v in vars(buffer).values() if isinstance(v, dict) for a in v.values()
               if isinstance(a, np.ndarray)]  # fmt: skip
    return sum(a.nbytes for a in arrays) / capacity


def greedy(model, env, episodes: int, success: bool = False) -> float:
    """Mean return (or success rate) of ``episodes`` greedy episodes on the VecEnv ``env``."""
    values, obs = [], env.reset()
    episode_return = 0.0
    while len(values) < episodes:
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, done, infos = env.step(action)
        episode_return += float(reward[0])
        if done[0]:
            values.append(float(infos[0].get("is_success", 0.0)) if success else episode_return)
            episode_return = 0.0
    return float(np.mean(values))


def runs(
    task: str, steps_scale: float, atari: tuple[str, int] = ("BreakoutNoFrameskip-v4", 50_000)
):
    """(label, model factory, env steps, eval env factory, success?) for each run of ``task``."""
    if task == "dqn":
        steps = int(50_000 * steps_scale)
        make = lambda seed: make_vec_env("CartPole-v1", n_envs=1, seed=seed)  # noqa: E731
        for label, cls, buffer in (
            ("DQN, SB3 ReplayBuffer", DQN, sb3_buffers.ReplayBuffer),
            ("DQN, pearll.sb3.ReplayBuffer", DQN, sb3.ReplayBuffer),
            ("PrioritizedDQN, pearll.sb3.PrioritizedReplayBuffer", sb3.PrioritizedDQN, None),
        ):
            kwargs = dict(DQN_CARTPOLE, replay_buffer_class=buffer)
            yield (
                "CartPole-v1",
                label,
                lambda seed, c=cls, k=kwargs: c(
                    "MlpPolicy", make(seed), seed=seed, device="cpu", **k
                ),
                steps,
                make,
                False,
            )
    elif task == "sac":
        steps = int(10_000 * steps_scale)
        make = lambda seed: make_vec_env("Pendulum-v1", n_envs=1, seed=seed)  # noqa: E731
        for label, buffer in (("SAC, SB3 ReplayBuffer", sb3_buffers.ReplayBuffer),
                              ("SAC, pearll.sb3.ReplayBuffer", sb3.ReplayBuffer)):  # fmt: skip
            yield ("Pendulum-v1", label, lambda seed, b=buffer: SAC(
                "MlpPolicy", make(seed), learning_rate=1e-3, seed=seed, device="cpu",
                replay_buffer_class=b), steps, make, False)  # fmt: skip
    elif task == "her":
        steps = int(40_000 * steps_scale)

        bits = {"n_bits": 15, "continuous": False, "max_steps": 15}

        def make(seed):
            return make_vec_env(BitFlippingEnv, n_envs=1, seed=seed, env_kwargs=bits)

        for label, buffer in (
            ("DQN + HER, SB3 HerReplayBuffer", SB3Her),
            ("DQN + HER, pearll.sb3.HerReplayBuffer", sb3.HerReplayBuffer),
        ):
            kwargs = dict(HER_BITFLIP, replay_buffer_class=buffer,
                          replay_buffer_kwargs={"n_sampled_goal": 4,
                                                "goal_selection_strategy": "future"})  # fmt: skip
            yield (
                "BitFlipping, 15 bits",
                label,
                lambda seed, k=kwargs: DQN(
                    "MultiInputPolicy", make(seed), seed=seed, device="cpu", **k
                ),
                steps,
                make,
                True,
            )
    elif task == "atari":
        yield from atari_runs(int(atari[1] * steps_scale), atari[0])
    else:
        raise ValueError(f"unknown task {task!r}")


def atari_runs(steps: int, game: str):
    """DQN (CnnPolicy) on an Atari game with SB3's AtariWrapper and VecFrameStack(4): SB3's
    buffer (default, and memory-saving, which needs timeouts off) against ours (defaults:
    frame_stack=4, timeouts on). The CnnPolicy's VecTransposeImage gives the buffer (4, 84, 84)
    stacks, channels first."""
    import ale_py
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)

    def make(seed):
        return VecFrameStack(make_atari_env(game, n_envs=1, seed=seed), 4)

    # The RL Zoo's DQN Atari settings, with exploration over the first 10% of this budget.
    common = {"buffer_size": 100_000, "learning_rate": 1e-4, "batch_size": 32,
              "learning_starts": 1_000, "target_update_interval": 1_000, "train_freq": 4,
              "gradient_steps": 1, "exploration_fraction": 0.1,
              "exploration_final_eps": 0.01}  # fmt: skip
    for label, buffer, kwargs in (
        ("DQN, pearll.sb3.ReplayBuffer (frame_stack=4, defaults)", sb3.ReplayBuffer,
         {"frame_stack": 4}),
        ("DQN, SB3 ReplayBuffer", sb3_buffers.ReplayBuffer, {}),
        ("DQN, SB3 ReplayBuffer (optimize_memory_usage, timeouts off)",
         sb3_buffers.ReplayBuffer, {"optimize_memory_usage": True,
                                    "handle_timeout_termination": False}),
    ):  # fmt: skip
        memory = {"optimize_memory_usage": kwargs.pop("optimize_memory_usage", False)}
        yield (game, label, lambda seed, b=buffer, k=kwargs, m=memory: DQN(
            "CnnPolicy", make(seed), seed=seed, device="cpu", replay_buffer_class=b,
            replay_buffer_kwargs=k, **common, **m), steps, make, False)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["dqn", "sac", "her"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--quick", action="store_true", help="a tenth of the steps")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--atari-game", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--atari-steps", type=int, default=50_000)
    parser.add_argument("--only", default="", help="only the runs whose label ends so")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scale = 0.1 if args.quick else 1.0
    lines = ["# SB3 training: pearll.sb3 buffers against SB3's own", "",
             f"Command: `python -m benchmarks.sb3_training --tasks {' '.join(args.tasks)} "
             f"--seeds {' '.join(map(str, args.seeds))}{' --quick' if args.quick else ''}`. "
             "One torch thread, a shared 2-core machine (wall times move with its load).", "",
             "| env | run | seed | env steps | episodes | mean return, all training episodes "
             "| mean return, last 20 | greedy eval (return, or success for HER) | wall s "
             "| RSS growth per env step (bytes) | buffer bytes per transition (allocated) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
             "| ---: |"]  # fmt: skip
    for task in args.tasks:
        atari = (args.atari_game, args.atari_steps)
        for env_name, label, build, steps, make_env, success in runs(task, scale, atari):
            if not label.endswith(args.only):
                continue
            for seed in args.seeds:
                start = time.perf_counter()
                model, episodes = build(seed), Episodes()
                rss = psutil.Process().memory_info().rss
                model.learn(steps, callback=episodes)
                rss_per_step = (psutil.Process().memory_info().rss - rss) / steps
                # Atari: no greedy episodes (a greedy policy this early may never end one); the
                # training returns are the statistic.
                count = 100 if success else 0 if "NoFrameskip" in env_name else 10
                evaluation = (
                    greedy(model, make_env(seed + 1000), count, success) if count else np.nan
                )
                seconds = time.perf_counter() - start
                returns = episodes.returns
                line = (f"| {env_name} | {label} | {seed} | {steps:,} | {len(returns)} "
                        f"| {np.mean(returns):.1f} | {np.mean(returns[-20:]):.1f} "
                        f"| {evaluation:.2f} | {seconds:.0f} | {rss_per_step:,.0f} "
                        f"| {buffer_bytes(model.replay_buffer):,.0f} |")  # fmt: skip
                print(line, flush=True)
                lines.append(line)
                args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
