"""A cluster trial's restart contract (`podspec.restart_prelude`), run by real shells the way a
trial pod runs it: Kubernetes unescapes `$$`, `sh -c` runs the prelude and the command, and a
replaced pod (same trial name, same volume) sees the count go up."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest

from launch import podspec
from launch.errors import UsageError
from tests import test_submit
from tests.test_katib import kubernetes_expand
from tests.test_submit import NS, RUN, Lab, invoke

lab = test_submit.lab  # the cluster lab fixture: emulated API, real registry, quickstart repo

SHELLS = [s for s in ("sh", "dash", "bash", "busybox") if shutil.which(s)]


def _kubelet(text: str) -> str:
    """What Kubernetes passes to the container: its `$(VAR)` expansion (no variables here)."""
    return kubernetes_expand(text, {})


def _start(
    shell: str, prelude: str, trial: str | None, out: Path
) -> subprocess.CompletedProcess[str]:
    program = 'printf "%s|%s" "$LAUNCH_RESTART_COUNT" "$LAUNCH_CHECKPOINT_DIR"'
    argv = [shell, "sh", "-c"] if shell == "busybox" else [shell, "-c"]
    env = {"PATH": "/usr/bin:/bin"} | ({"KATIB_TRIAL_NAME": trial} if trial else {})
    return subprocess.run([*argv, _kubelet(prelude) + program], env=env, capture_output=True,
                          text=True, timeout=30, cwd=out)  # fmt: skip


def _resources(tmp_path: Path) -> podspec.TrialResources:
    return podspec.trial_resources(
        volumes=[f"ckpt:{tmp_path}/vol"], checkpoint_dir=f"{tmp_path}/vol/runs/"
    )


@pytest.mark.parametrize("shell", SHELLS)
def test_each_start_of_a_trial_counts_and_keeps_its_directory(tmp_path: Path, shell: str) -> None:
    prelude = podspec.restart_prelude(_resources(tmp_path), "exp 'x'")
    trial_dir = tmp_path / "vol" / "runs" / "exp 'x'" / "exp-abc"
    for attempt in range(3):  # the first pod, then two replacements after preemptions
        done = _start(shell, prelude, "exp-abc", tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{attempt}|{trial_dir}"
    other = _start(shell, prelude, "exp-def", tmp_path)  # another trial starts from 0
    assert other.stdout.startswith("0|") and other.stdout.endswith("/exp-def")


@pytest.mark.parametrize("shell", SHELLS)
def test_a_damaged_count_restarts_from_zero_and_a_missing_name_fails(
    tmp_path: Path, shell: str
) -> None:
    prelude = podspec.restart_prelude(_resources(tmp_path), "exp")
    trial_dir = tmp_path / "vol" / "runs" / "exp" / "t1"
    trial_dir.mkdir(parents=True)
    (trial_dir / podspec.STARTS_FILE).write_text("garbage\n")
    assert _start(shell, prelude, "t1", tmp_path).stdout.startswith("0|")
    assert _start(shell, prelude, "t1", tmp_path).stdout.startswith("1|")
    # Without the trial's name every trial would share one directory: refuse to run.
    nameless = _start(shell, prelude, None, tmp_path)
    assert nameless.returncode != 0 and nameless.stdout == ""


def test_an_unwritable_volume_stops_the_trial_before_the_program(tmp_path: Path) -> None:
    prelude = podspec.restart_prelude(_resources(tmp_path), "exp")
    (tmp_path / "vol").write_text("not a directory")
    done = _start("sh", prelude, "t1", tmp_path)
    assert done.returncode != 0 and done.stdout == ""


def test_without_a_checkpoint_dir_nothing_is_added() -> None:
    assert podspec.restart_prelude(podspec.trial_resources(), "exp") == ""


@pytest.mark.parametrize(
    ("volumes", "path"),
    [((), "/ckpt"), (("c:/data:ro",), "/data/ckpt"), (("c:/data",), "relative/ckpt"),
     (("c:/data",), "/elsewhere"), (("c:/data",), "/data/../etc")],
)  # fmt: skip
def test_a_checkpoint_dir_outside_a_writable_volume_is_refused(
    volumes: tuple[str, ...], path: str
) -> None:
    with pytest.raises(UsageError) as err:
        podspec.trial_resources(volumes=list(volumes), checkpoint_dir=path)
    assert "--checkpoint-dir" in err.value.message and "--volume" in (err.value.hint or "")


def test_a_launched_trial_sees_its_restarts_through_the_experiment_it_was_given(
    lab: Lab, tmp_path: Path
) -> None:
    """End to end: `--checkpoint-dir` inside a `--volume` goes into the created Experiment's
    trial command; that command, substituted by Katib, expanded by Kubernetes and run by `sh`
    for the first pod and for its replacement, hands the program 0 then 1 and one directory."""
    mount = tmp_path / "mnt"  # stands for the PVC's mount path inside the pod
    lab.kaniko.auto("succeed")
    result = invoke("--name", "ckpt", "--detach", "--no-preflight", "--volume", f"ckpt:{mount}",
                    "--checkpoint-dir", f"{mount}/runs", *RUN)  # fmt: skip
    assert result.exit_code == 0, result.output
    (exp,) = lab.kube.objects("experiments", NS)
    pod = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    assert {"name": pod["volumes"][0]["name"], "mountPath": str(mount)} in pod["containers"][0][
        "volumeMounts"
    ]
    args = pod["containers"][0]["args"][0]
    for param in exp["spec"]["trialTemplate"]["trialParameters"]:
        args = args.replace("${trialParameters." + param["name"] + "}", "1")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(
        '#!/bin/sh\nprintf "%s|%s" "$LAUNCH_RESTART_COUNT" "$LAUNCH_CHECKPOINT_DIR"\n'
    )
    (bin_dir / "python").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "KATIB_TRIAL_NAME": "ckpt-x7k2"}
    seen = []
    for _ in range(2):  # the first pod, then the one that replaces it after a preemption
        done = subprocess.run(["sh", "-c", kubernetes_expand(args, {}) + " && :"], env=env,
                              capture_output=True, text=True, timeout=30, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        seen.append(done.stdout)
    assert seen == [f"{n}|{mount}/runs/ckpt/ckpt-x7k2" for n in (0, 1)]


def test_render_refuses_a_checkpoint_dir_without_a_volume(lab: Lab) -> None:
    result = invoke("render", "--checkpoint-dir", "/ckpt", *RUN)
    assert result.exit_code == 2
    assert "--checkpoint-dir '/ckpt': not an absolute path inside a writable --volume mount" in (
        result.stderr
    )


_TRAINER = """#!{python}
import os, sys, time
from tensorboardX import SummaryWriter
tb = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--tensorboard_dir="))
start = int(os.environ["LAUNCH_RESTART_COUNT"])
# Files are named by second and host name; each pod has its own host name, these share one.
writer = SummaryWriter(tb, filename_suffix=".pod" + str(start))
for step in range(3):
    writer.add_scalar("loss", 10.0 - start * 3 - step, start * 3 + step)
# close(), not flush(): tensorboardX writes from a queue, and only close() waits for it.
writer.close()
if start == 0:  # the first pod is preempted mid-run: the cluster kills it
    open(os.path.join(os.environ["LAUNCH_CHECKPOINT_DIR"], "ready"), "w").close()
    time.sleep(600)
"""


def test_a_restarted_trials_tensorboard_history_reaches_katibs_collector(
    lab: Lab, tmp_path: Path
) -> None:
    """End to end with a real TensorBoard writer: the program's `--tensorboard_dir` is on the
    volume; the first pod is SIGKILLed mid-run (its emptyDir and shell die with it), the second
    runs to the end. The second pod's collector directory (a fresh emptyDir) then holds the
    events of both starts, and Katib's collector rules (`tfevents.collect_metrics`) see all six
    points; Katib's `&& echo completed` marker follows only the finished start."""
    import os
    import signal
    import sys
    import time

    from launch.contract import TFEVENT_DIR
    from launch.tfevents import MetricObservation, collect_metrics

    mount = tmp_path / "mnt"
    lab.kaniko.auto("succeed")
    result = invoke("--name", "tb", "--detach", "--no-preflight", "--volume", f"ckpt:{mount}",
                    "--checkpoint-dir", f"{mount}/runs", *RUN)  # fmt: skip
    assert result.exit_code == 0, result.output
    (exp,) = lab.kube.objects("experiments", NS)
    args = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ][0]
    for param in exp["spec"]["trialTemplate"]["trialParameters"]:
        args = args.replace("${trialParameters." + param["name"] + "}", "1")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(_TRAINER.format(python=sys.executable))
    (bin_dir / "python").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "KATIB_TRIAL_NAME": "tb-x7k2"}
    trial_dir = mount / "runs" / "tb" / "tb-x7k2"
    collectors = []
    for pod in range(2):
        collector = tmp_path / f"pod{pod}-collector"  # each pod's fresh emptyDir
        collector.mkdir()
        collectors.append(collector)
        # Katib's webhook appends the completion marker to the command (wrapWorkerContainer).
        text = kubernetes_expand(args, {}).replace(TFEVENT_DIR, f"{collector}/")
        text += f" && echo completed > {collector}/$$.pid"
        proc = subprocess.Popen(["sh", "-c", text], env=env, cwd=tmp_path, start_new_session=True)
        if pod == 0:
            deadline = time.monotonic() + 60
            while not (trial_dir / "ready").exists():
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)  # preemption: the pod is gone
        assert proc.wait(timeout=120) == (-signal.SIGKILL if pod == 0 else 0)
    assert not list(collectors[0].iterdir())  # the killed pod never reached the copy
    assert [p.name for p in collectors[1].glob("*.pid")] and (
        next(collectors[1].glob("*.pid")).read_text() == "completed\n"
    )
    seen = collect_metrics(collectors[1], ["loss"], objective_type="minimize")
    # 10, 9, 8 from the first start, 7, 6, 5 from the second: max 10 is only in the first.
    assert seen.observations["loss"] == MetricObservation(min=5.0, max=10.0, latest=5.0)
    assert seen.values == {"loss": 5.0}
    assert seen.event_files == 2  # one file per start, both copied from the volume


_SAVER = """#!{python}
import os, signal, sys, time
def save(signum, frame):
    with open(os.path.join(os.environ["LAUNCH_CHECKPOINT_DIR"], "saved"), "w") as f:
        f.write("step 42")
    sys.exit(143)
signal.signal(signal.SIGTERM, save)
open(os.path.join(os.environ["LAUNCH_CHECKPOINT_DIR"], "ready"), "w").close()
time.sleep(600)
"""


@pytest.mark.parametrize("shell", SHELLS)
def test_a_stopped_pod_passes_sigterm_to_the_program_so_it_can_save(
    tmp_path: Path, shell: str
) -> None:
    """The kubelet stops a preempted pod by sending SIGTERM to the container's main process,
    the `sh -c` shell. The shell forwards it to the program, which saves a checkpoint and
    exits; the shell then ends with a failure (no Katib completion marker) long before the
    grace period's SIGKILL."""
    import os
    import signal
    import sys
    import time

    from launch import katib

    resources = _resources(tmp_path)
    args = podspec.restart_prelude(resources, "exp") + katib.trial_args(
        ["python", "train.py"], {}, [], wrap=podspec.restart_wrap(resources)
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(_SAVER.format(python=sys.executable))
    (bin_dir / "python").chmod(0o755)
    collector = tmp_path / "collector"
    collector.mkdir()
    text = _kubelet(args).replace("/var/log/katib/tfevent/", f"{collector}/")
    text += f" && echo completed > {collector}/$$.pid"
    argv = [shell, "sh", "-c", text] if shell == "busybox" else [shell, "-c", text]
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "KATIB_TRIAL_NAME": "t1"}
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, start_new_session=True)
    trial_dir = tmp_path / "vol" / "runs" / "exp" / "t1"
    try:
        deadline = time.monotonic() + 60
        while not (trial_dir / "ready").exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)  # the kubelet signals the main process only
        assert proc.wait(timeout=30) == 1  # the program's 143 fails the group: not completed
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert (trial_dir / "saved").read_text() == "step 42"
    assert not list(collector.glob("*.pid"))
