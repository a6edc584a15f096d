"""Read and write multi-band TIFF images as (bands, H, W) or (H, W) arrays.

Uses ``tifffile`` when it is installed. Otherwise a minimal built-in codec handles what
this project needs: uncompressed baseline TIFF (little or big endian), uint8/uint16/int16/
float32 samples, one or several bands stored planar (one plane per band) or interleaved,
in strips. Compressed files without tifffile raise an error saying to install it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

try:  # pragma: no cover - depends on the environment
    import tifffile
except ImportError:  # pragma: no cover
    tifffile = None

# tag ids
WIDTH, HEIGHT, BITS, COMPRESSION, PHOTOMETRIC = 256, 257, 258, 259, 262
STRIP_OFFSETS, SAMPLES, ROWS_PER_STRIP, STRIP_COUNTS, PLANAR, SAMPLE_FORMAT = (273, 277, 278, 279, 284, 339)
_TYPES = {1: "B", 2: "s", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 11: "f", 12: "d", 16: "Q"}
_SIZES = {"B": 1, "s": 1, "H": 2, "I": 4, "b": 1, "h": 2, "i": 4, "f": 4, "d": 8, "Q": 8}


class TiffError(ValueError):
    pass


def read_tiff(path: str | Path, *, builtin: bool = False) -> np.ndarray:
    """The image in ``path``: (H, W) for one band, else (bands, H, W)."""
    path = Path(path)
    if tifffile is not None and not builtin:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            array = page.asarray()
            if page.samplesperpixel > 1 and page.planarconfig == 1:  # interleaved
                array = np.moveaxis(array, -1, 0)
        return np.ascontiguousarray(array)
    return _read_builtin(path)


def write_tiff(path: str | Path, array: np.ndarray, *, builtin: bool = False) -> Path:
    """Write (H, W) or (bands, H, W) uncompressed, one plane per band (planar)."""
    path = Path(path)
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise TiffError(f"expected (H, W) or (bands, H, W), got shape {array.shape}")
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if tifffile is not None and not builtin:
        planar = "separate" if array.ndim == 3 else None
        photometric = "minisblack"
        tifffile.imwrite(path, array, planarconfig=planar, photometric=photometric)
        return path
    _write_builtin(path, array)
    return path


# ----------------------------------------------------------------------------- built-in codec

_DTYPES = {
    (1, 8): "u1",
    (1, 16): "u2",
    (1, 32): "u4",
    (2, 8): "i1",
    (2, 16): "i2",
    (2, 32): "i4",
    (3, 32): "f4",
    (3, 64): "f8",
}
_FORMATS = {np.dtype(v): k for k, v in _DTYPES.items()}


def _read_builtin(path: Path) -> np.ndarray:
    data = path.read_bytes()
    if data[:2] == b"II":
        end = "<"
    elif data[:2] == b"MM":
        end = ">"
    else:
        raise TiffError(f"{path}: not a TIFF file")
    magic, offset = struct.unpack(end + "HI", data[2:8])
    if magic != 42:
        raise TiffError(f"{path}: BigTIFF or unknown magic {magic}; install tifffile")
    (count,) = struct.unpack(end + "H", data[offset : offset + 2])
    tags: dict[int, tuple] = {}
    for i in range(count):
        entry = data[offset + 2 + 12 * i : offset + 14 + 12 * i]
        tag, kind, n = struct.unpack(end + "HHI", entry[:8])
        code = _TYPES.get(kind)
        if code is None:
            continue
        size = _SIZES[code] * n
        raw = entry[8 : 8 + size] if size <= 4 else data[struct.unpack(end + "I", entry[8:12])[0] :][:size]
        tags[tag] = struct.unpack(f"{end}{n}{code}", raw) if code != "s" else (raw,)
    if tags.get(COMPRESSION, (1,))[0] != 1:
        raise TiffError(f"{path}: compressed TIFF; install tifffile to read it")
    width, height = tags[WIDTH][0], tags[HEIGHT][0]
    samples = tags.get(SAMPLES, (1,))[0]
    bits = tags.get(BITS, (8,))[0]
    fmt = tags.get(SAMPLE_FORMAT, (1,))[0]
    planar = tags.get(PLANAR, (1,))[0]
    dtype = np.dtype(_DTYPES[(fmt, bits)]).newbyteorder(end)
    body = b"".join(data[o : o + c] for o, c in zip(tags[STRIP_OFFSETS], tags[STRIP_COUNTS], strict=True))
    flat = np.frombuffer(body, dtype=dtype, count=width * height * samples)
    if samples == 1:
        return flat.reshape(height, width).astype(dtype.newbyteorder("="))
    if planar == 2:
        array = flat.reshape(samples, height, width)
    else:
        array = np.moveaxis(flat.reshape(height, width, samples), -1, 0)
    return np.ascontiguousarray(array).astype(dtype.newbyteorder("="))


def _write_builtin(path: Path, array: np.ndarray) -> None:
    if array.dtype not in _FORMATS:
        raise TiffError(f"cannot write dtype {array.dtype} as TIFF")
    fmt, bits = _FORMATS[array.dtype]
    planes = array[None] if array.ndim == 2 else array
    samples, height, width = planes.shape
    plane_bytes = [np.ascontiguousarray(p).astype("<" + array.dtype.str[1:]).tobytes() for p in planes]
    n_tags = 11
    ifd_offset = 8
    ifd_size = 2 + 12 * n_tags + 4
    extra = ifd_offset + ifd_size  # where arrays of values (when > 4 bytes) go
    arrays = b""

    def put(values: list[int], code: str) -> tuple[int, int, bytes]:
        nonlocal arrays
        raw = struct.pack(f"<{len(values)}{code}", *values)
        if len(raw) <= 4:
            return len(values), 0, raw.ljust(4, b"\0")
        where = extra + len(arrays)
        arrays += raw
        return len(values), where, struct.pack("<I", where)

    data_start = extra + 3 * 4 * samples + 2 * samples + 64  # generous; fixed below
    offsets, counts = [], []
    pos = data_start
    for raw in plane_bytes:
        offsets.append(pos)
        counts.append(len(raw))
        pos += len(raw)
    entries = [
        (WIDTH, 4, [width]),
        (HEIGHT, 4, [height]),
        (BITS, 3, [bits] * samples),
        (COMPRESSION, 3, [1]),
        (PHOTOMETRIC, 3, [1]),
        (STRIP_OFFSETS, 4, offsets),
        (SAMPLES, 3, [samples]),
        (ROWS_PER_STRIP, 4, [height]),
        (STRIP_COUNTS, 4, counts),
        (PLANAR, 3, [2 if samples > 1 else 1]),
        (SAMPLE_FORMAT, 3, [fmt] * samples),
    ]
    ifd = struct.pack("<H", n_tags)
    for tag, kind, values in entries:
        n, _, field = put(values, _TYPES[kind])
        ifd += struct.pack("<HHI", tag, kind, n) + field
    ifd += struct.pack("<I", 0)
    header = b"II" + struct.pack("<HI", 42, ifd_offset)
    head = header + ifd + arrays
    if len(head) > data_start:
        raise TiffError("internal error: TIFF header overflow")
    with open(path, "wb") as f:
        f.write(head.ljust(data_start, b"\0"))
        for raw in plane_bytes:
            f.write(raw)
