"""Read one TensorBoard events file into its scalars, as tensorboard's EventAccumulator keeps them.

`read_event_file` checks each TFRecord's CRCs (`launch.tfrecord`), checks each Event as
protobuf parses it (`launch.protowire`), decodes `simple_value`s and rank-0 tensors
(`launch.tftensor`), and applies EventAccumulator's purge of orphaned data after a restart.
The result is an `EventFile`; which of its values Katib's collector then uses, and how they
are reduced, is `launch.tfevents`'.
"""

from __future__ import annotations

import gc
import math
import os
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from launch import tfrecord
from launch.errors import LaunchError
from launch.protowire import (
    F32,
    F64,
    SCHEMAS,
    U32,
    Malformed,
    check_message,
    signed64,
    skip,
    varint,
)
from launch.tftensor import Unreadable, tensor_value

__all__ = ["CorruptEventFileError", "EventFile", "Scalar", "read_event_file"]


class Scalar(NamedTuple):
    """One point. `value`: a simple_value widened to float64 (as EventAccumulator gives it), a
    tensor's value as Katib records it (float of its numpy `str`)."""

    step: int
    wall_time: float
    value: float


class CorruptEventFileError(LaunchError):
    """An events file has a record whose CRC or protobuf encoding is wrong."""


@dataclass(frozen=True)
class EventFile:
    """The scalars of one events file, by tag, in file order (after orphan purging)."""

    path: str
    scalars: dict[str, list[Scalar]]  # Summary.Value.simple_value
    tensors: dict[str, list[Scalar]]  # Summary.Value.tensor, rank-0 numeric only
    truncated: bool = False  # the last record is incomplete (file still being written)
    error: str | None = None  # reading stopped at a corrupt record (strict=False)
    # A record protobuf cannot parse (strict=False): tensorboard's loader raises, Katib's
    # collector skips the whole file, so nothing of it is kept (`scalars`, `tensors` empty).
    discarded: bool = False
    # Rank-0 numeric tensors that `tf.make_ndarray` raises on (e.g. 2 values for shape []):
    # Katib's collector skips the whole file when one of them has a tag it looks at.
    unreadable: dict[str, list[Scalar]] = field(default_factory=dict)


def _file_version(data: bytes) -> float:
    # tensorboard event_util.ParseFileVersion: "brain.Event:2" -> 2.0, unparsable -> -1.
    try:
        return float(data.decode("utf-8", "replace").split("brain.Event:")[-1])
    except ValueError:
        return -1.0


def _value_tags(data: bytes, ranges: list[tuple[int, int]]) -> list[str]:
    """Summary.Value.tag of every value (for EventAccumulator's purge-by-tags)."""
    tags = []
    for s, e in ranges:
        p = s
        while p < e:
            key, p = varint(data, p)
            if key != 0x0A:
                p = skip(data, p, key)
                continue
            n, p = varint(data, p)
            q, end, tag = p, p + n, ""
            while q < end:
                k, q = varint(data, q)
                if k == 0x0A:
                    m, q = varint(data, q)
                    tag = data[q : q + m].decode("utf-8", "replace")
                    q += m
                else:
                    q = skip(data, q, k)
            tags.append(tag)
            p = end
    return tags


def _purge(table: dict[str, list[Scalar]], step: int, tags: list[str] | None) -> None:
    # EventAccumulator._Purge keeps only items with item.step < event.step.
    for tag in table if tags is None else tags:
        items = table.get(tag)
        if items:
            items[:] = [s for s in items if s.step < step]


_UNSEEN: list[Scalar] = []  # sentinel: a suffix not classified yet


class _FileState:
    """What EventAccumulator keeps per file that affects which scalars survive."""

    __slots__ = ("file_version", "most_recent_step", "scalars", "tensors", "unreadable")

    def __init__(self) -> None:
        self.scalars: dict[str, list[Scalar]] = {}
        self.tensors: dict[str, list[Scalar]] = {}
        self.unreadable: dict[str, list[Scalar]] = {}  # tensors tf.make_ndarray raises on
        self.file_version = 0.0  # falsy until a file_version event, like EventAccumulator's None
        self.most_recent_step = -1


def _fast_suffix(suffix: bytes) -> str | None:
    """The tag if `suffix` is `summary { value { tag: T, simple_value: <4 bytes follow> } }`."""
    # 2a L1 0a L2 0a T <tag> 15, all lengths one byte; the 4 value bytes are not in `suffix`.
    n = len(suffix)
    if (
        n >= 7
        and suffix[0] == 0x2A
        and suffix[1] == n + 2
        and suffix[2] == 0x0A
        and suffix[3] == n
        and suffix[4] == 0x0A
        and suffix[5] == n - 7
        and suffix[-1] == 0x15
        and n + 2 < 0x80
    ):
        try:
            return suffix[6:-1].decode("utf-8")
        except UnicodeDecodeError:
            return None  # protobuf rejects it: the general path reports the record
    return None


def _event(data: bytes, st: _FileState) -> None:
    """Decode one Event (any shape) into `st`: the general, slower path."""
    # Event: wall_time=1 (double), step=2 (varint), file_version=3, summary=5, session_log=7;
    # everything else is skipped. First the whole record is checked as protobuf parses it: where
    # `Event.FromString` raises, tensorboard's loader raises and Katib drops the file.
    m = len(data)
    check_message(data, 0, m, SCHEMAS["Event"])
    p = 0
    wall_time = 0.0
    step = 0
    summary: list[tuple[int, int]] | None = None
    session_start = False
    while p < m:
        key, p = varint(data, p)
        if key == 0x09:
            wall_time = F64.unpack_from(data, p)[0]
            p += 8
        elif key == 0x10:
            step, p = varint(data, p)
            step = signed64(step)
        elif key == 0x2A:
            ln, p = varint(data, p)
            # repeated occurrences of a message field merge, as in protobuf
            summary = [*(summary or []), (p, p + ln)]
            p += ln
        elif key == 0x1A:
            ln, p = varint(data, p)
            st.file_version = _file_version(data[p : p + ln])
            p += ln
        elif key == 0x3A:  # SessionLog: status=1 (START=1)
            ln, p = varint(data, p)
            q, end = p, p + ln
            while q < end:
                k, q = varint(data, q)
                if k == 0x08:
                    status, q = varint(data, q)
                    session_start = status == 1
                else:
                    q = skip(data, q, k)
            p = end
        else:
            p = skip(data, p, key)
    if p != m:
        raise Malformed("a field runs past the end of the record")

    # EventAccumulator._MaybePurgeOrphanedData, applied before the event's own values.
    if st.file_version and st.file_version >= 2:
        if session_start:
            for table in (st.scalars, st.tensors, st.unreadable):
                _purge(table, step, None)
    elif step < st.most_recent_step and summary is not None:
        tags = _value_tags(data, summary)
        for table in (st.scalars, st.tensors, st.unreadable):
            _purge(table, step, tags)
    else:
        st.most_recent_step = step

    for s, e in summary or ():
        q = s
        while q < e:
            k, q = varint(data, q)
            if k != 0x0A:  # Summary has only `value = 1`
                q = skip(data, q, k)
                continue
            ln, q = varint(data, q)
            r, ve = q, q + ln
            q = ve
            # Value: tag=1, simple_value=2, tensor=8, node_name=7; the last member of the
            # `value` oneof (fields 2-6, 8) wins, as in protobuf.
            tag = ""
            node_name = ""
            kind = 0
            simple = 0.0
            tensor: list[tuple[int, int]] = []
            while r < ve:
                k, r = varint(data, r)
                if k == 0x0A:
                    ln, r = varint(data, r)
                    tag = data[r : r + ln].decode("utf-8", "replace")
                    r += ln
                elif k == 0x15:
                    kind = 2
                    simple = F32.unpack_from(data, r)[0]
                    r += 4
                elif k == 0x42:
                    kind = 8
                    ln, r = varint(data, r)
                    tensor.append((r, r + ln))
                    r += ln
                elif k == 0x3A:
                    ln, r = varint(data, r)
                    node_name = data[r : r + ln].decode("utf-8", "replace")
                    r += ln
                else:
                    if 3 <= k >> 3 <= 6:
                        kind = k >> 3
                    r = skip(data, r, k)
            if r != ve:
                raise Malformed("a value runs past its end")
            if kind == 2:
                st.scalars.setdefault(tag, []).append(Scalar(step, wall_time, simple))
            elif kind == 8:
                # EventAccumulator: a tensor without a tag uses node_name
                try:
                    value = tensor_value(data, tensor)
                except Unreadable:
                    st.unreadable.setdefault(tag or node_name, []).append(
                        Scalar(step, wall_time, math.nan)
                    )
                    continue
                if value is not None:
                    st.tensors.setdefault(tag or node_name, []).append(
                        Scalar(step, wall_time, value)
                    )
        if q != e:
            raise Malformed("a summary runs past its end")


def _parse(buf: bytes, path: str, strict: bool) -> EventFile:
    """Check and decode every record of an events file.

    The loop is flat on purpose: tensorboardX and torch write each scalar as one small Event
    whose bytes after the step are the same for every value of a tag, so those bytes (less the
    4 value bytes) key a dict straight to the tag's list; any other record takes `_event`.
    """
    unpack_header = tfrecord.HEADER.unpack_from
    unpack_u32 = U32.unpack_from
    unpack_f64 = F64.unpack_from
    unpack_f32 = F32.unpack_from
    crc = tfrecord.crc32c  # looked up per file: tests swap in the pure-Python CRC
    mask_delta = tfrecord.MASK_DELTA
    tuple_new = tuple.__new__
    st = _FileState()
    fast: dict[bytes, list[Scalar] | None] = {}
    fast_ok = False  # the fast path needs file_version >= 2 (no out-of-order purging)
    n = len(buf)
    pos = 0
    truncated = False
    discarded = False
    error: str | None = None
    while pos < n:
        if pos + 12 > n:
            truncated = True
            break
        length, length_crc = unpack_header(buf, pos)
        c = crc(buf[pos : pos + 8])
        if (((c >> 15) | (c << 17)) + mask_delta) & 0xFFFFFFFF != length_crc:
            error = f"{path}: record at byte {pos}: length CRC mismatch"
            break
        start = pos + 12
        end = start + length
        if end + 4 > n:
            truncated = True
            break
        data = buf[start:end]
        c = crc(data)
        if (((c >> 15) | (c << 17)) + mask_delta) & 0xFFFFFFFF != unpack_u32(buf, end)[0]:
            error = f"{path}: record at byte {pos}: data CRC mismatch"
            break
        record_pos = pos
        pos = end + 4
        # Fast path: 09 <wall_time> 10 <step, 1-3 bytes> <constant suffix per tag> <f32 value>
        if fast_ok and length > 16 and data[0] == 0x09 and data[9] == 0x10:
            b = data[10]
            if b < 0x80:
                step = b
                p = 11
            elif data[11] < 0x80:
                step = (b & 0x7F) | (data[11] << 7)
                p = 12
            elif data[12] < 0x80:
                step = (b & 0x7F) | ((data[11] & 0x7F) << 7) | (data[12] << 14)
                p = 13
            else:
                p = 0
            if p:
                suffix = data[p:-4]
                items = fast.get(suffix, _UNSEEN)
                if items is _UNSEEN:  # first time this suffix is seen
                    tag = _fast_suffix(suffix)
                    items = fast[suffix] = None if tag is None else st.scalars.setdefault(tag, [])
                if items is not None:
                    items.append(
                        tuple_new(
                            Scalar, (step, unpack_f64(data, 1)[0], unpack_f32(data, length - 4)[0])
                        )
                    )
                    continue
        try:
            _event(data, st)
        except (Malformed, IndexError, struct.error, ValueError) as exc:
            error = f"{path}: record at byte {record_pos}: malformed Event ({exc})"
            discarded = True
            break
        fast_ok = st.file_version >= 2
    if error is not None and strict:
        raise CorruptEventFileError(
            error,
            hint=(
                "the events file is damaged; tensorboard stops at a bad CRC and fails on a bad "
                "Event (Katib's collector then skips the file); strict=False reads it like that"
            ),
        )
    if discarded:
        return EventFile(path, {}, {}, truncated, error, discarded=True)
    return EventFile(path, st.scalars, st.tensors, truncated, error, False, st.unreadable)


def read_event_file(path: str | os.PathLike[str], *, strict: bool = True) -> EventFile:
    """Read one events file. A truncated final record is tolerated (reading stops there).

    A corrupt record (bad CRC, bad protobuf) raises `CorruptEventFileError`, or with
    `strict=False` stops reading and is reported in `EventFile.error`, as tensorboard does.
    """
    with open(path, "rb") as f:
        buf = f.read()
    # The parse allocates two tuples per scalar and frees nothing: cyclic GC passes over a big
    # heap would only cost time (about a third of it here), so pause them for this call.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse(buf, os.fspath(path), strict)
    finally:
        if gc_was_enabled:
            gc.enable()
