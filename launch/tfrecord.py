"""TFRecord framing of TensorBoard events files, and the CRC-32C it checks.

A record is `uint64 length`, `uint32 masked_crc32c(length bytes)`, `data`,
`uint32 masked_crc32c(data)`, all little-endian; a masked CRC is the CRC-32C rotated right by
15 bits plus `MASK_DELTA`. `crc32c` is the `crc32c` wheel's where installed, else the
pure-Python `crc32c_py` (a trial image with only the MLflow client). The record loop itself is
`launch.tfevent_file`'s, inlined there for speed.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

__all__ = ["HEADER", "MASK_DELTA", "crc32c", "crc32c_py"]

HEADER = struct.Struct("<QI")  # record length, masked CRC of the length
MASK_DELTA = 0xA282EAD8  # TFRecord stores masked CRC32C: rotate right 15, add this


def crc32c_py(data: bytes, value: int = 0) -> int:
    """CRC-32C (Castagnoli), table-driven: the fallback where the `crc32c` wheel is absent."""
    crc = value ^ 0xFFFFFFFF
    table = _crc32c_table()
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


@functools.cache
def _crc32c_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


crc32c: Callable[[bytes], int]
try:
    from crc32c import crc32c
except ImportError:  # a trial image with only the MLflow client (the wrapper mirrors scalars)
    crc32c = crc32c_py
