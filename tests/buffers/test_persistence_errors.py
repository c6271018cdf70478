"""A damaged, foreign or newer checkpoint raises CheckpointError naming the file and the fault."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

from pearll.buffers import ReplayBuffer
from pearll.buffers.errors import CheckpointError
from pearll.buffers.persistence import FORMAT_VERSION, verify_checkpoint
from tests.fixtures import make_env
from tests.reference import ReferenceBuffer, Runner


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    env = make_env(2, dict_obs=True)
    buffer = ReplayBuffer(env, 8, seed=0)
    Runner(env, buffer, ReferenceBuffer(2, 8, True)).add(11)
    buffer.save(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def snapshot_of(path: Path) -> Path:
    return path / (path / "CURRENT").read_text().strip()


def array_file(path: Path, stem: str = "storage-packed") -> Path:
    return next(snapshot_of(path).glob(f"*-{stem}.npy"))


def rewrite_manifest(path: Path, change) -> None:
    """Edit the manifest and record its new checksum, as a deliberate edit would."""
    manifest_file = snapshot_of(path) / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    change(manifest)
    manifest_file.write_text(json.dumps(manifest))
    reseal(snapshot_of(path))


def reseal(snapshot: Path) -> None:
    digest = hashlib.sha256((snapshot / "manifest.json").read_bytes()).hexdigest()
    (snapshot / "manifest.sha256").write_text(f"{digest}  manifest.json\n")


def test_flipped_byte_in_the_data_is_a_checksum_mismatch(checkpoint):
    target = array_file(checkpoint)
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x10
    target.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=re.escape(str(target)) + ".*checksum mismatch"):
        ReplayBuffer.load(checkpoint)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        verify_checkpoint(checkpoint)


def test_flipped_byte_in_the_header_is_caught(checkpoint):
    target = array_file(checkpoint)
    data = bytearray(target.read_bytes())
    data[data.index(b"shape") + 10] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=re.escape(target.name)):
        ReplayBuffer.load(checkpoint)


def test_missing_array_file(checkpoint):
    target = array_file(checkpoint, "ring-valid")
    target.unlink()
    with pytest.raises(CheckpointError, match=re.escape(target.name) + ": missing"):
        ReplayBuffer.load(checkpoint)


def test_truncated_array_file(checkpoint):
    target = array_file(checkpoint, "ring-count")
    target.write_bytes(target.read_bytes()[:-5])
    with pytest.raises(CheckpointError, match=re.escape(target.name) + ": truncated"):
        ReplayBuffer.load(checkpoint)
    with pytest.raises(CheckpointError, match="truncated"):
        ReplayBuffer.load(checkpoint, mmap=True)


def test_manifest_from_the_future(checkpoint):
    rewrite_manifest(checkpoint, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    expected = rf"manifest\.json: format version {FORMAT_VERSION + 1}.*upgrade pearll"
    with pytest.raises(CheckpointError, match=expected):
        ReplayBuffer.load(checkpoint)


def test_manifest_that_is_not_json_or_not_ours(checkpoint):
    manifest = snapshot_of(checkpoint) / "manifest.json"
    manifest.write_text('{"format": "something else"}')
    reseal(manifest.parent)
    with pytest.raises(CheckpointError, match="not a pearll buffer checkpoint"):
        ReplayBuffer.load(checkpoint)
    manifest.write_text('{"format": "pearll-buffer-che')
    reseal(manifest.parent)
    with pytest.raises(CheckpointError, match=r"manifest\.json: not valid JSON"):
        ReplayBuffer.load(checkpoint)


def test_manifest_whose_shapes_do_not_fit_the_buffer(checkpoint):
    rewrite_manifest(checkpoint, lambda m: m["config"].update(buffer_size=9))
    expected = r"state\.storage\.packed: expected a uint8 array of shape \(2, 10"
    with pytest.raises(CheckpointError, match=expected):
        ReplayBuffer.load(checkpoint)


def test_foreign_directory_and_missing_pointer_target(tmp_path, checkpoint):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match=r"CURRENT: missing, so .* is not a pearll"):
        ReplayBuffer.load(foreign)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        ReplayBuffer.load(tmp_path / "nowhere")
    (checkpoint / "CURRENT").write_text("snapshot-0-deadbeef\n")
    with pytest.raises(CheckpointError, match="names snapshot-0-deadbeef, which is missing"):
        ReplayBuffer.load(checkpoint)
    (checkpoint / "CURRENT").write_text("../../etc\n")
    with pytest.raises(CheckpointError, match="expected a snapshot name"):
        ReplayBuffer.load(checkpoint)


def test_save_refuses_a_directory_holding_other_files(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("hello")
    with pytest.raises(FileExistsError, match=r"notes\.txt"):
        ReplayBuffer(make_env(None), 4).save(foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_mmap_checks_large_arrays_only_when_asked(tmp_path):
    env = make_env(None)
    env.observation_space = spaces.Box(-1.0, 1.0, shape=(256,), dtype=np.float32)
    ReplayBuffer(env, 2048, seed=0).save(tmp_path / "ckpt")
    target = array_file(tmp_path / "ckpt")
    with open(target, "r+b") as file:
        file.seek(-100, 2)
        file.write(b"\x01")
    ReplayBuffer.load(tmp_path / "ckpt", mmap=True)  # sizes and headers only: no read
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        ReplayBuffer.load(tmp_path / "ckpt", mmap=True, verify=True)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        ReplayBuffer.load(tmp_path / "ckpt")


def test_state_that_cannot_be_saved_is_refused_before_writing(tmp_path):
    buffer = ReplayBuffer(make_env(None), 4)
    buffer.extra = object()
    buffer._state = lambda: {**ReplayBuffer._state(buffer), "extra": buffer.extra}
    with pytest.raises(TypeError, match=r"_state\(\): extra: not a numpy array or JSON value"):
        buffer.save(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()


def test_manifest_with_a_malformed_file_entry(checkpoint):
    rewrite_manifest(checkpoint, lambda m: next(iter(m["files"].values())).pop("sha256"))
    with pytest.raises(CheckpointError, match=r"manifest\.json: malformed 'files' entry"):
        ReplayBuffer.load(checkpoint)
