"""The memory check runs before allocation, with both figures in its message."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from gymnasium import spaces

from pearll.buffers import ReplayBuffer
from pearll.buffers.storage import memory
from tests.buffers.core.test_spaces import SpacesEnv

ATARI = SpacesEnv(spaces.Box(0, 255, (4, 84, 84), np.uint8), spaces.Discrete(6))


def fake_available(monkeypatch, available):
    monkeypatch.setattr(
        memory.psutil, "virtual_memory", lambda: SimpleNamespace(available=available)
    )


def test_a_buffer_too_large_raises_before_allocating(monkeypatch):
    fake_available(monkeypatch, 10**9)
    with pytest.raises(MemoryError) as error:
        ReplayBuffer(ATARI, 1_000_000)
    message = str(error.value)
    # Packed rows of 28,224 obs + 8 + 4 + 4 + 1 bytes, padded to 28,248; one mirror row; a
    # transition flag per row.
    assert f"{1_000_001 * 28_248 + 1_000_000} bytes" in message
    assert "1000000000 bytes" in message
    assert "reduce buffer_size" in message


def test_more_than_half_of_available_memory_warns(monkeypatch):
    needed = 1001 * 28_248 + 1000
    fake_available(monkeypatch, 2 * needed - 1)
    with pytest.warns(ResourceWarning, match="more than half"):
        buffer = ReplayBuffer(ATARI, 1000)
    assert buffer.nbytes == needed


def test_format_bytes():
    assert memory.format_bytes(512) == "512 B"
    assert memory.format_bytes(3 * 1024**3) == "3.00 GiB"
