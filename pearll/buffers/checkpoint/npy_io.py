"""Streaming ``.npy`` files: write an array, read one back, with a SHA-256 of the whole file.

Arrays go to and from disk in chunks of :data:`CHUNK_BYTES` straight from (into) their own
memory, so saving or loading a multi-GB array needs no second copy of it. The checksum covers
the whole file (header and data), so ``sha256sum file.npy`` checks it without pearll, and the
files are ordinary ``.npy`` files that ``numpy.load`` opens.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pearll.buffers.errors import CheckpointError

CHUNK_BYTES = 16 << 20
HASH = "sha256"

_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}

Progress = Callable[[int], None]  # called with the number of bytes just written or read


@dataclass(frozen=True)
class NpyInfo:
    """What a manifest records about one ``.npy`` file."""

    shape: tuple[int, ...]
    dtype: str  # numpy dtype string, e.g. "<f4"
    file_bytes: int
    sha256: str


def write_npy(path: Path, array: np.ndarray, progress: Progress) -> NpyInfo:
    """Write ``array`` to ``path`` chunk by chunk, fsync it, and return its size and checksum."""
    header = _header_bytes(array)
    digest = hashlib.new(HASH, header)
    with open(path, "wb") as file:
        file.write(header)
        for chunk in _chunks(array):
            digest.update(chunk)
            file.write(chunk)
            progress(chunk.nbytes)
        file.flush()
        os.fsync(file.fileno())
    file_bytes = len(header) + array.nbytes
    return NpyInfo(tuple(array.shape), array.dtype.str, file_bytes, digest.hexdigest())


def read_npy(path: Path, info: NpyInfo, verify: bool, progress: Progress) -> np.ndarray:
    """The array in ``path``, read into fresh memory; CheckpointError unless it matches ``info``.

    With ``verify`` the SHA-256 of the bytes read is compared with ``info.sha256``.
    """
    array = np.empty(info.shape, dtype=np.dtype(info.dtype))
    with _open(path) as file:
        header = _check_header(path, file, info)
        digest = hashlib.new(HASH, header)
        for chunk in _chunks(array):
            if file.readinto(chunk) != chunk.nbytes:
                raise CheckpointError(f"{path}: truncated: the file ended before its data did")
            if verify:
                digest.update(chunk)
            progress(chunk.nbytes)
    if verify:
        _check_digest(path, digest.hexdigest(), info)
    return array


def open_npy(path: Path, info: NpyInfo, verify: bool, progress: Progress) -> np.ndarray:
    """The array in ``path`` memory-mapped copy-on-write (``numpy.load(mmap_mode="c")``).

    Writes to the array stay in memory and never reach the file. The header and the file size
    are always checked; the data is read (to compare its checksum) only with ``verify``.
    """
    with _open(path) as file:
        _check_header(path, file, info)
    if verify:
        verify_npy(path, info, progress)
    return np.load(path, mmap_mode="c", allow_pickle=False)


def verify_npy(path: Path, info: NpyInfo, progress: Progress) -> None:
    """Read ``path`` through and compare its size and SHA-256 with ``info``."""
    with _open(path) as file:
        _check_header(path, file, info)
        file.seek(0)
        digest = hashlib.new(HASH)
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
            progress(len(chunk))
    _check_digest(path, digest.hexdigest(), info)


def _open(path: Path) -> io.BufferedReader:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing: the manifest lists this file") from None


def _header_bytes(array: np.ndarray) -> bytes:
    header = io.BytesIO()
    # Always C order: _chunks writes the data in C order, whatever the array's layout.
    fields = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False}
    fields["shape"] = tuple(array.shape)
    np.lib.format.write_array_header_2_0(header, fields)
    return header.getvalue()


def _chunks(array: np.ndarray) -> Iterator[np.ndarray]:
    """``array``'s bytes in C order, as uint8 chunks that are views of it when it is contiguous.

    A non-contiguous array is copied one chunk of rows at a time.
    """
    if array.nbytes == 0:
        return
    if array.flags.c_contiguous:
        flat = array.reshape(-1).view(np.uint8)
        for start in range(0, flat.size, CHUNK_BYTES):
            yield flat[start : start + CHUNK_BYTES]
        return
    row_bytes = array[0].nbytes
    rows = max(1, CHUNK_BYTES // max(row_bytes, 1))
    for start in range(0, len(array), rows):
        yield np.ascontiguousarray(array[start : start + rows]).reshape(-1).view(np.uint8)


def _check_header(path: Path, file: io.BufferedReader, info: NpyInfo) -> bytes:
    """Check the file's size and header against ``info``; return the header bytes."""
    size = os.fstat(file.fileno()).st_size
    if size != info.file_bytes:
        problem = "truncated" if size < info.file_bytes else "longer than recorded"
        raise CheckpointError(
            f"{path}: {problem}: {size} bytes, the manifest says {info.file_bytes}"
        )
    try:
        version = np.lib.format.read_magic(file)
        if version not in _HEADER_READERS:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = _HEADER_READERS[version](file)
    except Exception as error:  # numpy parses the header with ast: SyntaxError, TokenError...
        raise CheckpointError(f"{path}: not a readable .npy file ({error!r})"[:300]) from None
    if tuple(shape) != info.shape or dtype.str != info.dtype or fortran:
        raise CheckpointError(
            f"{path}: holds a {'Fortran-order ' if fortran else ''}{dtype.str} array of shape "
            f"{tuple(shape)}, the manifest says {info.dtype} of shape {info.shape}"
        )
    header_end = file.tell()
    file.seek(0)
    return file.read(header_end)


def _check_digest(path: Path, got: str, info: NpyInfo) -> None:
    if got != info.sha256:
        raise CheckpointError(
            f"{path}: checksum mismatch: {HASH} is {got}, the manifest says {info.sha256} "
            "(the file was altered or damaged after it was saved)"
        )
