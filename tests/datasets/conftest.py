"""Every test here keeps its Minari datasets in a temporary folder: nothing is downloaded."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def datasets_path(tmp_path_factory, monkeypatch):
    path = tmp_path_factory.mktemp("minari_datasets")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    return path
