"""Malformed search.yaml texts: each one names file, line, field path, a hint, and exits 2."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from launch import spec
from launch.errors import ExitCode, SpecError

# A valid base the cases below break one thing at a time.
OBJ = "objective: {type: minimize, objectiveMetricName: loss}\n"
LR = """\
parameters:
  - name: lr
    parameterType: double
    feasibleSpace: {min: 0.001, max: 0.1}
"""


def _case(
    case_id: str, text: str, path: str, line: int, hint: str = "", message: str = ""
) -> pytest.param:  # type: ignore[valid-type]
    return pytest.param(textwrap.dedent(text), path, line, hint, message, id=case_id)


CASES = [
    # ------------------------------------------------------------------ YAML and shape
    _case("yaml-bad-indent", "objective:\n  type: minimize\n bad: 1\n", "", 3, "indentation"),
    _case("yaml-unclosed-flow", "objective: {type: minimize\nparameters: []\n", "", 2),
    _case("yaml-tab", "objective:\n\ttype: minimize\n", "", 2),
    _case("top-level-list", "- objective\n- parameters\n", "", 1, "", "expected a mapping"),
    _case("top-level-scalar", "just text\n", "", 1, "", "expected a mapping"),
    _case("empty-file", "# nothing\n", "", 1, "", "empty file"),
    _case(
        "duplicate-key",
        OBJ + LR + "parameters: []\n",
        "parameters",
        6,
        "merge",
        "duplicate key (first on line 2)",
    ),
    # ------------------------------------------------------------------ unknown keys
    _case("unknown-top", OBJ + LR + "maxTrialCont: 3\n", "maxTrialCont", 6, "maxTrialCount"),
    _case(
        "unknown-key-with-brackets",  # not mistaken for a pydantic union tag (it crashed)
        OBJ + LR + '"maxTrialCount[0]": 3\n',
        "maxTrialCount[0]",
        6,
        "maxTrialCount",
    ),
    _case(
        "unknown-objective",
        "objective: {type: minimize, objectiveMetricName: loss, goals: 0.1}\n" + LR,
        "objective.goals",
        1,
        "`goal`",
    ),
    _case(
        "unknown-algorithm-key",
        OBJ + "algorithm:\n  algoritmName: tpe\n" + LR,
        "algorithm.algoritmName",
        3,
        "algorithmName",
    ),
    _case(
        "unknown-parameter-key",
        OBJ + "parameters:\n  - name: lr\n    type: double\n    feasibleSpace: {min: 1, max: 2}\n",
        "parameters[0].type",
        4,
        "known fields here",
    ),
    _case(
        "unknown-feasible-key",
        OBJ
        + "parameters:\n  - name: lr\n    parameterType: double\n    feasibleSpace:\n"
        + "      min: 0.1\n      max: 1\n      stepp: 0.1\n",
        "parameters[0].feasibleSpace.stepp",
        8,
        "`step`",
    ),
    _case(
        "unknown-setting-key",
        OBJ + "algorithm:\n  algorithmSettings:\n    - name: random_state\n      vale: 1\n" + LR,
        "algorithm.algorithmSettings[0].vale",
        5,
        "`value`",
    ),
    _case(
        "unknown-document-key",
        "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nspce: {}\n",
        "spce",
        3,
        "`spec`",
    ),
    # ------------------------------------------------------------------ missing / wrong types
    _case("missing-objective", LR, "objective", 1, "add `objective:`"),
    _case(
        "missing-metric-name",
        "objective:\n  type: minimize\n" + LR,
        "objective.objectiveMetricName",
        1,
        "objectiveMetricName",
    ),
    _case(
        "missing-parameter-type",
        OBJ + "parameters:\n  - name: lr\n    feasibleSpace: {min: 1, max: 2}\n",
        "parameters[0].parameterType",
        3,
        "parameterType",
    ),
    _case(
        "bad-objective-type",
        "objective: {type: minimise, objectiveMetricName: loss}\n" + LR,
        "objective.type",
        1,
        "minimize",
    ),
    _case(
        "bad-parameter-type",
        OBJ + "parameters:\n  - name: lr\n    parameterType: float\n"
        "    feasibleSpace: {min: 1, max: 2}\n",
        "parameters[0].parameterType",
        4,
        "double",
    ),
    _case("count-not-int", OBJ + LR + "maxTrialCount: 2.5\n", "maxTrialCount", 6),
    _case("count-bool", OBJ + LR + "parallelTrialCount: yes\n", "parallelTrialCount", 6),
    _case("count-zero", OBJ + LR + "maxTrialCount: 0\n", "maxTrialCount", 6),
    _case(
        "min-not-number",
        OBJ + "parameters:\n  - name: lr\n    parameterType: double\n"
        "    feasibleSpace: {min: small, max: 1}\n",
        "parameters[0].feasibleSpace.min",
        5,
    ),
    _case(
        "min-hex",
        OBJ + "parameters:\n  - name: n\n    parameterType: int\n"
        '    feasibleSpace: {min: "0x10", max: 100}\n',
        "parameters[0].feasibleSpace.min",
        5,
    ),
    _case(
        "goal-infinite",
        "objective: {type: minimize, objectiveMetricName: loss, goal: .inf}\n" + LR,
        "objective.goal",
        1,
    ),
    _case("seeds-zero", OBJ + "seeds: 0\n", "seeds", 2),
    _case("seeds-duplicates", OBJ + "seeds: [1, 2, 1]\n", "seeds", 2, "", "duplicates"),
    _case(
        "fixed-list-value",
        OBJ + LR + "fixed:\n  layers: [1, 2]\n",
        "fixed",
        6,
        "",
        "single value",
    ),
    # ------------------------------------------------------------------ fields launch generates
    _case("trial-template", OBJ + LR + "trialTemplate: {}\n", "trialTemplate", 6, "delete"),
    _case(
        "metrics-collector",
        OBJ + LR + "metricsCollectorSpec:\n  collector: {kind: StdOut}\n",
        "metricsCollectorSpec",
        6,
        "delete",
    ),
    _case(
        "early-stopping",
        OBJ + LR + "earlyStopping: {algorithmName: medianstop}\n",
        "earlyStopping",
        6,
        "delete",
        "crashes",
    ),
    _case("nas-config", OBJ + "nasConfig: {}\n", "nasConfig", 2, "delete"),
    # ------------------------------------------------------------------ Experiment envelope
    _case(
        "document-wrong-kind",
        "apiVersion: kubeflow.org/v1beta1\nkind: Trial\nspec: {}\n",
        "kind",
        2,
        "Experiment",
    ),
    _case(
        "document-wrong-api",
        "apiVersion: kubeflow.org/v1alpha3\nkind: Experiment\nspec: {}\n",
        "apiVersion",
        1,
        "v1beta1",
    ),
    _case(
        "document-no-spec",
        "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata: {name: x}\n",
        "spec",
        1,
        "spec:",
    ),
    _case(
        "document-bad-inner",
        "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nspec:\n"
        "  objective: {type: minimize, objectiveMetricName: loss}\n"
        "  parameters:\n    - name: lr\n      parameterType: double\n"
        "      feasibleSpace: {min: 1, max: 0.5}\n",
        "parameters[0].feasibleSpace.min",
        8,
        "swap",
    ),
    # ------------------------------------------------------------------ impossible spaces
    _case(
        "min-equals-max",
        OBJ + "parameters:\n  - name: lr\n    parameterType: double\n"
        "    feasibleSpace: {min: 1, max: 1}\n",
        "parameters[0].feasibleSpace.min",
        5,
        "fixed",
    ),
    _case(
        "min-above-max",
        OBJ + "parameters:\n  - name: n\n    parameterType: int\n"
        "    feasibleSpace:\n      max: 1\n      min: 5\n",
        "parameters[0].feasibleSpace.min",
        7,
        "swap",
    ),
    _case(
        "missing-max",
        OBJ + "parameters:\n  - name: lr\n    parameterType: double\n    feasibleSpace: {min: 1}\n",
        "parameters[0].feasibleSpace.max",
        5,
        "max",
    ),
    _case(
        "int-fractional-bound",
        OBJ + "parameters:\n  - name: n\n    parameterType: int\n"
        "    feasibleSpace: {min: 1, max: 10.5}\n",
        "parameters[0].feasibleSpace.max",
        5,
        "double",
    ),
    _case(
        "negative-step",
        OBJ + "parameters:\n  - name: n\n    parameterType: int\n"
        "    feasibleSpace: {min: 1, max: 10, step: -1}\n",
        "parameters[0].feasibleSpace.step",
        5,
    ),
    _case(
        "step-wider-than-range",
        OBJ + "parameters:\n  - name: lr\n    parameterType: double\n"
        "    feasibleSpace: {min: 0, max: 1, step: 2}\n",
        "parameters[0].feasibleSpace.step",
        5,
    ),
    _case(
        "empty-list",
        OBJ + "parameters:\n  - name: act\n    parameterType: categorical\n"
        "    feasibleSpace: {list: []}\n",
        "parameters[0].feasibleSpace.list",
        5,
        "list",
    ),
    _case(
        "list-for-double",
        OBJ + "parameters:\n  - name: lr\n    parameterType: double\n"
        "    feasibleSpace: {min: 0, max: 1, list: [1]}\n",
        "parameters[0].feasibleSpace.list",
        5,
        "discrete",
    ),
    _case(
        "min-for-categorical",
        OBJ + "parameters:\n  - name: act\n    parameterType: categorical\n"
        "    feasibleSpace:\n      list: [a, b]\n      min: 1\n",
        "parameters[0].feasibleSpace.min",
        7,
    ),
    _case(
        "distribution-for-categorical",
        OBJ + "parameters:\n  - name: act\n    parameterType: categorical\n"
        "    feasibleSpace:\n      list: [a, b]\n      distribution: logUniform\n",
        "parameters[0].feasibleSpace.distribution",
        7,
    ),
    _case(
        "duplicate-list-values",
        OBJ + "parameters:\n  - name: act\n    parameterType: categorical\n"
        "    feasibleSpace: {list: [relu, relu]}\n",
        "parameters[0].feasibleSpace.list",
        5,
        "duplicates",
    ),
    _case(
        "discrete-word",
        OBJ + "parameters:\n  - name: bs\n    parameterType: discrete\n"
        "    feasibleSpace:\n      list:\n        - 16\n        - big\n",
        "parameters[0].feasibleSpace.list[1]",
        8,
        "categorical",
    ),
    _case(
        "bad-distribution",
        OBJ + "parameters:\n  - name: lr\n    parameterType: double\n"
        "    feasibleSpace: {min: 0.1, max: 1, distribution: loguniform}\n",
        "parameters[0].feasibleSpace.distribution",
        5,
        "logUniform",
    ),
    _case(
        "log-uniform-min-zero",
        OBJ + "parameters:\n  - name: lr\n    parameterType: double\n"
        "    feasibleSpace: {min: 0, max: 1, distribution: logUniform}\n",
        "parameters[0].feasibleSpace.min",
        5,
        "positive",
    ),
    # ------------------------------------------------------------------ categorical values
    _case(
        "categorical-space",
        OBJ + "parameters:\n  - name: opt\n    parameterType: categorical\n"
        "    feasibleSpace:\n      list:\n        - adam\n        - adam w\n",
        "parameters[0].feasibleSpace.list[1]",
        8,
        "letters, digits",
    ),
    _case(
        "categorical-dollar",
        OBJ + "parameters:\n  - name: opt\n    parameterType: categorical\n"
        "    feasibleSpace: {list: [a, '$(HOME)']}\n",
        "parameters[0].feasibleSpace.list[1]",
        5,
        "letters, digits",
    ),
    _case(
        "categorical-quote",
        OBJ + "parameters:\n  - name: opt\n    parameterType: categorical\n"
        '    feasibleSpace: {list: ["it\'s"]}\n',
        "parameters[0].feasibleSpace.list[0]",
        5,
    ),
    _case(
        "categorical-yaml-error",
        OBJ + "parameters:\n  - name: path\n    parameterType: categorical\n"
        "    feasibleSpace: {list: ['@home', b]}\n",
        "parameters[0].feasibleSpace.list[0]",
        5,
        "",
        "not valid YAML",
    ),
    _case(
        "categorical-yaml-mapping",
        OBJ + "parameters:\n  - name: k\n    parameterType: categorical\n"
        "    feasibleSpace: {list: ['a:', b]}\n",
        "parameters[0].feasibleSpace.list[0]",
        5,
        "",
        "dict",
    ),
    # ------------------------------------------------------------------ names
    _case(
        "name-with-dash",
        OBJ + "parameters:\n  - name: learning-rate\n    parameterType: double\n"
        "    feasibleSpace: {min: 0.1, max: 1}\n",
        "parameters[0].name",
        3,
        "optim.lr",
    ),
    _case(
        "name-keyword",
        OBJ + "parameters:\n  - name: model.class\n    parameterType: categorical\n"
        "    feasibleSpace: {list: [a]}\n",
        "parameters[0].name",
        3,
    ),
    _case(
        "name-tensorboard-dir",
        OBJ + "parameters:\n  - name: tensorboard_dir\n    parameterType: categorical\n"
        "    feasibleSpace: {list: [a, b]}\n",
        "parameters[0].name",
        3,
        "rename",
    ),
    _case(
        "duplicate-parameter",
        OBJ + LR + "  - name: lr\n    parameterType: double\n    feasibleSpace: {min: 1, max: 2}\n",
        "parameters[1].name",
        6,
        "keep only one",
    ),
    _case(
        "nested-parameter-clash",
        OBJ
        + LR
        + "  - name: lr.warmup\n    parameterType: int\n    feasibleSpace: {min: 1, max: 2}\n",
        "parameters[1].name",
        6,
    ),
    _case(
        "trial-parameter-collision",
        OBJ + "parameters:\n  - name: optim.lr\n    parameterType: double\n"
        "    feasibleSpace: {min: 0.1, max: 1}\n"
        "  - name: optim__lr\n    parameterType: double\n    feasibleSpace: {min: 0.1, max: 1}\n",
        "parameters[1].name",
        6,
        "rename",
        "optim__lr",
    ),
    _case("fixed-and-searched", OBJ + LR + "fixed:\n  lr: 0.1\n", "fixed.lr", 7, "remove"),
    _case("fixed-bad-flag", OBJ + LR + "fixed:\n  batch size: 8\n", "fixed.batch size", 7),
    _case(
        "fixed-config-path", OBJ + LR + "fixed:\n  config_path: a.yaml\n", "fixed.config_path", 7
    ),
    _case("fixed-yaml-error", OBJ + LR + "fixed:\n  tag: '%x'\n", "fixed.tag", 7, "Draccus"),
    # ------------------------------------------------------------------ objective and metrics
    _case(
        "objective-in-additional",
        "objective:\n  type: minimize\n  objectiveMetricName: loss\n"
        "  additionalMetricNames: [acc, loss]\n" + LR,
        "objective.additionalMetricNames",
        4,
        "remove",
    ),
    _case(
        "duplicate-additional",
        "objective:\n  type: minimize\n  objectiveMetricName: loss\n"
        "  additionalMetricNames:\n    - acc\n    - acc\n" + LR,
        "objective.additionalMetricNames[1]",
        6,
    ),
    _case(
        "metric-name-space",
        "objective: {type: minimize, objectiveMetricName: val loss}\n" + LR,
        "objective.objectiveMetricName",
        1,
        "tag",
    ),
    _case(
        "metric-name-trailing-slash",
        "objective: {type: minimize, objectiveMetricName: eval/}\n" + LR,
        "objective.objectiveMetricName",
        1,
    ),
    _case(
        "metric-name-semicolon",
        "objective:\n  type: minimize\n  objectiveMetricName: loss\n"
        "  additionalMetricNames: ['a;b']\n" + LR,
        "objective.additionalMetricNames[0]",
        4,
    ),
    _case(
        "metric-prefix-clash",
        "objective:\n  type: minimize\n  objectiveMetricName: loss\n"
        "  additionalMetricNames: [loss_ema]\n" + LR,
        "objective.objectiveMetricName",
        3,
        "prefix",
        "prefix",
    ),
    _case(
        "strategy-unknown-metric",
        "objective:\n  type: minimize\n  objectiveMetricName: loss\n"
        "  additionalMetricNames: [accuracy]\n"
        "  metricStrategies:\n    - {name: acuracy, value: max}\n" + LR,
        "objective.metricStrategies[0].name",
        6,
        "`accuracy`",
    ),
    _case(
        "strategy-twice",
        "objective:\n  type: minimize\n  objectiveMetricName: loss\n"
        "  metricStrategies:\n    - {name: loss, value: min}\n    - {name: loss, value: latest}\n"
        + LR,
        "objective.metricStrategies[1].name",
        6,
    ),
    _case(
        "strategy-bad-value",
        "objective:\n  type: minimize\n  objectiveMetricName: loss\n"
        "  metricStrategies:\n    - {name: loss, value: last}\n" + LR,
        "objective.metricStrategies[0].value",
        5,
        "latest",
    ),
    # ------------------------------------------------------------------ counts
    _case(
        "parallel-over-max",
        OBJ + LR + "maxTrialCount: 4\nparallelTrialCount: 5\n",
        "parallelTrialCount",
        7,
        "at most 4",
    ),
    _case(
        "failed-over-max",
        OBJ + LR + "maxTrialCount: 4\nmaxFailedTrialCount: 5\n",
        "maxFailedTrialCount",
        7,
        "at most 4",
    ),
    _case(
        "parallel-over-grid-default",
        OBJ + "algorithm: {algorithmName: grid}\n"
        "parameters:\n  - name: act\n    parameterType: categorical\n"
        "    feasibleSpace: {list: [a, b]}\nparallelTrialCount: 3\n",
        "parallelTrialCount",
        7,
        "at most 2",
        "grid combinations",
    ),
    # ------------------------------------------------------------------ algorithms
    _case(
        "unknown-algorithm",
        OBJ + "algorithm: {algorithmName: bayesian}\n" + LR,
        "algorithm.algorithmName",
        2,
        "bayesianoptimization",
    ),
    _case(
        "hyperband-without-settings",  # tests/test_hyperband.py has the rest of its rules
        OBJ + "algorithm: {algorithmName: hyperband}\n" + LR,
        "algorithm.algorithmSettings",
        2,
        "resource_name",
        "hyperband needs the settings resource_name and r_l",
    ),
    _case(
        "grid-double-without-step",
        OBJ + "algorithm: {algorithmName: grid}\n"
        "parameters:\n  - name: act\n    parameterType: categorical\n"
        "    feasibleSpace: {list: [a, b]}\n"
        "  - name: lr\n    parameterType: double\n    feasibleSpace: {min: 0.1, max: 1}\n",
        "parameters[1].feasibleSpace.step",
        9,
        "step:",
    ),
    _case(
        "grid-too-many-trials",
        OBJ + "algorithm: {algorithmName: grid}\n"
        "parameters:\n  - name: n\n    parameterType: int\n"
        "    feasibleSpace: {min: 1, max: 4}\nmaxTrialCount: 5\n",
        "maxTrialCount",
        7,
        "at most 4",
    ),
    _case(
        "grid-double-step-count",
        OBJ + "algorithm: {algorithmName: grid}\n"
        "parameters:\n  - name: lr\n    parameterType: double\n"
        "    feasibleSpace: {min: 0, max: 0.3, step: 0.1}\nmaxTrialCount: 4\n",
        "maxTrialCount",
        7,
        "at most 3",
    ),
    _case(
        "grid-log-distribution",
        OBJ + "algorithm: {algorithmName: grid}\n"
        "parameters:\n  - name: lr\n    parameterType: double\n"
        "    feasibleSpace: {min: 0.1, max: 1, step: 0.1, distribution: logUniform}\n",
        "parameters[0].feasibleSpace.distribution",
        6,
        "discrete",
    ),
    _case(
        "grid-unknown-setting",
        OBJ + "algorithm:\n  algorithmName: grid\n  algorithmSettings:\n"
        "    - {name: seed, value: 1}\n"
        "parameters:\n  - name: act\n    parameterType: categorical\n"
        "    feasibleSpace: {list: [a, b]}\n",
        "algorithm.algorithmSettings[0].name",
        5,
        "random_state",
    ),
    _case(
        "random-state-negative",
        OBJ + "algorithm:\n  algorithmName: random\n  algorithmSettings:\n"
        "    - name: random_state\n      value: -1\n" + LR,
        "algorithm.algorithmSettings[0].value",
        6,
        "random_state",
    ),
    _case(
        "setting-twice",
        OBJ + "algorithm:\n  algorithmName: random\n  algorithmSettings:\n"
        "    - {name: random_state, value: 1}\n    - {name: random_state, value: 2}\n" + LR,
        "algorithm.algorithmSettings[1].name",
        6,
    ),
    _case(
        "tpe-optuna-setting-name",
        OBJ + "algorithm:\n  algorithmName: tpe\n  algorithmSettings:\n"
        "    - {name: n_ei_candidates, value: 24}\n" + LR,
        "algorithm.algorithmSettings[0].name",
        5,
        "n_EI_candidates",
    ),
    _case(
        "tpe-gamma-range",
        OBJ + "algorithm:\n  algorithmName: tpe\n  algorithmSettings:\n"
        "    - {name: gamma, value: 1.5}\n" + LR,
        "algorithm.algorithmSettings[0].value",
        5,
    ),
    _case(
        "multivariate-tpe-normal",
        OBJ + "algorithm: {algorithmName: multivariate-tpe}\n"
        "parameters:\n  - name: lr\n    parameterType: double\n"
        "    feasibleSpace: {min: 0.1, max: 1, distribution: normal}\n",
        "parameters[0].feasibleSpace.distribution",
        6,
        "uniform",
    ),
    _case(
        "multivariate-tpe-bad-int",
        OBJ + "algorithm:\n  algorithmName: multivariate-tpe\n  algorithmSettings:\n"
        "    - {name: n_startup_trials, value: '1_0'}\n" + LR,
        "algorithm.algorithmSettings[0].value",
        5,
    ),
    _case(
        "bayes-min-zero",
        OBJ + "algorithm: {algorithmName: bayesianoptimization}\n"
        "parameters:\n  - name: wd\n    parameterType: double\n"
        "    feasibleSpace: {min: 0, max: 0.1}\n",
        "parameters[0].feasibleSpace.min",
        6,
        "positive",
    ),
    _case(
        "bayes-step-ignored",
        OBJ + "algorithm: {algorithmName: bayesianoptimization}\n"
        "parameters:\n  - name: lr\n    parameterType: double\n"
        "    feasibleSpace: {min: 0.01, max: 0.1, step: 0.01}\n",
        "parameters[0].feasibleSpace.step",
        6,
        "remove",
    ),
    _case(
        "bayes-acq-func",
        OBJ + "algorithm:\n  algorithmName: bayesianoptimization\n  algorithmSettings:\n"
        "    - {name: acq_func, value: EIps}\n" + LR,
        "algorithm.algorithmSettings[0].value",
        5,
    ),
    _case(
        "bayes-lbfgs-with-trees",
        OBJ + "algorithm:\n  algorithmName: bayesianoptimization\n  algorithmSettings:\n"
        "    - {name: base_estimator, value: RF}\n    - {name: acq_optimizer, value: lbfgs}\n" + LR,
        "algorithm.algorithmSettings[1].value",
        6,
        "sampling",
    ),
    _case(
        "bayes-estimator",
        OBJ + "algorithm:\n  algorithmName: bayesianoptimization\n  algorithmSettings:\n"
        "    - {name: base_estimator, value: gp}\n" + LR,
        "algorithm.algorithmSettings[0].value",
        5,
    ),
    _case(
        "cmaes-one-numeric",
        OBJ + "algorithm: {algorithmName: cmaes}\n" + LR,
        "parameters",
        3,
        "tpe",
    ),
    _case(
        "cmaes-restart-strategy",
        OBJ + "algorithm:\n  algorithmName: cmaes\n  algorithmSettings:\n"
        "    - {name: restart_strategy, value: None}\n" + LR,
        "algorithm.algorithmSettings[0].value",
        5,
    ),
    _case(
        "cmaes-sigma-typo",
        OBJ + "algorithm:\n  algorithmName: cmaes\n  algorithmSettings:\n"
        "    - {name: sigma0, value: 0.5}\n" + LR,
        "algorithm.algorithmSettings[0].name",
        5,
        "`sigma`",
    ),
    _case(
        "cmaes-log-uniform",
        OBJ + "algorithm: {algorithmName: cmaes}\n"
        "parameters:\n  - name: lr\n    parameterType: double\n"
        "    feasibleSpace: {min: 0.1, max: 1, distribution: logUniform}\n"
        "  - name: wd\n    parameterType: double\n    feasibleSpace: {min: 0.1, max: 1}\n",
        "parameters[0].feasibleSpace.distribution",
        6,
        "multivariate-tpe",
    ),
    _case(
        "sobol-any-setting",
        OBJ + "algorithm:\n  algorithmName: sobol\n  algorithmSettings:\n"
        "    - {name: random_state, value: 1}\n" + LR,
        "algorithm.algorithmSettings[0].name",
        5,
        "no algorithmSettings",
    ),
    # ------------------------------------------------------------------ seeds
    _case(
        "seeds-with-tpe",
        OBJ + "algorithm: {algorithmName: tpe}\n" + LR + "seeds: 3\n",
        "seeds",
        7,
        "grid",
    ),
    _case("seed-sweep-too-many-trials", OBJ + "seeds: 3\nmaxTrialCount: 4\n", "maxTrialCount", 3),
    _case("seed-beyond-numpy", OBJ + LR + "seeds: [4294967296]\n", "seeds", 6, "", "outside 0.."),
    # ------------------------------------------------------------------ hostile input
    # More in tests/test_hostile_spec.py (time and memory bounds).
    _case("yaml-alias", OBJ + "a: &a [1]\nb: *a\n", "b", 3, "write the value out", "alias"),
    _case("yaml-control-char", OBJ + "maxTrialCount: 3\x07\n", "", 2, "delete it", "BEL"),
    _case("yaml-too-deep", OBJ + "x: " + "[" * 100 + "]" * 100 + "\n", "x[0][0]", 2, "nests"),
    _case(
        "grid-too-large",
        OBJ + "algorithm: {algorithmName: grid}\n"
        "parameters:\n  - name: n\n    parameterType: int\n"
        "    feasibleSpace: {min: 1, max: 1000000}\n",
        "parameters[0].feasibleSpace.max",
        6,
        "algorithmName: random",
        "1,000,000 combinations",
    ),
    _case(
        "random-state-beyond-numpy",
        OBJ + "algorithm:\n  algorithmName: random\n  algorithmSettings:\n"
        "    - {name: random_state, value: 4294967296}\n" + LR,
        "algorithm.algorithmSettings[0].value",
        5,
        "random_state",
        "0..4294967295",
    ),
    _case(
        "double-step-below-resolution",
        OBJ + LR.replace("max: 0.1}", "max: 0.1, step: 1e-300}"),
        "parameters[0].feasibleSpace.step",
        5,
        "at least",
        "finer than float64",
    ),
    _case(
        "double-range-overflow",
        OBJ + LR.replace("{min: 0.001, max: 0.1}", "{min: -1e308, max: 1e308}"),
        "parameters[0].feasibleSpace.max",
        5,
        "narrow",
        "overflows float64",
    ),
    _case(
        "double-max-beyond-float64",
        OBJ + LR.replace("max: 0.1}", "max: 1e309}"),
        "parameters[0].feasibleSpace.max",
        5,
        "",
        "finite",
    ),
    _case(
        "int-beyond-int64",
        OBJ + "parameters:\n  - name: n\n    parameterType: int\n"
        "    feasibleSpace: {min: 0, max: 9223372036854775808}\n",
        "parameters[0].feasibleSpace.max",
        5,
        "int64",
        "outside int64",
    ),
    _case(
        "goal-beyond-float64",
        "objective: {type: minimize, objectiveMetricName: loss, goal: 1e309}\n" + LR,
        "objective.goal",
        1,
        "",
        "finite",
    ),
]


@pytest.mark.parametrize(("text", "path", "line", "hint", "message"), CASES)
def test_bad_input(text: str, path: str, line: int, hint: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        spec.parse(text, filename="search.yaml")
    error = caught.value
    assert error.exit_code == ExitCode.USAGE == 2
    assert error.message.startswith(f"search.yaml:{line}: "), error.message
    if path:
        assert f"search.yaml:{line}: {path}: " in error.message, error.message
    assert error.hint, error.message
    assert hint in error.hint, (error.message, error.hint)
    assert message in error.message, error.message


def test_at_least_45_cases() -> None:
    assert len(CASES) >= 45


@pytest.mark.parametrize(
    "case_id", ["unknown-top", "grid-too-many-trials", "document-bad-inner", "yaml-bad-indent"]
)
def test_bad_input_through_a_file(tmp_path: Path, case_id: str) -> None:
    (case,) = [c for c in CASES if c.id == case_id]
    text, path, line, _hint, _message = case.values
    file = tmp_path / "my-search.yaml"
    file.write_text(str(text))
    with pytest.raises(SpecError) as caught:
        spec.load(str(file))
    assert caught.value.message.startswith(f"{file}:{line}: {path}"), caught.value.message
    assert caught.value.exit_code == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        spec.load(str(tmp_path / "nope.yaml"))
    assert "nope.yaml: no such file" in caught.value.message
    assert caught.value.hint


@pytest.mark.parametrize(
    ("seeds", "flag", "expected"),
    [
        (0, "seed", "--seeds: expected N >= 1"),
        ([1, 1], "seed", "--seeds: the seed list has duplicates"),
        (3, "lr", "--seeds: the seed flag `--lr` clashes with `lr`"),
        (3, "tensor board", "--seeds: seed flag `tensor board` cannot be a Draccus flag"),
    ],
)
def test_bad_cli_seeds(seeds: int | list[int], flag: str, expected: str) -> None:
    loaded = spec.parse(
        OBJ + "algorithm: {algorithmName: grid}\n" + LR.replace("0.1}", "0.1, step: 0.01}")
    )
    with pytest.raises(SpecError) as caught:
        spec.apply_seeds(loaded, seeds=seeds, seed_flag=flag)
    assert caught.value.message.startswith(expected), caught.value.message
    assert caught.value.hint
    assert caught.value.exit_code == 2


def test_cli_seeds_with_tpe_is_refused() -> None:
    loaded = spec.parse(OBJ + "algorithm: {algorithmName: tpe}\n" + LR)
    with pytest.raises(SpecError) as caught:
        spec.apply_seeds(loaded, seeds=5)
    assert caught.value.message.startswith("--seeds: seeds with algorithm tpe")
    assert "algorithmName: grid" in (caught.value.hint or "")


def test_spec_seed_clash_names_file_and_line() -> None:
    loaded = spec.parse(
        OBJ
        + "algorithm: {algorithmName: grid}\n"
        + "parameters:\n  - name: seed\n    parameterType: int\n    feasibleSpace: {min: 0, max: 3}\n"
        + "seeds: 2\n"
    )
    with pytest.raises(SpecError) as caught:
        spec.apply_seeds(loaded)
    assert caught.value.message.startswith("search.yaml:7: seeds: the seed flag `--seed` clashes")


def test_nothing_to_search() -> None:
    loaded = spec.parse(OBJ)
    with pytest.raises(SpecError) as caught:
        spec.apply_seeds(loaded)
    assert caught.value.message.startswith("search.yaml:1: parameters: nothing to search")
    assert "--seeds" in (caught.value.hint or "")
