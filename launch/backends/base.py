"""The shape every backend has: what the CLI asks of it, and the typed answers it gets back.

The CLI parses flags into a `LaunchRequest`, picks a backend once (`launch.backends`), asks it,
and renders what comes back: `Created`, `Ending`, `StatusReport`, events. A backend never prints
and never exits; the CLI never touches a process, a pod or a journal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

from launch.events import Sink
from launch.podspec import TrialResources

if TYPE_CHECKING:
    from launch.config import Settings
    from launch.results import Trial
    from launch.spec import LaunchSpec
    from launch.state import Experiment

Until = Literal["first", "all"]


def _no_resources() -> TrialResources:
    return TrialResources()


# A grid may hold up to spec.MAX_GRID_COMBINATIONS trials: a preview's text shows the first ones
# (--json lists all).
SHOWN_TRIALS = 1000


def more_trials(count: int, *, prefix: str = "") -> str:
    hidden = count - SHOWN_TRIALS
    return f"{prefix}... and {hidden:,} more (--json lists every one)\n" if hidden > 0 else ""


@dataclass(frozen=True)
class LaunchRequest:
    """Everything a launch needs, checked by the CLI: the spec, the command, the commit."""

    spec: LaunchSpec
    command: Sequence[str]
    snap: Any  # launch.git.Snapshot
    settings: Settings
    name: str | None = None
    gpus: int = 0
    allow_dirty: bool = False
    resources: TrialResources = field(default_factory=lambda: _no_resources())
    rebuild: bool = False
    dockerfile: str = "Dockerfile"
    context_dir: str | None = None
    preflight: bool = True  # ask the program to parse every flag set before any trial
    # A seed study (`launch seeds`): where its configs came from (`seed_study.Selection.as_meta`),
    # kept in the experiment's record as `study`.
    study: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Preview:
    """What a launch would create, for `--dry-run`/`render`: JSON data and readable text."""

    doc: Mapping[str, Any]
    text: str
    warning: str | None = None  # the plan cannot be launched as it is, and why


@dataclass(frozen=True)
class Created:
    """A launched experiment: `summary` lines narrate (stderr), `links` are output (stdout)."""

    experiment: Experiment
    summary: Sequence[str] = ()
    links: Sequence[str] = ()


EndKind = Literal[
    "ended", "already-ended", "first-succeeded", "timed-out", "interrupted", "detached"
]


@dataclass(frozen=True)
class Ending:
    """How following an experiment stopped: it ended (with `status`), or the watcher stopped."""

    kind: EndKind
    status: str = ""
    reason: str = ""


@dataclass(frozen=True)
class StatusReport:
    """`launch status`: the experiment's state, trial counts, best trial, and what waits."""

    name: str
    status: str
    reason: str
    counts: Mapping[str, int]
    best: Trial | None
    objective: str
    title: str  # how the experiment is named in text: `ns/name` on a cluster
    max_trials: int | None = None
    pending: Mapping[str, str] = field(default_factory=dict)  # trial name -> why it waits
    numbers: Mapping[str, int] = field(default_factory=dict)  # trial name -> number
    footer: Sequence[str] = ()  # lines after the counts (links, how to resume)
    doc: Mapping[str, Any] = field(default_factory=dict)  # `--json`


@dataclass(frozen=True)
class Rerun:
    """`launch results --rerun`: a copy-paste command, and a comment to print before it."""

    command: str
    comment: str | None = None


Confirm = Callable[[str], bool]


class Backend(Protocol):
    """What both backends do; `launch.backends.BACKENDS` lists them by the name in meta."""

    name: str
    # Trials run on this machine: the commit need not be pushed, nothing to confirm (no GPU hours
    # of a shared cluster), and the sweep runs to its end in the foreground.
    runs_here: bool

    def caveats(self, request: LaunchRequest) -> list[str]:
        """What this backend does differently from what the spec asks (said before a launch)."""
        ...

    def preview(self, request: LaunchRequest) -> Preview:
        """What `launch run --dry-run` shows; touches nothing."""
        ...

    def create(
        self, request: LaunchRequest, *, confirm: Confirm | None = None, sink: Sink | None = None
    ) -> Created | None:
        """Create the experiment (None: the user said no when asked `confirm`); long steps (a
        build) report to `sink`."""
        ...

    def follow(
        self,
        exp: Experiment,
        sink: Sink,
        *,
        until: Until = "all",
        timeout_s: float | None = None,
    ) -> Ending:
        """Report events until the experiment ends (or `until` is met, or time runs out).
        The local backend runs (or resumes) the sweep itself when nothing else does."""
        ...

    def trials(self, exp: Experiment) -> tuple[LaunchSpec, list[Trial]]:
        """The spec and the trials, best first."""
        ...

    def links(self, exp: Experiment, rows: list[Trial]) -> tuple[list[Trial], str | None]:
        """`rows` with each trial's MLflow run link, and a warning when the store cannot say."""
        ...

    def status(self, exp: Experiment) -> StatusReport: ...

    def logs(
        self,
        exp: Experiment,
        trial: int | None,
        *,
        follow: bool,
        out: IO[bytes],
        say: Callable[[str], None],
        rank: int | None = None,
    ) -> None:
        """Write a trial's output to `out`, after `say`ing which trial and where it comes from;
        `rank`: which node of a multi-node trial (0 by default)."""
        ...

    def cancel(self, exp: Experiment) -> str:
        """Stop the experiment, keep its results; returns what was done, in words."""
        ...

    def rerun(self, exp: Experiment, row: Trial) -> Rerun: ...

    def problems(self, exp: Experiment) -> str | None:
        """A warning about the experiment's records (a damaged journal), or None."""
        ...
