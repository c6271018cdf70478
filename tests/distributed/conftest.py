"""One local Ray instance for every Ray test of the session (2 CPUs: this machine has 2 cores)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_ray():
    ray = pytest.importorskip("ray", exc_type=ImportError)
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def services(local_ray):
    """Call with each service a test creates; they are shut down after the test."""
    started = []
    yield started.append
    for service in started:
        service.shutdown()
