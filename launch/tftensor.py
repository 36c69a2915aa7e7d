"""The value of a rank-0 numeric TensorProto as Katib's collector records it.

Katib stores `str(tf.make_ndarray(tensor))` and parses it back as float64; `tensor_value`
reproduces tensorflow 2.16's `make_ndarray` (raising `Unreadable` where it raises) and numpy's
/ ml_dtypes' printing (`shortest_repr` for float32/float16, `%g` for bfloat16), without
tensorflow. The rules are listed in `launch.tfevents`' docstring.
"""

from __future__ import annotations

import math
import struct

from launch.protowire import F32, F64, U32, signed64, skip, varint

__all__ = ["Unreadable", "shortest_repr", "tensor_value"]

# TensorProto dtype -> struct code of its tensor_content (types.proto numbers). Katib prints
# float32/float16 values with numpy (shortest repr of that width), bfloat16 (DT_BFLOAT16 = 14,
# tensor_content or half_val bits) with ml_dtypes' str (%g of its float32); the others exactly.
_DT_FLOAT, _DT_DOUBLE, _DT_BFLOAT16, _DT_HALF = 1, 2, 14, 19
_CONTENT_CODES = {1: "f", 2: "d", 3: "i", 4: "B", 5: "h", 6: "b", 9: "q", 17: "H", 19: "e"}
_CONTENT_CODES.update({22: "I", 23: "Q"})
_INT_VAL_DTYPES = frozenset({3, 4, 5, 6, 17})  # int32, uint8, int16, int8, uint16 -> int_val


def shortest_repr(v: float, code: str, max_digits: int) -> float:
    """float(str(x)) for a numpy float32/float16 x: the closest shortest decimal that round-trips."""
    if v == 0.0 or not math.isfinite(v):
        return v
    fmt = struct.Struct("<" + code)

    def round_trips(x: float) -> bool:
        try:
            return bool(fmt.unpack(fmt.pack(x))[0] == v)
        except OverflowError:
            return False

    for digits in range(1, max_digits + 1):
        mantissa, exp = f"{v:.{digits - 1}e}".split("e")
        x = float(mantissa + "e" + exp)
        if round_trips(x):
            return x
        # Near a power of two the rounding interval is lopsided: the neighbour one unit away
        # in the last digit may round-trip while the nearest decimal does not.
        m = int(mantissa.replace(".", ""))
        e = int(exp) - (digits - 1)
        ok = [y for y in (float(f"{m - 1}e{e}"), float(f"{m + 1}e{e}")) if round_trips(y)]
        if ok:
            return min(ok, key=lambda y: abs(y - v))
    return v


class Unreadable(Exception):
    """`tf.make_ndarray` would raise on this tensor (Katib then skips the whole file)."""


def _bfloat16(bits: int) -> float:
    """float(str(x)) for an ml_dtypes bfloat16 x: its float32 printed by `ostream <<` (%g)."""
    f: float = F32.unpack(U32.pack((bits & 0xFFFF) << 16))[0]
    return f if not math.isfinite(f) else float(f"{f:g}")


def tensor_value(data: bytes, ranges: list[tuple[int, int]]) -> float | None:
    """The value of a rank-0 numeric TensorProto as Katib records it, else None.

    Mirrors tensorflow 2.16's `tf.make_ndarray` (tensorflow/python/framework/tensor_util.py,
    `MakeNdarray`): tensor_content first (its size must match the shape), else the typed
    *_val field, where no values give 0 and more values than elements raise (`np.pad` with a
    negative width). Raises `Unreadable` where `make_ndarray` raises for a numeric dtype.
    Several occurrences of a field merge like protobuf does.
    """
    dtype = 0
    dims: list[int] = []
    content = b""
    floats: list[float] = []
    doubles: list[float] = []
    ints: list[int] = []
    int64s: list[int] = []
    halfs: list[int] = []
    uint32s: list[int] = []
    uint64s: list[int] = []
    for s, e in ranges:
        p = s
        while p < e:
            key, p = varint(data, p)
            fno = key >> 3
            wire = key & 7
            if fno == 1 and wire == 0:
                dtype, p = varint(data, p)
            elif fno == 2 and wire == 2:  # TensorShapeProto: dim = 2 {size = 1}
                n, p = varint(data, p)
                q, end = p, p + n
                while q < end:
                    k, q = varint(data, q)
                    if k == 0x12:
                        m, q = varint(data, q)
                        r, dim_end, size = q, q + m, 0
                        while r < dim_end:
                            k2, r = varint(data, r)
                            if k2 == 0x08:
                                size, r = varint(data, r)
                                size = signed64(size)
                            else:
                                r = skip(data, r, k2)
                        dims.append(size)
                        q = dim_end
                    else:
                        q = skip(data, q, k)
                p = end
            elif fno == 4 and wire == 2:
                n, p = varint(data, p)
                content = data[p : p + n]  # proto3 bytes: the last occurrence wins
                p += n
            elif fno == 5 and wire == 2:  # packed float_val
                n, p = varint(data, p)
                floats.extend(struct.unpack_from(f"<{n // 4}f", data, p))
                p += n
            elif fno == 5 and wire == 5:
                floats.append(F32.unpack_from(data, p)[0])
                p += 4
            elif fno == 6 and wire == 2:  # packed double_val
                n, p = varint(data, p)
                doubles.extend(struct.unpack_from(f"<{n // 8}d", data, p))
                p += n
            elif fno == 6 and wire == 1:
                doubles.append(F64.unpack_from(data, p)[0])
                p += 8
            elif fno in (7, 10, 13, 16, 17):
                target = {7: ints, 10: int64s, 13: halfs, 16: uint32s, 17: uint64s}[fno]
                if wire == 2:
                    n, p = varint(data, p)
                    end = p + n
                    while p < end:
                        x, p = varint(data, p)
                        target.append(x)
                elif wire == 0:
                    x, p = varint(data, p)
                    target.append(x)
                else:
                    p = skip(data, p, key)
            else:
                p = skip(data, p, key)
    code = "H" if dtype == _DT_BFLOAT16 else _CONTENT_CODES.get(dtype)
    if code is None:
        return None  # bool, string, complex, quantized, ...: not a float to Katib
    if dims:
        if content and any(d < 0 for d in dims):
            return None  # reshape with an inferred dimension: some vector, not a number
        elements = math.prod(dims)
    else:
        elements = 1
    if content:
        size = struct.calcsize(code)
        if len(content) % size or len(content) // size != elements:
            raise Unreadable(f"tensor_content of {len(content)} bytes for shape {dims}")
        if dims:
            return None  # Katib would record "[...]", which is not a number
        raw: float = struct.unpack("<" + code, content)[0]
    else:
        if dtype == _DT_FLOAT:
            items: list[float] = floats
        elif dtype == _DT_DOUBLE:
            items = doubles
        elif dtype in _INT_VAL_DTYPES:
            items = [float(signed64(x)) for x in ints]
        elif dtype == 9:
            items = [float(signed64(x)) for x in int64s]
        elif dtype == _DT_HALF:
            items = [struct.unpack("<e", struct.pack("<H", x & 0xFFFF))[0] for x in halfs]
        elif dtype == _DT_BFLOAT16:
            items = [float(x & 0xFFFF) for x in halfs]  # the bits, converted below
        elif dtype == 22:
            items = [float(x & 0xFFFFFFFF) for x in uint32s]
        else:
            items = [float(x) for x in uint64s]
        if items and len(items) > elements:  # np.pad(values, (0, negative), "edge")
            raise Unreadable(f"{len(items)} values for shape {dims}")
        if dims:
            return None
        raw = items[0] if items else 0.0  # no values: np.zeros(shape)
    if dtype == _DT_FLOAT:
        return shortest_repr(raw, "f", 9)
    if dtype == _DT_HALF:
        return shortest_repr(raw, "e", 5)
    if dtype == _DT_BFLOAT16:
        return _bfloat16(int(raw))
    return float(raw)
