"""launch.tfevents on real events files, checked against tensorboard's own reader.

The oracle `katib_collect` below re-states Katib's TensorFlowEvent collector
(kubeflow/katib pkg/metricscollector/v1beta1/tfevent-metricscollector/tfevent_loader.py), the
DB manager's time order and the trial controller reduction
(pkg/controller.v1beta1/trial/trial_controller_util.go, getMetrics) on top of tensorboard's
EventAccumulator, which is what Katib runs. Files Katib skips whole (malformed records, NaN
and time order, bfloat16) are in test_tfevents_katib.py.
"""

from __future__ import annotations

import os
import posixpath
import random
import struct
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import (
    SCALARS,
    TENSORS,
    EventAccumulator,
)
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.summary.writer.record_writer import RecordWriter
from tensorboard.util import tensor_util
from tensorboardX import SummaryWriter

from launch import tfevents, tfrecord, tftensor
from launch.tfevents import (
    KATIB_TFEVENT_DIR,
    CorruptEventFileError,
    Scalar,
    collect_metrics,
    find_event_files,
    read_event_file,
    read_scalars,
)

# --- helpers ----------------------------------------------------------------------------------


def accumulator(path: str) -> EventAccumulator:
    acc = EventAccumulator(path, size_guidance={SCALARS: 0, TENSORS: 0})
    acc.Reload()
    return acc


def katib_value(tensor_proto: tensor_pb2.TensorProto) -> float | None:
    # Katib: value=str(tf.make_ndarray(tensor)), parsed later by Go's strconv.ParseFloat;
    # launch skips what is not a number ("[1. 2.]", "b'text'"), see the module docstring.
    try:
        return float(str(tensor_util.make_ndarray(tensor_proto)))
    except ValueError:
        return None


def accumulator_scalars(path: str) -> tuple[dict[str, list[Scalar]], dict[str, list[Scalar]]]:
    acc = accumulator(path)
    scalars = {
        t: [Scalar(e.step, e.wall_time, e.value) for e in acc.Scalars(t)]
        for t in acc.Tags()[SCALARS]
    }
    tensors: dict[str, list[Scalar]] = {}
    for t in acc.Tags()[TENSORS]:
        for e in acc.Tensors(t):
            value = katib_value(e.tensor_proto)
            if value is not None:
                tensors.setdefault(t, []).append(Scalar(e.step, e.wall_time, value))
    return scalars, tensors


def assert_same_as_accumulator(path: str, strict: bool = True) -> None:
    ours = read_event_file(path, strict=strict)
    scalars, tensors = accumulator_scalars(path)
    assert {t: v for t, v in ours.scalars.items() if v} == {t: v for t, v in scalars.items() if v}
    assert {t: v for t, v in ours.tensors.items() if v} == {t: v for t, v in tensors.items() if v}


def katib_collect(
    directory: str, metric_names: list[str], strategies: dict[str, str]
) -> dict[str, float] | None:
    """Katib's collector + getMetrics, with EventAccumulator; None = objective unavailable."""
    logs: list[tuple[str, datetime, float]] = []
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            if "tfevents" not in name or name.endswith(".profile-empty"):
                continue  # EventAccumulator would treat it as a directory and find nothing
            katib_path = posixpath.join(KATIB_TFEVENT_DIR, os.path.relpath(path, directory))
            acc = accumulator(path)
            for kind, items_of in ((TENSORS, acc.Tensors), (SCALARS, acc.Scalars)):
                for tag in acc.Tags()[kind]:
                    for m in metric_names:
                        parent = (
                            posixpath.dirname(m)
                            if len(m.split("/")) >= 2
                            else posixpath.dirname(katib_path)
                        )
                        if not (
                            tag.startswith(m.split("/")[-1])
                            and posixpath.dirname(katib_path).endswith(parent)
                        ):
                            continue
                        for e in items_of(tag):
                            second = datetime.fromtimestamp(e.wall_time, UTC).replace(microsecond=0)
                            value = e.value if kind == SCALARS else katib_value(e.tensor_proto)
                            if value is not None:
                                logs.append((m, second, float(str(value))))
    if not any(m == metric_names[0] for m, _, _ in logs):
        return None
    # The DB manager returns the logs `ORDER BY time` (ties: insertion order here, see
    # launch.tfevents' docstring); getMetrics reduces them in that order.
    logs.sort(key=lambda log: log[1])
    result: dict[str, float] = {}
    for m in metric_names:
        lo = hi = latest = None
        last = None
        for name, second, v in logs:
            if name != m:
                continue
            if lo is None:
                lo = hi = v
            elif v < lo:
                lo = v
            elif v > hi:  # type: ignore[operator]
                hi = v
            if last is None or not last > second:
                last, latest = second, v
        if lo is not None:
            result[m] = {"min": lo, "max": hi, "latest": latest}[strategies[m]]  # type: ignore[assignment]
    return result


def write_tensor_events(
    logdir: Path, points: list[tuple[str, int, float, tensor_pb2.TensorProto]]
) -> str:
    """TF2-style events (Summary.Value.tensor) written by tensorboard's own EventFileWriter."""
    writer = EventFileWriter(str(logdir))
    for tag, step, wall_time, proto in points:
        value = summary_pb2.Summary.Value(tag=tag, tensor=proto)
        value.metadata.plugin_data.plugin_name = "scalars"
        writer.add_event(
            event_pb2.Event(
                step=step, wall_time=wall_time, summary=summary_pb2.Summary(value=[value])
            )
        )
    writer.close()
    (path,) = find_event_files(logdir)
    return path


def f32_content(v: float) -> tensor_pb2.TensorProto:
    # What TF2's C++ summary writer emits: a rank-0 tensor with its bytes in tensor_content.
    return tensor_pb2.TensorProto(
        dtype=1,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(),
        tensor_content=struct.pack("<f", v),
    )


def only_file(directory: Path) -> str:
    (path,) = find_event_files(directory)
    return path


# --- reading ----------------------------------------------------------------------------------


def test_tensorboardx_add_scalar_matches_event_accumulator(tmp_path: Path) -> None:
    w = SummaryWriter(str(tmp_path))
    for step in range(300):  # step 0 (omitted by proto3), 1-byte and 2-byte steps
        w.add_scalar("loss", 1.0 / (step + 1), step)
        w.add_scalar("train/accuracy", step / 300, step)
    w.add_scalar("big_step", 3.5, 2**40)  # a 6-byte varint
    w.add_scalar("x" * 200, 1.25, 7)  # a tag longer than 127 bytes
    w.add_histogram("weights", np.arange(10.0), 1)  # not a scalar: ignored
    w.add_text("notes", "hello", 1)  # a string tensor: not a number
    w.close()
    path = only_file(tmp_path)
    assert_same_as_accumulator(path)
    scalars = read_scalars(path)
    assert len(scalars["loss"]) == 300
    assert scalars["loss"][3] == Scalar(3, scalars["loss"][3].wall_time, np.float32(0.25))
    assert scalars["big_step"][0].step == 2**40
    assert set(scalars) == {"loss", "train/accuracy", "big_step", "x" * 200}


def test_directory_tree_add_scalars_and_several_files(tmp_path: Path) -> None:
    w = SummaryWriter(str(tmp_path))
    for step in range(5):
        w.add_scalars("loss", {"train": 1.0 - step / 10, "val": 2.0 - step / 10}, step)
        w.add_scalar("lr", 0.1, step)
    w.close()
    w2 = SummaryWriter(str(tmp_path / "eval"), filename_suffix=".second")
    w2.add_scalar("accuracy", 0.5, 1)
    w2.close()
    files = find_event_files(tmp_path)
    assert len(files) == 4  # root, loss/train, loss/val, eval
    for f in files:
        assert_same_as_accumulator(f)
    scalars = read_scalars(tmp_path)
    assert set(scalars) == {"lr", "loss/train/loss", "loss/val/loss", "eval/accuracy"}
    assert [s.value for s in scalars["loss/val/loss"]] == [
        float(np.float32(2.0 - s / 10)) for s in range(5)
    ]


def test_tf2_tensor_scalars_match_katib_conversion(tmp_path: Path) -> None:
    points = [
        ("loss", 1, 1000.0, f32_content(0.1)),
        ("loss", 2, 1001.0, f32_content(1e-7)),
        ("loss", 3, 1002.0, tensor_util.make_tensor_proto(np.float32(0.3))),  # float_val
        ("loss_f64", 1, 1000.0, tensor_util.make_tensor_proto(np.float64(0.1))),  # double_val
        ("steps", 1, 1000.0, tensor_util.make_tensor_proto(np.int64(-12))),  # int64_val
        ("count", 1, 1000.0, tensor_util.make_tensor_proto(np.int32(-3))),  # int_val
        ("half", 1, 1000.0, tensor_util.make_tensor_proto(np.float16(0.1))),  # half_val
        ("vector", 1, 1000.0, tensor_util.make_tensor_proto(np.float32([1, 2]))),  # rank 1
        ("text", 1, 1000.0, tensor_util.make_tensor_proto(np.array("hi", dtype=object))),
    ]
    path = write_tensor_events(tmp_path, points)
    assert_same_as_accumulator(path)
    ef = read_event_file(path)
    assert [s.value for s in ef.tensors["loss"]] == [0.1, 1e-7, 0.3]  # as Katib records them
    assert ef.tensors["loss_f64"][0].value == 0.1
    assert ef.tensors["steps"][0].value == -12.0
    assert ef.tensors["count"][0].value == -3.0
    assert ef.tensors["half"][0].value == float(str(np.float16(0.1)))
    assert "vector" not in ef.tensors and "text" not in ef.tensors
    assert read_scalars(path)["loss"] == ef.tensors["loss"]


@pytest.mark.parametrize(("code", "np_type"), [("f", np.float32), ("e", np.float16)])
def test_shortest_repr_matches_numpy(code: str, np_type: type) -> None:
    rng = random.Random(4)
    values = [rng.uniform(-10, 10) * 10 ** rng.randint(-30, 30) for _ in range(3000)]
    values += [2.0**k for k in range(-140, 127)] + [3 * 2.0**k for k in range(-20, 20)]
    values += [0.1, 1 / 3, 65504.0, 6e-8, float("inf"), float("nan"), -0.0]
    digits = 9 if code == "f" else 5
    for v in values:
        with np.errstate(over="ignore"):
            x = np_type(v)
        expected = float(str(x))
        got = tftensor.shortest_repr(float(x), code, digits)
        assert got == expected or (np.isnan(got) and np.isnan(expected)), (v, got, expected)


# --- damaged files ----------------------------------------------------------------------------


def write_simple(tmp_path: Path, n: int = 10) -> str:
    w = SummaryWriter(str(tmp_path))
    for step in range(1, n + 1):
        w.add_scalar("loss", float(step), step)
    w.close()
    return only_file(tmp_path)


def record_offsets(buf: bytes) -> list[int]:
    offsets, pos = [], 0
    while pos < len(buf):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<Q", buf, pos)[0]
    return offsets


@pytest.mark.parametrize("where", ["data", "length"])
def test_corrupt_crc_is_detected(tmp_path: Path, where: str) -> None:
    path = write_simple(tmp_path)
    buf = bytearray(Path(path).read_bytes())
    sixth = record_offsets(bytes(buf))[6]  # record 0 is file_version; 6 holds step 6
    buf[sixth + (14 if where == "data" else 2)] ^= 0x01
    Path(path).write_bytes(bytes(buf))

    with pytest.raises(CorruptEventFileError, match=f"byte {sixth}"):
        read_event_file(path)
    ef = read_event_file(path, strict=False)
    assert ef.error is not None and "CRC" in ef.error
    assert [s.step for s in ef.scalars["loss"]] == [1, 2, 3, 4, 5]
    assert_same_as_accumulator(path, strict=False)  # tensorboard also stops there, silently

    result = collect_metrics(tmp_path, ["loss"], {"loss": "max"})
    assert result.values == {"loss": 5.0} and result.problems == [ef.error]


def test_without_the_crc32c_wheel_the_pure_python_crc_reads_and_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial image may hold only the MLflow client: the wrapper still mirrors scalars."""
    import crc32c

    rng = random.Random(7)
    for size in (0, 1, 9, 255, 4096):
        data = bytes(rng.randrange(256) for _ in range(size))
        assert tfrecord.crc32c_py(data) == crc32c.crc32c(data)
    assert tfrecord.crc32c_py(b"123456789") == 0xE3069283  # the CRC-32C check value
    path = write_simple(tmp_path)
    expected = read_scalars(path)
    calls = []

    def pure_python_crc(data: bytes) -> int:
        calls.append(len(data))
        return tfrecord.crc32c_py(data)

    monkeypatch.setattr(tfrecord, "crc32c", pure_python_crc)
    assert read_scalars(path) == expected
    assert len(calls) == 2 * len(record_offsets(Path(path).read_bytes()))  # both CRCs of each
    buf = bytearray(Path(path).read_bytes())
    buf[record_offsets(bytes(buf))[3] + 14] ^= 0x01
    Path(path).write_bytes(bytes(buf))
    with pytest.raises(CorruptEventFileError, match="data CRC mismatch"):
        read_event_file(path)


def test_malformed_protobuf_with_good_crc_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.bad"
    with open(path, "wb") as f:
        RecordWriter(f).write(b"\x2a\x05\x0a\x10")  # a summary claiming more bytes than exist
    with pytest.raises(CorruptEventFileError, match="malformed Event"):
        read_event_file(path)


@pytest.mark.parametrize("cut", [1, 4, 5, 12, 20])
def test_truncated_tail_is_tolerated(tmp_path: Path, cut: int) -> None:
    path = write_simple(tmp_path)
    buf = Path(path).read_bytes()
    Path(path).write_bytes(buf[:-cut])  # a writer in the middle of its last record
    ef = read_event_file(path)
    assert ef.truncated and ef.error is None
    assert [s.step for s in ef.scalars["loss"]] == list(range(1, 10))
    assert_same_as_accumulator(path)


def test_unknown_fields_of_every_wire_type_are_skipped(tmp_path: Path) -> None:
    def unknown(field: int) -> bytes:
        def key(f: int, wire: int) -> bytes:
            return (
                bytes([(f << 3 | wire)])
                if f < 16
                else bytes([(f << 3 | wire) & 0x7F | 0x80, (f << 3 | wire) >> 7])
            )

        group = key(field, 3) + key(1, 0) + b"\x96\x01" + key(field, 4)
        return (
            key(field, 0) + b"\xff\xff\x03"
            + key(field + 1, 1) + b"12345678"
            + key(field + 2, 2) + b"\x03abc"
            + key(field + 3, 5) + b"1234"
            + group
        )  # fmt: skip

    value = summary_pb2.Summary.Value(tag="loss", simple_value=0.5).SerializeToString()
    value += unknown(20)
    summary = b"\x0a" + bytes([len(value)]) + value + unknown(30)
    event = event_pb2.Event(step=3, wall_time=12.5).SerializeToString()
    event += unknown(40) + b"\x2a" + bytes([len(summary)]) + summary + unknown(11)
    path = tmp_path / "events.out.tfevents.1.unknown"
    with open(path, "wb") as f:
        writer = RecordWriter(f)
        writer.write(event_pb2.Event(file_version="brain.Event:2").SerializeToString())
        writer.write(event)
    assert event_pb2.Event.FromString(event).summary.value[0].simple_value == 0.5
    assert read_event_file(path).scalars == {"loss": [Scalar(3, 12.5, 0.5)]}
    assert_same_as_accumulator(str(path))


def test_restart_purges_orphaned_steps_like_event_accumulator(tmp_path: Path) -> None:
    # A writer restarted from a checkpoint at step 5 logs SessionLog.START: tensorboard drops
    # the older values at steps >= 5 (file_version 2), and Katib with it.
    writer = EventFileWriter(str(tmp_path))
    for step in range(10):
        v = summary_pb2.Summary.Value(tag="loss", simple_value=float(step))
        writer.add_event(event_pb2.Event(step=step, wall_time=100.0 + step, summary={"value": [v]}))
    writer.add_event(event_pb2.Event(step=5, wall_time=200.0, session_log={"status": 1}))
    for step in range(5, 8):
        v = summary_pb2.Summary.Value(tag="loss", simple_value=-float(step))
        writer.add_event(event_pb2.Event(step=step, wall_time=200.0 + step, summary={"value": [v]}))
    writer.close()
    path = only_file(tmp_path)
    assert [s.value for s in read_event_file(path).scalars["loss"]] == [0, 1, 2, 3, 4, -5, -6, -7]
    assert_same_as_accumulator(path)


def test_legacy_file_out_of_order_steps_purge_by_tag(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.legacy"  # no file_version event
    with open(path, "wb") as f:
        writer = RecordWriter(f)
        for tag, step in [("a", 1), ("a", 2), ("b", 3), ("a", 3), ("b", 1), ("a", 4), ("a", 2)]:
            v = summary_pb2.Summary.Value(tag=tag, simple_value=float(step))
            event = event_pb2.Event(step=step, wall_time=1.0, summary={"value": [v]})
            writer.write(event.SerializeToString())
    assert_same_as_accumulator(str(path))
    assert [s.step for s in read_event_file(path).scalars["a"]] == [1, 2]


def test_only_tfevents_files_are_read(tmp_path: Path) -> None:
    write_simple(tmp_path)
    (tmp_path / "notes.txt").write_text("loss 0.1")
    (tmp_path / "events.out.tfevents.1.profile-empty").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.ckpt").write_bytes(b"\x00" * 40)
    assert len(find_event_files(tmp_path)) == 1
    assert set(read_scalars(tmp_path)) == {"loss"}


# --- Katib's collector rules ------------------------------------------------------------------


def make_trial_dir(tmp_path: Path) -> Path:
    """A trial directory in the shapes trainers write: root tags, add_scalars, run subdirs."""
    w = SummaryWriter(str(tmp_path))
    for step in range(1, 6):
        w.add_scalar("loss/train", 1.0 / step, step, walltime=1000.0 + step)
        w.add_scalar("loss_ema", 2.0 / step, step, walltime=1000.0 + step)
        w.add_scalar("train/loss", 3.0 / step, step, walltime=1000.0 + step)
        w.add_scalar("val_acc", step / 10, step, walltime=1000.0 + step)
        w.add_scalars("acc", {"train": step / 5, "test": step / 20}, step, walltime=1000.0 + step)
    w.close()
    for run, offset in [("train", 0.0), ("test", 0.5)]:
        wr = SummaryWriter(str(tmp_path / run))
        for step in range(1, 4):
            wr.add_scalar("loss", offset + 10.0 - step, step, walltime=2000.0 + step)
        wr.close()
    tensor_dir = tmp_path / "tf2"
    tensor_dir.mkdir()
    write_tensor_events(
        tensor_dir, [("accuracy", s, 3000.0 + s, f32_content(s / 10)) for s in range(1, 4)]
    )
    return tmp_path


METRIC_CASES = [
    ["loss"],  # prefix: loss/train and loss_ema at the root, loss in train/ and test/
    ["train/loss"],  # tag loss* in a directory ending in `train`: train/ (acc/train/ has `acc`)
    ["train"],  # a prefix of the root tag `train/loss`
    ["test/loss", "val_acc", "acc", "tf2/accuracy", "accuracy"],
    ["train/acc", "test/acc"],  # add_scalars: tag `acc` in acc/train/ and acc/test/
    ["missing", "val_acc"],
]


@pytest.mark.parametrize("names", METRIC_CASES)
@pytest.mark.parametrize("strategy", ["min", "max", "latest"])
def test_collect_metrics_matches_katib_oracle(
    tmp_path: Path, names: list[str], strategy: str
) -> None:
    trial = make_trial_dir(tmp_path)
    strategies = dict.fromkeys(names, strategy)
    result = collect_metrics(trial, names, strategies)  # type: ignore[arg-type]
    expected = katib_collect(str(trial), names, strategies)
    assert result.values == (expected or {})
    assert result.available() == (expected is not None)


def test_prefix_and_directory_rules(tmp_path: Path) -> None:
    trial = make_trial_dir(tmp_path)
    names = ["loss", "train/loss", "train", "test/acc", "tf2/accuracy"]
    result = collect_metrics(trial, names, dict.fromkeys(names, "max"))  # type: ignore[arg-type]
    # `loss`: root tags loss/train (max 1.0) and loss_ema (2.0), and `loss` in every subdirectory
    # (train/ 9.0, test/ 9.5); not the root tag train/loss
    assert result.values["loss"] == 9.5
    # `train/loss`: tags starting with `loss` in a directory ending in `train`: train/ only
    assert result.values["train/loss"] == 9.0
    # `train` is a prefix of the root tag `train/loss`
    assert result.values["train"] == 3.0
    assert result.values["test/acc"] == float(np.float32(0.25))
    assert result.values["tf2/accuracy"] == 0.3  # the float32 tensor as Katib prints it


def test_latest_uses_whole_seconds_then_collection_order(tmp_path: Path) -> None:
    w = SummaryWriter(str(tmp_path))
    w.add_scalar("loss", 5.0, 1, walltime=100.2)
    w.add_scalar("loss", 4.0, 9, walltime=101.9)  # the highest step, in second 101
    w.add_scalar("loss_ema", 7.0, 2, walltime=101.1)  # same second, collected after `loss`
    w.add_scalar("acc", 0.1, 50, walltime=103.0)
    w.add_scalar("acc", 0.9, 3, walltime=104.0)  # latest is by time, not by step
    w.close()
    result = collect_metrics(tmp_path, ["loss", "acc"], {"loss": "latest", "acc": "latest"})
    assert result.values == {"loss": 7.0, "acc": float(np.float32(0.9))}
    assert result.observations["loss"] == tfevents.MetricObservation(4.0, 7.0, 7.0)
    assert katib_collect(str(tmp_path), ["loss", "acc"], {"loss": "latest", "acc": "latest"}) == (
        result.values
    )


def test_default_strategies_follow_objective_type(tmp_path: Path) -> None:
    write_simple(tmp_path)
    assert collect_metrics(tmp_path, ["loss"], objective_type="minimize").values == {"loss": 1.0}
    assert collect_metrics(tmp_path, ["loss"], objective_type="maximize").values == {"loss": 10.0}
    assert collect_metrics(tmp_path, ["loss"]).values == {"loss": 10.0}  # latest
    assert collect_metrics(tmp_path, ["loss"], {"loss": "min"}).values == {"loss": 1.0}


def test_no_objective_is_unavailable_and_lists_found_tags(tmp_path: Path) -> None:
    w = SummaryWriter(str(tmp_path))
    w.add_scalar("train/loss", 0.5, 1)
    w.add_scalar("val_acc", 0.7, 1)
    w.close()
    w = SummaryWriter(str(tmp_path / "eval"))
    w.add_scalar("acc", 0.6, 1)
    w.close()
    result = collect_metrics(tmp_path, ["loss", "val_acc"], {"loss": "min", "val_acc": "max"})
    assert not result.available()
    # Katib reports only `objective=unavailable`: the other metrics are dropped too.
    assert result.values == {} and result.missing == ["loss", "val_acc"]
    assert result.found_tags == ["eval/acc", "train/loss", "val_acc"]
    message = result.describe_missing()
    assert "expected `loss`" in message and "`train/loss`, `val_acc`" in message
    assert collect_metrics(tmp_path, ["eval/acc"]).available("eval/acc")


def test_empty_or_missing_directory_is_unavailable(tmp_path: Path) -> None:
    result = collect_metrics(tmp_path / "nope", ["loss"])
    assert not result.available() and result.found_tags == [] and result.missing == ["loss"]


@pytest.mark.torch
def test_torch_summary_writer(tmp_path: Path) -> None:
    torch_tb = pytest.importorskip("torch.utils.tensorboard")
    w = torch_tb.SummaryWriter(str(tmp_path))
    for step in range(20):
        w.add_scalar("loss", 1.0 / (step + 1), step)
        w.add_scalar("loss_new", 2.0 / (step + 1), step, new_style=True)  # a tensor scalar
    w.add_scalars("acc", {"train": 0.5, "val": 0.25}, 3)
    w.close()
    for path in find_event_files(tmp_path):
        assert_same_as_accumulator(path)
    names = ["loss", "val/acc"]
    result = collect_metrics(tmp_path, names, {"loss": "min", "val/acc": "max"})
    assert result.values == katib_collect(str(tmp_path), names, {"loss": "min", "val/acc": "max"})


def test_why_a_metric_is_missing_says_what_to_change(tmp_path: Path) -> None:
    """No events files at all; `eval/accuracy` written as one top-level tag; a near-miss name.
    Metrics found while the objective is missing are kept aside (Katib reports none of them)."""
    from tensorboardX import SummaryWriter

    empty = collect_metrics(tmp_path / "nothing", ["loss"])
    assert "holds no events files" in empty.describe_missing()
    assert "found no scalar tags" not in empty.describe_missing()

    top = tmp_path / "top"
    with SummaryWriter(str(top)) as writer:
        writer.add_scalar("eval/accuracy", 0.5, 1)
        writer.add_scalar("val_los", 0.25, 1)
        writer.add_scalar("train_acc", 0.75, 1)
    placed = collect_metrics(top, ["eval/accuracy", "train_acc"])
    text = placed.describe_missing()
    assert "written as one tag at the top" in text and "<tensorboard_dir>/eval" in text
    assert placed.values == {} and placed.other_values == {"train_acc": 0.75}
    near = collect_metrics(top, ["val_loss"]).describe_missing()
    assert "did you mean `val_los`?" in near
