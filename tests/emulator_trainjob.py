"""Kubeflow Trainer v2.3 and JobSet for the Kubernetes emulator (tests/kube_emulator.py).

A TrainJob (`trainer.kubeflow.org/v1alpha1`) becomes what the real controllers make of it:
- the Trainer: a JobSet (`jobset.x-k8s.io/v1alpha2`) named like the TrainJob, from its runtime
  (a ClusterTrainingRuntime, `torch-distributed` installed), with `spec.trainer` on the `node`
  container (image, command, args, env, resourcesPerNode), the torch plugin's PET_* variables
  and the runtimePatches applied (pkg/runtime/framework/plugins/{jobset,torch});
- JobSet: one Indexed batch Job `<trainjob>-node-0` (the `node` replicated Job, 1 replica),
  labelled with `jobset.sigs.k8s.io/*`;
- the Job controller: one pod per node, `<trainjob>-node-0-<index>-<5 random>`, with the
  completion index as label and annotation, hostname `<trainjob>-node-0-<index>`, subdomain
  `<trainjob>`;
- Katib's pod webhook: every pod whose owners lead to a Trial gets the trial's labels and
  `katib.kubeflow.org/trial` (inject_webhook.go mutatePodMetadata).

Pods are moved by whoever plays the kubelet (KatibController for trials); `sync` then rolls the
pods up as the controllers would: the Job's counts and Complete/Failed, the JobSet's
Completed/Failed, the TrainJob's Complete/Failed and jobsStatus (jobset.go Status). Simplified:
a failed pod fails the Job at once (backoff retries exhausted), and the Job controller's
termination of the other nodes leaves them Failed (exit 143) instead of deleting them.
"""

from __future__ import annotations

import copy
import hashlib
import random
import string
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tests.kube_emulator import (
    LABEL_COMPLETION_INDEX,
    LABEL_CONTROLLER_UID,
    LABEL_JOB_NAME,
    LABEL_JOB_NAME_LEGACY,
    LABEL_TRIAL,
    AdmissionHook,
    ApiError,
    Denied,
    Obj,
    _condition,
    _set_condition,
    node_index,
    now_iso,
)

if TYPE_CHECKING:
    from tests.kube_emulator import KubeEmulator

API_VERSION = "trainer.kubeflow.org/v1alpha1"
JOBSET_API_VERSION = "jobset.x-k8s.io/v1alpha2"
RUNTIME_KIND = "ClusterTrainingRuntime"
NODE = "node"  # pkg/constants: the trainer's replicated Job and its container
MASTER_PORT = 29500  # pkg/constants ContainerTrainerPort
TRAINER_WEBHOOK = "validator.trainjob.trainer.kubeflow.org"

# JobSet (api/jobset/v1alpha2/jobset_types.go) and Job controller labels.
LABEL_JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"
LABEL_JOBSET_UID = "jobset.sigs.k8s.io/jobset-uid"
LABEL_REPLICATED_JOB = "jobset.sigs.k8s.io/replicatedjob-name"
LABEL_REPLICATED_JOB_REPLICAS = "jobset.sigs.k8s.io/replicatedjob-replicas"
LABEL_JOB_INDEX = "jobset.sigs.k8s.io/job-index"
LABEL_JOB_GLOBAL_INDEX = "jobset.sigs.k8s.io/job-global-index"
LABEL_JOB_KEY = "jobset.sigs.k8s.io/job-key"
LABEL_RESTART_ATTEMPT = "jobset.sigs.k8s.io/restart-attempt"
LABEL_ANCESTOR = "trainer.kubeflow.org/trainjob-ancestor-step"
# torch.go EnforceMLPolicy: PET_NODE_RANK comes from the pod's completion index annotation.
RANK_FIELD_PATH = f"metadata.annotations['{LABEL_COMPLETION_INDEX}']"
# torchrun's reserved names (constants.TorchRunReservedEnvNames).
TORCH_ENV = (
    "PET_NNODES",
    "PET_NPROC_PER_NODE",
    "PET_NODE_RANK",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
)

# manifests/base/runtimes/torch_distributed.yaml (Trainer v2.3.0), installed with the Trainer.
TORCH_DISTRIBUTED: Obj = {
    "apiVersion": API_VERSION,
    "kind": RUNTIME_KIND,
    "metadata": {
        "name": "torch-distributed",
        "labels": {"trainer.kubeflow.org/framework": "torch"},
    },
    "spec": {
        "mlPolicy": {"numNodes": 1, "torch": {}},
        "template": {
            "spec": {
                "replicatedJobs": [
                    {
                        "name": NODE,
                        "template": {
                            "metadata": {"labels": {LABEL_ANCESTOR: "trainer"}},
                            "spec": {
                                "template": {
                                    "spec": {
                                        "containers": [
                                            {
                                                "name": NODE,
                                                "image": "pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime",
                                            }
                                        ]
                                    }
                                }
                            },
                        },
                    }
                ]
            }
        },
    },
}

# jobset pkg/constants: the reasons and messages the Trainer copies onto the TrainJob.
COMPLETED = ("AllJobsCompleted", "jobset completed successfully")
FAILED = ("FailedJobs", "jobset failed due to one or more job failures")
JOB_COMPLETE = ("CompletionsReached", "Reached expected number of succeeded pods")
JOB_FAILED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")


def _meta_condition(type_: str, reason: str, message: str) -> Obj:
    """A metav1.Condition (JobSet's and the TrainJob's: no lastUpdateTime), status True."""
    cond = _condition(type_, "True", reason, message)
    cond.pop("lastUpdateTime", None)
    return cond


def _suffix() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=5))


def _owner(obj: Obj) -> Obj:
    meta = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _merge(base: Any, patch: Any) -> Any:
    """Server-side apply, roughly: maps merge, lists of named items merge by name (volumeMounts
    by mountPath), other lists (tolerations, command) are atomic and replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base.get(key), value)
        return out
    if isinstance(base, list) and isinstance(patch, list):
        key = next((k for k in ("name", "mountPath") if all(isinstance(i, dict) and k in i for i in base + patch)), None)  # fmt: skip
        if key is None or not base:
            return copy.deepcopy(patch)
        out = [copy.deepcopy(item) for item in base]
        for item in patch:
            at = next((i for i, old in enumerate(out) if old[key] == item[key]), None)
            if at is None:
                out.append(copy.deepcopy(item))
            else:
                out[at] = _merge(out[at], item)
        return out
    return copy.deepcopy(patch)


def _upsert_env(env: list[Obj], items: Iterable[Obj]) -> list[Obj]:
    out = list(env)
    for item in items:
        out = [e for e in out if e.get("name") != item["name"]] + [item]
    return out


def pod_env(pod: Obj, container: str = NODE) -> dict[str, str]:
    """What the container sees as its environment from the pod spec (values and the fieldRefs
    the kubelet resolves: PET_NODE_RANK is the completion index annotation)."""
    (spec,) = [c for c in pod["spec"]["containers"] if c["name"] == container]
    annotations = pod["metadata"].get("annotations") or {}
    out: dict[str, str] = {}
    for item in spec.get("env") or ():
        if "value" in item:
            out[item["name"]] = item["value"]
        field_path = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath", "")
        if field_path.startswith("metadata.annotations['"):
            out[item["name"]] = annotations.get(field_path[len("metadata.annotations['") : -2], "")
        elif field_path == "metadata.name":
            out[item["name"]] = pod["metadata"]["name"]
    return out


def trainer_validator(kube: KubeEmulator) -> AdmissionHook:
    """The Trainer's TrainJob webhook, the parts launch can trip: the runtime must exist
    (clustertrainingruntime.go ValidateObjects) and spec.trainer.env may not set the PET_*
    variables (torch.go Validate)."""

    def hook(obj: Obj, operation: str, dry_run: bool) -> None:
        spec = obj.get("spec") or {}
        ref = spec.get("runtimeRef") or {}
        if (
            ref.get("kind", RUNTIME_KIND) == RUNTIME_KIND
            and kube.get_object("clustertrainingruntimes", "", ref.get("name", "")) is None
        ):
            raise Denied(
                f'spec.RuntimeRef: Invalid value: {{"name":"{ref.get("name", "")}","apiGroup":'
                f'"trainer.kubeflow.org","kind":"{RUNTIME_KIND}"}}: '
                f'clustertrainingruntimes.trainer.kubeflow.org "{ref.get("name", "")}" not found: '
                "specified clusterTrainingRuntime must be created before the TrainJob is created",
                webhook=TRAINER_WEBHOOK,
                code=422,
            )
        names = sorted(
            {e.get("name") for e in (spec.get("trainer") or {}).get("env") or ()} & set(TORCH_ENV)
        )
        if names:
            raise Denied(
                "spec.trainer.env: Invalid value: ...: must not have reserved envs, invalid envs "
                f"configured: [{' '.join(names)}]",
                webhook=TRAINER_WEBHOOK,
                code=422,
            )

    return hook


class TrainerController:
    """The Trainer, JobSet and Job controllers for TrainJobs (stateless: reads the store)."""

    def __init__(self, kube: KubeEmulator) -> None:
        self.kube = kube

    # ---- create

    def reconcile(self, trainjob: Obj) -> list[Obj]:
        """A new TrainJob: its JobSet, the node Job and one Pending pod per node (none while
        suspended). The pods, by rank."""
        meta, spec = trainjob["metadata"], trainjob.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        if self.kube.get_object("jobsets", ns, name) is not None:
            return self.pods(ns, name)
        runtime = self._runtime(spec)
        if runtime is None:  # deleted after admission: the Trainer cannot build the JobSet
            self.kube.add_event(
                ns, involved_kind="TrainJob", involved_name=name, reason="TrainJobResourcesCreationFailed",
                message=f"ClusterTrainingRuntime {(spec.get('runtimeRef') or {}).get('name')} not found",
                type_="Warning",
            )  # fmt: skip
            return []
        trainer = spec.get("trainer") or {}
        nodes = int(
            trainer.get("numNodes") or runtime["spec"].get("mlPolicy", {}).get("numNodes") or 1
        )
        (rjob,) = [
            j for j in runtime["spec"]["template"]["spec"]["replicatedJobs"] if j["name"] == NODE
        ]
        procs = trainer.get("numProcPerNode") or runtime["spec"].get("mlPolicy", {}).get(
            "torch", {}
        ).get("numProcPerNode", "auto")
        template = self._node_template(trainjob, rjob, nodes, procs)
        suspended = bool(spec.get("suspend"))
        jobset = self.kube.put(
            "jobsets",
            {
                "metadata": {
                    "name": name, "namespace": ns, "labels": dict(meta.get("labels") or {}),
                    "ownerReferences": [_owner(trainjob)],
                },
                "spec": {
                    "replicatedJobs": [{"name": NODE, "replicas": 1, "template": template}],
                    "network": {"enableDNSHostnames": True, "subdomain": name},
                    "successPolicy": {"operator": "All"},
                    **({"suspend": True} if suspended else {}),
                },
                "status": {},
            },
        )  # fmt: skip
        job_name = f"{name}-{NODE}-0"
        jobset_labels = {
            LABEL_JOBSET_NAME: name,
            LABEL_JOBSET_UID: jobset["metadata"]["uid"],
            LABEL_REPLICATED_JOB: NODE,
            LABEL_REPLICATED_JOB_REPLICAS: "1",
            LABEL_JOB_INDEX: "0",
            LABEL_JOB_GLOBAL_INDEX: "0",
            LABEL_JOB_KEY: hashlib.sha1(f"{ns}/{job_name}".encode()).hexdigest(),
            LABEL_RESTART_ATTEMPT: "0",
        }
        job_spec = copy.deepcopy(template["spec"])
        pod_meta = job_spec["template"].setdefault("metadata", {})
        pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **jobset_labels}
        pod_meta["annotations"] = {**(pod_meta.get("annotations") or {}), **{k: v for k, v in jobset_labels.items() if k != LABEL_JOB_KEY}}  # fmt: skip
        job_spec["template"]["spec"].update({"subdomain": name})
        job = self.kube.put(
            "jobs",
            {
                "metadata": {
                    "name": job_name, "namespace": ns,
                    "labels": {**(template.get("metadata") or {}).get("labels", {}), **jobset_labels},
                    "annotations": {k: v for k, v in jobset_labels.items() if k != LABEL_JOB_KEY},
                    "ownerReferences": [_owner(jobset)],
                },
                "spec": {**job_spec, **({"suspend": True} if suspended else {})},
                "status": {},
            },
        )  # fmt: skip
        if not suspended:
            for index in range(nodes):
                self._create_pod(job, index, name)
        self.sync(ns, name)
        return self.pods(ns, name)

    def create_for_trial(self, trial: Obj, run_spec: Obj, labels: Mapping[str, str]) -> list[str]:
        """Katib's trial controller creates the trial's TrainJob, named after the trial, with
        Katib's `labels` (through the API: when the Trainer's webhook refuses it the Trial gets
        a Warning event and no TrainJob); the Trainer makes the rest. The node pods, by rank."""
        ns, name = trial["metadata"]["namespace"], trial["metadata"]["name"]
        trainjob: Obj = {
            **run_spec,
            "metadata": {
                **run_spec["metadata"],
                "labels": {**(run_spec["metadata"].get("labels") or {}), **labels},
                "ownerReferences": [_owner(trial)],
            },
        }
        trainjob.pop("status", None)
        refused = admit(self.kube, trainjob)
        if refused is not None:
            self.kube.add_event(
                ns, involved_kind="Trial", involved_name=name, reason="ReconcileFailed",
                message=str(refused.status["message"]), type_="Warning",
            )  # fmt: skip
            return []
        pods = self.reconcile(self.kube.put("trainjobs", trainjob))
        self.kube.add_event(
            ns, involved_kind="Trial", involved_name=name, reason="JobCreated",
            message=f"Job {name} is created",
        )  # fmt: skip
        return [p["metadata"]["name"] for p in pods]

    def _runtime(self, spec: Obj) -> Obj | None:
        ref = spec.get("runtimeRef") or {}
        if ref.get("kind", RUNTIME_KIND) != RUNTIME_KIND:
            return None  # namespaced TrainingRuntimes are not served
        return self.kube.get_object("clustertrainingruntimes", "", ref.get("name", ""))

    def _node_template(self, trainjob: Obj, rjob: Obj, nodes: int, procs: Any) -> Obj:
        """The node replicated Job's template: the runtime's, spec.trainer on the node container
        (jobset builder.go Trainer), the PET_* variables (torch.go), then the runtimePatches."""
        name, spec = trainjob["metadata"]["name"], trainjob.get("spec") or {}
        trainer = spec.get("trainer") or {}
        template = copy.deepcopy(rjob["template"])
        job_spec = template.setdefault("spec", {})
        pod = job_spec.setdefault("template", {}).setdefault("spec", {})
        containers = pod.setdefault("containers", [])
        if not any(c.get("name") == NODE for c in containers):
            containers.append({"name": NODE})
        node = next(c for c in containers if c["name"] == NODE)
        for key in ("image", "command", "args"):
            if key in trainer:
                node[key] = copy.deepcopy(trainer[key])
        if "resourcesPerNode" in trainer:
            node["resources"] = copy.deepcopy(trainer["resourcesPerNode"])
        node["env"] = _upsert_env(
            _upsert_env(node.get("env") or [], copy.deepcopy(trainer.get("env") or [])),
            [
                {"name": "PET_NNODES", "value": str(nodes)},
                {"name": "PET_NPROC_PER_NODE", "value": str(procs)},
                {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": RANK_FIELD_PATH}}},
                {"name": "PET_MASTER_ADDR", "value": f"{name}-{NODE}-0-0.{name}"},
                {"name": "PET_MASTER_PORT", "value": str(MASTER_PORT)},
            ],
        )  # fmt: skip
        node["ports"] = _merge(node.get("ports") or [], [{"containerPort": MASTER_PORT}])
        for patch in spec.get("runtimePatches") or ():
            patched = ((patch.get("trainingRuntimeSpec") or {}).get("template") or {}).get(
                "spec"
            ) or {}
            for job_patch in patched.get("replicatedJobs") or ():
                if job_patch.get("name") == NODE:
                    template = _merge(template, job_patch.get("template") or {})
        job_spec = template["spec"]
        job_spec.update({"completionMode": "Indexed", "completions": nodes, "parallelism": nodes})
        job_spec["template"]["spec"].setdefault("restartPolicy", "OnFailure")  # JobSet's default
        if spec.get("activeDeadlineSeconds"):
            job_spec["activeDeadlineSeconds"] = spec["activeDeadlineSeconds"]
        return template

    def _create_pod(self, job: Obj, index: int, trainjob: str) -> Obj:
        meta, template = job["metadata"], copy.deepcopy(job["spec"]["template"])
        labels = {
            **(template.get("metadata") or {}).get("labels", {}),
            LABEL_JOB_NAME: meta["name"], LABEL_JOB_NAME_LEGACY: meta["name"],
            LABEL_CONTROLLER_UID: meta["uid"], "controller-uid": meta["uid"],
            LABEL_COMPLETION_INDEX: str(index),
        }  # fmt: skip
        annotations = {
            **(template.get("metadata") or {}).get("annotations", {}),
            LABEL_COMPLETION_INDEX: str(index),
        }
        pod_spec = template.get("spec") or {}
        pod_spec["hostname"] = f"{meta['name']}-{index}"
        pod_spec["subdomain"] = trainjob
        pod = {
            "metadata": {
                "name": f"{meta['name']}-{index}-{_suffix()}",
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [_owner(job)],
            },
            "spec": pod_spec,
            "status": {"phase": "Pending"},
        }
        katib_pod_webhook(self.kube, pod)
        return self.kube.put("pods", pod)

    # ---- read

    def pods(self, ns: str, trainjob: str) -> list[Obj]:
        """The TrainJob's node pods, by rank (then oldest first)."""
        pods = self.kube.objects("pods", ns, f"{LABEL_JOBSET_NAME}={trainjob}")
        return sorted(pods, key=lambda p: (node_index(p), p["metadata"]["creationTimestamp"]))

    def pod(self, ns: str, trainjob: str, rank: int) -> str:
        found = [p for p in self.pods(ns, trainjob) if node_index(p) == rank]
        if not found:
            raise KeyError(f"no pod of rank {rank} for trainjob {ns}/{trainjob}")
        return str(found[-1]["metadata"]["name"])

    # ---- roll-up

    def sync(self, ns: str, trainjob: str) -> Obj:
        """The Job, JobSet and TrainJob statuses from the pods: what the three controllers write
        after the kubelet moved a pod. A failed pod fails the Job and the other nodes are
        terminated (SIGTERM, exit 143). The TrainJob."""
        job_name = f"{trainjob}-{NODE}-0"
        job = self.kube.get_object("jobs", ns, job_name)
        current = self.kube.get_object("trainjobs", ns, trainjob)
        if job is None or current is None:
            raise KeyError(f"trainjob {ns}/{trainjob} has no node Job")
        completions = int(job["spec"].get("completions") or 1)
        pods = self.pods(ns, trainjob)
        failed = [p for p in pods if p["status"].get("phase") == "Failed"]
        if failed:
            for pod in pods:
                if pod["status"].get("phase") not in ("Succeeded", "Failed"):
                    self._sigterm(pod)
            pods = self.pods(ns, trainjob)
        phases = [p["status"].get("phase", "Pending") for p in pods]
        active = sum(phase in ("Pending", "Running") for phase in phases)
        ready = sum(phase == "Running" for phase in phases)
        succeeded, n_failed = phases.count("Succeeded"), phases.count("Failed")
        done = "Failed" if n_failed else "Complete" if succeeded >= completions else None
        job_status: Obj = {
            "active": active,
            "ready": ready,
            "succeeded": succeeded,
            "failed": n_failed,
        }
        if pods and not job.get("status", {}).get("startTime"):
            job_status["startTime"] = now_iso()
        if done == "Complete":
            job_status["completionTime"] = now_iso()
            job_status["conditions"] = [_condition("SuccessCriteriaMet", "True", *JOB_COMPLETE),
                                        _condition("Complete", "True", *JOB_COMPLETE)]  # fmt: skip
        elif done == "Failed":
            job_status["conditions"] = [_condition("FailureTarget", "True", *JOB_FAILED),
                                        _condition("Failed", "True", *JOB_FAILED)]  # fmt: skip
        self.kube.patch("jobs", ns, job_name, {"status": job_status})
        # JobSet counts Jobs: ready when all its pods are ready.
        counts = {
            "name": NODE,
            "ready": int(done is None and ready == completions),
            "succeeded": int(done == "Complete"),
            "failed": int(done == "Failed"),
            "active": int(done is None and active > 0),
            "suspended": int(bool(job["spec"].get("suspend"))),
        }
        jobset_status: Obj = {"replicatedJobsStatus": [counts]}
        trainjob_status: Obj = {"jobsStatus": [dict(counts)]}
        if done is not None:
            jobset_type = "Completed" if done == "Complete" else "Failed"
            reason, message = COMPLETED if done == "Complete" else FAILED
            jobset_status["terminalState"] = jobset_type
            jobset_status["conditions"] = [_meta_condition(jobset_type, reason, message)]
            trainjob_status["conditions"] = _set_condition(
                (current.get("status") or {}).get("conditions") or [],
                _meta_condition(done, reason, message),
            )
        self.kube.patch("jobsets", ns, trainjob, {"status": jobset_status})
        return self.kube.patch("trainjobs", ns, trainjob, {"status": trainjob_status})

    def _sigterm(self, pod: Obj) -> None:
        status = pod.get("status") or {}
        statuses = []
        for cs in status.get("containerStatuses") or ():
            running = (cs.get("state") or {}).get("running")
            if running is None:
                statuses.append(cs)
                continue
            terminated = {"exitCode": 143, "reason": "Error", "startedAt": running.get("startedAt"),
                          "finishedAt": now_iso()}  # fmt: skip
            statuses.append({**cs, "ready": False, "state": {"terminated": terminated}})
        patch: Obj = {"phase": "Failed"}
        if statuses:
            patch["containerStatuses"] = statuses
        self.kube.patch(
            "pods", pod["metadata"]["namespace"], pod["metadata"]["name"], {"status": patch}
        )


def katib_pod_webhook(kube: KubeEmulator, pod: Obj) -> None:
    """Katib's pod webhook, metadata part (inject_webhook.go mutatePodMetadata): a pod whose
    owners lead to a Trial (pod -> Job -> JobSet -> TrainJob -> Trial, getKatibJob) gets the
    trial's labels and `katib.kubeflow.org/trial`. In place."""
    ns = pod["metadata"]["namespace"]
    refs = pod["metadata"].get("ownerReferences") or []
    kinds = {r.kind: r.plural for r in kube.resources}
    for _ in range(8):
        ref = next((r for r in refs if r.get("controller")), None)
        if ref is None or ref.get("kind") not in kinds:
            return
        owner = kube.get_object(kinds[ref["kind"]], ns, ref["name"])
        if owner is None:
            return
        if ref["kind"] == "Trial":
            labels = pod["metadata"].setdefault("labels", {})
            labels.update(owner["metadata"].get("labels") or {})
            labels[LABEL_TRIAL] = owner["metadata"]["name"]
            return
        refs = owner["metadata"].get("ownerReferences") or []


def is_trainjob_trial(trial: Obj) -> bool:
    return ((trial.get("spec") or {}).get("runSpec") or {}).get("kind") == "TrainJob"


def admit(kube: KubeEmulator, trainjob: Obj) -> ApiError | None:
    """Run the TrainJob admission hooks as an API create would; the refusal, if any."""
    try:
        kube._admit(kube.resource("trainjobs"), trainjob, "CREATE", False)
    except ApiError as err:
        return err
    return None


def terminal_condition(trainjob: Obj | None) -> Obj | None:
    """The TrainJob's Complete or Failed condition (True), as Katib's success/failure
    conditions read it."""
    for cond in ((trainjob or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return dict(cond)
    return None


__all__ = [
    "TORCH_DISTRIBUTED",
    "TrainerController",
    "admit",
    "is_trainjob_trial",
    "katib_pod_webhook",
    "node_index",
    "pod_env",
    "terminal_condition",
    "trainer_validator",
]
