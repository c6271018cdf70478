"""The manifest is checksummed, and no damage to it or to a .npy header escapes as anything but
CheckpointError (issue 13, items 1 and 2)."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading

import gymnasium as gym
import numpy as np
import pytest

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer
from pearll.buffers.checkpoint.manifest import file_infos
from pearll.buffers.checkpoint.npy_io import read_npy
from pearll.buffers.errors import CheckpointError
from tests.buffers.test_persistence_errors import reseal, rewrite_manifest, snapshot_of
from tests.fixtures import make_env
from tests.reference import ReferenceBuffer, Runner
from tests.state import assert_same_state


def small_checkpoint(tmp_path, name="ckpt") -> tuple[PrioritizedReplayBuffer, object]:
    env = make_env(2)
    buffer = PrioritizedReplayBuffer(env, 6, seed=0, n_step=3, gamma=0.9)
    Runner(env, buffer, ReferenceBuffer(2, 6, True)).add(9)
    batch = buffer.sample(3)
    buffer.update_priorities(batch.indices, np.full(batch.indices.shape, 2.0))
    path = tmp_path / name
    buffer.save(path)
    return buffer, path


def as_version_1(path) -> None:
    """Make the checkpoint what format 1 wrote: no manifest checksum, format_version 1."""
    snapshot = snapshot_of(path)
    manifest = json.loads((snapshot / "manifest.json").read_text())
    manifest["format_version"] = 1
    (snapshot / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (snapshot / "manifest.sha256").unlink()


def test_an_edited_manifest_is_a_checksum_mismatch(tmp_path):
    # The reproducer: n_step 3 -> 5 used to load silently.
    b = PrioritizedReplayBuffer(gym.make("CartPole-v1"), 16, n_step=3, gamma=0.9)
    b.save(tmp_path / "ckpt")
    manifest_file = snapshot_of(tmp_path / "ckpt") / "manifest.json"
    m = json.loads(manifest_file.read_text())
    m["config"]["n_step"] = 5
    manifest_file.write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match=r"manifest\.json: checksum mismatch"):
        PrioritizedReplayBuffer.load(tmp_path / "ckpt")


def test_a_damaged_or_missing_manifest_checksum_is_refused(tmp_path):
    _, path = small_checkpoint(tmp_path)
    sha = snapshot_of(path) / "manifest.sha256"
    sha.write_text("0" * 64 + "  manifest.json\n")
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        ReplayBuffer.load(path)
    sha.unlink()  # a version 2 manifest cannot lose its checksum and pass as version 1
    with pytest.raises(CheckpointError, match=r"manifest\.sha256: missing"):
        ReplayBuffer.load(path)


def test_a_version_1_manifest_without_checksum_still_loads(tmp_path):
    buffer, path = small_checkpoint(tmp_path)
    as_version_1(path)
    assert_same_state(PrioritizedReplayBuffer.load(path), buffer)


def loads_within(seconds, load):
    """``load()``'s outcome, run in a thread: a load (or read) that hangs fails the test."""
    outcome = {}

    def run():
        try:
            outcome["buffer"] = load()
        except BaseException as error:  # reported to the caller
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "load or read hung"
    return outcome


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["state"]["ring"].update(capacity=3), r"state\.ring\.capacity"),
        (lambda m: m["state"].update(ring=5), r"state\.ring: expected keys"),
        (lambda m: m.update(state=7), r"'state' should be a dict"),
        (lambda m: m["state"].update(max_priority=-1.0), "max_priority"),
        (lambda m: m["state"].update(samples_drawn="x"), r"samples_drawn: expected a number"),
        (lambda m: m["state"]["ring"].update(spare_rows=1), r"ring\.spare_rows: expected a bool"),
        (lambda m: m["env"].update(observation_space=3), "malformed 'env'"),
        (lambda m: m["config"].update(bogus=1), "does not build a PrioritizedReplayBuffer"),
        (lambda m: m["config"].update(buffer_size="6"), "does not build"),
        (lambda m: m.update(buffer_class=4), "'buffer_class' should be a str"),
        (lambda m: m["state"]["rng"].update(bit_generator="Nope"), "rng"),
        (lambda m: m["state"]["rng"]["state"].update(state="x"), "cannot be restored"),
        (lambda m: m["state"]["ring"].update(pos={"$npy": 3}), "malformed array reference"),
        (lambda m: m["files"].update({"../x.npy": {}}), "malformed 'files' entry"),
    ],
)
def test_an_edit_with_a_recomputed_checksum_is_still_caught(tmp_path, edit, message):
    _, path = small_checkpoint(tmp_path)
    rewrite_manifest(path, edit)
    outcome = loads_within(30, lambda: PrioritizedReplayBuffer.load(path))
    assert isinstance(outcome.get("error"), CheckpointError), outcome
    assert re.search(message, str(outcome["error"])), str(outcome["error"])


def test_deeply_nested_json_is_refused_not_a_recursion_error(tmp_path):
    _, path = small_checkpoint(tmp_path)
    manifest = snapshot_of(path) / "manifest.json"
    deep = 100_000
    manifest.write_text(
        '{"format": "pearll-buffer-checkpoint", "state": ' + "[" * deep + "]" * deep + "}"
    )
    reseal(manifest.parent)
    with pytest.raises(CheckpointError, match="not valid JSON"):
        ReplayBuffer.load(path)


def test_ring_arrays_that_contradict_each_other_are_caught(tmp_path):
    """A count that disagrees with the mask made all() spin forever; now load refuses it."""
    _, path = small_checkpoint(tmp_path)
    snapshot = snapshot_of(path)
    count_file = next(snapshot.glob("*-ring-count.npy"))
    count = np.load(count_file)
    count[0] += 1
    np.save(count_file, count)
    manifest = json.loads((snapshot / "manifest.json").read_text())
    manifest["files"][count_file.name]["sha256"] = hashlib.sha256(
        count_file.read_bytes()
    ).hexdigest()
    manifest["files"][count_file.name]["bytes"] = count_file.stat().st_size
    rewrite_manifest(path, lambda m: m.update(files=manifest["files"]))
    outcome = loads_within(30, lambda: PrioritizedReplayBuffer.load(path))
    assert isinstance(outcome.get("error"), CheckpointError), outcome
    assert "state.ring.count" in str(outcome["error"])


def flip_bits(data: bytes, rng: np.random.Generator, max_flips: int):
    """(position, damaged bytes) for every single-bit flip of ``data``, or ``max_flips`` of them
    sampled without replacement."""
    bits = np.arange(len(data) * 8)
    if len(bits) > max_flips:
        bits = rng.choice(bits, max_flips, replace=False)
    for bit in bits.tolist():
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        yield bit, bytes(damaged)


# Each flip costs one load (about 1 ms with a checksum, a few without); sampling keeps the test
# to a few seconds. The flipped positions are seeded: a failure names the bit to reproduce it.
FLIPS = 1500


@pytest.mark.parametrize("target", ["manifest.json", "manifest.sha256", "CURRENT"])
def test_every_single_bit_flip_loads_the_identical_buffer_or_raises(tmp_path, target):
    buffer, path = small_checkpoint(tmp_path)
    file = (path if target == "CURRENT" else snapshot_of(path)) / target
    original = file.read_bytes()
    identical = 0
    for _, damaged in flip_bits(original, np.random.default_rng(0), FLIPS):
        file.write_bytes(damaged)
        try:
            loaded = PrioritizedReplayBuffer.load(path)
        except CheckpointError:
            continue
        finally:
            file.write_bytes(original)
        assert_same_state(loaded, buffer)  # a flip that loads changed nothing that matters
        identical += 1
    assert identical < FLIPS  # the flips were noticed


def test_single_bit_flips_of_a_version_1_manifest_raise_or_load_a_working_buffer(tmp_path):
    """Without its checksum a flip may load a different, plausible buffer (another n_step): it
    must still raise nothing but CheckpointError, and whatever loads must read without hanging."""
    buffer, path = small_checkpoint(tmp_path)
    as_version_1(path)
    file = snapshot_of(path) / "manifest.json"
    original = file.read_bytes()
    outcomes = {"refused": 0, "identical": 0, "different": 0}
    for bit, damaged in flip_bits(original, np.random.default_rng(1), FLIPS // 2):
        file.write_bytes(damaged)
        try:
            outcome = loads_within(30, lambda: PrioritizedReplayBuffer.load(path))
        finally:
            file.write_bytes(original)
        error = outcome.get("error")
        assert error is None or isinstance(error, CheckpointError), (bit, repr(error))
        if error is not None:
            outcomes["refused"] += 1
            continue
        try:
            assert_same_state(outcome["buffer"], buffer)
            outcomes["identical"] += 1
        except AssertionError:
            outcomes["different"] += 1
        read = loads_within(30, functools.partial(_read, outcome["buffer"]))
        assert "error" not in read, (bit, repr(read.get("error")))
    assert outcomes["refused"] > 0 and outcomes["identical"] > 0, outcomes


def _read(loaded):
    loaded.all()
    loaded.last(1)
    loaded.sample(4)
    return loaded


def test_every_single_bit_flip_of_a_npy_header_raises_checkpoint_error(tmp_path):
    """Header flips used to escape as tokenize.TokenError or SyntaxError."""
    _, path = small_checkpoint(tmp_path)
    snapshot = snapshot_of(path)
    file = next(snapshot.glob("*-ring-count.npy"))
    info = file_infos(json.loads((snapshot / "manifest.json").read_text()), file)[file.name]
    original = file.read_bytes()
    header_end = original.index(b"\n") + 1
    damaged_file = tmp_path / "damaged.npy"
    for _, damaged in flip_bits(original[:header_end], np.random.default_rng(2), 10**6):
        damaged_file.write_bytes(damaged + original[header_end:])
        with pytest.raises(CheckpointError):
            read_npy(damaged_file, info, True, lambda n: None)
