"""Read TensorBoard scalars the way Katib's TensorFlowEvent metrics collector does.

Katib (v0.18/v0.19) reads a trial's metrics in
`pkg/metricscollector/v1beta1/tfevent-metricscollector/tfevent_loader.py`: it walks the
collector directory, loads every events file with tensorboard's `EventAccumulator`, keeps the
values whose tag matches a metric name, the DB manager hands them back sorted by time
(`pkg/db/v1beta1/mysql/mysql.go` `GetObservationLog`: `ORDER BY time`), and the trial
controller (`pkg/controller.v1beta1/trial/trial_controller_util.go`, `getMetrics`) reduces
them to min/max/latest in that order. launch reproduces those rules without tensorflow or
protobuf. This module holds the collector's part (finding events files, matching tags to
metrics, reducing them) and is the API; `launch.tfevent_file` reads one file, with a TFRecord
reader checking both CRCs (`launch.tfrecord`), a wire-format check that fails where protobuf's
parser fails (`launch.protowire`), and hand-written decoders for the few proto fields involved
(`launch.tftensor` for tensors).

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

import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

# The reading of one file lives in launch.tfevent_file; its names are part of this API.
from launch.tfevent_file import CorruptEventFileError, EventFile, Scalar, read_event_file

# For tests/test_quickstart.py, which checks through this module that a trial image without the
# crc32c wheel reads with the pure-Python CRC.
from launch.tfrecord import crc32c as _crc32c  # noqa: F401
from launch.tfrecord import crc32c_py as _crc32c_py  # noqa: F401

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
