"""The podFailurePolicy of trial and build Jobs (issue #22: preemption, eviction and node loss are
not failures), checked against the rules of the parts that judge it, written out here:

- Kubernetes' admission (`validate_job_spec`): kubernetes/kubernetes
  pkg/apis/batch/validation/validation.go, `validateJobSpec` (restartPolicy Never when a
  podFailurePolicy is set), `validatePodFailurePolicy` (at most 20 rules; containerName one of
  the template's containers or initContainers), `validatePodFailurePolicyRule` (a known action,
  FailIndex only with backoffLimitPerIndex, exactly one of onExitCodes and onPodConditions),
  `validatePodFailurePolicyRuleOnExitCodes` (In/NotIn, 1..255 values, ordered, unique, no 0 for
  In), `validatePodFailurePolicyRuleOnPodConditions` (at most 20 patterns, a qualified type,
  status True/False/Unknown: an empty one is defaulted to True first, pkg/apis/batch/v1/
  defaults.go), `validatePodReplacementPolicy` (only Failed with a podFailurePolicy).
- Katib v0.19's experiment webhook (kubeflow/katib pkg/webhook/v1beta1/experiment/validator/
  validator.go `validateTrialJob` + `validatePatchJob`): the trial template is converted into a
  Go `batchv1.Job` and marshalled back; any JSON patch operation other than `remove` from the
  result to the template (a field the type does not know, a value it would change) is refused.
  podFailurePolicy is a batch/v1 field since Kubernetes 1.25 (Katib v0.19 builds with k8s.io/api
  v0.31), so it passes; emulated below with the `kubernetes` client's V1Job model.
- What the Job controller does with it (`match`): kubernetes/kubernetes
  pkg/controller/job/pod_failure_policy.go `matchPodFailurePolicy`: rules in order, first match
  wins; exit codes are read from terminated containers and init containers, 0 never matches; no
  match counts against backoffLimit.

tests/kube_emulator.py (another module's) does not apply these rules; this file does, purely.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import kubernetes
import kubernetes_validate
import pytest

from launch import kaniko, katib, podspec
from tests.test_kaniko import CONTEXT_DIGEST, REGISTRY, build_job
from tests.test_katib import K8S_VERSION, render, trial_job

MAX_RULES = 20  # maxPodFailurePolicyRules
MAX_EXIT_CODE_VALUES = 255  # maxPodFailurePolicyOnExitCodesValues
MAX_CONDITION_PATTERNS = 20  # maxPodFailurePolicyOnPodConditionsPatterns
ACTIONS = {"Count", "FailIndex", "FailJob", "Ignore"}  # supportedPodFailurePolicyActions
OPERATORS = {"In", "NotIn"}  # supportedPodFailurePolicyOnExitCodesOperator
CONDITION_STATUSES = {"True", "False", "Unknown"}  # supportedPodFailurePolicyOnPodConditionsStatus
# apimachinery IsQualifiedName: [prefix/]name, name <= 63 characters.
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def _is_qualified_name(text: str) -> bool:
    prefix, _, name = text.rpartition("/")
    prefix_ok = not prefix or bool(
        re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", prefix)
    )
    return prefix_ok and len(name) <= 63 and bool(_QUALIFIED_NAME_RE.match(name))


def validate_job_spec(spec: Mapping[str, Any]) -> list[str]:
    """The errors Kubernetes' Job validation gives for `spec`'s podFailurePolicy (after the v1
    defaults), as `path: why`; [] when admitted. Only the podFailurePolicy rules and those they
    depend on (validation.go, see the module docstring)."""
    errors: list[str] = []
    pod = spec["template"]["spec"]
    if spec.get("backoffLimit", 6) < 0:
        errors.append("backoffLimit: must be greater than or equal to 0")
    policy = spec.get("podFailurePolicy")
    if policy is None:
        return errors
    if pod.get("restartPolicy") != "Never":
        errors.append(
            'template.spec.restartPolicy: only "Never" is supported when podFailurePolicy is '
            "specified"
        )
    if spec.get("podReplacementPolicy", "Failed") != "Failed":
        errors.append("podReplacementPolicy: only Failed with a podFailurePolicy")
    rules = policy.get("rules") or []
    if len(rules) > MAX_RULES:
        errors.append(f"podFailurePolicy.rules: must have at most {MAX_RULES} items")
    names = {c["name"] for c in pod.get("containers", [])} | {
        c["name"] for c in pod.get("initContainers", [])
    }
    for i, rule in enumerate(rules):
        path = f"podFailurePolicy.rules[{i}]"
        action = rule.get("action", "")
        if not action:
            errors.append(f"{path}.action: Required value")
        elif action == "FailIndex" and spec.get("backoffLimitPerIndex") is None:
            errors.append(f"{path}.action: requires the backoffLimitPerIndex to be set")
        elif action not in ACTIONS:
            errors.append(f"{path}.action: Unsupported value {action!r}")
        on_exit = rule.get("onExitCodes")
        on_conditions = rule.get("onPodConditions") or []
        if on_exit is not None and on_conditions:
            errors.append(
                f"{path}: specifying both OnExitCodes and OnPodConditions is not supported"
            )
        if on_exit is None and not on_conditions:
            errors.append(f"{path}: specifying one of OnExitCodes and OnPodConditions is required")
        if on_exit is not None:
            errors += _validate_on_exit_codes(on_exit, f"{path}.onExitCodes", names)
        if len(on_conditions) > MAX_CONDITION_PATTERNS:
            errors.append(f"{path}.onPodConditions: must have at most {MAX_CONDITION_PATTERNS}")
        for j, pattern in enumerate(on_conditions):
            where = f"{path}.onPodConditions[{j}]"
            if not _is_qualified_name(pattern.get("type", "")):
                errors.append(f"{where}.type: not a qualified name")
            status = pattern.get("status") or "True"  # SetDefaults_Job
            if status not in CONDITION_STATUSES:
                errors.append(f"{where}.status: Unsupported value {status!r}")
    return errors


def _validate_on_exit_codes(on_exit: Mapping[str, Any], path: str, names: set[str]) -> list[str]:
    errors: list[str] = []
    operator = on_exit.get("operator", "")
    if operator not in OPERATORS:
        errors.append(f"{path}.operator: Unsupported value {operator!r}")
    name = on_exit.get("containerName")
    if name is not None and name not in names:
        errors.append(
            f"{path}.containerName: {name!r} must be one of the container or initContainer "
            "names in the pod template"
        )
    values = on_exit.get("values") or []
    if not values:
        errors.append(f"{path}.values: at least one value is required")
    elif len(values) > MAX_EXIT_CODE_VALUES:
        errors.append(f"{path}.values: must have at most {MAX_EXIT_CODE_VALUES} items")
    if operator == "In" and 0 in values:
        errors.append(f"{path}.values: must not be 0 for the In operator")
    if len(set(values)) != len(values):
        errors.append(f"{path}.values: Duplicate value")
    if values != sorted(values):
        errors.append(f"{path}.values: must be ordered")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        errors.append(f"{path}.values: must be integers")
    return errors


def katib_webhook_conversion_problems(job: Mapping[str, Any]) -> list[str]:
    """What Katib's `validatePatchJob` would refuse: paths of the template that do not survive a
    round trip through the batch/v1 Job type (added or changed; a removal is allowed)."""
    client = kubernetes.client.ApiClient()
    deserialize = client._ApiClient__deserialize  # type: ignore[attr-defined]
    typed = deserialize(copy.deepcopy(dict(job)), "V1Job")
    back: Any = client.sanitize_for_serialization(typed)  # type: ignore[no-untyped-call]
    problems: list[str] = []

    def walk(before: Any, after: Any, path: str) -> None:
        if isinstance(before, dict):
            for key, value in before.items():
                if not isinstance(after, dict) or key not in after:
                    problems.append(f"{path}/{key}")
                else:
                    walk(value, after[key], f"{path}/{key}")
        elif isinstance(before, list):
            if not isinstance(after, list) or len(after) != len(before):
                problems.append(path)
            else:
                for i, (b, a) in enumerate(zip(before, after, strict=True)):
                    walk(b, a, f"{path}/{i}")
        elif before != after or type(before) is not type(after):
            problems.append(path)

    walk(dict(job), back, "")
    return problems


def match(policy: Mapping[str, Any], pod_status: Mapping[str, Any]) -> str:
    """The Job controller's verdict on a failed pod: `Ignore`, `FailJob`, `Count`
    (matchPodFailurePolicy; no match is Count)."""
    for rule in policy["rules"]:
        on_exit = rule.get("onExitCodes")
        if on_exit is not None:
            statuses = [
                *pod_status.get("containerStatuses", []),
                *pod_status.get("initContainerStatuses", []),
            ]
            for status in statuses:
                terminated = status.get("state", {}).get("terminated")
                if terminated is None or terminated["exitCode"] == 0:
                    continue
                if on_exit.get("containerName") not in (None, status["name"]):
                    continue
                inside = terminated["exitCode"] in on_exit["values"]
                if inside == (on_exit["operator"] == "In"):
                    return str(rule["action"])
        else:
            for condition in pod_status.get("conditions", []):
                for pattern in rule["onPodConditions"]:
                    if (condition["type"], condition["status"]) == (
                        pattern["type"],
                        pattern.get("status", "True"),
                    ):
                        return str(rule["action"])
    return "Count"


def trial_jobs() -> dict[str, dict[str, Any]]:
    return {
        "random": trial_job(render("random")),
        "pod_options": trial_job(render("pod_options")),
        "no retries": trial_job(render("random", retries=0)),
        "most retries": trial_job(render("random", retries=podspec.MAX_RETRIES, gpus=8)),
        "timeout": trial_job(render("gpus8", trial_timeout_s=3600)),
    }


def build_jobs() -> dict[str, dict[str, Any]]:
    url = kaniko.context_blob_url(
        registry=REGISTRY, repo_name="Proj", digest=CONTEXT_DIGEST, insecure=True
    )
    return {"git": build_job(), "blob": build_job(context=None, context_blob_url=url)}


def all_jobs() -> dict[str, dict[str, Any]]:
    return {
        **{f"trial {k}": v for k, v in trial_jobs().items()},
        **{f"build {k}": v for k, v in build_jobs().items()},
    }


# --------------------------------------------------------------------------- admission


@pytest.mark.parametrize("case", sorted(all_jobs()))
def test_rendered_jobs_pass_kubernetes_job_validation(case: str) -> None:
    job = all_jobs()[case]
    assert validate_job_spec(job["spec"]) == []
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)  # the schema: names and types


@pytest.mark.parametrize("case", sorted(trial_jobs()))
def test_trial_template_survives_katibs_batch_job_conversion(case: str) -> None:
    job = trial_jobs()[case]
    assert job["spec"]["podFailurePolicy"]
    assert katib_webhook_conversion_problems(job) == []


def test_the_conversion_check_sees_unknown_fields() -> None:
    job = trial_jobs()["random"]
    job["spec"]["podFailurePolicy"]["rules"][0]["onPodCondition"] = []  # a typo
    job["spec"]["retries"] = 3
    assert katib_webhook_conversion_problems(job) == [
        "/spec/podFailurePolicy/rules/0/onPodCondition",
        "/spec/retries",
    ]


def _broken(change: str) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(trial_jobs()["random"]["spec"])
    rules = spec["podFailurePolicy"]["rules"]
    if change == "restartPolicy":
        spec["template"]["spec"]["restartPolicy"] = "OnFailure"
    elif change == "containerName":
        rules[1]["onExitCodes"]["containerName"] = "metrics-logger-and-collector"  # injected later
    elif change == "In 0":
        rules[1]["onExitCodes"].update(operator="In", values=[0, 1])
    elif change == "unordered":
        rules[1]["onExitCodes"]["values"] = [2, 1]
    elif change == "both":
        rules[0]["onExitCodes"] = rules[1]["onExitCodes"]
    elif change == "neither":
        del rules[1]["onExitCodes"]
    elif change == "too many rules":
        rules *= 11
    elif change == "status":
        rules[0]["onPodConditions"][0]["status"] = "true"
    elif change == "replacement":
        spec["podReplacementPolicy"] = "TerminatingOrFailed"
    elif change == "FailIndex":
        rules[1]["action"] = "FailIndex"
    return spec


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("restartPolicy", 'only "Never" is supported'),
        ("containerName", "must be one of the container or initContainer names"),
        ("In 0", "must not be 0 for the In operator"),
        ("unordered", "must be ordered"),
        ("both", "specifying both OnExitCodes and OnPodConditions"),
        ("neither", "specifying one of OnExitCodes and OnPodConditions is required"),
        ("too many rules", "at most 20"),
        ("status", "Unsupported value 'true'"),
        ("replacement", "only Failed"),
        ("FailIndex", "requires the backoffLimitPerIndex"),
    ],
)
def test_the_validator_refuses_what_kubernetes_refuses(change: str, says: str) -> None:
    errors = validate_job_spec(_broken(change))
    assert any(says in error for error in errors), errors


# --------------------------------------------------------------------------- semantics


def _terminated(name: str, code: int) -> dict[str, Any]:
    return {"name": name, "state": {"terminated": {"exitCode": code}}}


DISRUPTED = {"type": "DisruptionTarget", "status": "True"}


@pytest.mark.parametrize(
    ("pod_status", "verdict"),
    [
        # preempted by the scheduler or Kueue's priority, evicted, drained: SIGTERM, exit 143
        (
            {"conditions": [DISRUPTED], "containerStatuses": [_terminated("training", 143)]},
            "Ignore",
        ),
        # the node was lost: pod GC / taint manager mark it, no exit code at all
        ({"conditions": [DISRUPTED], "containerStatuses": []}, "Ignore"),
        # the user's program failed (or was OOM-killed: 137): the trial fails at once
        ({"containerStatuses": [_terminated("training", 1)]}, "FailJob"),
        ({"containerStatuses": [_terminated("training", 137)]}, "FailJob"),
        # the injected metrics collector failed after a clean run: an infrastructure failure
        (
            {
                "containerStatuses": [
                    _terminated("training", 0),
                    _terminated("metrics-logger-and-collector", 255),
                ]
            },
            "Count",
        ),
        # the kubelet refused the pod (UnexpectedAdmissionError, a lost GPU): no container ran
        ({"conditions": [{"type": "Ready", "status": "False"}]}, "Count"),
        # a DisruptionTarget condition that is False is not a disruption
        (
            {
                "conditions": [{"type": "DisruptionTarget", "status": "False"}],
                "containerStatuses": [_terminated("training", 2)],
            },
            "FailJob",
        ),
    ],
)
def test_what_counts_for_a_trial(pod_status: dict[str, Any], verdict: str) -> None:
    assert match(katib.trial_failure_policy(), pod_status) == verdict


@pytest.mark.parametrize(
    ("pod_status", "verdict"),
    [
        ({"conditions": [DISRUPTED], "containerStatuses": [_terminated("kaniko", 143)]}, "Ignore"),
        ({"containerStatuses": [_terminated("kaniko", 1)]}, "FailJob"),
        ({"initContainerStatuses": [_terminated("fetch-context", 1)]}, "FailJob"),
        ({"conditions": [{"type": "Ready", "status": "False"}]}, "Count"),
    ],
)
def test_what_counts_for_a_build(pod_status: dict[str, Any], verdict: str) -> None:
    policy = build_jobs()["blob"]["spec"]["podFailurePolicy"]
    assert match(policy, pod_status) == verdict
    if "initContainerStatuses" not in pod_status:
        assert match(build_jobs()["git"]["spec"]["podFailurePolicy"], pod_status) == verdict


def test_rule_order_puts_disruptions_first() -> None:
    """A preempted trial's container exits non-zero (SIGTERM): were the exit-code rule first, a
    preemption would fail the trial."""
    for job in all_jobs().values():
        rules = job["spec"]["podFailurePolicy"]["rules"]
        assert rules[0] == {"action": "Ignore", "onPodConditions": [DISRUPTED]}
        assert all(rule["action"] == "FailJob" for rule in rules[1:])
    spec = trial_jobs()["random"]["spec"]
    main = spec["template"]["spec"]["containers"][0]["name"]
    assert main == katib.PRIMARY_CONTAINER
    assert spec["podFailurePolicy"]["rules"][1]["onExitCodes"]["containerName"] == main
