"""launch.katib: trial contract, names, labels, golden Experiments and every Katib fact on them.

Goldens: tests/golden/<case>.yaml rendered from tests/specs/<case>.yaml; regenerate on purpose with
`make goldens` (LAUNCH_UPDATE_GOLDENS=1), never in CI.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from launch import katib, spec
from launch.errors import UsageError
from launch.spec import LaunchSpec, Parameter, ParamValue

HERE = Path(__file__).parent
SPECS = HERE / "specs"
GOLDEN = HERE / "golden"
UPDATE = os.environ.get("LAUNCH_UPDATE_GOLDENS") == "1"
K8S_VERSION = "1.33.0"  # a version kubernetes-validate ships schemas for

COMMIT = "0123456789abcdef0123456789abcdef01234567"
BRANCH = "feature/seed-sweeps"
USER = "ada"
NAMESPACE = "research"
IMAGE = "registry.local:5000/proj@sha256:" + "3f" * 32
MLFLOW = "http://mlflow.mlflow.svc.cluster.local:5000"
NAME = katib.experiment_name(stem="proj", commit=COMMIT, suffix="a1b2")
COMMAND = ["python", "train.py"]

# Render options per golden case (the spec file is tests/specs/<case>.yaml).
CASES: dict[str, dict[str, Any]] = {
    "random": {"command": ["python", "-u", "train.py", "--note=costs $5 (it's fine)"]},
    "grid_step": {},
    "categorical": {},
    "dotted": {},
    "bayesianoptimization": {},
    "cmaes": {},
    "tpe": {},
    "multivariate_tpe": {},
    "sobol": {},
    "seeds": {},
    "grid_seeds": {},
    "gpus8": {
        "gpus": 8,
        "cpus": 32,
        "memory": "256Gi",
        "extra_env": {"NCCL_DEBUG": "INFO"},
        "mlflow_experiment_name": "llm-sweeps",
    },
    "experiment_doc": {"gpus": 0},
}


def load_spec(case: str) -> LaunchSpec:
    path = SPECS / f"{case}.yaml"
    return spec.parse(path.read_text(), filename=str(path))


def render(case: str, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "name": NAME,
        "namespace": NAMESPACE,
        "image": IMAGE,
        "command": COMMAND,
        "gpus": 1,
        "commit": COMMIT,
        "branch": BRANCH,
        "user": USER,
        "mlflow_tracking_uri": MLFLOW,
    }
    options.update(CASES.get(case, {}))
    options.update(overrides)
    return katib.render_experiment(spec=load_spec(case), **options)


def trial_job(doc: dict[str, Any]) -> dict[str, Any]:
    job: dict[str, Any] = doc["spec"]["trialTemplate"]["trialSpec"]
    return job


def container(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = trial_job(doc)["spec"]["template"]["spec"]["containers"][0]
    return found


# --------------------------------------------------------------------------- goldens


def test_every_spec_has_a_case() -> None:
    assert sorted(p.stem for p in SPECS.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    text = katib.to_yaml(render(case))
    path = GOLDEN / f"{case}.yaml"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"{path} missing: run `make goldens`"
    assert text == path.read_text(), f"{path} differs: review, then `make goldens`"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_round_trips(case: str) -> None:
    """The YAML text means the dict (numbers-as-strings stay strings for any reader)."""
    path = GOLDEN / f"{case}.yaml"
    assert yaml.safe_load(path.read_text()) == render(case)


# --------------------------------------------------------------------------- Katib facts

ANY = object()  # a free-form map (labels, annotations) or a Kubernetes object validated elsewhere

# Every key Katib v0.19 knows (pkg/apis/controller/experiments/v1beta1/experiment_types.go,
# pkg/apis/controller/common/v1beta1/common_types.go); unknown ones are dropped silently.
KNOWN_KEYS: dict[str, Any] = {
    "apiVersion": None,
    "kind": None,
    "metadata": {"name": None, "namespace": None, "labels": ANY, "annotations": ANY},
    "spec": {
        "parameters": [
            {
                "name": None,
                "parameterType": None,
                "feasibleSpace": {
                    "max": None,
                    "min": None,
                    "list": [None],
                    "step": None,
                    "distribution": None,
                },
            }
        ],
        "objective": {
            "type": None,
            "goal": None,
            "objectiveMetricName": None,
            "additionalMetricNames": [None],
            "metricStrategies": [{"name": None, "value": None}],
        },
        "algorithm": {"algorithmName": None, "algorithmSettings": [{"name": None, "value": None}]},
        "earlyStopping": ANY,
        "trialTemplate": {
            "retain": None,
            "trialSpec": ANY,
            "configMap": ANY,
            "trialParameters": [{"name": None, "description": None, "reference": None}],
            "primaryPodLabels": ANY,
            "primaryContainerName": None,
            "successCondition": None,
            "failureCondition": None,
        },
        "parallelTrialCount": None,
        "maxTrialCount": None,
        "maxFailedTrialCount": None,
        "metricsCollectorSpec": {
            "source": {
                "httpGet": ANY,
                "fileSystemPath": {"path": None, "kind": None, "format": None},
                "filter": ANY,
            },
            "collector": {"kind": None, "customCollector": ANY},
        },
        "nasConfig": ANY,
        "resumePolicy": None,
    },
}

CONTRACT_ENV = {
    "KATIB_EXPERIMENT_NAME",
    "KATIB_NAMESPACE",
    "LAUNCH_GIT_COMMIT",
    "LAUNCH_IMAGE",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
}
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
PLACEHOLDER_RE = re.compile(
    r"\$\{trialParameters\.(.+?)\}"
)  # consts.TrialTemplateParamReplaceFormatRegex


def unknown_keys(value: Any, schema: Any, path: str = "") -> list[str]:
    if schema is ANY or schema is None:
        return []
    if isinstance(schema, list):
        assert isinstance(value, list), path
        return [
            k for i, item in enumerate(value) for k in unknown_keys(item, schema[0], f"{path}[{i}]")
        ]
    assert isinstance(value, dict), path
    found = [f"{path}.{key}" for key in value if key not in schema]
    for key, item in value.items():
        if key in schema:
            found += unknown_keys(item, schema[key], f"{path}.{key}")
    return found


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def assert_katib_facts(doc: dict[str, Any], gpus: int) -> None:
    """Every rule of DESIGN "Katib facts" that can be checked on the rendered object."""
    assert doc["apiVersion"] == "kubeflow.org/v1beta1" and doc["kind"] == "Experiment"
    meta = doc["metadata"]
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", meta["name"]) and len(meta["name"]) <= 40
    assert meta["namespace"]
    for key, value in meta["labels"].items():
        assert LABEL_VALUE_RE.match(value) and len(value) <= 63, (key, value)
    assert {"launch/user", "launch/branch", "launch/commit"} <= set(meta["labels"])
    assert unknown_keys(doc, KNOWN_KEYS) == []

    spec_ = doc["spec"]
    # Counts and goal are numbers; parallel <= max; max and maxFailed always set.
    for key in ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount"):
        assert isinstance(spec_[key], int) and not isinstance(spec_[key], bool), key
    assert 1 <= spec_["parallelTrialCount"] <= spec_["maxTrialCount"]
    assert 0 <= spec_["maxFailedTrialCount"] <= spec_["maxTrialCount"]
    objective = spec_["objective"]
    assert objective["type"] in ("minimize", "maximize")
    if "goal" in objective:
        assert is_number(objective["goal"])
    metrics = [objective["objectiveMetricName"], *objective.get("additionalMetricNames", [])]
    strategies = {s["name"]: s["value"] for s in objective["metricStrategies"]}
    assert sorted(strategies) == sorted(metrics)
    assert set(strategies.values()) <= {"min", "max", "latest"}

    # Settings and feasibleSpace values are strings; int bounds are integer strings.
    for setting in spec_["algorithm"].get("algorithmSettings", []):
        assert isinstance(setting["name"], str) and isinstance(setting["value"], str)
    params = spec_["parameters"]
    assert params
    for param in params:
        space = param["feasibleSpace"]
        for key in ("min", "max", "step"):
            if key in space:
                assert isinstance(space[key], str), (param["name"], key)
                float(space[key])
                if param["parameterType"] == "int":
                    assert re.fullmatch(r"[+-]?\d+", space[key]), (param["name"], key)
        for item in space.get("list", []):
            assert isinstance(item, str)
        if param["parameterType"] in ("int", "double"):
            assert "min" in space and "max" in space and "list" not in space
        else:
            assert space.get("list") and not {"min", "max", "step"} & set(space)

    algorithm = spec_["algorithm"]["algorithmName"]
    models = [Parameter.model_validate(p) for p in params]
    if algorithm == "grid":
        for param in params:
            if param["parameterType"] == "double":
                assert "step" in param["feasibleSpace"]
        assert spec_["maxTrialCount"] <= math.prod(len(spec.grid_values(m)) for m in models)
        assert {s["name"] for s in spec_["algorithm"].get("algorithmSettings", [])} <= {
            "random_state"
        }
    if algorithm == "bayesianoptimization":
        for param in params:
            if param["parameterType"] == "double":
                assert float(param["feasibleSpace"]["min"]) > 0
    if algorithm == "cmaes":
        assert sum(p["parameterType"] in ("int", "double") for p in params) >= 2
    if algorithm in ("grid", "multivariate-tpe"):
        for param in params:
            assert param["feasibleSpace"].get("distribution", "uniform") in (
                "uniform",
                "logUniform",
            )

    # Collector: TensorFlowEvent on the Directory Katib watches, no format (validator.go).
    collector = spec_["metricsCollectorSpec"]
    assert collector["collector"] == {"kind": "TensorFlowEvent"}
    assert collector["source"] == {
        "fileSystemPath": {"path": "/var/log/katib/tfevent/", "kind": "Directory"}
    }
    assert "earlyStopping" not in spec_

    # Trial template: one trialParameter per parameter, references = parameter names.
    template = spec_["trialTemplate"]
    assert template["retain"] is True
    assert (
        template["successCondition"] == 'status.conditions.#(type=="Complete")#|#(status=="True")#'
    )
    assert template["failureCondition"] == 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    trial_params = template["trialParameters"]
    assert sorted(tp["reference"] for tp in trial_params) == sorted(p["name"] for p in params)
    names = [tp["name"] for tp in trial_params]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9_]+", name), name
    # The webhook's own check: each name appears, and nothing else is left after substitution.
    text = json.dumps(template["trialSpec"])
    for name in names:
        assert "${trialParameters." + name + "}" in text
        text = text.replace("${trialParameters." + name + "}", "test-value")
    assert PLACEHOLDER_RE.findall(text) == []

    # Trial Job.
    job = template["trialSpec"]
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert "name" not in job.get("metadata", {}) and "namespace" not in job.get("metadata", {})
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]
    assert pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert pod["metadata"]["labels"] == meta["labels"]
    assert pod["spec"]["restartPolicy"] == "Never"
    containers = pod["spec"]["containers"]
    assert [c["name"] for c in containers] == [template["primaryContainerName"]]
    main = containers[0]
    assert main["command"] == ["sh", "-c"]
    assert len(main["args"]) == 1
    assert main["args"][0].endswith(" --tensorboard_dir=/var/log/katib/tfevent/")
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert set(env) >= CONTRACT_ENV
    assert "KATIB_TRIAL_NAME" not in env  # injected by Katib's pod webhook
    assert env["KATIB_EXPERIMENT_NAME"] == meta["name"]
    assert env["KATIB_NAMESPACE"] == meta["namespace"]
    limits = main.get("resources", {}).get("limits", {})
    if gpus > 0:
        assert limits["nvidia.com/gpu"] == str(gpus)
    else:
        assert "nvidia.com/gpu" not in limits
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_katib_facts(case: str) -> None:
    options = {"gpus": 1, **CASES[case]}
    assert_katib_facts(render(case), gpus=options["gpus"])


def test_dotted_names() -> None:
    doc = render("dotted")
    refs = {tp["reference"]: tp["name"] for tp in doc["spec"]["trialTemplate"]["trialParameters"]}
    assert refs == {"optim.lr": "optim__lr", "model.encoder.layers": "model__encoder__layers"}
    args = container(doc)["args"][0]
    assert "--optim.lr=${trialParameters.optim__lr}" in args
    assert "--model.encoder.layers=${trialParameters.model__encoder__layers}" in args


def test_gpus_cpus_memory_env() -> None:
    main = container(render("gpus8"))
    assert main["resources"] == {
        "requests": {"cpu": "32", "memory": "256Gi"},
        "limits": {"memory": "256Gi", "nvidia.com/gpu": "8"},
    }
    env = {e["name"]: e["value"] for e in main["env"]}
    assert env["NCCL_DEBUG"] == "INFO"
    assert env["MLFLOW_EXPERIMENT_NAME"] == "llm-sweeps"
    assert "resources" not in container(render("random", gpus=0))


def test_pure_seed_sweep_is_a_grid_over_seed() -> None:
    doc = render("seeds")
    assert doc["spec"]["algorithm"]["algorithmName"] == "grid"
    assert [p["name"] for p in doc["spec"]["parameters"]] == ["seed"]
    assert doc["spec"]["maxTrialCount"] == 5
    assert "--lr=0.01 --seed=${trialParameters.seed}" in container(doc)["args"][0]


def test_seed_flag_is_configurable() -> None:
    doc = render("seeds", seed_flag="train.seed")
    assert [p["name"] for p in doc["spec"]["parameters"]] == ["train.seed"]
    assert "--train.seed=${trialParameters.train__seed}" in container(doc)["args"][0]


def test_grid_times_seeds_runs_every_point_once_per_seed() -> None:
    doc = render("grid_seeds")
    assert doc["spec"]["maxTrialCount"] == 2 * 3 * 3
    lines = katib.trial_command_lines(load_spec("grid_seeds"), COMMAND, seed_flag="seed")
    assert len(lines) == 18 and len({tuple(line) for line in lines}) == 18


def test_env_and_labels_escape_and_sanitise() -> None:
    doc = render("random", extra_env={"PROMPT": "$(HOME) costs $5"}, branch="feature/x y")
    env = {e["name"]: e["value"] for e in container(doc)["env"]}
    assert env["PROMPT"] == "$$(HOME) costs $$5"
    assert doc["metadata"]["labels"]["launch/branch"] == "feature-x-y"
    assert doc["metadata"]["annotations"]["launch/branch"] == "feature/x y"


@pytest.mark.parametrize(
    "overrides",
    [
        {"command": ["python", "train.py", "--x=${trialParameters.lr}"]},
        {"extra_env": {"X": "${trialParameters.lr}"}},
    ],
)
def test_user_text_may_not_hold_katib_placeholders(overrides: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="trialParameters"):
        render("random", **overrides)


def test_extra_env_cannot_override_the_contract() -> None:
    with pytest.raises(UsageError) as info:
        render("random", extra_env={"KATIB_TRIAL_NAME": "x"})
    assert info.value.hint


def test_colliding_trial_parameter_names_are_refused() -> None:
    doc = {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "parameters": [
            {"name": "a.b", "parameterType": "int", "feasibleSpace": {"min": 1, "max": 2}},
            {"name": "a__b", "parameterType": "int", "feasibleSpace": {"min": 1, "max": 2}},
        ],
        "maxTrialCount": 2,
    }
    with pytest.raises(UsageError, match="a__b"):
        katib.render_experiment(
            spec=LaunchSpec.model_validate(doc),
            name=NAME,
            namespace=NAMESPACE,
            image=IMAGE,
            command=COMMAND,
            gpus=0,
            commit=COMMIT,
            branch=BRANCH,
            user=USER,
            mlflow_tracking_uri=MLFLOW,
        )


# --------------------------------------------------------------------------- the args string


def kubernetes_expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of command/args (third_party/forked/golang/expansion)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    var = text[i + 2 : end]
                    out.append(env.get(var, f"$({var})"))
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


TRICKY = [
    "plain",
    "a b",
    "it's",
    'say "hi"',
    "$HOME",
    "$(HOME)",
    "$$",
    "${trialParameters_x}",
    "`id`",
    "$(id)",
    "*",
    ";echo pwned",
    "a&&b|c>d",
    "back\\slash",
    "tab\there\nnewline",
    "",
    "--flag=$(VAR)",
    "ünïcode",
]


def test_args_string_gives_the_program_exactly_the_users_argv() -> None:
    """Render, let Katib substitute and Kubernetes expand, then run it with `sh -c`."""
    printer = [sys.executable, "-c", "import sys,json; print(json.dumps(sys.argv[1:]))"]
    spec_ = LaunchSpec.model_validate(
        {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "parameters": [
                {
                    "name": "optim.lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": 0.1, "max": 1},
                },
                {
                    "name": "act",
                    "parameterType": "categorical",
                    "feasibleSpace": {"list": ["a b*", "relu"]},
                },
                {"name": "n", "parameterType": "int", "feasibleSpace": {"min": 1, "max": 3}},
            ],
            "maxTrialCount": 3,
            "fixed": {"note": "costs $5 & $(HOME)", "flag": True, "ratio": 0.5},
        }
    )
    doc = katib.render_experiment(
        spec=spec_,
        name=NAME,
        namespace=NAMESPACE,
        image=IMAGE,
        command=[*printer, *TRICKY],
        gpus=0,
        commit=COMMIT,
        branch=BRANCH,
        user=USER,
        mlflow_tracking_uri=MLFLOW,
    )
    args = container(doc)["args"][0]
    sampled: dict[str, ParamValue] = {"optim.lr": 0.25, "act": "a b*", "n": 2}
    names = {"optim.lr": "optim__lr", "act": "act", "n": "n"}
    # Katib: plain text replacement of the placeholders in the template (manifest/generator.go).
    for param, value in sampled.items():
        args = args.replace("${trialParameters." + names[param] + "}", katib.format_value(value))
    # Kubernetes: $(VAR) expansion with the container's env, `$$` -> `$`.
    args = kubernetes_expand(args, {"HOME": "/EXPANDED", "VAR": "EXPANDED"})
    # Katib's pod webhook appends `&& echo completed > ...` to the joined args (pod/utils.go).
    result = subprocess.run(
        ["sh", "-c", args + " && :"], capture_output=True, text=True, check=True
    )
    expected = katib.trial_argv(
        [*printer, *TRICKY], katib.merge_params(spec_.fixed, sampled), katib.TFEVENT_DIR
    )
    assert json.loads(result.stdout) == expected[3:]


# --------------------------------------------------------------------------- trial contract


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (42, "42"),
        (-3, "-3"),
        (1e-05, "1e-05"),
        (0.1, "0.1"),
        (1.0, "1.0"),
        (2.5e10, "25000000000.0"),
        ("adam", "adam"),
        ("1e-4", "1e-4"),
        ("", ""),
    ],
)
def test_format_value(value: Any, text: str) -> None:
    assert katib.format_value(value) == text


def test_trial_argv() -> None:
    argv = katib.trial_argv(
        ["python", "train.py", "--x"],
        {"optim.lr": 0.001, "layers": 4, "use_amp": True, "act": "relu"},
        "/tmp/tb",
    )
    assert argv == [
        "python",
        "train.py",
        "--x",
        "--optim.lr=0.001",
        "--layers=4",
        "--use_amp=true",
        "--act=relu",
        "--tensorboard_dir=/tmp/tb",
    ]
    assert katib.trial_argv([], {}, "/d") == ["--tensorboard_dir=/d"]


def test_merge_params_puts_fixed_first() -> None:
    assert list(katib.merge_params({"epochs": 3}, {"lr": 0.1})) == ["epochs", "lr"]
    with pytest.raises(ValueError, match="lr"):
        katib.merge_params({"lr": 1}, {"lr": 0.1})


# --------------------------------------------------------------------------- names, labels, URLs

NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("proj", "proj-0123456-a1b2"),
        ("My_Project", "my-project-0123456-a1b2"),
        ("feature/Seed--Sweeps", "feature-seed-sweeps-0123456-a1b2"),
        ("2024-paper", "x-2024-paper-0123456-a1b2"),
        ("", "x-0123456-a1b2"),
        ("a" * 60, "a" * 27 + "-0123456-a1b2"),
        ("abc-" + "d" * 50, "abc-" + "d" * 23 + "-0123456-a1b2"),
        ("a" * 26 + "-bcd", "a" * 26 + "-0123456-a1b2"),  # the cut lands on a `-`
    ],
)
def test_experiment_name(stem: str, expected: str) -> None:
    name = katib.experiment_name(stem=stem, commit=COMMIT, suffix="a1b2")
    assert name == expected
    assert NAME_RE.match(name) and len(name) <= 40


def test_experiment_name_without_commit() -> None:
    assert katib.experiment_name(stem="proj", commit="", suffix="x9") == "proj-x9"


@pytest.mark.parametrize("name", ["a", "my-exp-1", "x" * 40])
def test_validate_experiment_name_accepts(name: str) -> None:
    katib.validate_experiment_name(name)


@pytest.mark.parametrize("name", ["My-Exp", "1exp", "exp-", "exp_1", "x" * 41, "", "a.b"])
def test_validate_experiment_name_refuses_with_a_hint(name: str) -> None:
    with pytest.raises(UsageError) as info:
        katib.validate_experiment_name(name)
    assert "--name" in info.value.message
    hint = info.value.hint or ""
    suggested = re.search(r"--name (\S+)`", hint)
    assert suggested and NAME_RE.match(suggested.group(1)) and len(suggested.group(1)) <= 40


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("feature/x", "feature-x"),
        ("main", "main"),
        ("-dash_", "dash"),
        ("ü", ""),
        ("x" * 70, "x" * 63),
        ("a" * 62 + "/b", "a" * 62),
        ("release/v1.2", "release-v1.2"),
    ],
)
def test_label_value(text: str, value: str) -> None:
    assert katib.label_value(text) == value
    assert LABEL_VALUE_RE.match(value) and len(value) <= 63


def test_labels_and_annotations() -> None:
    assert katib.labels(user="Ada Lovelace", branch="feature/x", commit=COMMIT) == {
        "app.kubernetes.io/managed-by": "launch",
        "launch/user": "Ada-Lovelace",
        "launch/branch": "feature-x",
        "launch/commit": COMMIT,
    }
    assert "launch/branch" not in katib.labels(user="ada", branch=None, commit=COMMIT)
    assert katib.metadata_annotations(user="Ada Lovelace", branch="feature/x", commit=COMMIT) == {
        "launch/user": "Ada Lovelace",
        "launch/commit": COMMIT,
        "launch/branch": "feature/x",
    }


@pytest.mark.parametrize(
    "base",
    ["http://katib.lab", "http://katib.lab/", "http://katib.lab/katib", "http://katib.lab/katib/"],
)
def test_experiment_url(base: str) -> None:
    assert (
        katib.experiment_url(base, "research", "proj-0123456-a1b2")
        == "http://katib.lab/katib/experiment/research/proj-0123456-a1b2?tab=trials"
    )


# --------------------------------------------------------------------------- dry-run trial lines


def test_grid_lines_list_every_combination() -> None:
    lines = katib.trial_command_lines(load_spec("grid_step"), COMMAND, seed_flag="seed")
    assert len(lines) == 5 * 3
    assert lines[0] == [
        *COMMAND,
        "--lr=0.01",
        "--layers=2",
        "--tensorboard_dir=/var/log/katib/tfevent/",
    ]
    assert lines[-1] == [
        *COMMAND,
        "--lr=0.05",
        "--layers=6",
        "--tensorboard_dir=/var/log/katib/tfevent/",
    ]


def test_seed_sweep_lines() -> None:
    lines = katib.trial_command_lines(load_spec("seeds"), COMMAND, seed_flag="seed")
    assert [line[2:4] for line in lines] == [["--lr=0.01", f"--seed={k}"] for k in range(5)]


@pytest.mark.parametrize("case", ["random", "tpe", "sobol", "dotted", "categorical", "cmaes"])
def test_sampled_lines_are_deterministic_and_inside_the_space(case: str) -> None:
    spec_ = load_spec(case)
    lines = katib.trial_command_lines(spec_, COMMAND, seed_flag="seed", sample_size=4)
    assert lines == katib.trial_command_lines(spec_, COMMAND, seed_flag="seed", sample_size=4)
    assert len(lines) == min(4, spec_.maxTrialCount or 4)
    for line in lines:
        flags = dict(arg[2:].split("=", 1) for arg in line[len(COMMAND) : -1])
        for param in spec_.parameters:
            text = flags[param.name]
            space = param.feasibleSpace
            if param.parameterType in ("categorical", "discrete"):
                assert text in (space.list or ())
            else:
                assert space.min is not None and space.max is not None
                assert float(space.min) <= float(text) <= float(space.max)
                if param.parameterType == "int":
                    assert re.fullmatch(r"-?\d+", text)
    other = katib.trial_command_lines(spec_, COMMAND, seed_flag="seed", sample_size=4, rng_seed=1)
    assert other != lines or not spec_.parameters


def numpy_grid(param: Parameter) -> list[Any]:
    """Katib's convert_to_combinations, verbatim (pkg/suggestion/v1beta1/internal/search_space.py)."""
    np = pytest.importorskip("numpy")
    space = param.feasibleSpace
    assert space.min is not None and space.max is not None
    if param.parameterType == "int":
        return [str(v) for v in range(int(space.min), int(space.max) + 1, int(space.step or 1))]
    assert space.step is not None
    values = np.arange(float(space.min), float(space.max) + float(space.step), float(space.step))
    if values[-1] > float(space.max):
        values = values[:-1]
    # Katib's Assignment: str(value) of the numpy float (pkg/suggestion/v1beta1/internal/trial.py)
    return [str(v) for v in values]


@pytest.mark.parametrize(
    ("kind", "low", "high", "step"),
    [
        ("double", "0.1", "0.3", "0.1"),
        ("double", "0.01", "0.05", "0.01"),
        ("double", "0", "1", "0.3"),
        ("double", "0.001", "0.002", "0.0001"),
        ("double", "-1", "1", "0.25"),
        ("int", "2", "6", "2"),
        ("int", "1", "10", "3"),
        ("int", "0", "4", None),
    ],
)
def test_grid_lines_use_katib_grid_values(kind: str, low: str, high: str, step: str | None) -> None:
    space: dict[str, Any] = {"min": low, "max": high}
    if step is not None:
        space["step"] = step
    param = Parameter.model_validate({"name": "p", "parameterType": kind, "feasibleSpace": space})
    expected = numpy_grid(param)
    assert list(spec.grid_values(param)) == expected
    grid = LaunchSpec.model_validate(
        {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "grid"},
            "parameters": [{"name": "p", "parameterType": kind, "feasibleSpace": space}],
        }
    )
    lines = katib.trial_command_lines(grid, ["t"], seed_flag="seed")
    assert [line[1] for line in lines] == [f"--p={value}" for value in expected]


def test_no_heavy_imports() -> None:
    """katib.py must not pull optuna or kubernetes onto the render path (startup time)."""
    code = (
        "import sys, launch.katib, launch.kaniko; "
        "bad = [m for m in ('optuna', 'kubernetes', 'numpy', 'mlflow') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
