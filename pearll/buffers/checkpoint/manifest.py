"""A snapshot's ``manifest.json``: written with its SHA-256, read back checked and well-formed.

The manifest holds the format name and version, the buffer class, the env (spaces, sub-env
count, autoreset mode), ``config``, the ``state`` tree and, for every ``.npy`` file, its shape,
dtype, size and SHA-256. Since format version 2 the manifest's own SHA-256 is beside it, in
``manifest.sha256`` (``sha256sum -c manifest.sha256`` checks it without pearll), so every byte a
load trusts is checksummed. A version 1 manifest has no checksum: it is still loaded, and its
integrity then rests on its being well-formed JSON of the right structure, on the per-file
checksums it lists (a damaged file entry fails them) and on the consistency checks of
:mod:`pearll.buffers.checkpoint.consistency`; a damaged config value that is still plausible
(another ``n_step``) goes unnoticed in a version 1 checkpoint.

Reading never lets a damaged manifest escape as anything but
:class:`~pearll.buffers.errors.CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from pearll import __version__
from pearll.buffers.checkpoint.npy_io import NpyInfo
from pearll.buffers.checkpoint.space_json import space_from_json, space_to_json
from pearll.buffers.core.env_info import EnvInfo
from pearll.buffers.errors import CheckpointError

FORMAT = "pearll-buffer-checkpoint"
FORMAT_VERSION = 2  # 2: the manifest's SHA-256 is in the pointer; 1: it was not checksummed
MANIFEST = "manifest.json"
MANIFEST_SHA256 = "manifest.sha256"
MAX_HEADER_BYTES = 1 << 16  # a .npy header is at most this long (numpy writes a few hundred)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SECTIONS = {"buffer_class": str, "env": dict, "config": dict, "state": dict, "files": dict}


def write_manifest(directory: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``directory/manifest.json`` and its SHA-256 beside it (fsynced)."""
    raw = json.dumps(data, indent=1).encode("utf-8")
    line = f"{hashlib.sha256(raw).hexdigest()}  {MANIFEST}\n".encode()
    for name, content in ((MANIFEST, raw), (MANIFEST_SHA256, line)):
        with open(directory / name, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())


def read_manifest(snapshot: Path) -> dict[str, Any]:
    """The manifest of ``snapshot``, checked against ``manifest.sha256`` when there is one.

    Raises CheckpointError if it is missing, altered, not JSON, foreign, from a newer format,
    or lacks a section; a version 2 manifest must come with its checksum.
    """
    file = snapshot / MANIFEST
    raw = _read(file)
    sha_file = snapshot / MANIFEST_SHA256
    has_sha = sha_file.exists()
    if has_sha:
        line = _read(sha_file)
        match = re.fullmatch(rb"([0-9a-f]{64})  manifest\.json\n?", line)
        if match is None:
            raise CheckpointError(f"{sha_file}: not a sha256 line for {MANIFEST}")
        if hashlib.sha256(raw).hexdigest() != match[1].decode():
            raise CheckpointError(
                f"{file}: checksum mismatch: its sha256 is not the one {MANIFEST_SHA256} "
                "records (the manifest was altered or damaged after it was saved)"
            )
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CheckpointError(f"{file}: not valid JSON ({type(error).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{file}: not a pearll buffer checkpoint (no format {FORMAT!r})")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: format version {version!r}, written by pearll "
            f"{manifest.get('pearll_version')!r}; this pearll ({__version__}) reads versions up "
            f"to {FORMAT_VERSION}: upgrade pearll"
        )
    if version < 1:
        raise CheckpointError(f"{file}: format version {version}: no such version")
    if version >= 2 and not has_sha:
        raise CheckpointError(f"{sha_file}: missing: a version {version} manifest needs it")
    for section, kind in _SECTIONS.items():
        if not isinstance(manifest.get(section), kind):
            raise CheckpointError(
                f"{file}: malformed manifest: {section!r} should be a {kind.__name__}, got "
                f"{type(manifest.get(section)).__name__}"
            )
    return manifest


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{file}: missing") from None
    except OSError as error:
        raise CheckpointError(f"{file}: cannot be read ({error})") from None


def info_to_json(info: NpyInfo) -> dict[str, Any]:
    return {
        "shape": list(info.shape),
        "dtype": info.dtype,
        "bytes": info.file_bytes,
        "sha256": info.sha256,
    }


def file_infos(manifest: dict[str, Any], file: Path) -> dict[str, NpyInfo]:
    """The ``files`` section, every entry checked: a plain name, sizes that add up, a hash."""
    infos = {}
    for name, entry in manifest["files"].items():
        try:
            infos[name] = _file_info(name, entry)
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as error:
            raise CheckpointError(f"{file}: malformed 'files' entry {name!r}: {error}") from None
    return infos


def _file_info(name: str, entry: Any) -> NpyInfo:
    if not re.fullmatch(r"[0-9]{3,}-[A-Za-z0-9_-]*\.npy", name):
        raise ValueError("not a file name this format writes")
    shape, dtype, file_bytes, sha256 = (
        entry["shape"],
        entry["dtype"],
        entry["bytes"],
        entry["sha256"],
    )
    if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
        raise ValueError(f"shape {shape!r} is not a list of non-negative ints")
    if not isinstance(dtype, str) or not _is_count(file_bytes):
        raise TypeError(f"dtype {dtype!r} / bytes {file_bytes!r}")
    parsed = np.dtype(dtype)
    if parsed.hasobject or parsed.str != dtype:
        raise ValueError(f"dtype {dtype!r} is not a plain numpy dtype string")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(f"sha256 {sha256!r} is not 64 hex digits")
    info = NpyInfo(tuple(shape), dtype, file_bytes, sha256)
    header = file_bytes - data_bytes(info)
    if not 0 < header <= MAX_HEADER_BYTES:
        raise ValueError(f"{file_bytes} bytes cannot hold a {dtype} array of shape {shape}")
    return info


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def data_bytes(info: NpyInfo) -> int:
    count = 1
    for n in info.shape:  # Python ints: a corrupted shape cannot overflow
        count *= n
    return count * np.dtype(info.dtype).itemsize


def env_to_json(info: EnvInfo) -> dict[str, Any]:
    return {
        "observation_space": space_to_json(info.observation_space),
        "action_space": space_to_json(info.action_space),
        "num_envs": info.num_envs,
        "is_vector": info.is_vector,
        "autoreset_mode": info.autoreset_mode.value,
    }


class SavedEnv:
    """Stands in for the env a buffer was saved with: its spaces, sub-env count, autoreset mode."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.observation_space = space_from_json(data["observation_space"])
        self.action_space = space_from_json(data["action_space"])
        self.metadata = {"autoreset_mode": AutoresetMode(data["autoreset_mode"])}
        if not isinstance(data["is_vector"], bool):
            raise TypeError(f"is_vector: expected a bool, got {data['is_vector']!r}")
        if data["is_vector"]:
            if not _is_count(data["num_envs"]) or data["num_envs"] < 1:
                raise ValueError(f"num_envs: expected an int >= 1, got {data['num_envs']!r}")
            self.num_envs = data["num_envs"]
            self.single_observation_space = self.observation_space
            self.single_action_space = self.action_space

    @classmethod
    def read(cls, data: Any, file: Path) -> SavedEnv:
        """The saved env of a manifest; CheckpointError if its ``env`` section is malformed."""
        try:
            return cls(data)
        except Exception as error:  # whatever a damaged space description makes gymnasium raise
            raise CheckpointError(f"{file}: malformed 'env' section ({error!r})"[:300]) from None

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"{name}: this buffer was loaded without its env, which only knows the spaces; "
            "pass env= to load"
        )


def check_env(
    given: EnvInfo, saved: dict[str, Any], file: Path, error: type[Exception] = ValueError
) -> None:
    """Raise ``error`` unless ``given`` (the env given to ``load``) matches the one saved.

    Spaces, sub-env count and autoreset mode (the mode the env declares, or the
    ``autoreset_mode=`` given to load) must all be the saved ones: a buffer fed by an env that
    resets differently would store transitions the env never produced.
    """
    env = SavedEnv.read(saved, file)
    saved_mode = EnvInfo.of(env).autoreset_mode
    pairs = {
        "observation space": (env.observation_space, given.observation_space),
        "action space": (env.action_space, given.action_space),
        "number of sub-envs": (saved["num_envs"] if saved["is_vector"] else None,
                               given.num_envs if given.is_vector else None),
        "autoreset mode": (saved_mode.name, given.autoreset_mode.name),
    }  # fmt: skip
    for what, (want, got) in pairs.items():
        if want != got:
            raise error(f"env: the buffer was saved with {what} {want}, this env has {got}")
