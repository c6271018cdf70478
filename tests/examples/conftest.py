"""Tests here train small networks: on one torch thread (see tests/torch_threads.py)."""

from tests.torch_threads import one_torch_thread  # noqa: F401
