"""What a well-formed journal line is, and the journal's bytes parsed into checked events.

Each event kind has required fields (the line is skipped without them) and optional ones (a bad
one is dropped); `check_event` says which, naming the line (`journal.jsonl:17: ...`). `parse`
reads whole lines: one `json.loads` for the lot when every line is good (the 10k-trial case),
else blocks of lines, a block with a bad line one line at a time. Never raises on content.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

JOURNAL = "journal.jsonl"  # the journal's file name, as every problem names it


def parse(whole: bytes, line: int) -> tuple[list[dict[str, Any]], Sequence[int], list[str]]:
    """The well-formed events of `whole` (complete lines, each ending in a newline; the first is
    line number `line`), their line numbers, and a problem naming each line skipped."""
    count = whole.count(b"\n")
    if not count:
        return [], [], []
    fast = _parse_whole(whole, count)
    if fast is not None:
        return fast, range(line, line + count), []
    return _parse_blocks(whole, line)


def _parse_whole(whole: bytes, count: int) -> list[dict[str, Any]] | None:
    """The fast path: one json.loads for every line (per-line parsing dominates at 10k trials).
    None when any line is bad, or the values are not one per line: then `_parse_lines` says which.
    (Lines that only parse joined, like `{"a": [{}` then `{}]}`, can be crafted; a crash, which
    leaves a prefix of one line, cannot write them.)"""
    if whole[:1] == b"\0":
        return None  # json.loads would take the bytes for UTF-16
    try:
        parsed: list[Any] = json.loads(b"[" + whole[:-1].replace(b"\n", b",") + b"]")
    except (ValueError, RecursionError):  # UnicodeDecodeError included
        return None
    if len(parsed) != count:
        return None
    for event in parsed:
        # `_well_formed` is `check_event` without the messages, twice as fast: it matters here.
        if type(event) is not dict or not _well_formed(event):
            return None
    return parsed


_BLOCK = 256  # lines


def _parse_blocks(whole: bytes, line: int) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """A journal with bad lines: blocks of lines the fast way, those with a bad line one line at a
    time (a torn line left by a crash must not make every later read of 10k trials slow)."""
    events: list[dict[str, Any]] = []
    lines: list[int] = []
    problems: list[str] = []
    raws = whole.split(b"\n")[:-1]
    for start in range(0, len(raws), _BLOCK):
        block = b"\n".join(raws[start : start + _BLOCK]) + b"\n"
        count = min(_BLOCK, len(raws) - start)
        fast = _parse_whole(block, count)
        if fast is not None:
            events += fast
            lines += range(line + start, line + start + count)
            continue
        slow = _parse_lines(block, line + start)
        events += slow[0]
        lines += slow[1]
        problems += slow[2]
    return events, lines, problems


def _parse_lines(whole: bytes, line: int) -> tuple[list[dict[str, Any]], list[int], list[str]]:
    """The slow path: each line on its own, bad ones skipped and named."""
    events: list[dict[str, Any]] = []
    lines: list[int] = []
    problems: list[str] = []
    for number, raw in enumerate(whole.split(b"\n")[:-1], start=line):
        if not raw.strip():
            continue  # a blank line hides nothing (two writers ending the same torn line)
        where = f"{JOURNAL}:{number}"
        try:
            text = raw.decode("utf-8", "surrogatepass")  # as json.loads decodes bytes
        except UnicodeDecodeError as err:
            problems.append(
                f"{where}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                "skipped"
            )
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            problems.append(f"{where}: not valid JSON ({err.msg}: column {err.colno}); skipped")
            continue
        except (ValueError, RecursionError) as err:
            problems.append(f"{where}: not valid JSON ({type(err).__name__}); skipped")
            continue
        event = check_event(value, number, problems)
        if event is not None:
            events.append(event)
            lines.append(number)
    return events, lines, problems


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_time(value: Any) -> TypeGuard[int | float]:
    return _is_number(value) and 0 <= value < 1e11  # a Unix time (not NaN, not year 5000)


def _is_name(value: Any) -> bool:
    """A trial name: also a directory name under trials/, and printed (no control characters)."""
    return (
        isinstance(value, str)
        and value.isprintable()
        and "/" not in value
        and value not in ("", ".", "..")
    )


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_opt_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_opt_int(value: Any) -> bool:
    return value is None or _is_int(value)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_opt_str_list(value: Any) -> bool:
    return value is None or _is_str_list(value)


def _is_metrics(value: Any) -> bool:
    return isinstance(value, dict) and all(_is_number(item) for item in value.values())


_Check = tuple[str, Callable[[Any], bool], str]
# event kind -> (required fields: the line is skipped without them, optional fields: ignored when bad)
_EVENTS: dict[str, tuple[tuple[_Check, ...], tuple[_Check, ...]]] = {
    "trial_started": (
        (
            ("trial", _is_name, "a trial name"),
            ("number", _is_int, "an integer"),
            ("params", _is_dict, "an object"),
            ("t", is_time, "a timestamp"),
        ),
        (
            ("gpus", _is_str, "a string"),
            ("retry_of", _is_opt_str, "a trial name"),
            ("argv", _is_opt_str_list, "a list of strings"),
        ),
    ),
    "trial_running": (
        (("trial", _is_name, "a trial name"),),
        (("pid", _is_opt_int, "an integer"), ("proc_start", _is_opt_str, "a string")),
    ),
    "trial_finished": (
        (
            ("trial", _is_name, "a trial name"),
            ("status", _is_str, "a string"),
            ("t", is_time, "a timestamp"),
        ),
        (
            ("exit_code", _is_opt_int, "an integer"),
            ("metrics", _is_metrics, "an object of numbers"),
            ("found_tags", _is_str_list, "a list of strings"),
            ("reason", _is_str, "a string"),
        ),
    ),
    # A trial killed from outside, started again in place (same name, number, directories):
    # `attempt` is its restart count (1 for the first restart), `reason` how the last run ended.
    "trial_restarted": (
        (
            ("trial", _is_name, "a trial name"),
            ("attempt", _is_int, "an integer"),
            ("t", is_time, "a timestamp"),
        ),
        (("number", _is_int, "an integer"), ("reason", _is_str, "a string")),
    ),
    "experiment": (
        (("status", _is_str, "a string"), ("t", is_time, "a timestamp")),
        (("reason", _is_str, "a string"),),
    ),
}


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (ValueError, TypeError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def check_event(event: Any, line: int, problems: list[str]) -> dict[str, Any] | None:
    """`event` when it is a well-formed journal event; a copy without its bad optional fields; or
    None when it cannot be used (not an object, an unknown kind, a required field missing or of the
    wrong type). Each problem, naming `line`, goes to `problems`."""
    if not isinstance(event, dict):
        problems.append(f"{JOURNAL}:{line}: not a JSON object; skipped")
        return None
    kind = event.get("event")
    checks = _EVENTS.get(kind) if isinstance(kind, str) else None
    if checks is None:
        what = "no `event` field" if kind is None else f"unknown event {_shown(kind)}"
        problems.append(f"{JOURNAL}:{line}: {what}; skipped")
        return None
    required, optional = checks
    for key, valid, what in required:
        if key not in event:
            problems.append(f"{JOURNAL}:{line}: {kind} without `{key}`; skipped")
            return None
        if not valid(event[key]):
            problems.append(
                f"{JOURNAL}:{line}: {kind} `{key}` is not {what} ({_shown(event[key])}); skipped"
            )
            return None
    cleaned = event
    for key, valid, what in optional:
        if key in event and not valid(event[key]):
            problems.append(
                f"{JOURNAL}:{line}: {kind} `{key}` is not {what} ({_shown(event[key])}); "
                "field ignored"
            )
            if cleaned is event:
                cleaned = dict(event)  # never change the caller's event
            del cleaned[key]
    return cleaned


def _well_formed(event: dict[str, Any]) -> bool:
    """True when `check_event` would take `event` as it is, with no problem (the fast path's
    check; when in doubt False, and `check_event` says why). Exact types: JSON gives no others."""
    get = event.get
    kind = get("event")
    if kind == "trial_running":
        pid, proc_start = get("pid"), get("proc_start")
        return (
            _is_name(get("trial"))
            and (pid is None or type(pid) is int)
            and (proc_start is None or type(proc_start) is str)
        )
    t = get("t")
    if not ((type(t) is float or type(t) is int) and 0 <= t < 1e11):
        return False
    if kind == "trial_finished":
        code, metrics, tags = get("exit_code"), get("metrics", _NO_METRICS), get("found_tags", [])
        return (
            _is_name(get("trial"))
            and type(get("status")) is str
            and (code is None or type(code) is int)
            and type(metrics) is dict
            and _NUMBER_TYPES.issuperset(map(type, metrics.values()))
            and type(tags) is list
            and _STR_TYPE.issuperset(map(type, tags))
            and type(get("reason", "")) is str
        )
    if kind == "trial_started":
        retry_of, argv = get("retry_of"), get("argv")
        return (
            _is_name(get("trial"))
            and type(get("number")) is int
            and type(get("params")) is dict
            and type(get("gpus", "")) is str
            and (retry_of is None or type(retry_of) is str)
            and (argv is None or (type(argv) is list and _STR_TYPE.issuperset(map(type, argv))))
        )
    if kind == "experiment":
        return type(get("status")) is str and type(get("reason", "")) is str
    if kind == "trial_restarted":
        return (
            _is_name(get("trial"))
            and type(get("attempt")) is int
            and type(get("number", 0)) is int
            and type(get("reason", "")) is str
        )
    return False


_NO_METRICS: dict[str, Any] = {}
_NUMBER_TYPES = frozenset((int, float))  # exact types: no bool
_STR_TYPE = frozenset((str,))
