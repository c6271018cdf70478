"""torch output is optional, lazily imported, and lands on the buffer's device."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest

from pearll.buffers import ReplayBuffer


def filled_buffer(device="auto"):
    buffer = ReplayBuffer(gym.make("CartPole-v1"), 8, device=device, seed=0)
    obs = np.zeros(4, np.float32)
    buffer.add_trajectory(obs, 0, 1.0, obs + 1, False)
    return buffer


def test_numpy_output_works_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    buffer = filled_buffer()
    assert isinstance(buffer.sample(2).observations, np.ndarray)
    with pytest.raises(ImportError, match="dtype='torch' needs PyTorch"):
        buffer.sample(2, dtype="torch")


def test_auto_device_is_cpu_without_cuda():
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert filled_buffer().device.type == expected
    batch = filled_buffer("cpu").sample(3, dtype="torch")
    assert batch.observations.device.type == "cpu"
    assert batch.observations.dtype == torch.float32
    assert batch.actions.dtype == torch.int64


def test_importing_pearll_does_not_import_torch():
    import subprocess

    code = "import sys, pearll.buffers; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize("read", ["sample", "last", "all"])
def test_cpu_tensors_share_a_fresh_gather_never_the_storage(read):
    buffer = filled_buffer("cpu")
    before = buffer.all()
    batch = buffer.all(dtype="torch") if read == "all" else getattr(buffer, read)(1, dtype="torch")
    for tensor in (batch.observations, batch.next_observations, batch.rewards, batch.dones):
        tensor.fill_(-1)
    after = buffer.all()
    for name in ("observations", "next_observations", "rewards", "dones"):
        np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
