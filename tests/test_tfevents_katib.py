"""launch.tfevents where Katib v0.19's collector is strict or order-dependent (issue 20).

Side by side with Katib's own pieces: kubeflow/katib v0.19.0
`pkg/metricscollector/v1beta1/tfevent-metricscollector/tfevent_loader.py` (EventAccumulator per
file, `except Exception: continue` around each file in `MetricsCollector.parse_file`,
`str(tf.make_ndarray(...))` for tensors, `rfc3339(datetime.fromtimestamp(wall_time))`), the DB
manager's `GetObservationLog` (`pkg/db/v1beta1/mysql/mysql.go`: `... ORDER BY time`) and the
trial controller's `getMetrics` (`pkg/controller.v1beta1/trial/trial_controller_util.go`).
tensorflow and ml_dtypes are not installed here: `tf_make_ndarray` below restates tensorflow
2.16's `MakeNdarray` (the version Katib v0.19 pins) and `ml_dtypes_str` ml_dtypes' `str()`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import posixpath
import random
import struct
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from tensorboard.backend.event_processing.event_accumulator import (
    SCALARS,
    TENSORS,
    EventAccumulator,
)
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.summary.writer.record_writer import RecordWriter
from tensorboardX import SummaryWriter

from launch import protowire, tfevents
from launch.tfevents import (
    KATIB_TFEVENT_DIR,
    CorruptEventFileError,
    MetricObservation,
    collect_metrics,
    find_event_files,
    read_event_file,
)

# --- Katib's pieces, restated -------------------------------------------------------------------

_LIBC = ctypes.CDLL(ctypes.util.find_library("c"))


def ml_dtypes_str(f32: float) -> str:
    """ml_dtypes' PyCustomFloat_Str: `std::ostringstream s; s << (isnan(f) ? abs(f) : f)`, i.e.
    printf's %g (precision 6) of the float32 value, done here by the C library itself."""
    if math.isnan(f32):
        f32 = abs(f32)
    buf = ctypes.create_string_buffer(64)
    _LIBC.snprintf(buf, 64, b"%g", ctypes.c_double(f32))
    return buf.value.decode()


def bf16_bits_to_f32(bits: int) -> float:
    return float(np.array([bits << 16], dtype=np.uint32).view(np.float32)[0])


def tf_make_ndarray_str(t: tensor_pb2.TensorProto) -> str:
    """str(tf.make_ndarray(t)) as tensorflow 2.16 computes it, for the dtypes used here;
    raises where it raises (ValueError from reshape / np.pad)."""
    shape = [d.size for d in t.tensor_shape.dim]
    num_elements = int(np.prod(shape, dtype=np.int64))
    if t.dtype == 14:  # bfloat16: numpy cannot hold it here, so keep the bits, print per value
        if t.tensor_content:
            bits = np.frombuffer(t.tensor_content, dtype=np.uint16).copy().reshape(shape)
        else:
            bits = np.fromiter(t.half_val, dtype=np.uint16)
            if bits.size == 0:
                bits = np.zeros(shape, np.uint16)
            else:
                if bits.size != num_elements:
                    bits = np.pad(bits, (0, num_elements - bits.size), "edge")
                bits = bits.reshape(shape)
        if shape:
            return "[" + " ".join(ml_dtypes_str(bf16_bits_to_f32(int(b))) for b in bits) + "]"
        return ml_dtypes_str(bf16_bits_to_f32(int(bits)))
    dtype = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 19: np.float16}[t.dtype]
    if t.tensor_content:
        return str(np.frombuffer(t.tensor_content, dtype=dtype).copy().reshape(shape))
    field = {1: t.float_val, 2: t.double_val, 3: t.int_val, 9: t.int64_val, 19: t.half_val}
    if t.dtype == 19:
        values = np.fromiter(t.half_val, dtype=np.uint16).view(np.float16)
    else:
        values = np.fromiter(field[t.dtype], dtype=dtype)
    if values.size == 0:
        return str(np.zeros(shape, dtype))
    if values.size != num_elements:
        values = np.pad(values, (0, num_elements - values.size), "edge")
    return str(values.reshape(shape))


def go_parse_float(s: str) -> float | None:
    """strconv.ParseFloat(s, 64) for the strings Python and numpy print (None: an error)."""
    try:
        return float(s)
    except ValueError:
        return None


def katib(
    directory: Path, metric_names: list[str], strategies: dict[str, str]
) -> dict[str, MetricObservation] | None:
    """Collector + DB (ORDER BY time, a stable sort: ties in insertion order) + getMetrics.

    Returns the observation per metric, or None when the objective is unavailable."""
    mls: list[tuple[str, datetime, str]] = []
    for root, _dirs, files in os.walk(directory):
        for name in sorted(files):  # launch walks sorted; Katib the file system's order
            path = os.path.join(root, name)
            if "tfevents" not in name:
                continue
            katib_path = posixpath.join(KATIB_TFEVENT_DIR, os.path.relpath(path, directory))
            try:
                file_logs = parse_summary(path, katib_path, metric_names)
            except Exception:  # MetricsCollector.parse_file: the file is skipped
                continue
            mls.extend(file_logs)
    if not any(m == metric_names[0] for m, _, _ in mls):
        return None
    mls.sort(key=lambda ml: ml[1])  # GetObservationLog: ORDER BY time
    out: dict[str, MetricObservation] = {}
    for m in metric_names:
        lo = hi = latest = None
        for name, _t, s in mls:
            if name != m:
                continue
            v = go_parse_float(s)
            if v is not None:
                if lo is None:
                    lo = hi = v
                elif v < lo:
                    lo = v
                elif v > hi:  # type: ignore[operator]
                    hi = v
            latest = go_parse_float(s)
        if lo is not None and hi is not None and latest is not None:
            out[m] = MetricObservation(lo, hi, latest)
    return out


def parse_summary(
    path: str, katib_path: str, metric_names: list[str]
) -> list[tuple[str, datetime, str]]:
    """tfevent_loader.py TFEventFileParser.parse_summary (v0.19), with tf_make_ndarray_str."""
    acc = EventAccumulator(path, size_guidance={SCALARS: 0, TENSORS: 0})
    acc.Reload()
    logs = []
    for kind, events in ((TENSORS, acc.Tensors), (SCALARS, acc.Scalars)):
        for tag in acc.Tags()[kind]:
            for m in metric_names:
                if not tfevents._should_consider(tag, m, katib_path):
                    continue
                for e in events(tag):
                    stamp = datetime.fromtimestamp(e.wall_time, UTC).replace(microsecond=0)
                    value = tf_make_ndarray_str(e.tensor_proto) if kind == TENSORS else str(e.value)
                    logs.append((m, stamp, value))
    return logs


def observations(directory: Path, names: list[str]) -> dict[str, MetricObservation] | None:
    result = collect_metrics(directory, names, dict.fromkeys(names, "latest"))  # type: ignore[arg-type]
    return result.observations if result.available() else None


def same(a: object, b: object) -> bool:
    """Equality where NaN equals NaN (observations hold floats)."""
    return repr(a) == repr(b)


def tensor_event(tag: str, step: int, wall_time: float, proto: tensor_pb2.TensorProto) -> bytes:
    value = summary_pb2.Summary.Value(tag=tag, tensor=proto)
    value.metadata.plugin_data.plugin_name = "scalars"
    event = event_pb2.Event(step=step, wall_time=wall_time, summary={"value": [value]})
    return event.SerializeToString()


def scalar_event(tag: str, step: int, wall_time: float, value: float) -> bytes:
    v = summary_pb2.Summary.Value(tag=tag, simple_value=value)
    return event_pb2.Event(
        step=step, wall_time=wall_time, summary={"value": [v]}
    ).SerializeToString()


VERSION = event_pb2.Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString()


def write_records(path: Path, records: list[bytes]) -> str:
    """Records with correct CRCs (tensorboard's RecordWriter), whatever their contents."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        writer = RecordWriter(f)
        for record in records:
            writer.write(record)
    return str(path)


# --- bfloat16 -----------------------------------------------------------------------------------


def bf16(v: float) -> int:
    """The bits of float32 v rounded to bfloat16 (round to nearest even, as ml_dtypes does)."""
    bits = int(np.array([v], dtype=np.float32).view(np.uint32)[0])
    if math.isnan(v):
        return (bits >> 16) | 0x40
    return (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16


def test_bfloat16_scalar_is_read_as_katib_prints_it(tmp_path: Path) -> None:
    assert ml_dtypes_str(bf16_bits_to_f32(bf16(0.1))) == "0.100098"  # the example
    rng = random.Random(20)
    values = [0.1, 1 / 3, 0.5, -2.75, 1e-30, 3e38, 65504.0, 123456.0, 0.0, -0.0]
    values += [rng.uniform(-1, 1) * 10 ** rng.randint(-38, 38) for _ in range(300)]
    values += [math.inf, -math.inf, math.nan]
    protos = []
    for v in values:
        bits = bf16(v)
        protos.append(tensor_pb2.TensorProto(dtype=14, half_val=[bits]))  # python writers
        protos.append(  # TF2's C++ writer: the 2 bytes in tensor_content
            tensor_pb2.TensorProto(
                dtype=14,
                tensor_shape=tensor_shape_pb2.TensorShapeProto(),
                tensor_content=struct.pack("<H", bits),
            )
        )
    writer = EventFileWriter(str(tmp_path))
    for i, proto in enumerate(protos):
        value = summary_pb2.Summary.Value(tag="loss", tensor=proto)
        value.metadata.plugin_data.plugin_name = "scalars"
        writer.add_event(event_pb2.Event(step=i, wall_time=1000.0 + i, summary={"value": [value]}))
    writer.close()
    (path,) = find_event_files(tmp_path)
    got = [s.value for s in read_event_file(path).tensors["loss"]]
    acc = EventAccumulator(path, size_guidance={TENSORS: 0})
    acc.Reload()
    expected = [float(tf_make_ndarray_str(e.tensor_proto)) for e in acc.Tensors("loss")]
    assert len(got) == len(expected) == len(protos)
    assert same(got, expected)
    assert got[0] == got[1] == 0.100098

    result = collect_metrics(tmp_path, ["loss"], {"loss": "latest"})
    assert result.available()  # no longer MetricsUnavailable
    assert same(result.observations, katib(tmp_path, ["loss"], {"loss": "latest"}))


def test_bfloat16_vector_and_wrong_sizes(tmp_path: Path) -> None:
    vector = tensor_pb2.TensorProto(
        dtype=14,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": 2}]),
        half_val=[bf16(1.0), bf16(2.0)],
    )
    assert tf_make_ndarray_str(vector) == "[1 2]"  # not a number: launch skips it
    path = write_records(
        tmp_path / "events.out.tfevents.1.a",
        [VERSION, tensor_event("v", 1, 10.0, vector), tensor_event("loss", 1, 10.0, vector)],
    )
    assert read_event_file(path).tensors == {}
    empty = tensor_pb2.TensorProto(dtype=14)  # no values: tf.make_ndarray gives zeros
    assert tf_make_ndarray_str(empty) == "0"
    write_records(tmp_path / "b" / "events.out.tfevents.1.b", [tensor_event("z", 1, 5.0, empty)])
    assert read_event_file(find_event_files(tmp_path / "b")[0]).tensors["z"][0].value == 0.0


# --- a record protobuf cannot parse drops the whole file ---------------------------------------


def good_records() -> list[bytes]:
    return [
        VERSION,
        scalar_event("loss", 1, 100.0, 0.5),
        tensor_event("acc", 1, 100.0, tensor_pb2.TensorProto(dtype=1, float_val=[0.25])),
        scalar_event("loss", 2, 101.0, 0.25),
    ]


def in_summary(value_body: bytes, step: int = 3) -> bytes:
    """An Event holding one Summary.Value with these raw bytes (lengths under 128)."""
    value = b"\x0a" + bytes([len(value_body)]) + value_body
    return b"\x10" + bytes([step]) + b"\x2a" + bytes([len(value)]) + value


MALFORMED = {
    # the shape tensorboardX writes (the fast path), tag bytes not UTF-8
    "bad UTF-8 tag": scalar_event("loss", 3, 102.0, 0.1).replace(b"loss", b"lo\xffs"),
    "field number 0": scalar_event("loss", 3, 102.0, 0.1) + b"\x00\x01",
    "wire type 6": scalar_event("loss", 3, 102.0, 0.1) + b"\x0e",
    "wire type 7 in a value": in_summary(b"\x0a\x04loss\x15\x00\x00\x00\x3f\x0f"),
    "stray end-group": b"\x0c" + scalar_event("loss", 3, 102.0, 0.1),
    "group without its end": scalar_event("loss", 3, 102.0, 0.1) + b"\x63\x08\x01",
    "key of 6 bytes": scalar_event("loss", 3, 102.0, 0.1) + b"\x88\x80\x80\x80\x80\x00\x01",
    "varint of 11 bytes": b"\x10" + b"\xff" * 10 + b"\x01",
    "bad UTF-8 node_name": in_summary(b"\x3a\x02\xff\xfe\x42\x04\x08\x01\x2d\x00"[:8]),
    "bad UTF-8 plugin_name": tensor_event(
        "acc", 3, 102.0, tensor_pb2.TensorProto(dtype=1, float_val=[0.1])
    ).replace(b"scalars", b"scal\xe0rs"),
    "bad UTF-8 file_version": event_pb2.Event(file_version="brain.Event:2")
    .SerializeToString()
    .replace(b"brain", b"br\xc3\x28n"),
    "summary past its end": b"\x2a\x05\x0a\x10",
    "packed float_val of 3 bytes": in_summary(b"\x0a\x03acc\x42\x07\x08\x01\x2a\x03abc"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_record_drops_the_whole_file_like_katib(tmp_path: Path, case: str) -> None:
    adjusted = MALFORMED[case]
    with pytest.raises(DecodeError):
        event_pb2.Event.FromString(adjusted)
    records = [*good_records(), adjusted, scalar_event("loss", 4, 103.0, 0.125)]
    path = write_records(tmp_path / "events.out.tfevents.1.bad", records)
    write_records(
        tmp_path / "other" / "events.out.tfevents.2.ok", [scalar_event("loss", 9, 99, 7.0)]
    )

    with pytest.raises(CorruptEventFileError, match="malformed Event"):
        read_event_file(path)
    ef = read_event_file(path, strict=False)
    assert ef.discarded and ef.scalars == {} and ef.tensors == {}
    with pytest.raises(DecodeError):  # what Katib's EventAccumulator.Reload() does
        EventAccumulator(path).Reload()

    names = ["loss", "acc"]
    result = collect_metrics(tmp_path, names, dict.fromkeys(names, "max"))  # type: ignore[arg-type]
    assert result.values == {"loss": 7.0}  # only the other file; `acc` lived in the bad one
    assert result.problems == [ef.error]
    unavailable = collect_metrics(tmp_path, ["acc"])
    assert not unavailable.available() and "1 damaged events file(s)" in (
        unavailable.describe_missing()
    )
    assert same(result.observations, katib(tmp_path, names, dict.fromkeys(names, "max")))


def test_wrong_wire_type_of_a_known_field_is_an_unknown_field(tmp_path: Path) -> None:
    # protobuf keeps such a field as unknown (no error): so does launch, the file counts
    odd = scalar_event("loss", 3, 102.0, 0.1) + b"\x08\x05"  # wall_time as a varint
    assert event_pb2.Event.FromString(odd).wall_time == 102.0
    path = write_records(tmp_path / "events.out.tfevents.1.odd", [*good_records(), odd])
    assert not read_event_file(path).discarded
    assert same(observations(tmp_path, ["loss"]), katib(tmp_path, ["loss"], {"loss": "latest"}))


def test_crc_error_still_keeps_the_records_before_it(tmp_path: Path) -> None:
    path = write_records(tmp_path / "events.out.tfevents.1.crc", good_records())
    buf = bytearray(Path(path).read_bytes())
    buf[-3] ^= 1  # the last record's data CRC: tensorboard's reader stops silently
    Path(path).write_bytes(bytes(buf))
    ef = read_event_file(path, strict=False)
    assert not ef.discarded and [s.value for s in ef.scalars["loss"]] == [0.5]
    assert same(observations(tmp_path, ["loss"]), katib(tmp_path, ["loss"], {"loss": "latest"}))


def test_schema_matches_tensorboard_protos() -> None:
    kinds = {
        FieldDescriptor.TYPE_DOUBLE: "f64",
        FieldDescriptor.TYPE_FLOAT: "f32",
        FieldDescriptor.TYPE_STRING: "str",
        FieldDescriptor.TYPE_BYTES: "bytes",
        FieldDescriptor.TYPE_MESSAGE: "msg",
    }
    packed = {"f64": "p64", "f32": "p32", "varint": "pvarint"}
    seen: dict[str, dict[int, tuple[str, str]]] = {}

    def walk(d: object) -> None:
        name = d.full_name.removeprefix("tensorboard.")  # type: ignore[attr-defined]
        if name in seen:
            return
        seen[name] = {}
        for f in d.fields:  # type: ignore[attr-defined]
            kind = kinds.get(f.type, "varint")
            if f.is_repeated and f.is_packed:
                kind = packed[kind]
            sub = f.message_type.full_name.removeprefix("tensorboard.") if f.message_type else ""
            seen[name][f.number] = (kind, sub)
            if f.message_type:
                walk(f.message_type)

    walk(event_pb2.Event.DESCRIPTOR)
    assert seen == protowire.SCHEMAS


def test_random_damage_is_judged_like_protobuf(tmp_path: Path) -> None:
    """Mutated records with valid CRCs: launch drops the file exactly when
    `Event.FromString` raises, and otherwise reads what EventAccumulator reads."""
    rng = random.Random(2020)
    base = [
        *good_records()[1:],
        tensor_event(
            "t",
            5,
            104.0,
            tensor_pb2.TensorProto(
                dtype=1,
                tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": 1, "name": "n"}]),
                float_val=[1.5],
            ),
        ),
        event_pb2.Event(step=6, session_log={"status": 3, "msg": "m"}).SerializeToString(),
        event_pb2.Event(step=6, source_metadata={"writer": "w"}).SerializeToString(),
        tensor_event("b", 7, 105.0, tensor_pb2.TensorProto(dtype=14, half_val=[bf16(0.1)])),
        tensor_event("c", 8, 106.0, tensor_pb2.TensorProto(dtype=1, tensor_content=b"\0\0\0?")),
        tensor_event("d", 9, 107.0, tensor_pb2.TensorProto(dtype=9, int64_val=[-5])),
    ]
    checked = rejected = 0
    for i in range(1500):
        record = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            pos = rng.randrange(len(record) + 1)
            if op < 0.5 and pos < len(record):
                record[pos] = rng.choice([rng.randrange(256), 0x00, 0x80, 0xFF, 0x0F, 0x0C])
            elif op < 0.8:
                record[pos:pos] = bytes([rng.randrange(256)])
            elif pos < len(record):
                del record[pos]
        data = bytes(record)
        path = write_records(tmp_path / f"events.out.tfevents.{i}", [VERSION, data])
        try:
            event = event_pb2.Event.FromString(data)
            fails = False
        except DecodeError:
            fails = True
        else:
            if event.HasField("meta_graph_def"):
                # EventAccumulator parses it as a MetaGraphDef: not reproduced (see the
                # module docstring of launch.tfevents)
                os.remove(path)
                continue
        ef = read_event_file(path, strict=False)
        assert ef.discarded == fails, (data, ef.error)
        if not fails:
            acc = EventAccumulator(path, size_guidance={SCALARS: 0, TENSORS: 0})
            acc.Reload()
            scalars = {t: [e.value for e in acc.Scalars(t)] for t in acc.Tags()[SCALARS]}
            assert {t: [s.value for s in v] for t, v in ef.scalars.items()} == {
                t: v for t, v in scalars.items() if v
            } or same(
                {t: [s.value for s in v] for t, v in ef.scalars.items()},
                {t: v for t, v in scalars.items() if v},
            ), data
            # tensors: launch's value where Katib's str(tf.make_ndarray()) is a number, and
            # `unreadable` where tf.make_ndarray raises (dtypes the oracle knows)
            expected: dict[str, list[float]] = {}
            unreadable = set()
            known = set()
            for value in event.summary.value:
                if value.WhichOneof("value") != "tensor" or value.tensor.dtype not in (
                    1,
                    2,
                    3,
                    9,
                    14,
                    19,
                ):
                    continue
                tag = value.tag or value.node_name
                known.add(tag)
                try:
                    number = go_parse_float(tf_make_ndarray_str(value.tensor))
                except ValueError:
                    unreadable.add(tag)
                    continue
                if number is not None:
                    expected.setdefault(tag, []).append(number)
            got = {t: [x.value for x in v] for t, v in ef.tensors.items() if t in known}
            assert same(got, expected), (data, got, expected)
            assert {t for t in ef.unreadable if t in known} == unreadable, data
        checked += 1
        rejected += fails
        os.remove(path)
    assert checked > 1400 and 100 < rejected < checked - 100  # both outcomes covered


# --- tensors tf.make_ndarray raises on, wall times that are not dates ---------------------------


@pytest.mark.parametrize(
    "proto",
    [
        tensor_pb2.TensorProto(dtype=1, float_val=[0.5, 0.25]),  # np.pad with a negative width
        tensor_pb2.TensorProto(dtype=1, tensor_content=b"\x00\x00\x80\x3f\x00"),  # 5 bytes
        tensor_pb2.TensorProto(dtype=14, half_val=[1, 2]),
    ],
)
def test_tensor_make_ndarray_raises_on_skips_the_file_when_its_tag_is_read(
    tmp_path: Path, proto: tensor_pb2.TensorProto
) -> None:
    with pytest.raises(ValueError):
        tf_make_ndarray_str(proto)
    ok = tensor_pb2.TensorProto(dtype=1, float_val=[0.75])
    write_records(
        tmp_path / "events.out.tfevents.1.t",
        [VERSION, tensor_event("acc", 1, 10.0, ok), tensor_event("acc_bad", 2, 11.0, proto)],
    )
    write_records(tmp_path / "b" / "events.out.tfevents.1.t", [tensor_event("acc", 1, 9.0, ok)])
    for names in (["acc"], ["acc_bad"], ["b/acc"], ["other", "acc"]):
        expected = katib(tmp_path, names, {})
        assert same(observations(tmp_path, names), expected), names
    result = collect_metrics(tmp_path, ["acc"])
    assert len(result.problems) == 1 and "tf.make_ndarray" in result.problems[0]
    assert collect_metrics(tmp_path, ["b/acc"]).problems == []  # the tag is not read there


def test_no_values_is_zero_like_tf_make_ndarray(tmp_path: Path) -> None:
    proto = tensor_pb2.TensorProto(dtype=1)
    assert tf_make_ndarray_str(proto) == "0.0"
    write_records(tmp_path / "events.out.tfevents.1.z", [VERSION, tensor_event("acc", 1, 5, proto)])
    assert same(observations(tmp_path, ["acc"]), katib(tmp_path, ["acc"], {}))
    assert observations(tmp_path, ["acc"]) == {"acc": MetricObservation(0.0, 0.0, 0.0)}


@pytest.mark.parametrize("wall_time", [math.nan, math.inf, 1e300])
def test_wall_time_that_is_not_a_date_skips_the_file(tmp_path: Path, wall_time: float) -> None:
    write_records(
        tmp_path / "events.out.tfevents.1.w",
        [VERSION, scalar_event("loss", 1, 10.0, 1.0), scalar_event("acc", 2, wall_time, 2.0)],
    )
    write_records(tmp_path / "b" / "events.out.tfevents.1.w", [scalar_event("loss", 1, 9.0, 3.0)])
    for names in (["loss"], ["loss", "acc"], ["acc"]):
        assert same(observations(tmp_path, names), katib(tmp_path, names, {})), names
    assert observations(tmp_path, ["loss", "acc"]) == {"loss": MetricObservation(3.0, 3.0, 3.0)}


# --- NaN and time order -------------------------------------------------------------------------

NAN_CASES = {
    # (file, tag, wall_time, value): file "a" is collected before "b"
    "NaN first in time, collected last": [
        ("a", "loss", 101.0, 0.3),
        ("a", "loss", 102.0, 0.7),
        ("b", "loss", 100.0, math.nan),
    ],
    "NaN later in time": [
        ("a", "loss", 101.0, math.nan),
        ("b", "loss", 100.0, 0.3),
        ("b", "loss", 102.0, 0.7),
    ],
    "NaN last": [
        ("a", "loss", 100.0, 0.3),
        ("a", "loss", 101.0, 0.7),
        ("a", "loss", 102.0, math.nan),
    ],
    "all NaN": [("a", "loss", 100.0, math.nan), ("b", "loss", 101.0, math.nan)],
    "inf": [("a", "loss", 100.0, math.inf), ("b", "loss", 99.0, -math.inf)],
    "latest by time across files": [
        ("a", "loss", 105.0, 0.5),
        ("b", "loss", 104.0, 0.9),
        ("a", "loss_ema", 103.0, 0.1),
    ],
    "NaN in the earliest second, collected first": [
        ("a", "loss", 100.2, math.nan),
        ("a", "loss", 101.0, 0.7),
        ("b", "loss", 100.9, 0.3),  # same second as the NaN: Katib's order is the DB's
    ],
}


@pytest.mark.parametrize("case", sorted(NAN_CASES))
@pytest.mark.parametrize("tensors", [False, True])
def test_nan_and_order_follow_the_database_order(tmp_path: Path, case: str, tensors: bool) -> None:
    by_file: dict[str, list[bytes]] = {}
    for step, (file, tag, wall_time, value) in enumerate(NAN_CASES[case]):
        if tensors:
            proto = tensor_pb2.TensorProto(dtype=2, double_val=[value])
            record = tensor_event(tag, step, wall_time, proto)
        else:
            record = scalar_event(tag, step, wall_time, value)
        by_file.setdefault(file, [VERSION]).append(record)
    for file, records in by_file.items():
        write_records(tmp_path / f"events.out.tfevents.1.{file}", records)
    ours = observations(tmp_path, ["loss"])
    assert same(ours, katib(tmp_path, ["loss"], {}))
    if case == "NaN first in time, collected last":
        assert ours is not None and math.isnan(ours["loss"].min) and math.isnan(ours["loss"].max)
        assert ours["loss"].latest == (0.7 if tensors else float(np.float32(0.7)))
    if case == "latest by time across files":
        assert ours is not None and ours["loss"].latest == 0.5


def test_tensorboardx_nan_from_a_second_writer(tmp_path: Path) -> None:
    """The issue's case with a real writer: launch used to give 0.3/0.7, Katib NaN/NaN."""
    w = SummaryWriter(str(tmp_path / "a"))
    w.add_scalar("loss", 0.3, 2, walltime=1001.5)
    w.add_scalar("loss", 0.7, 3, walltime=1002.5)
    w.close()
    w = SummaryWriter(str(tmp_path / "b"))
    w.add_scalar("loss", math.nan, 1, walltime=1000.5)  # an earlier run, collected later
    w.close()
    ours = observations(tmp_path, ["loss"])
    assert same(ours, katib(tmp_path, ["loss"], {}))
    assert ours is not None and math.isnan(ours["loss"].min) and math.isnan(ours["loss"].max)
    assert ours["loss"].latest == float(np.float32(0.7))
