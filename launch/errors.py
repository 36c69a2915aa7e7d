"""User-facing errors: an `error:` line, a `hint:` line and a documented exit code.

Pure: no imports beyond the standard library, so every layer can raise these.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of DESIGN.md ("CLI conventions"); documented in `launch --help`."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2  # usage, configuration or search.yaml error, a preflight problem (also: a `launch doctor` check failed,
    # no usable kubeconfig for the cluster backend, an optional library such as matplotlib missing)
    GIT_STATE = 3  # dirty / unpushed tree refused
    BUILD_FAILED = 4
    TRIAL_FAILED = 5  # trial or experiment failed
    TIMED_OUT = 6
    CANCELLED = 7  # the experiment was stopped by `launch cancel` (from another shell)
    DETACHED = 130  # Ctrl-C: the experiment keeps running


class LaunchError(Exception):
    """An error the CLI prints as `error: <message>` / `hint: <hint>` and exits with `exit_code`."""

    exit_code: ExitCode = ExitCode.UNEXPECTED
    # Further problems found at the same time, each its own `error:`/`hint:`, then a closing line.
    more: list[tuple[str, str | None]] = []  # noqa: RUF012 (read only: subclasses set their own)
    closing: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(LaunchError):
    exit_code = ExitCode.USAGE


class SpecError(UsageError):
    """A search.yaml problem; the message starts with `file: field path`."""


class PreflightError(UsageError):
    """Several problems found at once (preflight): each is printed as its own `error:`/`hint:`
    pair, the first as the error itself, then `closing`."""

    def __init__(self, problems: list[tuple[str, str | None]], *, closing: str = "") -> None:
        super().__init__(problems[0][0], hint=problems[0][1])
        self.more = problems[1:]
        self.closing = closing


class GitStateError(LaunchError):
    exit_code = ExitCode.GIT_STATE


class BuildError(LaunchError):
    exit_code = ExitCode.BUILD_FAILED


class TrialFailedError(LaunchError):
    exit_code = ExitCode.TRIAL_FAILED


class TimedOutError(LaunchError):
    exit_code = ExitCode.TIMED_OUT


class MissingExtraError(UsageError):
    """An optional library (the `plot` or `mlflow` extra) is not installed: usage, exit 2."""
