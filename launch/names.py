"""Names, labels and URLs: experiment names Katib admits, the labels and annotations launch puts
on what it creates, the label keys Katib and Kueue read, and the Katib UI's experiment page.

Pure: strings in, strings out (standard library and `launch.errors` only).
"""

from __future__ import annotations

import re

from launch.errors import UsageError

# pkg/webhook/v1beta1/experiment/validator/validator.go: `len(instance.Name) > 40` is refused
# (suggestion Deployment/Service names derive from it, kubeflow/katib#2454).
MAX_NAME_LENGTH = 40
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE_MAX = 63

# Katib's pod webhook injects the metrics collector only in namespaces with this label.
NAMESPACE_LABEL = ("katib.kubeflow.org/metrics-collector-injection", "enabled")
# Kueue (v0.19 pkg/controller/constants): labels on the trial Job put it in a queue.
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
# Katib puts these on Trials (experiment) and on trial pods (both): pkg/apis/controller/consts.
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
TRIAL_LABEL = "katib.kubeflow.org/trial"

LABEL_USER = "launch/user"
LABEL_BRANCH = "launch/branch"
LABEL_COMMIT = "launch/commit"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
ANNOTATION_USER = "launch/user"
ANNOTATION_BRANCH = "launch/branch"
ANNOTATION_COMMIT = "launch/commit"


def _slug(text: str) -> str:
    """Lowercase letters, digits and single `-`, no `-` at either end."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", text.lower())).strip("-")


def experiment_name(*, stem: str, commit: str, suffix: str) -> str:
    """`<slug of stem>-<sha7>-<suffix>`: a DNS-1035 label of at most 40 characters.

    The stem (repo or branch name) is cut to fit; a stem that does not start with a letter gets
    an `x-` prefix. `commit` may be empty (no git), then the sha part is left out.
    """
    tail = [part for part in (_slug(commit)[:7], _slug(suffix)) if part]
    stem_slug = _slug(stem)
    if not stem_slug or not stem_slug[0].isalpha():
        stem_slug = f"x-{stem_slug}".rstrip("-")
    room = MAX_NAME_LENGTH - sum(len(part) + 1 for part in tail)
    if room < 1:
        raise ValueError(f"suffix {suffix!r} leaves no room for a name")
    stem_slug = stem_slug[:room].rstrip("-")
    name = "-".join([stem_slug, *tail])
    assert _NAME_RE.match(name) and len(name) <= MAX_NAME_LENGTH, name
    return name


def validate_experiment_name(name: str) -> None:
    """Refuse a user-given `--name` that Katib's webhook would refuse (validator.go)."""
    if _NAME_RE.match(name) and len(name) <= MAX_NAME_LENGTH:
        return
    fixed = _slug(name)
    if not fixed or not fixed[0].isalpha():
        fixed = f"x-{fixed}".rstrip("-")
    fixed = fixed[:MAX_NAME_LENGTH].rstrip("-")
    why = (
        f"is {len(name)} characters long (Katib allows at most {MAX_NAME_LENGTH})"
        if _NAME_RE.match(name)
        else "is not a DNS-1035 label (lowercase letters, digits and `-`, starting with a letter)"
    )
    raise UsageError(
        f"--name: experiment name {name!r} {why}",
        hint=f"use e.g. `--name {fixed}`, or leave out --name to get a generated one",
    )


def label_value(text: str) -> str:
    """A Kubernetes label value: `[A-Za-z0-9._-]`, at most 63, alphanumeric at both ends."""
    value = re.sub(r"[^A-Za-z0-9._-]", "-", text)[:LABEL_VALUE_MAX]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def labels(*, user: str, branch: str | None, commit: str) -> dict[str, str]:
    """user, branch and commit as label values (sanitised: `feature/x` -> `feature-x`).

    Katib copies the Experiment's labels to its Trials and the pod webhook copies Trial labels to
    the pods (pkg/controller.v1beta1/util/labels.go TrialLabels, pkg/webhook/v1beta1/pod/utils.go
    mutatePodMetadata), so `kubectl get pods -l launch/user=ada` finds a user's trials.
    """
    out = {LABEL_MANAGED_BY: "launch"}
    for key, text in ((LABEL_USER, user), (LABEL_BRANCH, branch), (LABEL_COMMIT, commit)):
        value = label_value(text or "")
        if value:
            out[key] = value
    return out


def metadata_annotations(*, user: str, branch: str | None, commit: str) -> dict[str, str]:
    """The full, unsanitised values behind `labels` (label values are cut and rewritten)."""
    out = {ANNOTATION_USER: user, ANNOTATION_COMMIT: commit}
    if branch:
        out[ANNOTATION_BRANCH] = branch
    return out


def experiment_url(katib_base_url: str, namespace: str, name: str) -> str:
    """The Experiment's page in Katib's UI, trials tab (trial deep links break on reload: #2474)."""
    base = katib_base_url.rstrip("/")
    if not base.endswith("/katib"):
        base += "/katib"
    return f"{base}/experiment/{namespace}/{name}?tab=trials"
