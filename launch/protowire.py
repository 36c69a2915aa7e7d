"""Protobuf wire format, by hand: varints, field skipping, and a strict check of an Event.

`check_message` walks a record the way protobuf's parser (upb) does against the messages of
tensorboard's event.proto tree (`SCHEMAS`) and raises `Malformed` exactly where
`Event.FromString` raises `DecodeError`; `varint`, `skip` and `signed64` are the primitives the
decoders in `launch.tfevent_file` and `launch.tftensor` read fields with. `F32`, `F64`, `U32`
unpack the little-endian fixed-width fields.
"""

from __future__ import annotations

import struct

__all__ = [
    "F32",
    "F64",
    "SCHEMAS",
    "U32",
    "Malformed",
    "check_message",
    "signed64",
    "skip",
    "varint",
]

U32 = struct.Struct("<I")
F64 = struct.Struct("<d")
F32 = struct.Struct("<f")


class Malformed(Exception):
    """Bytes protobuf's parser rejects (`Event.FromString` raises `DecodeError`)."""


def varint(data: bytes, p: int) -> tuple[int, int]:
    """Decode a varint at p; return (value, next position)."""
    result = 0
    shift = 0
    while True:
        b = data[p]
        p += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, p
        shift += 7
        if shift > 63:
            raise Malformed("varint too long")


def skip(data: bytes, p: int, key: int) -> int:
    """Skip the value of a field whose key was already read; return the next position."""
    wire = key & 7
    if wire == 0:
        while data[p] >= 0x80:
            p += 1
        return p + 1
    if wire == 1:
        return p + 8
    if wire == 2:
        n, p = varint(data, p)
        return p + n
    if wire == 5:
        return p + 4
    if wire == 3:  # group: skip fields up to the matching end-group key
        while True:
            k, p = varint(data, p)
            if k & 7 == 4:
                if k >> 3 != key >> 3:
                    raise Malformed("mismatched end group")
                return p
            p = skip(data, p, k)
    raise Malformed(f"bad wire type {wire}")


def signed64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


# The messages of tensorboard's event.proto tree (all proto3) as protobuf parses them: field
# number -> (kind, message). A field whose wire type does not fit its kind is an unknown field.
Schema = dict[int, tuple[str, str]]
SCHEMAS: dict[str, Schema] = {
    "Event": {
        1: ("f64", ""), 2: ("varint", ""), 3: ("str", ""), 4: ("bytes", ""),
        5: ("msg", "Summary"), 6: ("msg", "LogMessage"), 7: ("msg", "SessionLog"),
        8: ("msg", "TaggedRunMetadata"), 9: ("bytes", ""), 10: ("msg", "SourceMetadata"),
    },
    "Summary": {1: ("msg", "Summary.Value")},
    "Summary.Value": {
        7: ("str", ""), 1: ("str", ""), 9: ("msg", "SummaryMetadata"), 2: ("f32", ""),
        3: ("bytes", ""), 4: ("msg", "Summary.Image"), 5: ("msg", "HistogramProto"),
        6: ("msg", "Summary.Audio"), 8: ("msg", "TensorProto"),
    },
    "SummaryMetadata": {
        1: ("msg", "SummaryMetadata.PluginData"), 2: ("str", ""), 3: ("str", ""),
        4: ("varint", ""),
    },
    "SummaryMetadata.PluginData": {1: ("str", ""), 2: ("bytes", "")},
    "Summary.Image": {1: ("varint", ""), 2: ("varint", ""), 3: ("varint", ""), 4: ("bytes", "")},
    "HistogramProto": {
        1: ("f64", ""), 2: ("f64", ""), 3: ("f64", ""), 4: ("f64", ""), 5: ("f64", ""),
        6: ("p64", ""), 7: ("p64", ""),
    },
    "Summary.Audio": {
        1: ("f32", ""), 2: ("varint", ""), 3: ("varint", ""), 4: ("bytes", ""), 5: ("str", ""),
    },
    "TensorProto": {
        1: ("varint", ""), 2: ("msg", "TensorShapeProto"), 3: ("varint", ""),
        4: ("bytes", ""), 13: ("pvarint", ""), 5: ("p32", ""), 6: ("p64", ""),
        7: ("pvarint", ""), 8: ("bytes", ""), 9: ("p32", ""), 10: ("pvarint", ""),
        11: ("pvarint", ""), 12: ("p64", ""), 14: ("msg", "ResourceHandleProto"),
        15: ("msg", "VariantTensorDataProto"), 16: ("pvarint", ""), 17: ("pvarint", ""),
        18: ("bytes", ""),
    },
    "TensorShapeProto": {2: ("msg", "TensorShapeProto.Dim"), 3: ("varint", "")},
    "TensorShapeProto.Dim": {1: ("varint", ""), 2: ("str", "")},
    "ResourceHandleProto": {
        1: ("str", ""), 2: ("str", ""), 3: ("str", ""), 4: ("varint", ""), 5: ("str", ""),
        6: ("msg", "ResourceHandleProto.DtypeAndShape"),
    },
    "ResourceHandleProto.DtypeAndShape": {1: ("varint", ""), 2: ("msg", "TensorShapeProto")},
    "VariantTensorDataProto": {1: ("str", ""), 2: ("bytes", ""), 3: ("msg", "TensorProto")},
    "LogMessage": {1: ("varint", ""), 2: ("str", "")},
    "SessionLog": {1: ("varint", ""), 2: ("str", ""), 3: ("str", "")},
    "TaggedRunMetadata": {1: ("str", ""), 2: ("bytes", "")},
    "SourceMetadata": {1: ("str", "")},
}  # fmt: skip
# The wire types each kind accepts (packed repeated scalars also take their unpacked form).
_KIND_WIRES = {
    "varint": (0,), "f64": (1,), "f32": (5,), "str": (2,), "bytes": (2,), "msg": (2,),
    "pvarint": (0, 2), "p64": (1, 2), "p32": (5, 2),
}  # fmt: skip


def _key(data: bytes, p: int) -> tuple[int, int]:
    """A field key: protobuf reads it as a varint32 (at most 5 bytes, below 2**32)."""
    key = 0
    for i in range(5):
        b = data[p + i]
        key |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            if key > 0xFFFFFFFF:
                break
            return key, p + i + 1
    raise Malformed("bad field key")


def check_message(
    data: bytes, p: int, end: int, schema: Schema | None, group: int = 0, depth: int = 0
) -> int:
    """Walk a message from p to end as protobuf (upb) parses it; raise `Malformed` where
    `FromString` raises `DecodeError`: a bad key (field number 0, wire type 6 or 7, a stray or
    missing end-group), a field running past its end, a varint over 10 bytes, a packed field
    of the wrong size, or invalid UTF-8 in a known `string` field (proto3 checks it).
    Returns the position after the message (for a group, after its end key)."""
    if depth > 100:  # upb's default recursion limit
        raise Malformed("nested too deep")
    while p < end:
        key, p = _key(data, p)
        fno, wire = key >> 3, key & 7
        if fno == 0:
            raise Malformed("field number 0")
        spec = schema.get(fno) if schema else None
        kind = spec[0] if spec and wire in _KIND_WIRES[spec[0]] else ""
        if wire == 0:
            _, p = varint(data, p)
        elif wire == 1:
            p += 8
        elif wire == 5:
            p += 4
        elif wire == 2:
            n, p = varint(data, p)
            q = p + n
            if q > end:
                raise Malformed("a field runs past its end")
            if kind == "str":
                try:
                    data[p:q].decode("utf-8")
                except UnicodeDecodeError:
                    raise Malformed("a string field is not valid UTF-8") from None
            elif kind == "msg":
                check_message(data, p, q, SCHEMAS[spec[1]] if spec else None, 0, depth + 1)
            elif kind == "pvarint":
                while p < q:
                    _, p = varint(data, p)
                if p != q:
                    raise Malformed("a packed field runs past its end")
            elif (kind == "p32" and n % 4) or (kind == "p64" and n % 8):
                raise Malformed("a packed field has a partial element")
            p = q
        elif wire == 3:
            p = check_message(data, p, end, None, fno, depth + 1)
        elif wire == 4:
            if fno != group:
                raise Malformed("unexpected end-group")
            return p
        else:
            raise Malformed(f"wire type {wire}")
        if p > end:
            raise Malformed("a field runs past its end")
    if group:
        raise Malformed("missing end-group")
    return p
