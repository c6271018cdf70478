"""The episode CSV: header, one row per episode, exact round trip, bad files rejected."""

from __future__ import annotations

import csv

import pytest

from pearll.demo.episodes import CSV_COLUMNS, Episode, read_csv, write_csv


def test_round_trip_keeps_every_field(tmp_path):
    episodes = [
        Episode(12, 12.0, 0.5),
        Episode(40, -3.25, 1.25, success=True),
        Episode(41, 0.1 + 0.2, 2.0, success=False),
    ]
    path = write_csv(episodes, tmp_path / "log.csv")
    assert read_csv(path) == episodes


def test_plain_csv_readers_see_the_documented_columns(tmp_path):
    path = write_csv([Episode(7, 7.0, 0.25)], tmp_path / "log.csv")
    with path.open(newline="") as file:
        rows = list(csv.reader(file))
    assert rows == [list(CSV_COLUMNS), ["7", "7.0", "0.250", ""]]


def test_no_episodes_writes_the_header_only(tmp_path):
    path = write_csv([], tmp_path / "log.csv")
    assert path.read_text().splitlines() == [",".join(CSV_COLUMNS)]
    assert read_csv(path) == []


def test_read_rejects_other_columns(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("step,reward\n1,2\n")
    with pytest.raises(ValueError, match="expected columns"):
        read_csv(path)
