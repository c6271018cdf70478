"""Sequence sampling of Atari frame stacks: pearll against TorchRL's SliceSampler and flashbax.

Run by ``python -m benchmarks.bench_sequences --atari N`` (N stored steps, 200k in the issue).

The same stream for every library: 84x84 uint8 frames, random, in episodes of 100 to 2,000
steps (terminated), each step's observation the stack of its 4 newest frames (padded with the
episode's first frame at its start, as gymnasium's FrameStackObservation pads).

- pearll: ``ReplayBuffer(frame_stack=4)`` stores each frame once (7 KB a step) and rebuilds the
  stacks of every window step, its observations and next observations, with burn-in, masks and
  the true final observation.
- TorchRL: the whole stacks stored as ``obs`` (28 KB a step, its fastest read: slices are a
  gather of stored rows; no next observations stored, so it returns half of what pearll does),
  ``SliceSampler(slice_len=burn_in + length, end_key=("next", "done"), strict_length=False)``,
  by default and with ``cache_values=True`` (its fastest sampler: episode ends cached until the
  storage is written). Both samplers read one storage.
- flashbax: ``make_trajectory_buffer`` holding the stacks too, ``sample`` jitted (windows of
  ``burn_in + length`` steps that ignore episode ends: the least work of all), timed to
  ``block_until_ready``. Timed after TorchRL's storage is freed (the machine has no room for
  both), against pearll again, so each table's ratios come from one interleaved run.
- floor: one ``np.copyto`` of as many bytes as pearll returns, between arrays allocated and
  touched beforehand: no sampler returning those arrays can be faster (the memory bandwidth).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator

import numpy as np
from gymnasium import spaces

K, FRAME = 4, (84, 84)
FLOOR = "one copy of pearll's output bytes"
Interleave = Callable[[dict[str, Callable[[], object]], int, int], dict[str, float]]


class AtariSpaces:
    observation_space = spaces.Box(0, 255, (K, *FRAME), np.uint8)
    action_space = spaces.Discrete(6)
    metadata: dict = {}  # noqa: RUF012


def episodes(steps: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Each episode's frames ``(L + 1, 84, 84)`` (L steps and the final frame), ``steps`` in
    all."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < steps:
        length = min(int(rng.integers(100, 2_001)), steps - done)
        yield rng.integers(0, 256, (length + 1, *FRAME), dtype=np.uint8)
        done += length


def stacks(frames: np.ndarray) -> np.ndarray:
    """``(L + 1, 4, 84, 84)`` stacks of an episode's frames (a view, first frame padded)."""
    padded = np.concatenate([np.repeat(frames[:1], K - 1, axis=0), frames])
    return np.moveaxis(np.lib.stride_tricks.sliding_window_view(padded, K, axis=0), -1, 1)


def fill_pearll(steps: int):
    from pearll.buffers import ReplayBuffer

    buffer = ReplayBuffer(AtariSpaces(), steps + steps // 50, frame_stack=K, seed=0)
    for frames in episodes(steps):
        s, n = stacks(frames), len(frames) - 1
        ended = np.zeros(n, dtype=bool)
        ended[-1] = True
        buffer.add_batch_trajectories(
            s[:-1], np.ones(n, np.int64), np.ones(n, np.float32), s[1:], ended
        )
    return buffer


def fill_torchrl(steps: int):
    import torch
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage

    storage = LazyTensorStorage(steps)
    from torchrl.data import ReplayBuffer

    writer = ReplayBuffer(storage=storage)
    for frames in episodes(steps):
        n = len(frames) - 1
        done = torch.zeros(n, 1, dtype=torch.bool)
        done[-1] = True
        writer.extend(
            TensorDict(
                {"obs": torch.from_numpy(np.ascontiguousarray(stacks(frames)[:-1])),
                 "action": torch.ones(n, dtype=torch.int64), "reward": torch.ones(n, 1),
                 "next": {"done": done, "truncated": torch.zeros(n, 1, dtype=torch.bool)}},
                batch_size=[n],
            )
        )  # fmt: skip
    return storage


def torchrl_sampler(storage, batch: int, span: int, cached: bool):
    from torchrl.data import ReplayBuffer
    from torchrl.data.replay_buffers.samplers import SliceSampler

    sampler = SliceSampler(
        slice_len=span, end_key=("next", "done"), traj_key=None, strict_length=False,
        cache_values=cached,
    )  # fmt: skip
    return ReplayBuffer(storage=storage, sampler=sampler, batch_size=batch * span).sample


def fill_flashbax(steps: int):
    import flashbax

    obs = np.empty((1, steps, K, *FRAME), dtype=np.uint8)
    at = 0
    for frames in episodes(steps):
        n = len(frames) - 1
        obs[0, at : at + n] = stacks(frames)[:-1]
        at += n
    # Zero-copy (dlpack): the jax array is the numpy one, so the stacks are held once.
    import jax

    experience = {"obs": jax.dlpack.from_dlpack(obs)}
    return flashbax, experience


def flashbax_sampler(built, steps: int, batch: int, span: int):
    import jax
    import jax.numpy as jnp

    flashbax, experience = built
    buffer = flashbax.make_trajectory_buffer(
        add_batch_size=1, sample_batch_size=batch, sample_sequence_length=span, period=1,
        min_length_time_axis=span, max_length_time_axis=steps,
    )  # fmt: skip
    state = buffer.init({"obs": jnp.zeros((K, *FRAME), jnp.uint8)})
    state = state.replace(
        experience=experience, current_index=jnp.asarray(0, state.current_index.dtype),
        is_full=jnp.asarray(True),
    )  # fmt: skip
    sample = jax.jit(buffer.sample)
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 100_000))
    return lambda: jax.block_until_ready(sample(state, next(keys)).experience)


def output_copy(batch: int, span: int) -> Callable[[], None]:
    """The floor of any sampler returning what pearll returns: one copy of its bytes (the
    observation and next-observation stacks of ``batch * span`` steps) between arrays already
    allocated and touched, at the machine's memory bandwidth."""
    source = np.ones((2, batch, span, K, *FRAME), np.uint8)
    target = np.empty_like(source)
    return lambda: np.copyto(target, source)


def peer_rows(peer, pearll, built, samplers, cases, interleaved, rounds, calls) -> list[str]:
    """One table row per case: pearll, the peer's samplers and the copy floor timed in one
    interleaved run."""
    rows = []
    for batch, length, burn_in in cases:
        ops = {"pearll": lambda b=batch, n=length, k=burn_in: pearll.sample_sequences(
            b, n, burn_in=k)} | samplers(built, batch, burn_in + length)  # fmt: skip
        ops[FLOOR] = output_copy(batch, burn_in + length)
        medians = interleaved(ops, rounds, calls)
        del ops
        mine, floor = medians.pop("pearll"), medians.pop(FLOOR)
        fastest = min(medians.values())
        cells = "; ".join(f"{name} {v:.2f} ({v / mine:.1f}x)" for name, v in medians.items())
        call = f"sample_sequences({batch}, {length}, burn_in={burn_in})"
        rows.append(f"| {call} | {mine:.2f} | {cells} | {fastest / mine:.1f}x | {floor:.2f} |")
        print(peer, rows[-1], flush=True)
    return rows


def atari_tables(
    steps: int,
    cases,
    interleaved: Interleave,
    rounds: int,
    calls: int,
    only=("torchrl", "flashbax"),
) -> list:
    """Two tables (TorchRL, flashbax; ``only`` those named), each timed against pearll in one
    interleaved run."""
    pearll = fill_pearll(steps)
    lines = [f"### {steps:,} stored Atari steps (84x84 uint8 frames, stacks of 4)\n"]
    peers: list[tuple[str, Callable, Callable]] = [
        ("TorchRL SliceSampler", fill_torchrl, lambda built, b, span: {
            "default": torchrl_sampler(built, b, span, cached=False),
            "cache_values=True": torchrl_sampler(built, b, span, cached=True)}),
        ("flashbax trajectory buffer", fill_flashbax, lambda built, b, span: {
            "sample (jit)": flashbax_sampler(built, steps, b, span)}),
    ]  # fmt: skip
    for peer, fill, samplers in peers:
        if peer.split()[0].lower() not in only:
            continue
        try:
            built = fill(steps)
        except ImportError as error:
            lines += [f"{peer}: not installed ({error}).\n"]
            continue
        rows = peer_rows(peer, pearll, built, samplers, cases, interleaved, rounds, calls)
        lines += [
            f"Against {peer} (ratios: peer / pearll, above 1 pearll is faster):\n",
            "| call | pearll ms | peer ms (ratio) | fastest peer / pearll | floor ms |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
        del built  # the peer's storage freed before the next one is built (no room for both)
        gc.collect()
    return lines
