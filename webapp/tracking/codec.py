"""Compact storage of a sample's per-token arrays: float16 values, zlib-compressed, one blob.

A 20k-token response with 8 channels is 8 x 20k x 2 bytes = 320 kB of float16 before compression
(vs ~3 MB as JSON text). Layout of the uncompressed blob::

    b"FS1" | uint32 little-endian header length | header JSON | channel 1 float16 | channel 2 ...

where the header is ``{"tokens": [str], "channels": [[name, length], ...]}``. Values beyond the
float16 range are saturated to +-65504 (a huge importance ratio stays "huge"); NaN stays NaN and
is served as null.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Mapping, Sequence

import numpy as np

_MAGIC = b"FS1"
_F16_MAX = float(np.finfo(np.float16).max)


def _to_f16(values: Sequence[float | None]) -> np.ndarray:
    arr = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    np.clip(arr, -_F16_MAX, _F16_MAX, out=arr)  # NaN passes through clip unchanged
    return arr.astype("<f2")


def pack_sample_arrays(tokens: Sequence[str], channels: Mapping[str, Sequence[float | None]]) -> bytes:
    """Encode tokens and per-token channels into one compressed blob."""
    names = list(channels)
    arrays = [_to_f16(channels[name]) for name in names]
    header = json.dumps(
        {"tokens": list(tokens), "channels": [[n, int(a.size)] for n, a in zip(names, arrays, strict=True)]},
        ensure_ascii=False, separators=(",", ":"),
    ).encode("utf-8", "surrogatepass")
    raw = b"".join([_MAGIC, struct.pack("<I", len(header)), header, *(a.tobytes() for a in arrays)])
    return zlib.compress(raw, 6)


def unpack_channel_arrays(blob: bytes | memoryview, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The float64 arrays (NaN = no value) of the channels ``names`` that the blob holds; no per-value Python."""
    raw = zlib.decompress(bytes(blob))
    if raw[:3] != _MAGIC:
        raise ValueError("not a sample array blob")
    (header_len,) = struct.unpack("<I", raw[3:7])
    header = json.loads(raw[7 : 7 + header_len].decode("utf-8", "surrogatepass"))
    offset = 7 + header_len
    out: dict[str, np.ndarray] = {}
    for name, length in header["channels"]:
        if name in names:
            out[name] = np.frombuffer(raw, dtype="<f2", count=length, offset=offset).astype(np.float64)
        offset += 2 * length
    return out


def unpack_sample_arrays(blob: bytes | memoryview) -> tuple[list[str], dict[str, list[float | None]]]:
    """Decode a blob from ``pack_sample_arrays``; NaN comes back as None (JSON null)."""
    raw = zlib.decompress(bytes(blob))
    if raw[:3] != _MAGIC:
        raise ValueError("not a sample array blob")
    (header_len,) = struct.unpack("<I", raw[3:7])
    header = json.loads(raw[7 : 7 + header_len].decode("utf-8", "surrogatepass"))
    offset = 7 + header_len
    channels: dict[str, list[float | None]] = {}
    for name, length in header["channels"]:
        arr = np.frombuffer(raw, dtype="<f2", count=length, offset=offset).astype(np.float64)
        offset += 2 * length
        channels[name] = [None if math.isnan(v) else float(v) for v in arr.tolist()]
    return header["tokens"], channels
