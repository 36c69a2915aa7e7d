"""The Katib backend: the commit is built into an image in-cluster, trials run as Katib trials
(`launch.submit` drives the cluster through `launch.cluster`); what a launch remembers locally is
a `ClusterRecord` in the experiment's directory."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from launch import state
from launch.backends.base import (
    SHOWN_TRIALS,
    Confirm,
    Created,
    Ending,
    LaunchRequest,
    Preview,
    Rerun,
    StatusReport,
    Until,
    more_trials,
)
from launch.backends.links import (
    best_doc,
    count_statuses,
    usage_doc,
    usage_lines,
    with_mlflow_links,
)
from launch.errors import UsageError
from launch.events import Sink, ignore, narration_sink, note
from launch.kube_api import ClusterAPI
from launch.results import Trial
from launch.spec import LaunchSpec

NOT_LAUNCHABLE = "NOT LAUNCHABLE as is"


@dataclass(frozen=True)
class ClusterRecord:
    """What a cluster launch remembers in `.launch/experiments/<name>/experiment.json`."""

    name: str
    namespace: str
    context: str | None
    spec: Mapping[str, Any]
    image: str
    commit: str
    katib_url: str | None
    mlflow_url: str | None
    created: float
    seed_flag: str
    command: list[str]
    subdir: str
    queue: str | None
    gpus: int
    backend: str = "katib"
    study: Mapping[str, Any] | None = None  # a seed study: where its configs came from

    def as_meta(self) -> dict[str, Any]:
        return asdict(self)


def connect(context: str | None) -> ClusterAPI:
    """The cluster client; a kubeconfig it cannot load is a configuration error (exit 2), not a
    crash: `Cluster.connect` makes no request, so every error it raises is about the kubeconfig."""
    from launch.cluster import Cluster, ClusterError

    try:
        return Cluster.connect(context)
    except ClusterError as err:
        raise UsageError(
            err.message,
            hint=(err.hint or "")
            + ("; " if err.hint else "")
            + "without a cluster, run the sweep here: `launch --backend local SPEC -- CMD`",
        ) from None


def _uncloneable_remote(snap: Any) -> str | None:
    """Why Kaniko cannot clone this clean, pushed commit from its remote (a local path, a
    `file://` URL...), or None when it can (or the tree is not clean and pushed anyway)."""
    if not (snap.clean and snap.pushed and snap.remote_url):
        return None
    from launch import kaniko

    try:
        kaniko.git_context(snap.remote_url, snap.remote_branch or snap.branch, snap.commit)
    except UsageError as err:
        return err.message
    return None


@dataclass(frozen=True)
class Source:
    """What a cluster launch builds from: the git facts of the plan, the experiment name, a
    note when the plan is shown but cannot be launched as it is, how the image is made, and
    for a Kaniko build of an upload the bytes it uploads (`context_data`, read when Kaniko is the
    path; `archive` makes them when a composed launch falls back to Kaniko)."""

    facts: Any
    name: str
    context_data: bytes | None
    note: str | None
    choice: Any  # compose.Choice
    archive: Callable[[], bytes] | None = None  # None: Kaniko clones the commit (git_context)


def git_facts(
    snap: Any,
    *,
    name: str | None,
    allow_dirty: bool,
    preview: bool = False,
    build: str = "auto",
    dockerfile: str = "Dockerfile",
    context_dir: str | None = None,
    platform: str = "linux/amd64",
    git_context: bool = False,
) -> Source:
    """The source of a cluster launch (see `Source`): the commit, or with `--allow-dirty` the
    working tree tagged by its tree hash.

    Kaniko builds an upload of the commit's files (or of the working tree), so no git
    credentials live in the cluster. With `git_context` it clones a clean, pushed commit
    instead; one whose remote the cluster cannot clone (a local path) then needs
    `--allow-dirty` (an upload), and without it a launch is refused with that hint while
    `preview` (render, --dry-run) shows the upload plan marked not launchable."""
    import secrets

    from launch import compose, git, git_files, names
    from launch.plan import GitFacts

    tag, note = snap.commit, None
    uncloneable = _uncloneable_remote(snap) if git_context else None
    if uncloneable and not allow_dirty:
        hint = (
            "push the branch to an https or ssh remote (`git remote -v`), or pass --allow-dirty "
            "to build from an upload of the working tree"
        )
        if not preview:
            raise UsageError(uncloneable, hint=hint)
        note = f"{NOT_LAUNCHABLE}: {uncloneable}; {hint} (shown: that upload's plan)"
    clean = snap.clean and snap.pushed
    clone = git_context and clean and not uncloneable
    if uncloneable or (allow_dirty and not clean):
        tag = git.worktree_tree(snap.root)  # untracked credentials refused here

    def archive() -> bytes:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="launch-context-") as tmp:
            path = Path(tmp) / "context.tar.gz"
            if tag == snap.commit:
                git.archive(snap.root, tag, path)
            else:
                git.archive_tree(snap.root, tag, path)
            return path.read_bytes()

    # A working tree's files carry no time worth keeping: its layer's files get time 0.
    mtime = 0 if tag != snap.commit else git_files.commit_time(snap.root, snap.commit)
    choice = compose.choose(
        Path(snap.root), tag, context_dir=context_dir, dockerfile=dockerfile, mode=build,
        platform=platform, mtime=mtime,
    )  # fmt: skip
    data = None if clone or choice.path == "compose" else archive()
    facts = GitFacts(
        commit=tag,
        branch=snap.remote_branch or snap.branch,
        remote_url=snap.remote_url if clone else None,
        repo_name=snap.repo_name,
        subdir=snap.subdir,
        context_digest=None if data is None else _digest(data),
    )
    if name is None:
        name = names.experiment_name(stem=snap.repo_name, commit=tag, suffix=secrets.token_hex(2))
    else:
        names.validate_experiment_name(name)
    return Source(facts, name, data, note, choice, None if clone else archive)


def _digest(data: bytes) -> str:
    from launch import registry

    return registry.digest_of(data)


def upload_listing(data: bytes) -> tuple[dict[str, Any], str]:
    """What a Kaniko build of an upload sends (a blob anyone who can read the registry can
    fetch by its digest): its files, for `render`/`--dry-run` (JSON, and `#` comment lines)."""
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        files = [m.name for m in tar.getmembers() if m.isfile() or m.issym()]
    what = f"the build context Kaniko builds is uploaded: {len(files)} files, {len(data) / 1e6:.2f} MB compressed"
    return {"bytes": len(data), "files": files}, _listing(what, files)


def layer_listing(choice: Any) -> tuple[dict[str, Any], str]:
    """What a composed launch uploads: the files of its source layer (`.dockerignore` applied)."""
    files = [e.path for e in choice.source]
    size = sum(e.size for e in choice.source)
    what = (
        f"the source layer is uploaded: {len(files)} files, {size / 1e6:.2f} MB before compression"
    )
    return {"bytes": size, "files": files}, _listing(what, files)


def _listing(what: str, files: list[str]) -> str:
    text = (
        f"# {what} (with --allow-dirty, untracked files that .gitignore or .dockerignore exclude "
        "are left out):\n"
    )
    text += "".join(f"#   {name}\n" for name in files[:SHOWN_TRIALS])
    if len(files) > SHOWN_TRIALS:
        text += f"#   ... and {len(files) - SHOWN_TRIALS:,} more files (--json lists every one)\n"
    return text


def _source(request: LaunchRequest, *, preview: bool = False) -> Source:
    settings = request.settings
    return git_facts(
        request.snap, name=request.name, allow_dirty=request.allow_dirty, preview=preview,
        build=settings.build, dockerfile=request.dockerfile, context_dir=request.context_dir,
        platform=settings.platform, git_context=settings.git_context,
    )  # fmt: skip


def _dependency(choice: Any) -> tuple[str, str] | None:
    """The fast path's dependency image (tag, uploaded context digest), for `make_plan`."""
    if choice.path != "compose":
        return None
    from launch import registry

    return choice.dependency_tag, registry.digest_of(choice.context)


def plan_preview(plan: Any, choice: Any = None) -> Preview:
    """The Kaniko build Job, the Katib Experiment and the trial command lines of a plan, and
    how its image is made (`choice`, a `compose.Choice`)."""
    from launch import yamltext

    blocked = [n for n in plan.notes if n.startswith(NOT_LAUNCHABLE)]
    doc: dict[str, Any] = {
        "launchable": not blocked,
        "name": plan.name,
        "namespace": plan.namespace,
        "image": plan.image,
        "buildJob": plan.build_job,
        "experiment": plan.experiment,
        "trials": plan.trial_lines,
        "trialsComplete": plan.complete,
    }
    if plan.notes:
        doc["notes"] = list(plan.notes)
    docs = [d for d in (plan.build_job, plan.experiment) if d is not None]
    text = "".join(f"# {line}\n" for line in blocked)
    if choice is not None:
        doc["build"] = choice.as_doc()
        text += f"# image: {choice.describe()}\n"
        if choice.path == "compose":
            text += (
                "# the build Job below runs only when the registry lacks that dependency image;"
                " a code change uploads one layer and runs no Job\n"
            )
    text += "---\n".join(yamltext.to_yaml(d) for d in docs)
    text += "".join(f"# {line}\n" for line in plan.notes)
    what = "every trial" if plan.complete else f"a sample of {len(plan.trial_lines)} trials"
    text += f"# trial command lines ({what}):\n"
    text += "".join(f"#   {shlex.join(line)}\n" for line in plan.trial_lines[:SHOWN_TRIALS])
    text += more_trials(len(plan.trial_lines), prefix="#   ")
    return Preview(doc=doc, text=text, warning=blocked[0] if blocked else None)


def _expanded(spec: LaunchSpec, rows: list[Trial], meta: Mapping[str, Any]) -> list[Trial]:
    """A seed study's trials with their config's flags in place of the config number."""
    if spec.configs is None:
        return rows
    from launch import seed_study

    return seed_study.expand_rows(rows, spec.configs, str(meta.get("seed_flag") or "seed"))


class KatibBackend:
    name = "katib"
    runs_here = False

    def caveats(self, request: LaunchRequest) -> list[str]:
        return []

    # ------------------------------------------------------------------ launching

    def preview(self, request: LaunchRequest) -> Preview:
        import dataclasses
        import getpass

        from launch.plan import make_plan

        source = _source(request, preview=True)
        facts, name, context_data, note = (
            source.facts,
            source.name,
            source.context_data,
            source.note,
        )
        plan = make_plan(
            spec=request.spec, command=list(request.command), git=facts,
            settings=request.settings, name=name, user=getpass.getuser(),
            resources=request.resources, dockerfile=request.dockerfile,
            context_dir=request.context_dir, dependency=_dependency(source.choice),
        )  # fmt: skip
        if note is not None:
            plan = dataclasses.replace(plan, notes=(note, *plan.notes))
        shown = plan_preview(plan, source.choice)
        from launch import preflight
        from launch.contract import TFEVENT_DIR

        checks = preflight.plan(
            request.spec, seed_flag=request.settings.seed_flag, tensorboard_dir=TFEVENT_DIR
        )
        doc, said = preflight.describe(
            checks, request.command, enabled=request.preflight,
            where="one CPU-only pod of the image, before the Experiment",
        )  # fmt: skip
        extra: dict[str, Any] = {"preflight": doc}
        if context_data is not None:
            extra["upload"], listed = upload_listing(context_data)
            said = listed + said
        elif source.choice.path == "compose" and request.allow_dirty:
            extra["upload"], listed = layer_listing(source.choice)
            said = listed + said
        return dataclasses.replace(shown, doc={**shown.doc, **extra}, text=shown.text + said)

    def create(
        self, request: LaunchRequest, *, confirm: Confirm | None = None, sink: Sink | None = None
    ) -> Created | None:
        import getpass

        from launch import spec, submit

        settings = request.settings
        source = _source(request)
        facts, name = source.facts, source.name
        home = state.home_dir(settings.home)
        if (state.experiments_dir(home) / name).exists():
            # Refused before the cluster sees anything (the record is written after the create).
            raise UsageError(
                f"experiment `{name}` already exists in {state.experiments_dir(home)}",
                hint=f"pick another --name, or `launch watch {name}` to follow it",
            )
        if confirm is not None:
            counts = spec.resolve_counts(request.spec)
            gpu_text = f" x {request.gpus} GPU(s)" if request.gpus else ""
            where = f"{settings.context or 'the current context'}/{settings.namespace}"
            if not confirm(
                f"launch {name}: up to {counts.max_trials} trials{gpu_text}, "
                f"{counts.parallel} at a time, on {where}?"
            ):
                return None
        cluster = connect(settings.context)
        launched = submit.launch(
            cluster=cluster, settings=settings, spec=request.spec, command=list(request.command),
            snap=request.snap, git_facts=facts, name=name, user=getpass.getuser(),
            resources=request.resources, rebuild=request.rebuild, dockerfile=request.dockerfile,
            context_dir=request.context_dir, choice=source.choice, archive=source.archive,
            context_data=source.context_data, report=narration_sink(sink or ignore),
            preflight=request.preflight,
        )  # fmt: skip
        record = ClusterRecord(
            name=name, namespace=launched.namespace, context=settings.context,
            spec=request.spec.model_dump(mode="json"), image=launched.image, commit=facts.commit,
            katib_url=launched.katib_url, mlflow_url=settings.mlflow_url, created=time.time(),
            seed_flag=settings.seed_flag, command=list(request.command),
            subdir=request.snap.subdir, queue=request.resources.queue, gpus=request.gpus,
            study=dict(request.study) if request.study else None,
        )  # fmt: skip
        exp = state.Experiment.create(home, name, record.as_meta())
        links = [f"experiment {launched.namespace}/{name} created ({launched.image})"]
        if launched.katib_url:
            links.append(f"Katib:  {launched.katib_url}")
        if settings.mlflow_url:
            from launch import tracking

            # Created now (as the local backend does), so the link is exact from the start; the
            # trials log into it by name. Unreachable from here: a fallback link, never an error.
            link = tracking.ensure_experiment(
                settings.mlflow_url, name,
                tags={"katib.url": launched.katib_url} if launched.katib_url else None,
            )  # fmt: skip
            base = settings.mlflow_url.rstrip("/")
            where = link.url or f"{base}/#/experiments (experiment {name}, made by the first trial)"
            links.append(f"MLflow: {where}")
        return Created(exp, links=links)

    # ------------------------------------------------------------------ following

    def follow(
        self,
        exp: state.Experiment,
        sink: Sink,
        *,
        until: Until = "all",
        timeout_s: float | None = None,
    ) -> Ending:
        from launch import submit

        cluster, meta = self._cluster(exp)
        spec = LaunchSpec.model_validate(meta["spec"])
        what = "the first trial to succeed" if until == "first" else "every trial"
        sink(note(f"waiting for {what} (Ctrl-C detaches)"))
        try:
            result = submit.watch(
                cluster=cluster, spec=spec, namespace=meta["namespace"], name=exp.name,
                until=until, timeout_s=timeout_s, sink=sink,
                kueue=bool(meta.get("queue")),
            )  # fmt: skip
        except KeyboardInterrupt:
            return Ending("detached")
        if result.status == "first-succeeded":
            return Ending("first-succeeded")
        return Ending("ended", result.status)

    # ------------------------------------------------------------------ reading

    def _cluster(self, exp: state.Experiment) -> tuple[ClusterAPI, dict[str, Any]]:
        from launch import config

        meta = exp.meta()
        context = meta.get("context") or config.load_settings().context
        return connect(context), meta

    def trials(self, exp: state.Experiment) -> tuple[LaunchSpec, list[Trial]]:
        """Rows from the Trial objects, else (the experiment was deleted) from the results
        saved by `cancel`."""
        from launch import results, submit

        meta = exp.meta()
        spec = LaunchSpec.model_validate(meta["spec"])
        saved = exp.path / "results.json"
        if meta.get("deleted") and saved.is_file():
            rows = results.from_json(saved.read_text())
        else:
            cluster, meta = self._cluster(exp)
            with cluster:
                rows = submit.trial_rows(
                    cluster, spec=spec, namespace=meta["namespace"], name=exp.name,
                    kueue=bool(meta.get("queue")),
                )  # fmt: skip
                if not rows and cluster.find("Experiment", meta["namespace"], exp.name) is None:
                    raise UsageError(
                        f"{meta['namespace']}/{exp.name} no longer exists on the cluster, and "
                        "its trials went with it (deleted outside launch, so nothing was saved)",
                        hint=f"`launch cancel {exp.name}` saves results.csv before it deletes",
                    )
        rows = _expanded(spec, rows, meta)
        return spec, results.rank(rows, minimize=spec.objective.type == "minimize")

    def links(self, exp: state.Experiment, rows: list[Trial]) -> tuple[list[Trial], str | None]:
        from launch import config

        ui_base = config.load_settings().mlflow_url
        uri = exp.meta().get("mlflow_url") or ui_base
        if not uri or not rows:
            return rows, None
        return with_mlflow_links(exp.name, rows, uri=uri, ui_base=ui_base)

    def status(self, exp: state.Experiment) -> StatusReport:
        from launch import katib_status, results, submit

        cluster, meta = self._cluster(exp)
        spec = LaunchSpec.model_validate(meta["spec"])
        with cluster:
            obj = cluster.get("Experiment", meta["namespace"], exp.name)
            rows = submit.trial_rows(
                cluster, spec=spec, namespace=meta["namespace"], name=exp.name,
                kueue=bool(meta.get("queue")),
            )  # fmt: skip
            pending = submit.pending_reasons(
                cluster, namespace=meta["namespace"], name=exp.name,
                states={r.name: r.status for r in rows}, kueue=bool(meta.get("queue")),
            )  # fmt: skip
        status, reason = katib_status.experiment_status(obj)
        rows = results.rank(_expanded(spec, rows, meta), minimize=spec.objective.type == "minimize")
        counts = count_statuses(rows)
        best = next((r for r in rows if r.objective is not None), None)
        doc = {
            "name": exp.name, "backend": "katib", "namespace": meta["namespace"], "status": status,
            "reason": reason, "trials": counts, "katibUrl": meta.get("katib_url"),
            "best": best_doc(best), "pending": pending, **usage_doc(rows),
        }  # fmt: skip
        footer = usage_lines(rows)
        footer += [f"Katib: {meta['katib_url']}"] if meta.get("katib_url") else []
        return StatusReport(
            name=exp.name, status=status, reason=reason, counts=counts, best=best,
            objective=spec.objective.objectiveMetricName, title=f"{meta['namespace']}/{exp.name}",
            pending=pending, numbers={r.name: r.number for r in rows}, footer=footer, doc=doc,
        )  # fmt: skip

    def problems(self, exp: state.Experiment) -> str | None:
        return None  # a cluster experiment's record is one file, written once

    def logs(
        self,
        exp: state.Experiment,
        trial: int | None,
        *,
        follow: bool,
        out: IO[bytes],
        say: Callable[[str], None],
        rank: int | None = None,
    ) -> None:
        from launch import diagnosis, names, submit

        cluster, meta = self._cluster(exp)
        spec = LaunchSpec.model_validate(meta["spec"])
        ns = meta["namespace"]
        with cluster:
            rows = submit.trial_rows(cluster, spec=spec, namespace=ns, name=exp.name)
            if not rows:
                raise UsageError(
                    f"{exp.name} has no trials yet",
                    hint=f"follow it with `launch watch {exp.name}`",
                )
            row = rows[-1] if trial is None else next((r for r in rows if r.number == trial), None)
            if row is None:
                raise UsageError(
                    f"{exp.name} has no trial {trial}", hint=f"trials are numbered 1 to {len(rows)}"
                )
            pods = cluster.list("Pod", ns, label_selector=f"{names.TRIAL_LABEL}={row.name}")
            if not pods:
                raise UsageError(
                    f"trial {row.number} ({row.name}) has no pod (not started yet, or deleted)",
                    hint=f"see why: launch status {exp.name}",
                )
            pods, container, node = _node_pods(pods, rank, row.number, row.name)
            # A restarted trial has had several pods: show the current one.
            current = diagnosis.live_pod(pods) or pods[-1]
            pod = current["metadata"]["name"]
            say(f"== {row.name} ({row.status}){node} pod {ns}/{pod}")
            if follow:
                for line in cluster.stream_pod_logs(ns, pod, container=container):
                    out.write((line if line.endswith("\n") else line + "\n").encode())
                    out.flush()
            else:
                out.write(cluster.pod_logs(ns, pod, container=container).encode())

    def cancel(self, exp: state.Experiment) -> str:
        """Save the results first (deleting an Experiment deletes its metrics), then delete it."""
        from launch import private, results, submit

        spec, rows = self.trials(exp)
        # Private, as all local state is (0600): results can name what a user would not share.
        private.write_atomic(exp.path / "results.json", (results.to_json(rows) + "\n").encode())
        csv = results.to_csv(rows, spec.objective.objectiveMetricName)
        private.write_atomic(exp.path / "results.csv", csv.encode())
        cluster, meta = self._cluster(exp)
        with cluster:
            submit.delete_experiment(cluster, namespace=meta["namespace"], name=exp.name)
        state.write_json_atomic(exp.meta_path, {**meta, "deleted": True})
        return (
            f"deleted {meta['namespace']}/{exp.name}; {len(rows)} trials saved to "
            f"{exp.path / 'results.csv'} (launch results {exp.name} still works)"
        )

    def rerun(self, exp: state.Experiment, row: Trial) -> Rerun:
        from launch import contract

        meta = exp.meta()
        spec = LaunchSpec.model_validate(meta["spec"])
        image = str(meta.get("image") or "")
        command = contract.rerun_command(
            row, command=meta.get("command", []), fixed=spec.fixed, image=image,
            commit=meta.get("commit"), subdir=meta.get("subdir", ""), gpus=int(meta.get("gpus") or 0),
        )  # fmt: skip
        repo = image.split("/", 1)[-1]
        comment = (
            f"# trial {row.number} ({row.name}) of commit {str(meta.get('commit'))[:12]}; the image "
            "is in the cluster's registry: from a laptop, `kubectl -n launch-system port-forward "
            f"svc/registry 5000:5000` and use 127.0.0.1:5000/{repo}"
        )
        return Rerun(command, comment)


def _node_pods(
    pods: list[Any], rank: int | None, number: int, trial: str
) -> tuple[list[Any], str, str]:
    """(the pods of one node, its container, " rank K" or "") of a trial's pods: a multi-node
    (TrainJob) trial's pods carry the Job completion index as their rank, and run `node`."""
    from launch import katib, trainjob

    ranks = {p["metadata"].get("labels", {}).get(trainjob.COMPLETION_INDEX_LABEL) for p in pods} - {
        None
    }
    if not ranks:
        if rank:
            raise UsageError(
                f"--rank {rank}: trial {number} ({trial}) runs on one node",
                hint="leave out --rank, or pick a multi-node (--nodes) trial",
            )
        return pods, katib.PRIMARY_CONTAINER, ""
    wanted = str(rank or 0)
    mine = [
        p for p in pods
        if p["metadata"].get("labels", {}).get(trainjob.COMPLETION_INDEX_LABEL) == wanted
    ]  # fmt: skip
    if not mine:
        known = ", ".join(sorted(ranks, key=int))
        raise UsageError(
            f"--rank {wanted}: trial {number} ({trial}) has no pod of that rank",
            hint=f"its pods are ranks {known}",
        )
    return mine, trainjob.NODE_CONTAINER, f" rank {wanted}"
