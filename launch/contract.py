"""The trial contract both backends keep: a trial's argv, its environment, and the command
that reruns it.

A trial runs the user's argv, then `--<param>=<value>` per parameter (Draccus syntax; fixed flags
first, then the sampled ones), then `--tensorboard_dir=<dir>`; its environment names the trial,
the experiment, the namespace, the commit, the image (cluster) and the MLflow run's home. The
Katib renderer (`launch.katib`), the local coordinator (`launch.local`) and the MLflow wrapper
read these names from here, so a program that works locally works on the cluster.

Pure and standard library only (the MLflow wrapper imports it inside every trial).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from launch.results import Trial

# A trial's value of one parameter or fixed flag, everywhere (spec, sampling, results, argv).
ParamValue = str | int | float | bool


# Where a Katib trial writes its TensorBoard files: the TensorFlowEvent collector's directory
# (pkg/apis/controller/common/v1beta1/common_types.go DefaultTensorflowEventDirPath).
TFEVENT_DIR = "/var/log/katib/tfevent/"

# The contract's environment variables.
ENV_TRIAL_NAME = "KATIB_TRIAL_NAME"  # on Katib injected by its pod webhook, not by the template
ENV_EXPERIMENT_NAME = "KATIB_EXPERIMENT_NAME"
ENV_NAMESPACE = "KATIB_NAMESPACE"
ENV_GIT_COMMIT = "LAUNCH_GIT_COMMIT"
ENV_IMAGE = "LAUNCH_IMAGE"  # cluster trials only
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_MLFLOW_EXPERIMENT = "MLFLOW_EXPERIMENT_NAME"
ENV_KATIB_URL = "LAUNCH_KATIB_URL"  # the Katib experiment page; the wrapper tags runs with it
# Names a user's `--env` may not set: launch sets them (or Katib does).
RESERVED_ENV = frozenset(
    {
        ENV_TRIAL_NAME,
        ENV_EXPERIMENT_NAME,
        ENV_NAMESPACE,
        ENV_GIT_COMMIT,
        ENV_IMAGE,
        ENV_TRACKING_URI,
        ENV_MLFLOW_EXPERIMENT,
        ENV_KATIB_URL,
    }
)
LOCAL_NAMESPACE = "local"  # KATIB_NAMESPACE of a local trial


def format_value(value: ParamValue) -> str:
    """A parameter value as a trial sees it: `true`/`false`, ints without `.`, floats by repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return value


def merge_params(
    fixed: Mapping[str, ParamValue], sampled: Mapping[str, ParamValue]
) -> dict[str, ParamValue]:
    """The flags of one trial in argv order: `fixed` flags first, then the sampled parameters.

    Fixed flags come first so that the flags which vary between trials line up at the end of
    every command line. A name in both is a spec error (spec.check_rules refuses it).
    """
    both = set(fixed) & set(sampled)
    if both:
        raise ValueError(f"flags both fixed and searched: {', '.join(sorted(both))}")
    return {**fixed, **sampled}


def trial_argv(
    command: Sequence[str], params: Mapping[str, ParamValue], tensorboard_dir: str
) -> list[str]:
    """The trial contract's argv: the user's argv, `--<name>=<value>` per param, `--tensorboard_dir`.

    Draccus syntax: dotted names keep their dots (`--optim.lr=0.1`). Shared with the local backend.
    """
    argv = list(command)
    argv.extend(f"--{name}={format_value(value)}" for name, value in params.items())
    argv.append(f"--tensorboard_dir={tensorboard_dir}")
    return argv


def trial_env(
    *,
    experiment: str,
    namespace: str,
    commit: str,
    trial: str | None = None,
    image: str | None = None,
    tracking_uri: str | None = None,
    mlflow_experiment: str | None = None,
    katib_url: str | None = None,
) -> dict[str, str]:
    """The contract's environment variables, in a fixed order; a value that is None is left out.

    `trial` is None on Katib (its pod webhook injects KATIB_TRIAL_NAME from the trial label,
    pkg/webhook/v1beta1/pod/utils.go mutatePodEnv, so the template must not define it too).
    `mlflow_experiment` defaults to the experiment's name; `image` and `katib_url` are the
    cluster's (the MLflow wrapper links each run back to the Katib page).
    """
    items: list[tuple[str, str | None]] = [
        (ENV_TRIAL_NAME, trial),
        (ENV_EXPERIMENT_NAME, experiment),
        (ENV_NAMESPACE, namespace),
        (ENV_GIT_COMMIT, commit),
        (ENV_IMAGE, image),
        (ENV_TRACKING_URI, tracking_uri),
        (ENV_MLFLOW_EXPERIMENT, mlflow_experiment or experiment),
        (ENV_KATIB_URL, katib_url),
    ]
    return {key: value for key, value in items if value is not None}


def rerun_command(
    trial: Trial,  # results.Trial: its name and params
    *,
    command: Sequence[str],
    fixed: Mapping[str, ParamValue] | None = None,
    image: str | None = None,
    commit: str | None = None,
    repo_root: str | None = None,
    subdir: str = "",
    tensorboard_dir: str | None = None,
    gpus: int = 0,
    scratch: str = "",
    argv: Sequence[str] | None = None,
) -> str:
    """A copy-paste shell command that reruns one trial with its exact argv.

    With `image` (a cluster trial; pass `name@sha256:...`): `docker run --rm IMAGE sh -c '...'`,
    run from `subdir` of the image's WORKDIR, TensorBoard files to Katib's directory.
    Otherwise (local): a fresh `git worktree` of `commit` from `repo_root` (when both are given),
    `cd` into `subdir`, then the argv; TensorBoard files go to `tensorboard_dir`. `scratch`
    tells reruns of one trial apart (`/tmp/launch-rerun/<trial><scratch>`). `argv`: the argv
    the trial ran with, when recorded (local journal), reused with only its TensorBoard dir
    changed.
    """
    import shlex  # here: the in-trial wrapper imports this module and never reruns

    fixed = dict(fixed or {})
    params = merge_params(fixed, trial.params)
    if image is not None:
        argv = trial_argv(command, params, tensorboard_dir or TFEVENT_DIR)
        inner = shlex.join(argv)
        if subdir:
            inner = f"cd {shlex.quote(subdir)} && {inner}"
        gpu = f" --gpus {gpus}" if gpus else ""
        return f"docker run --rm{gpu} {shlex.quote(image)} sh -c {shlex.quote(inner)}"
    rerun_dir = f"/tmp/launch-rerun/{trial.name}{scratch}"
    tb_flag = f"--tensorboard_dir={tensorboard_dir or f'{rerun_dir}/tfevent'}"
    if argv:
        argv = [tb_flag if a.startswith("--tensorboard_dir=") else a for a in argv]
    else:
        argv = [*trial_argv(command, params, "")[:-1], tb_flag]
    steps = []
    if commit and repo_root:
        worktree = f"{rerun_dir}/worktree"
        steps.append(
            f"git -C {shlex.quote(repo_root)} worktree add --detach "
            f"{shlex.quote(worktree)} {shlex.quote(commit)}"
        )
        workdir = f"{worktree}/{subdir}" if subdir else worktree
        steps.append(f"cd {shlex.quote(workdir)}")
    elif repo_root:
        steps.append(f"cd {shlex.quote(f'{repo_root}/{subdir}' if subdir else repo_root)}")
    steps.append(shlex.join(argv))
    return " && ".join(steps)
