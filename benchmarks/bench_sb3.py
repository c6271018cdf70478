"""pearll.sb3's adapters against SB3's own buffer classes, called as SB3 calls them.

    .venv/bin/python -m benchmarks.bench_sb3            # writes benchmarks/RESULTS_SB3.md
    .venv/bin/python -m benchmarks.bench_sb3 --quick

Each case times ``add(obs, next_obs, action, reward, done, infos)`` or ``sample(batch, env)``
(tensors on the cpu, as SB3's ``train`` asks) for our class and SB3's, interleaved round by
round in this process; medians per call and ``SB3 / pearll`` ratios (above 1: ours is faster).
Added steps follow on as an env produces them (each ``obs`` the previous ``next_obs``), with
an episode end every 200 steps. SB3 is run in its default configuration and, where it has
one, its memory-saving one (``optimize_memory_usage=True``, which needs
``handle_timeout_termination=False``; SB3's fastest). Memory: see benchmarks/sb3_memory.py.
"""

from __future__ import annotations

import argparse
import platform
from importlib import metadata
from pathlib import Path

import numpy as np
from gymnasium import spaces
from stable_baselines3.common import buffers as sb3_buffers
from stable_baselines3.common.envs import BitFlippingEnv
from stable_baselines3.common.vec_env import DummyVecEnv
from stable_baselines3.her.her_replay_buffer import HerReplayBuffer as SB3Her

from benchmarks.bench_buffers import CLOCKS, Case, run
from benchmarks.sb3_memory import allocated_table, rss_table
from pearll import sb3

RESULTS = Path(__file__).with_name("RESULTS_SB3.md")
EPISODE = 200


class Stream:
    """Precomputed steps of ``n_envs`` sub-envs, handed out in turn as SB3's ``add`` args."""

    def __init__(self, obs_space, n_envs: int, steps: int, frames: int | None = None):
        rng = np.random.default_rng(0)
        if frames:  # Atari-like stacks: (k, 84, 84) uint8, zero-padded at episode starts
            pool = rng.integers(0, 256, (steps + 1, 84, 84), dtype=np.uint8)
            self.obs = np.zeros((steps + 1, n_envs, frames, 84, 84), np.uint8)
            self.next_obs = np.zeros_like(self.obs)
            for t in range(steps):
                if t % EPISODE == 0:
                    self.obs[t] = 0
                    self.obs[t, :, -1] = pool[t]
                self.next_obs[t, :, :-1] = self.obs[t, :, 1:]
                self.next_obs[t, :, -1] = pool[t + 1]
                if (t + 1) % EPISODE:
                    self.obs[t + 1] = self.next_obs[t]
        else:
            shape = obs_space.shape
            self.obs = rng.standard_normal((steps + 1, n_envs, *shape)).astype(obs_space.dtype)
            self.next_obs = self.obs[1:]
        self.steps, self.n_envs, self.t = steps, n_envs, 0
        self.action = np.ones(n_envs, np.int64)  # what DQN passes for Discrete actions
        self.reward = np.ones(n_envs, np.float32)
        self.infos = [{} for _ in range(n_envs)]
        self.done = [np.zeros(n_envs, bool), np.ones(n_envs, bool)]

    def add_to(self, buffer) -> None:
        t = self.t
        self.t = (t + 1) % self.steps
        done = self.done[(t + 1) % EPISODE == 0]
        buffer.add(self.obs[t], self.next_obs[t], self.action, self.reward, done, self.infos)


def fill(buffer, stream: Stream, steps: int) -> None:
    for _ in range(steps):
        stream.add_to(buffer)


def cartpole_cases(quick: bool) -> list[Case]:
    obs_space = spaces.Box(-5, 5, (4,), np.float32)
    act_space = spaces.Discrete(2)
    stored = 20_000 if quick else 100_000
    cases = []
    for n_envs in (1, 8):
        case = Case(f"add, CartPole-like, {n_envs} env(s), per call", "µs")
        for name, cls, kwargs in (
            ("pearll.sb3", sb3.ReplayBuffer, {"seed": 0}),
            ("SB3", sb3_buffers.ReplayBuffer, {}),
            # SB3's fastest add: one observation array, no timeout flags.
            ("SB3 optimize_memory_usage", sb3_buffers.ReplayBuffer,
             {"optimize_memory_usage": True, "handle_timeout_termination": False}),
        ):  # fmt: skip
            buffer = cls(100_000, obs_space, act_space, device="cpu", n_envs=n_envs, **kwargs)
            stream = Stream(obs_space, n_envs, 5_000)
            case.ops[name] = lambda b=buffer, s=stream: s.add_to(b)
        cases.append(case)
    for title, ours_cls, theirs_cls, extra in (
        ("sample(256), CartPole-like", sb3.ReplayBuffer, sb3_buffers.ReplayBuffer, {}),
        (
            "n-step sample(256), n=3, CartPole-like",
            sb3.NStepReplayBuffer, sb3_buffers.NStepReplayBuffer, {"n_steps": 3},
        ),
    ):  # fmt: skip
        case = Case(f"{title}, {stored // 1000}k stored", "µs")
        for name, cls, kwargs in (("pearll.sb3", ours_cls, {"seed": 0}), ("SB3", theirs_cls, {})):
            buffer = cls(stored, obs_space, act_space, device="cpu", **kwargs, **extra)
            fill(buffer, Stream(obs_space, 1, stored), stored)
            case.ops[name] = lambda b=buffer: b.sample(256)
        cases.append(case)
    return cases


def atari_cases(quick: bool) -> list[Case]:
    obs_space = spaces.Box(0, 255, (4, 84, 84), np.uint8)
    act_space = spaces.Discrete(6)
    stored = 5_000 if quick else 50_000
    # Two regimes: adding to a buffer whose ring has wrapped (its memory resident: every add
    # of a training run after its first buffer_size steps), and filling a new one (each add
    # touches memory for the first time: the page faults weigh on the bytes each layout writes).
    add = Case(f"add, Atari 4x84x84 stacks, per call, to a full buffer ({stored // 1000}k)", "µs")
    fresh = Case("add, Atari 4x84x84 stacks, per call, filling a new buffer", "µs")
    sample = Case(f"sample(32), Atari 4x84x84 stacks, {stored // 1000}k stored", "µs")
    configs = (
        ("pearll.sb3 (frame_stack=4)", sb3.ReplayBuffer,
         {"seed": 0, "frame_stack": 4, "channels_order": "first"}),
        ("SB3", sb3_buffers.ReplayBuffer, {}),
        ("SB3 optimize_memory_usage", sb3_buffers.ReplayBuffer,
         {"optimize_memory_usage": True, "handle_timeout_termination": False}),
    )  # fmt: skip
    stream = Stream(obs_space, 1, stored, frames=4)
    for name, cls, kwargs in configs:
        buffer = cls(stored, obs_space, act_space, device="cpu", **kwargs)
        fill(buffer, stream, stored)
        sample.ops[name] = lambda b=buffer: b.sample(32)
        add_stream, fresh_stream = (Stream(obs_space, 1, 2_000, frames=4) for _ in range(2))
        add.ops[name] = lambda b=buffer, s=add_stream: s.add_to(b)
        adder = cls(stored, obs_space, act_space, device="cpu", **kwargs)
        fresh.ops[name] = lambda b=adder, s=fresh_stream: s.add_to(b)
        del buffer
    return [add, fresh, sample]


def her_cases(quick: bool) -> list[Case]:
    venv = DummyVecEnv([lambda: BitFlippingEnv(n_bits=15, continuous=False, max_steps=15)])
    stored = 20_000 if quick else 100_000
    case = Case(f"HER sample(256), 15-bit flipping, {stored // 1000}k stored", "µs")
    for name, cls, kwargs in (
        ("pearll.sb3", sb3.HerReplayBuffer, {"seed": 0}),
        ("SB3", SB3Her, {}),
    ):
        buffer = cls(stored, venv.observation_space, venv.action_space, venv, device="cpu",
                     **kwargs)  # fmt: skip
        obs = venv.reset()
        rng = np.random.default_rng(0)
        for _ in range(stored):
            action = rng.integers(0, 15, 1)
            new_obs, reward, done, infos = venv.step(action)
            next_obs = {k: v.copy() for k, v in new_obs.items()}
            if done[0]:
                next_obs = {k: v[None] for k, v in infos[0]["terminal_observation"].items()}
            buffer.add(obs, next_obs, action, reward, done, infos)
            obs = new_obs
        case.ops[name] = lambda b=buffer: b.sample(256)
    return [case]


def prioritized_cases(quick: bool) -> list[Case]:
    obs_space, act_space = spaces.Box(-5, 5, (4,), np.float32), spaces.Discrete(2)
    stored = 20_000 if quick else 100_000
    case = Case(f"prioritized sample(256) + update_priorities, {stored // 1000}k stored", "µs")
    ours = sb3.PrioritizedReplayBuffer(stored, obs_space, act_space, device="cpu", seed=0)
    fill(ours, Stream(obs_space, 1, stored), stored)
    td = np.random.default_rng(0).random(256)

    def step() -> None:
        batch = ours.sample(256)
        ours.update_priorities(batch.indices, td)

    case.ops["pearll.sb3"] = step
    uniform = sb3_buffers.ReplayBuffer(stored, obs_space, act_space, device="cpu")
    fill(uniform, Stream(obs_space, 1, stored), stored)
    case.ops["SB3 uniform sample (SB3 has no PER)"] = lambda: uniform.sample(256)
    return [case]


def table(case: Case, results: dict[str, float]) -> list[str]:
    base = results[next(iter(case.ops))]
    lines = [f"### {case.title}", "", f"| buffer | median ({case.unit}) | SB3 / pearll.sb3 |",
             "| --- | ---: | ---: |"]  # fmt: skip
    for name, value in results.items():
        lines.append(f"| {name} | {value:.2f} | {value / base:.2f}x |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="run only the cases whose title has this")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="cpu: this thread's CPU time (a loaded machine)")  # fmt: skip
    args = parser.parse_args()
    rounds, calls = (7, 100) if args.quick else (21, 300)
    versions = ", ".join(
        f"{p} {metadata.version(p)}" for p in ("numpy", "torch", "stable-baselines3")
    )
    out = ["# pearll.sb3 against SB3's own buffers", "",
           f"Command: `python -m benchmarks.bench_sb3{' --quick' if args.quick else ''}"
           f"{' --clock cpu' if args.clock == 'cpu' else ''}` ({rounds} interleaved rounds of "
           f"{calls} calls; medians of {args.clock} time). Python "
           f"{platform.python_version()}; {versions}.", ""]  # fmt: skip
    for make in (cartpole_cases, prioritized_cases, her_cases, atari_cases):
        for case in make(args.quick):
            if args.only not in case.title:
                continue
            results = run(case, rounds, calls, args.clock)
            out += table(case, results)
            print("\n".join(table(case, results)), flush=True)
    out += [*allocated_table(), "", *rss_table()]
    print("\n".join(out[-18:]))
    if not args.only:
        RESULTS.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
