"""Image classification data: scikit-learn's bundled digits, MNIST-format IDX files,
network3's 1-pixel-shift expansion, a seeded train/validation split, standardization.

Nothing here downloads anything.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import importlib.util
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# IDX type codes (http://yann.lecun.com/exdb/mnist/ file format): code -> big-endian dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_CODES = {np.dtype(v).newbyteorder("=").str[1:]: k for k, v in IDX_DTYPES.items()}
IMAGES_STEM, LABELS_STEM = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
CHECK_CHUNK_BYTES = 1 << 20


class DataError(ValueError):
    """A data file or folder that cannot be read, with the path and what is wrong."""


@dataclass
class Split:
    """Standardized float32 images (N, C, H, W) and int64 labels for training and validation."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


# ----------------------------------------------------------------------------- IDX files


def _open(path: Path) -> BinaryIO:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")  # type: ignore[return-value]


@dataclass(frozen=True)
class IdxHeader:
    """What an IDX file's header says: the element type and the shape of the data after it."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def read_idx_header(f: BinaryIO, path: Path) -> IdxHeader:
    """Read the header at the start of ``f``: a 4-byte magic number (0, 0, type code, ndim), then
    ndim big-endian uint32 sizes. Raises ``DataError`` naming ``path`` when it is not one."""
    magic = f.read(4)
    if len(magic) < 4 or magic[:2] != b"\x00\x00":
        found = f"0x{magic.hex()}" if magic else "missing"
        raise DataError(f"{path}: not an IDX file (magic number {found}; expected 0x0000 then a type code and ndim)")
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x}")
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(f"{path}: truncated header")
    return IdxHeader(np.dtype(IDX_DTYPES[code]), struct.unpack(f">{ndim}I", raw))


@contextlib.contextmanager
def _idx_stream(path: Path) -> Iterator[tuple[BinaryIO, IdxHeader]]:
    """The open file (decompressed when gzipped) positioned after its header, and the header; a file that
    cannot be read (permissions, a corrupt gzip stream) is a ``DataError`` naming it."""
    try:
        with _open(path) as f:
            yield f, read_idx_header(f, path)
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot be read ({error})") from error


def _check_length(path: Path, header: IdxHeader, found: int) -> None:
    if found != header.data_bytes:
        raise DataError(
            f"{path}: expected {header.data_bytes} bytes of data for shape {header.shape}, found {found} (truncated?)"
        )


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzip or not): the header (``read_idx_header``), then the data in big-endian order."""
    path = Path(path)
    with _idx_stream(path) as (f, header):
        data = f.read(header.data_bytes)
    _check_length(path, header, len(data))
    return np.frombuffer(data, dtype=header.dtype).reshape(header.shape).astype(header.dtype.newbyteorder("="))


def check_idx(path: str | Path) -> IdxHeader:
    """What ``read_idx`` checks (header, data length), reading the data in chunks without keeping it."""
    path = Path(path)
    with _idx_stream(path) as (f, header):
        found = 0
        while found < header.data_bytes and (chunk := f.read(min(CHECK_CHUNK_BYTES, header.data_bytes - found))):
            found += len(chunk)
    _check_length(path, header, found)
    return header


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzip when ``compress`` or the name ends in .gz)."""
    path = Path(path)
    array = np.asarray(array)
    key = array.dtype.newbyteorder("=").str[1:]
    if key not in IDX_CODES:
        raise DataError(f"IDX cannot hold dtype {array.dtype}")
    code = IDX_CODES[key]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = array.astype(IDX_DTYPES[code]).tobytes()
    compress = path.suffix == ".gz" if compress is None else compress
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + body)
    return path


def _find(folder: Path, stem: str) -> Path:
    """``train-images-idx3-ubyte`` also matches ``train-images.idx3-ubyte`` and ``.gz``."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, dotted):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise DataError(f"{folder}: no {stem} (or {dotted}, optionally .gz) in the IDX folder")


def idx_folder_files(folder: str | Path) -> tuple[Path, Path]:
    """The training images and labels files of an MNIST-format folder (``DataError`` when either is missing)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"IDX folder {folder} does not exist")
    return _find(folder, IMAGES_STEM), _find(folder, LABELS_STEM)


def _check_pair(folder: str | Path, images: tuple[int, ...], labels: tuple[int, ...]) -> None:
    """Images (N, H, W) and labels (N,) of one folder agree."""
    if len(images) != 3 or len(labels) != 1 or images[0] != labels[0]:
        raise DataError(f"{folder}: images {images} and labels {labels} do not match")


def check_idx_folder(folder: str | Path) -> None:
    """Everything ``load_idx_folder`` checks (the files, their headers and lengths, images against labels),
    without keeping the data: the driver's check before trials are scheduled."""
    images, labels = idx_folder_files(folder)
    _check_pair(folder, check_idx(images).shape, check_idx(labels).shape)


def load_idx_folder(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The training images (N, 1, H, W) and labels of an MNIST-format folder."""
    images_path, labels_path = idx_folder_files(folder)
    images, labels = read_idx(images_path), read_idx(labels_path)
    _check_pair(folder, images.shape, labels.shape)
    return images[:, None].astype(np.float32), labels.astype(np.int64)


def idx_folder_of(data: Any) -> Path | None:
    """The IDX folder that ``data`` names, ``None`` for ``"digits"``; ``DataError`` for anything else."""
    if data == "digits":
        return None
    if isinstance(data, dict) and set(data) == {"idx"}:
        return Path(data["idx"])
    raise DataError(f"data must be 'digits' or {{idx: /path/to/folder}}, got {data!r}")


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    # read scikit-learn's bundled file directly: importing sklearn.datasets takes seconds
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is not None and path.is_file():
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        images, labels = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    else:  # pragma: no cover - another packaging of scikit-learn
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, labels = bunch.images, bunch.target
    return images[:, None].astype(np.float32), labels.astype(np.int64)


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (values 0..16) as (N, 1, 8, 8) float32 + labels."""
    images, labels = _digits()
    return images.copy(), labels.copy()


# ----------------------------------------------------------------------------- transforms


def shift_expand(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """network3's expansion: each image plus copies shifted one pixel up, down, left and
    right (vacated pixels filled with 0, the raw background): five times the data."""
    copies = [x]
    for axis, step in ((-2, -1), (-2, 1), (-1, -1), (-1, 1)):
        shifted = np.roll(x, step, axis=axis)
        index = [slice(None)] * x.ndim
        index[axis] = 0 if step == 1 else -1
        shifted[tuple(index)] = 0
        copies.append(shifted)
    return np.concatenate(copies), np.concatenate([y] * len(copies))


def split_indices(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation cut into (train, validation); both non-empty."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(n * validation_fraction)), n - 1)
    return order[n_val:], order[:n_val]


def load(
    data: Any,
    *,
    validation_fraction: float,
    seed: int,
    expand_shifts: bool = False,
    subset: int | None = None,
) -> Split:
    """Load ``data`` ("digits" or ``{"idx": folder}``), split, expand, standardize.

    The split uses ``seed``; ``subset`` keeps that many samples first (for tiny tests).
    The mean and standard deviation come from the training part only.
    """
    folder = idx_folder_of(data)
    x, y = load_digits_arrays() if folder is None else load_idx_folder(folder)
    if subset is not None and subset < len(x):
        keep = np.random.default_rng(seed + 1).permutation(len(x))[:subset]
        x, y = x[keep], y[keep]
    train, val = split_indices(len(x), validation_fraction, seed)
    train_x, train_y, val_x, val_y = x[train], y[train], x[val], y[val]
    if expand_shifts:
        train_x, train_y = shift_expand(train_x, train_y)
    mean, std = float(train_x.mean()), float(train_x.std()) or 1.0
    return Split(
        train_x=((train_x - mean) / std).astype(np.float32),
        train_y=train_y,
        val_x=((val_x - mean) / std).astype(np.float32),
        val_y=val_y,
        classes=int(max(y.max() + 1, 2)),
    )
