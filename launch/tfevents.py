"""Read TensorBoard scalars the way Katib's TensorFlowEvent metrics collector does.

Katib (v0.18/v0.19) reads a trial's metrics in
`pkg/metricscollector/v1beta1/tfevent-metricscollector/tfevent_loader.py`: it walks the
collector directory, loads every events file with tensorboard's `EventAccumulator`, keeps the
values whose tag matches a metric name, the DB manager hands them back sorted by time
(`pkg/db/v1beta1/mysql/mysql.go` `GetObservationLog`: `ORDER BY time`), and the trial
controller (`pkg/controller.v1beta1/trial/trial_controller_util.go`, `getMetrics`) reduces
them to min/max/latest in that order. This module reproduces those rules without tensorflow or
protobuf: a TFRecord reader with both CRCs checked, a wire-format check that fails where
protobuf's parser fails, and a hand-written decoder for the few proto fields involved.

Katib facts reproduced here (links are to kubeflow/katib):

- Only files whose name contains `tfevents` (and does not end in `.profile-empty`) are events
  files (tensorboard `io_wrapper.IsSummaryEventsFile`); the directory is walked recursively.
- A tag matches metric `m` when the tag *starts with* the last `/`-component of `m`; when `m`
  has a `/`, the event file's directory must also *end with* the part before it
  (`_should_consider`). So `loss` matches `loss/train` and `loss_ema` but not `train/loss`;
  `train/loss` matches tag `loss` in a file under `.../train/`.
- Values come from `simple_value` (tensorboardX, torch; read since v0.18, kubeflow/katib#2467
  fixing #2466) and from tensors (TF2 `tf.summary.scalar`), each recorded as `str(value)`
  (tfevent_loader.py `parse_summary`: `str(tf.make_ndarray(tensor.tensor_proto))`,
  `str(scalar.value)`) and parsed back as float64 (`strconv.ParseFloat`): a float32 tensor 0.1
  is 0.1, a simple_value 0.1 is 0.10000000149..., a bfloat16 tensor 0.1 (DT_BFLOAT16, in
  tensor_content or half_val) is 0.100098 (ml_dtypes prints its float32 with `%g`).
- `tf.make_ndarray` (tensorflow 2.16, pinned by the v0.19 collector image) of a rank-0 tensor
  with no values is 0; with more values than elements, or a tensor_content of the wrong size,
  it raises.
- Every value is stamped `rfc3339(datetime.fromtimestamp(wall_time))`: whole seconds.
- Anything raised while one file is read skips *that whole file*: `MetricsCollector.parse_file`
  wraps `parse_summary(f)` in `except Exception: continue`. That is: a record protobuf cannot
  parse (`Event.FromString` raises `DecodeError` out of `EventAccumulator.Reload()`: invalid
  UTF-8 in a string field such as a tag, field number 0, wire type 6/7, a stray end-group, a
  field past its end; a known field with another wire type is only an unknown field), a tensor
  `tf.make_ndarray` raises on, or a wall time `fromtimestamp` rejects (NaN, inf, far future),
  the last two only for tags some metric matches. Records before it are not kept.
- A bad CRC or a truncated record ends the reading of that file silently and keeps the records
  before it (tensorboard's loader swallows `DataLossError`); `EventAccumulator` also purges
  orphaned data after a restart (SessionLog.START, or out-of-order steps in files without a
  file_version >= 2).
- min/max/latest are reduced in time order (`ORDER BY time`, whole seconds): the first value
  seeds min and max and a later one replaces them only if `v < min` / `v > max`, so a NaN
  that comes first in time makes both NaN, and one later is ignored; inf is a value. "latest"
  is the value of the last log in that order.
- If the objective has no value, the collector reports only `objective=unavailable` (other
  metrics are dropped) and the trial becomes `MetricsUnavailable`.

Where Katib is not deterministic, launch picks one of its possible outcomes: values that tie
on the same second come back from MySQL/PostgreSQL in an order `ORDER BY time` leaves open
(launch: collection order, i.e. files in sorted walk order, then tensor tags, then scalar tags,
then values in file order, which is the rows' insertion order). That decides "latest" among
values of the last second, and min/max when a NaN shares the first second with numbers.
Katib's own walk order (`os.walk`, the file system's) is also open; launch sorts.

Where launch differs, on purpose: tensors that are not rank-0 numbers (text, vectors) are
skipped, where Katib would store their `str()` (e.g. "[1. 2.]") and could report it as
"latest"; a corrupt record raises `CorruptEventFileError` from `read_*` and, like a skipped
file, is listed in `MetricsResult.problems` instead of being silent; the `dir/name` rule is
evaluated on the path the directory would have in the Katib pod (`katib_dir`), so a local run
selects the same files as the cluster. Not reproduced: EventAccumulator also parses a
`meta_graph_def` as a MetaGraphDef (a malformed one would skip the file in Katib), the exotic
tensor dtypes (float8, int4, quantized, resource/variant; launch skips them), `tf.make_ndarray`
on malformed non-scalar tensors, and a value string Go cannot parse ("-nan") feeding "latest".
"""

from __future__ import annotations

import functools
import gc
import math
import os
import posixpath
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from launch.errors import LaunchError


def _crc32c_py(data: bytes, value: int = 0) -> int:
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


_crc32c: Callable[[bytes], int]
try:
    from crc32c import crc32c as _crc32c
except ImportError:  # a trial image with only the MLflow client (the wrapper mirrors scalars)
    _crc32c = _crc32c_py

__all__ = [
    "KATIB_TFEVENT_DIR",
    "CorruptEventFileError",
    "EventFile",
    "MetricObservation",
    "MetricsResult",
    "Scalar",
    "Strategy",
    "collect_metrics",
    "find_event_files",
    "is_event_file",
    "read_event_file",
    "read_scalars",
]

# Where launch mounts the trial's tensorboard dir in Katib (katib.TFEVENT_DIR); the `dir/name`
# rule compares against this path, so a local run matches exactly what the cluster would.
KATIB_TFEVENT_DIR = "/var/log/katib/tfevent/"

Strategy = Literal["min", "max", "latest"]


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


@dataclass(frozen=True)
class MetricObservation:
    """Katib's `Metric` in a trial's observation."""

    min: float
    max: float
    latest: float


@dataclass(frozen=True)
class MetricsResult:
    """What Katib's collector and trial controller would make of a trial's events files."""

    objective: str
    values: dict[str, float]  # metric -> value chosen by its strategy (found metrics only)
    observations: dict[str, MetricObservation]
    missing: list[str]  # metric names with no matching value
    found_tags: list[str]  # every tag seen, as `run/tag` for files in a subdirectory `run`
    problems: list[str] = field(default_factory=list)  # corrupt files (reading stopped there)
    event_files: int = 0  # how many events files the directory held
    # (directory relative to the trial's tensorboard_dir, "" for itself; tag) of every tag seen
    found_in: list[tuple[str, str]] = field(default_factory=list)
    # Metrics found when the objective was not (Katib reports none of them then): shown, not used.
    other_values: dict[str, float] = field(default_factory=dict)

    def available(self, objective: str | None = None) -> bool:
        """True when the objective has a value (else Katib marks the trial MetricsUnavailable)."""
        return (objective or self.objective) in self.values

    def describe_missing(self) -> str:
        """One line for the user: what was expected, what was found instead, Katib's rule."""
        expected = ", ".join(f"`{m}`" for m in self.missing)
        if not self.event_files:
            # The commonest cause by far: the program writes its events somewhere else.
            return (
                f"expected {expected}, but --tensorboard_dir holds no events files: does the "
                "program write its TensorBoard scalars to the directory it is given there?"
            )
        found = ", ".join(f"`{t}`" for t in self.found_tags) or "no scalar tags"
        message = (
            f"expected {expected}, found {found} (Katib matches a tag that starts with the "
            "metric name; in `dir/name`, `dir` selects event files in a directory ending in `dir`)"
        )
        for metric in self.missing:
            message += self._hint_for(metric)
        if self.problems:  # e.g. the objective's file is one Katib's collector skips whole
            message += f"; {len(self.problems)} damaged events file(s): {self.problems[0]}"
        return message

    def _hint_for(self, metric: str) -> str:
        """What to change for one missing metric: a tag named like it but in the wrong place
        (`eval/accuracy` written as one tag at the top), else the closest tag's name."""
        import difflib

        directory, _, name = metric.rpartition("/")
        if directory and ("", metric) in self.found_in:
            return (
                f"; `{metric}` was written as one tag at the top of --tensorboard_dir, while Katib "
                f"reads `{metric}` as tag `{name}` in a directory ending in `{directory}`: log "
                f"`{name}` with a writer on <tensorboard_dir>/{directory}, or name the metric "
                f"`{directory}` if a prefix match is meant"
            )
        close = difflib.get_close_matches(metric, self.found_tags, n=1, cutoff=0.6)
        if close and close[0] != metric:
            return f"; did you mean `{close[0]}`?"
        return ""


# --- TFRecord + protobuf decoding -------------------------------------------------------------

_HEADER = struct.Struct("<QI")  # record length, masked CRC of the length
_U32 = struct.Struct("<I")
_F64 = struct.Struct("<d")
_F32 = struct.Struct("<f")
_MASK_DELTA = 0xA282EAD8  # TFRecord stores masked CRC32C: rotate right 15, add this

# TensorProto dtype -> struct code of its tensor_content (types.proto numbers). Katib prints
# float32/float16 values with numpy (shortest repr of that width), bfloat16 (DT_BFLOAT16 = 14,
# tensor_content or half_val bits) with ml_dtypes' str (%g of its float32); the others exactly.
_DT_FLOAT, _DT_DOUBLE, _DT_BFLOAT16, _DT_HALF = 1, 2, 14, 19
_CONTENT_CODES = {1: "f", 2: "d", 3: "i", 4: "B", 5: "h", 6: "b", 9: "q", 17: "H", 19: "e"}
_CONTENT_CODES.update({22: "I", 23: "Q"})
_INT_VAL_DTYPES = frozenset({3, 4, 5, 6, 17})  # int32, uint8, int16, int8, uint16 -> int_val


class _Malformed(Exception):
    pass


def _varint(data: bytes, p: int) -> tuple[int, int]:
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
            raise _Malformed("varint too long")


def _skip(data: bytes, p: int, key: int) -> int:
    """Skip the value of a field whose key was already read; return the next position."""
    wire = key & 7
    if wire == 0:
        while data[p] >= 0x80:
            p += 1
        return p + 1
    if wire == 1:
        return p + 8
    if wire == 2:
        n, p = _varint(data, p)
        return p + n
    if wire == 5:
        return p + 4
    if wire == 3:  # group: skip fields up to the matching end-group key
        while True:
            k, p = _varint(data, p)
            if k & 7 == 4:
                if k >> 3 != key >> 3:
                    raise _Malformed("mismatched end group")
                return p
            p = _skip(data, p, k)
    raise _Malformed(f"bad wire type {wire}")


def _signed64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


# The messages of tensorboard's event.proto tree (all proto3) as protobuf parses them: field
# number -> (kind, message). A field whose wire type does not fit its kind is an unknown field.
_Schema = dict[int, tuple[str, str]]
_SCHEMAS: dict[str, _Schema] = {
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
    raise _Malformed("bad field key")


def _check(
    data: bytes, p: int, end: int, schema: _Schema | None, group: int = 0, depth: int = 0
) -> int:
    """Walk a message from p to end as protobuf (upb) parses it; raise `_Malformed` where
    `FromString` raises `DecodeError`: a bad key (field number 0, wire type 6 or 7, a stray or
    missing end-group), a field running past its end, a varint over 10 bytes, a packed field
    of the wrong size, or invalid UTF-8 in a known `string` field (proto3 checks it).
    Returns the position after the message (for a group, after its end key)."""
    if depth > 100:  # upb's default recursion limit
        raise _Malformed("nested too deep")
    while p < end:
        key, p = _key(data, p)
        fno, wire = key >> 3, key & 7
        if fno == 0:
            raise _Malformed("field number 0")
        spec = schema.get(fno) if schema else None
        kind = spec[0] if spec and wire in _KIND_WIRES[spec[0]] else ""
        if wire == 0:
            _, p = _varint(data, p)
        elif wire == 1:
            p += 8
        elif wire == 5:
            p += 4
        elif wire == 2:
            n, p = _varint(data, p)
            q = p + n
            if q > end:
                raise _Malformed("a field runs past its end")
            if kind == "str":
                try:
                    data[p:q].decode("utf-8")
                except UnicodeDecodeError:
                    raise _Malformed("a string field is not valid UTF-8") from None
            elif kind == "msg":
                _check(data, p, q, _SCHEMAS[spec[1]] if spec else None, 0, depth + 1)
            elif kind == "pvarint":
                while p < q:
                    _, p = _varint(data, p)
                if p != q:
                    raise _Malformed("a packed field runs past its end")
            elif (kind == "p32" and n % 4) or (kind == "p64" and n % 8):
                raise _Malformed("a packed field has a partial element")
            p = q
        elif wire == 3:
            p = _check(data, p, end, None, fno, depth + 1)
        elif wire == 4:
            if fno != group:
                raise _Malformed("unexpected end-group")
            return p
        else:
            raise _Malformed(f"wire type {wire}")
        if p > end:
            raise _Malformed("a field runs past its end")
    if group:
        raise _Malformed("missing end-group")
    return p


def _shortest(v: float, code: str, max_digits: int) -> float:
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


class _Unreadable(Exception):
    """`tf.make_ndarray` would raise on this tensor (Katib then skips the whole file)."""


def _bfloat16(bits: int) -> float:
    """float(str(x)) for an ml_dtypes bfloat16 x: its float32 printed by `ostream <<` (%g)."""
    f: float = _F32.unpack(_U32.pack((bits & 0xFFFF) << 16))[0]
    return f if not math.isfinite(f) else float(f"{f:g}")


def _tensor_value(data: bytes, ranges: list[tuple[int, int]]) -> float | None:
    """The value of a rank-0 numeric TensorProto as Katib records it, else None.

    Mirrors tensorflow 2.16's `tf.make_ndarray` (tensorflow/python/framework/tensor_util.py,
    `MakeNdarray`): tensor_content first (its size must match the shape), else the typed
    *_val field, where no values give 0 and more values than elements raise (`np.pad` with a
    negative width). Raises `_Unreadable` where `make_ndarray` raises for a numeric dtype.
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
            key, p = _varint(data, p)
            fno = key >> 3
            wire = key & 7
            if fno == 1 and wire == 0:
                dtype, p = _varint(data, p)
            elif fno == 2 and wire == 2:  # TensorShapeProto: dim = 2 {size = 1}
                n, p = _varint(data, p)
                q, end = p, p + n
                while q < end:
                    k, q = _varint(data, q)
                    if k == 0x12:
                        m, q = _varint(data, q)
                        r, dim_end, size = q, q + m, 0
                        while r < dim_end:
                            k2, r = _varint(data, r)
                            if k2 == 0x08:
                                size, r = _varint(data, r)
                                size = _signed64(size)
                            else:
                                r = _skip(data, r, k2)
                        dims.append(size)
                        q = dim_end
                    else:
                        q = _skip(data, q, k)
                p = end
            elif fno == 4 and wire == 2:
                n, p = _varint(data, p)
                content = data[p : p + n]  # proto3 bytes: the last occurrence wins
                p += n
            elif fno == 5 and wire == 2:  # packed float_val
                n, p = _varint(data, p)
                floats.extend(struct.unpack_from(f"<{n // 4}f", data, p))
                p += n
            elif fno == 5 and wire == 5:
                floats.append(_F32.unpack_from(data, p)[0])
                p += 4
            elif fno == 6 and wire == 2:  # packed double_val
                n, p = _varint(data, p)
                doubles.extend(struct.unpack_from(f"<{n // 8}d", data, p))
                p += n
            elif fno == 6 and wire == 1:
                doubles.append(_F64.unpack_from(data, p)[0])
                p += 8
            elif fno in (7, 10, 13, 16, 17):
                target = {7: ints, 10: int64s, 13: halfs, 16: uint32s, 17: uint64s}[fno]
                if wire == 2:
                    n, p = _varint(data, p)
                    end = p + n
                    while p < end:
                        x, p = _varint(data, p)
                        target.append(x)
                elif wire == 0:
                    x, p = _varint(data, p)
                    target.append(x)
                else:
                    p = _skip(data, p, key)
            else:
                p = _skip(data, p, key)
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
            raise _Unreadable(f"tensor_content of {len(content)} bytes for shape {dims}")
        if dims:
            return None  # Katib would record "[...]", which is not a number
        raw: float = struct.unpack("<" + code, content)[0]
    else:
        if dtype == _DT_FLOAT:
            items: list[float] = floats
        elif dtype == _DT_DOUBLE:
            items = doubles
        elif dtype in _INT_VAL_DTYPES:
            items = [float(_signed64(x)) for x in ints]
        elif dtype == 9:
            items = [float(_signed64(x)) for x in int64s]
        elif dtype == _DT_HALF:
            items = [struct.unpack("<e", struct.pack("<H", x & 0xFFFF))[0] for x in halfs]
        elif dtype == _DT_BFLOAT16:
            items = [float(x & 0xFFFF) for x in halfs]  # the bits, converted below
        elif dtype == 22:
            items = [float(x & 0xFFFFFFFF) for x in uint32s]
        else:
            items = [float(x) for x in uint64s]
        if items and len(items) > elements:  # np.pad(values, (0, negative), "edge")
            raise _Unreadable(f"{len(items)} values for shape {dims}")
        if dims:
            return None
        raw = items[0] if items else 0.0  # no values: np.zeros(shape)
    if dtype == _DT_FLOAT:
        return _shortest(raw, "f", 9)
    if dtype == _DT_HALF:
        return _shortest(raw, "e", 5)
    if dtype == _DT_BFLOAT16:
        return _bfloat16(int(raw))
    return float(raw)


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
            key, p = _varint(data, p)
            if key != 0x0A:
                p = _skip(data, p, key)
                continue
            n, p = _varint(data, p)
            q, end, tag = p, p + n, ""
            while q < end:
                k, q = _varint(data, q)
                if k == 0x0A:
                    m, q = _varint(data, q)
                    tag = data[q : q + m].decode("utf-8", "replace")
                    q += m
                else:
                    q = _skip(data, q, k)
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
    _check(data, 0, m, _SCHEMAS["Event"])
    p = 0
    wall_time = 0.0
    step = 0
    summary: list[tuple[int, int]] | None = None
    session_start = False
    while p < m:
        key, p = _varint(data, p)
        if key == 0x09:
            wall_time = _F64.unpack_from(data, p)[0]
            p += 8
        elif key == 0x10:
            step, p = _varint(data, p)
            step = _signed64(step)
        elif key == 0x2A:
            ln, p = _varint(data, p)
            # repeated occurrences of a message field merge, as in protobuf
            summary = [*(summary or []), (p, p + ln)]
            p += ln
        elif key == 0x1A:
            ln, p = _varint(data, p)
            st.file_version = _file_version(data[p : p + ln])
            p += ln
        elif key == 0x3A:  # SessionLog: status=1 (START=1)
            ln, p = _varint(data, p)
            q, end = p, p + ln
            while q < end:
                k, q = _varint(data, q)
                if k == 0x08:
                    status, q = _varint(data, q)
                    session_start = status == 1
                else:
                    q = _skip(data, q, k)
            p = end
        else:
            p = _skip(data, p, key)
    if p != m:
        raise _Malformed("a field runs past the end of the record")

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
            k, q = _varint(data, q)
            if k != 0x0A:  # Summary has only `value = 1`
                q = _skip(data, q, k)
                continue
            ln, q = _varint(data, q)
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
                k, r = _varint(data, r)
                if k == 0x0A:
                    ln, r = _varint(data, r)
                    tag = data[r : r + ln].decode("utf-8", "replace")
                    r += ln
                elif k == 0x15:
                    kind = 2
                    simple = _F32.unpack_from(data, r)[0]
                    r += 4
                elif k == 0x42:
                    kind = 8
                    ln, r = _varint(data, r)
                    tensor.append((r, r + ln))
                    r += ln
                elif k == 0x3A:
                    ln, r = _varint(data, r)
                    node_name = data[r : r + ln].decode("utf-8", "replace")
                    r += ln
                else:
                    if 3 <= k >> 3 <= 6:
                        kind = k >> 3
                    r = _skip(data, r, k)
            if r != ve:
                raise _Malformed("a value runs past its end")
            if kind == 2:
                st.scalars.setdefault(tag, []).append(Scalar(step, wall_time, simple))
            elif kind == 8:
                # EventAccumulator: a tensor without a tag uses node_name
                try:
                    value = _tensor_value(data, tensor)
                except _Unreadable:
                    st.unreadable.setdefault(tag or node_name, []).append(
                        Scalar(step, wall_time, math.nan)
                    )
                    continue
                if value is not None:
                    st.tensors.setdefault(tag or node_name, []).append(
                        Scalar(step, wall_time, value)
                    )
        if q != e:
            raise _Malformed("a summary runs past its end")


def _parse(buf: bytes, path: str, strict: bool) -> EventFile:
    """Check and decode every record of an events file.

    The loop is flat on purpose: tensorboardX and torch write each scalar as one small Event
    whose bytes after the step are the same for every value of a tag, so those bytes (less the
    4 value bytes) key a dict straight to the tag's list; any other record takes `_event`.
    """
    unpack_header = _HEADER.unpack_from
    unpack_u32 = _U32.unpack_from
    unpack_f64 = _F64.unpack_from
    unpack_f32 = _F32.unpack_from
    crc = _crc32c
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
        if (((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF != length_crc:
            error = f"{path}: record at byte {pos}: length CRC mismatch"
            break
        start = pos + 12
        end = start + length
        if end + 4 > n:
            truncated = True
            break
        data = buf[start:end]
        c = crc(data)
        if (((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF != unpack_u32(buf, end)[0]:
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
        except (_Malformed, IndexError, struct.error, ValueError) as exc:
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


# --- public API -------------------------------------------------------------------------------


def is_event_file(name: str) -> bool:
    """tensorboard's `IsSummaryEventsFile`, which decides what Katib's collector reads."""
    base = os.path.basename(name)
    return "tfevents" in base and not base.endswith(".profile-empty")


def find_event_files(directory: str | os.PathLike[str]) -> list[str]:
    """Events files under `directory`, recursively (symlinked dirs not followed, like os.walk)."""
    found: list[str] = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()  # Katib's order is the file system's; sorted is one such order
        found.extend(os.path.join(root, f) for f in sorted(files) if is_event_file(f))
    return found


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


def read_scalars(path: str | os.PathLike[str], *, strict: bool = True) -> dict[str, list[Scalar]]:
    """All scalars (simple_value and rank-0 tensors) of a file, or of a directory tree.

    Keys are tags; for files in a subdirectory `run` of `path` (TensorBoard's run), `run/tag`.
    Several files of one run are concatenated in file-name order.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        ef = read_event_file(path, strict=strict)
        return _merge_tags(ef, "")
    out: dict[str, list[Scalar]] = {}
    for file in find_event_files(path):
        run = os.path.relpath(os.path.dirname(file), path)
        prefix = "" if run == "." else run.replace(os.sep, "/") + "/"
        for tag, items in _merge_tags(read_event_file(file, strict=strict), prefix).items():
            out.setdefault(tag, []).extend(items)
    return out


def _merge_tags(ef: EventFile, prefix: str) -> dict[str, list[Scalar]]:
    out: dict[str, list[Scalar]] = {}
    for table in (ef.tensors, ef.scalars):
        for tag, items in table.items():
            if items:
                out.setdefault(prefix + tag, []).extend(items)
    return out


def _should_consider(tag: str, metric_name: str, event_file: str) -> bool:
    # Katib's tfevent_loader._should_consider, on the file's path inside the Katib pod.
    parts = metric_name.split("/")
    parent = posixpath.dirname(metric_name) if len(parts) >= 2 else posixpath.dirname(event_file)
    return tag.startswith(parts[-1]) and posixpath.dirname(event_file).endswith(parent)


def _second(wall_time: float) -> datetime | None:
    # Katib stamps a value with rfc3339(datetime.fromtimestamp(wall_time)): whole seconds. The
    # collector's pod runs in UTC; where fromtimestamp raises (NaN, inf, beyond year 9999) the
    # collector's `except Exception` skips the whole file: None.
    try:
        return datetime.fromtimestamp(wall_time, UTC).replace(microsecond=0)
    except (OverflowError, OSError, ValueError):
        return None


def collect_metrics(
    directory: str | os.PathLike[str],
    metric_names: Sequence[str],
    strategies: Mapping[str, Strategy] | None = None,
    *,
    objective_type: Literal["minimize", "maximize"] | None = None,
    katib_dir: str = KATIB_TFEVENT_DIR,
) -> MetricsResult:
    """Apply Katib's TensorFlowEvent collector and metricStrategies to a trial's directory.

    `metric_names[0]` is the objective. A metric without a strategy gets Katib's default
    (experiment_defaults.go): min when minimizing, max when maximizing, else latest.
    `katib_dir` is where `directory` would be mounted in the Katib pod: the `dir/name` rule
    compares directory suffixes on that path, so local and cluster runs match the same files.
    """
    if not metric_names:
        raise ValueError("metric_names must name at least the objective")
    root = os.fspath(directory)
    default: Strategy = "latest"
    if objective_type == "minimize":
        default = "min"
    elif objective_type == "maximize":
        default = "max"
    chosen = {m: (strategies or {}).get(m, default) for m in metric_names}
    logs: dict[str, list[tuple[datetime, float]]] = {m: [] for m in metric_names}
    found: dict[str, None] = {}
    found_in: dict[tuple[str, str], None] = {}
    problems: list[str] = []
    files = find_event_files(root)
    for file in files:
        ef = read_event_file(file, strict=False)
        if ef.error:
            problems.append(ef.error)
        rel = os.path.relpath(file, root).replace(os.sep, "/")
        katib_path = posixpath.join(katib_dir, rel)
        run = posixpath.dirname(rel)
        # tfevent_loader.py parse_summary builds one file's logs; MetricsCollector.parse_file
        # keeps them only if nothing raised (`except Exception: continue`).
        file_logs: list[tuple[str, Scalar]] = []
        for table in (ef.tensors, ef.scalars):  # Katib reads tensors first, then scalars
            for tag, items in table.items():
                found[f"{run}/{tag}" if run else tag] = None
                found_in[(run, tag)] = None
                for m in metric_names:
                    if _should_consider(tag, m, katib_path):
                        file_logs.extend((m, item) for item in items)
        failure = next(
            (
                f"{file}: tensor `{tag}` at step {items[0].step} cannot be converted "
                "(tf.make_ndarray raises): Katib's collector skips this file"
                for tag, items in ef.unreadable.items()
                if items and any(_should_consider(tag, m, katib_path) for m in metric_names)
            ),
            None,
        )
        stamped: list[tuple[str, datetime, float]] = []
        for m, item in file_logs:
            second = _second(item.wall_time)
            if second is None:
                failure = failure or (
                    f"{file}: wall_time {item.wall_time} at step {item.step} is not a date: "
                    "Katib's collector skips this file"
                )
                break
            stamped.append((m, second, item.value))
        if failure:
            problems.append(failure)
            continue
        for m, second, value in stamped:
            logs[m].append((second, value))

    objective = metric_names[0]
    reduced: dict[str, float] = {}
    reduced_obs: dict[str, MetricObservation] = {}
    for m, stamped_values in logs.items():
        if not stamped_values:
            continue
        # The DB manager returns a metric's logs `ORDER BY time` (whole seconds; ties in
        # an order the database chooses, here collection order: a stable sort), and
        # trial_controller_util.go getMetrics reduces them in that order: the first value
        # seeds min and max, a NaN never replaces one (so a NaN first stays NaN), and
        # "latest" is the last log.
        ordered = sorted(stamped_values, key=lambda sv: sv[0])
        lo = hi = ordered[0][1]
        for _, v in ordered[1:]:
            if v < lo:
                lo = v
            elif v > hi:
                hi = v
        latest = ordered[-1][1]
        reduced_obs[m] = MetricObservation(lo, hi, latest)
        reduced[m] = {"min": lo, "max": hi, "latest": latest}[chosen[m]]
    # Katib reports only objective=unavailable when the objective has no value (`values` stays
    # Katib's); `other_values` keeps what was found anyway, for the results table.
    values: dict[str, float] = {}
    observations: dict[str, MetricObservation] = {}
    other: dict[str, float] = {}
    if objective in reduced:
        values, observations = reduced, reduced_obs
    else:
        other = reduced
    return MetricsResult(
        objective=objective,
        values=values,
        observations=observations,
        missing=[m for m in metric_names if m not in values],
        found_tags=sorted(found),
        problems=problems,
        event_files=len(files),
        found_in=sorted(found_in),
        other_values=other,
    )
