"""`launch doctor`'s checks of the services trials and builds use: the registry (push and pull
names, a manifest HEAD through `registry_url` or the API server's service proxy), who can reach it
(kube-proxy's NodePort addresses; the NetworkPolicy in front of it) and MLflow (a real API path for
the tracking URI's host name; `/health` skips MLflow's Host-header check). HTTP goes through
`launch.registry` and `requests`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from launch import cluster as kube
from launch import registry
from launch.doctor_checks import Check, State, cluster_internal
from launch.errors import LaunchError
from launch.settings import Settings

PROBE_REPOSITORY = "launch-doctor/probe"  # a manifest HEAD for it proves a registry answers
_MLFLOW_PROBE = "/api/2.0/mlflow/experiments/search"
_INVALID_HOST = "Invalid Host header"
KUBE_PROXY = ("kube-system", "kube-proxy")  # Talos' DaemonSet (k8stemplates/kube-proxy.go)
_KUBE_PROXY_PATCH = "deploy/talos/patches/kube-proxy.yaml"
_RESYNC = "talosctl -n <control-plane> upgrade-k8s --to <its Kubernetes version>"
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_LOCALHOST = ipaddress.ip_address("127.0.0.1")
_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
_NOT_ENFORCED = "effective only with a CNI that enforces NetworkPolicy (Flannel does not)"


# --------------------------------------------------------------------------- 5. registry


def _split_name(name: str) -> tuple[str, str]:
    """`host[:port][/path]` -> (host[:port], path)."""
    host, _, path = name.strip().removeprefix("http://").removeprefix("https://").partition("/")
    return host, path.strip("/")


def registry_service(push_host: str) -> tuple[str, str, int] | None:
    """(service, namespace, port) of `<svc>.<ns>.svc[.cluster.local]:<port>`, else None."""
    host, _, port = push_host.rpartition(":")
    parts = host.split(".")
    if not port.isdigit() or len(parts) < 3 or parts[2] != "svc":
        return None
    return parts[0], parts[1], int(port)


def check_registry(settings: Settings, state: State, timeout_s: float) -> Check:
    push, pull = str(settings.registry), str(settings.registry_pull)
    push_host, push_path = _split_name(push)
    pull_host, pull_path = _split_name(pull)
    problems: list[str] = []
    fixes: list[str] = []
    if push_path != pull_path:
        problems.append(
            f"push name `{push}` and pull name `{pull}` name different repositories "
            f"(`/{push_path}` vs `/{pull_path}`): images pushed as {push}/<repo> would be "
            f"pulled as {pull}/<repo>"
        )
        fixes.append(
            f"set registry_pull = {pull_host}{'/' + push_path if push_path else ''} "
            "(LAUNCH_REGISTRY_PULL)"
        )
    if cluster_internal(pull_host):
        problems.append(
            f"pull name `{pull_host}` is a cluster-internal name: containerd on the nodes cannot "
            "resolve it"
        )
        fixes.append(
            "set registry_pull to the registry's NodePort address, e.g. 127.0.0.1:30500 "
            "(LAUNCH_REGISTRY_PULL=127.0.0.1:30500), with the nodes' registry mirror for it "
            "(deploy/talos/patches/registry-mirror.yaml)"
        )
    elif ":" not in pull_host and pull_host != push_host:
        problems.append(
            f"pull name `{pull_host}` has no port: nodes would pull over HTTPS on 443, while "
            "the in-cluster registry's NodePort is 30500"
        )
        fixes.append("set registry_pull = 127.0.0.1:30500 (LAUNCH_REGISTRY_PULL)")
    names = f"push {push}, pull {pull}" + (
        f" (nodes must map {pull_host} to the registry: a registry mirror for `{pull_host}`, "
        "deploy/talos/patches/registry-mirror.yaml; not checkable from here)"
        if pull_host != push_host
        else ""
    )

    url = settings.registry_url
    transport: registry.Transport
    if url:
        transport = registry.HttpTransport(str(url), timeout_s=timeout_s)
        where = f"registry_url {transport.base_url}"
        down_fix = (
            "check that the registry runs and that registry_url is right (LAUNCH_REGISTRY_URL; "
            "unset it to go through the API server's service proxy)"
        )
    else:
        service = registry_service(push_host)
        if service is None:
            scheme = "http" if settings.registry_insecure else "https"
            transport = registry.HttpTransport(f"{scheme}://{push_host}", timeout_s=timeout_s)
            where = transport.base_url
            down_fix = "set registry_url to an address of the registry this machine can reach"
        elif not state.api_ok or state.cluster is None:
            if problems:
                return Check(
                    "registry",
                    False,
                    "; ".join(problems) + f"; registry not asked ({state.skip_reason})",
                    "; ".join(fixes),
                )
            return Check("registry", None, state.skip_reason)
        else:
            svc, ns, port = service
            transport = state.cluster.service_proxy(ns, svc, port)
            where = f"the API server's proxy to service {ns}/{svc}:{port}"
            down_fix = (
                f"kubectl -n {ns} get svc,endpoints,pods (the Service `{svc}` and a ready pod "
                f"behind it; deploy: kubectl apply -k deploy/registry), or set registry_url to a "
                "direct address (LAUNCH_REGISTRY_URL)"
            )
    try:
        # The request a launch makes first (the image-reuse check): a HEAD of a manifest. A
        # Distribution registry answers 404 with its API header; anything else raises.
        registry.manifest_digest(repository=PROBE_REPOSITORY, tag="doctor", transport=transport)
    except LaunchError as err:
        problems.append(f"the registry did not answer through {where}: {err.message}")
        rbac = isinstance(err, kube.ClusterError) and err.status == 403
        fixes.append(err.hint if rbac and err.hint else down_fix)
    if problems:
        return Check("registry", False, "; ".join(problems), "; ".join(fixes))
    gate, gate_fix = _gate(settings, transport)
    if gate_fix:
        return Check("registry", False, gate, gate_fix)
    return Check("registry", True, f"a manifest HEAD answers through {where}; {names}{gate}")


def _gate(settings: Settings, transport: registry.Transport) -> tuple[str, str]:
    """(what the registry's gate says of this user's pushes, the fix when they would be
    refused): one GET of its who-am-I path, with `registry_token` when set."""
    from launch.registry_gate import HEADER, WHOAMI_PATH

    token = settings.registry_token
    try:
        status, _, body = transport.request("GET", WHOAMI_PATH, {HEADER: token} if token else {})
    except LaunchError:
        return "", ""  # the registry answered the HEAD just before: not worth a second failure
    if status == 404:
        unused = "; registry_token is set but this registry has no gate" if token else ""
        return f"; no push gate (anyone who reaches it may push any tag){unused}", ""
    if status == 200:
        prefix = body.decode(errors="replace").strip()
        return f"; the push gate puts your images under {prefix}/", ""
    where = settings.source("registry_token")
    if token:
        return (
            f"the registry's push gate does not know your registry_token (from {where})",
            "check the token, or ask the cluster admin for one (docs/cluster-setup.md, "
            '"Registry push tokens")',
        )
    return (
        "the registry's push gate admits pushes by token only, and no registry_token is set",
        'ask the cluster admin for a push token (docs/cluster-setup.md, "Registry push '
        'tokens") and set LAUNCH_REGISTRY_TOKEN, or `registry_token` in your user settings file',
    )


# --------------------------------------------------------------------------- 6. nodeports


def _flags(argv: list[str]) -> dict[str, list[str]]:
    """The `--name=value` / `--name value` flags of a command line, each name's values in order."""
    found: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        if argv[i].startswith("--"):
            name, eq, value = argv[i][2:].partition("=")
            if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                i += 1
                value = argv[i]
            found.setdefault(name, []).append(value)
        i += 1
    return found


def _config_file(
    c: kube.Cluster, namespace: str, pod: Mapping[str, Any], container: Mapping[str, Any], path: str
) -> dict[str, Any] | None:
    """kube-proxy's --config file when it comes from a ConfigMap volume (kubeadm's layout);
    None when it does not. Talos passes flags and no file."""
    import yaml

    for mount in container.get("volumeMounts") or []:
        root = str(mount.get("mountPath", "")).rstrip("/") + "/"
        if not path.startswith(root):
            continue
        volumes = [v for v in pod.get("volumes") or [] if v.get("name") == mount.get("name")]
        volume: Mapping[str, Any] = volumes[0] if volumes else {}
        name = (volume.get("configMap") or {}).get("name")
        found = c.find("ConfigMap", namespace, name) if name else None
        text = ((found or {}).get("data") or {}).get(path[len(root) :])
        doc = yaml.safe_load(text) if text else None
        return doc if isinstance(doc, dict) else None
    return None


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A --nodeport-addresses entry as a network; None for a keyword ("primary")."""
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def _in_loopback(entry: str) -> bool:
    net = _network(entry)
    return net is not None and any(
        net.version == lo.version and net.subnet_of(lo)  # type: ignore[arg-type]
        for lo in _LOOPBACK
    )


def check_nodeports(state: State) -> Check:
    """kube-proxy serves NodePorts on loopback only (nodes pull 127.0.0.1:30500), in iptables
    mode (the only one that serves them on 127.0.0.1). Reads the DaemonSet kube-system/kube-proxy:
    Talos puts kube-proxy's flags in its command; a --config file is read from its ConfigMap."""
    if not state.api_ok or state.cluster is None:
        return Check("nodeports", None, state.skip_reason)
    c = state.cluster
    ns, name = KUBE_PROXY
    try:
        ds = c.find("DaemonSet", ns, name)
        if ds is None:
            return Check(
                "nodeports",
                None,
                f"skipped: no DaemonSet {ns}/{name} (kube-proxy is disabled or replaced by the "
                "CNI): NodePort addresses not checked",
                "limit NodePorts to loopback in the CNI's own settings (nodes pull from "
                "127.0.0.1:30500); docs/cluster-setup.md, threat model",
            )
        pod = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        containers = pod.get("containers") or [{}]
        container = next((x for x in containers if x.get("name") == name), containers[0])
        flags = _flags([*(container.get("command") or []), *(container.get("args") or [])])
        config = (
            _config_file(c, ns, pod, container, flags["config"][-1]) if "config" in flags else None
        )
    except kube.ClusterError as err:
        if err.status == 403:
            return Check(
                "nodeports",
                None,
                f"skipped: cannot read kube-proxy config (needs get on daemonsets in {ns}"
                + (
                    ", and configmaps for its --config file)"
                    if "configmaps" in err.message
                    else ")"
                ),
                f"{err.hint}; deploy/registry/launch-user.yaml grants the DaemonSet to launch-users, "
                "or an admin runs `launch doctor`",
            )
        return Check(
            "nodeports", False, f"cannot read kube-proxy's DaemonSet: {err.message}", err.hint
        )
    if config is not None:  # kube-proxy ignores these flags when it reads a config file
        where = f"kube-proxy's config file {flags['config'][-1]}"
        mode = str(config.get("mode") or "iptables")
        entries = [str(x) for x in config.get("nodePortAddresses") or []]
        localhost = (config.get("iptables") or {}).get("localhostNodePorts") is not False
    else:
        where = f"the command of DaemonSet {ns}/{name}"
        mode = (flags.get("proxy-mode") or ["iptables"])[-1] or "iptables"
        entries = [x.strip() for v in flags.get("nodeport-addresses", []) for x in v.split(",")]
        entries = [x for x in entries if x]
        localhost = (flags.get("iptables-localhost-nodeports") or ["true"])[-1] != "false"
    problems: list[str] = []
    fixes: list[str] = []
    limit = f"cluster.proxy.extraArgs nodeport-addresses: 127.0.0.0/8 ({_KUBE_PROXY_PATCH})"
    if mode != "iptables":
        problems.append(
            f"kube-proxy runs in `{mode}` mode: only iptables mode serves NodePorts on 127.0.0.1, "
            "so nodes cannot pull from the registry's NodePort"
        )
        fixes.append(f"cluster.proxy.mode: iptables ({_KUBE_PROXY_PATCH})")
    outside = [x for x in entries if not _in_loopback(x)]
    if not entries:
        problems.append(
            "kube-proxy serves NodePorts on every address of every node (no "
            "--nodeport-addresses): anyone who reaches a node on the registry's NodePort can "
            "push and pull any image"
        )
        fixes.append(f"limit them to loopback: {limit}")
    elif outside:
        problems.append(
            f"kube-proxy serves NodePorts on {', '.join(outside)} besides loopback "
            f"(--nodeport-addresses={','.join(entries)}): whoever reaches those addresses on the "
            "registry's NodePort can push and pull any image"
        )
        fixes.append(f"limit them to loopback: {limit}")
    elif mode == "iptables" and not (
        localhost and any(_LOCALHOST in n for x in entries if (n := _network(x)) is not None)
    ):
        why = "--iptables-localhost-nodeports=false" if not localhost else "no range holds it"
        problems.append(
            f"kube-proxy does not serve NodePorts on 127.0.0.1 ({why}): nodes cannot pull from "
            "127.0.0.1:30500"
        )
        fixes.append(f"{limit}, and iptables-localhost-nodeports left at its default (true)")
    if problems:
        fixes.append(
            f"then `talosctl patch mc` the control-plane nodes and {_RESYNC} (Talos re-applies "
            "kube-proxy's DaemonSet only then)"
        )
        return Check(
            "nodeports", False, f"{'; '.join(problems)} (read from {where})", "; ".join(fixes)
        )
    return Check(
        "nodeports",
        True,
        f"kube-proxy (iptables mode) serves NodePorts on {', '.join(entries)} only: nodes pull "
        "from 127.0.0.1, no node address exposes the registry's NodePort",
    )


# --------------------------------------------------------------------------- 7. netpolicy


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels, matchExpressions) matches `labels`; {} matches all."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        has = key in labels
        if (
            (op == "In" and not (has and labels[key] in values))
            or (op == "NotIn" and has and labels[key] in values)
            or (op == "Exists" and not has)
            or (op == "DoesNotExist" and has)
        ):
            return False
    return True


def _admits_all(peer: Mapping[str, Any]) -> bool:
    """A peer every pod of every namespace (or every address) matches."""
    block = peer.get("ipBlock")
    if block is not None:
        net = _network(str(block.get("cidr", "")))
        return net is not None and net.prefixlen == 0
    return peer.get("namespaceSelector") == {} and not (peer.get("podSelector") or {})


def _sources(rule: Mapping[str, Any], policy_ns: str) -> str:
    peers = rule.get("from") or []
    if not peers:
        return "every source"
    shown = []
    for peer in peers:
        if "ipBlock" in peer:
            shown.append(str(peer["ipBlock"].get("cidr")))
            continue
        ns_sel = peer.get("namespaceSelector")
        names = [
            v
            for e in (ns_sel or {}).get("matchExpressions") or []
            if e.get("key") == _NAME_LABEL and e.get("operator") == "In"
            for v in e.get("values") or []
        ] + [v for k, v in ((ns_sel or {}).get("matchLabels") or {}).items() if k == _NAME_LABEL]
        where = (
            f"namespace `{policy_ns}`"
            if ns_sel is None
            else (f"namespace{'s' if len(names) > 1 else ''} " + ", ".join(f"`{n}`" for n in names))
            if names
            else "selected namespaces"
        )
        shown.append(("some pods" if peer.get("podSelector") else "pods") + f" of {where}")
    return ", ".join(shown)


def check_netpolicy(settings: Settings, state: State, namespace: str) -> Check:
    """A NetworkPolicy selects the registry's pods (by its Service's selector), admits the user
    namespace's pods (builds push) and does not admit everyone. Whether the CNI enforces it is
    not visible through the API: the detail says so."""
    if not state.api_ok or state.cluster is None:
        return Check("netpolicy", None, state.skip_reason)
    if isinstance(state.namespace_error, kube.NotFoundError):
        return Check("netpolicy", None, f"skipped: namespace `{namespace}` does not exist")
    service = registry_service(_split_name(str(settings.registry))[0])
    if service is None:
        return Check(
            "netpolicy",
            None,
            f"skipped: the registry `{settings.registry}` is not an in-cluster Service",
        )
    svc, ns, _ = service
    c = state.cluster
    try:
        found = c.find("Service", ns, svc)
        if found is None:
            return Check("netpolicy", None, f"skipped: no Service {ns}/{svc} (see registry)")
        labels = dict((found.get("spec") or {}).get("selector") or {})
        if not labels:
            return Check("netpolicy", None, f"skipped: Service {ns}/{svc} selects no pods")
        policies = c.list("NetworkPolicy", ns)
    except kube.ClusterError as err:
        if err.status == 403:
            return Check(
                "netpolicy",
                None,
                f"skipped: cannot read NetworkPolicies (needs list on networkpolicies in {ns})",
                f"{err.hint}; deploy/registry/launch-user.yaml grants it to launch-users, or an "
                "admin runs `launch doctor`",
            )
        return Check("netpolicy", False, f"cannot list NetworkPolicies: {err.message}", err.hint)
    pods = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    guarding = [
        p
        for p in policies
        if selects((p.get("spec") or {}).get("podSelector"), labels)
        and "Ingress" in ((p.get("spec") or {}).get("policyTypes") or ["Ingress"])
    ]
    if not guarding:
        return Check(
            "netpolicy",
            False,
            f"no NetworkPolicy in `{ns}` selects the registry's pods ({pods}): any pod of any "
            "namespace can push to the registry",
            "kubectl apply -k deploy/registry (deploy/registry/networkpolicy.yaml); it needs a CNI "
            "that enforces NetworkPolicy (docs/cluster-setup.md, threat model)",
        )
    rules = [
        (str(p["metadata"]["name"]), rule)
        for p in guarding
        for rule in (p.get("spec") or {}).get("ingress") or []
    ]
    shown = "; ".join(f"`{name}` admits {_sources(rule, ns)}" for name, rule in rules) or (
        "they admit nothing"
    )
    names = ", ".join(f"`{p['metadata']['name']}`" for p in guarding)
    wide = [n for n, rule in rules if not rule.get("from") or any(map(_admits_all, rule["from"]))]
    if wide:
        return Check(
            "netpolicy",
            False,
            f"NetworkPolicy `{wide[0]}` admits every source to the registry's pods ({shown}): "
            "policies add up, so any pod can push to the registry",
            f"narrow it to the user namespace's pods (deploy/registry/networkpolicy.yaml): "
            f"kubectl -n {ns} edit networkpolicy {wide[0]}",
        )
    user = {**(state.namespace_labels or {}), _NAME_LABEL: namespace}
    if not any(
        any(
            "ipBlock" not in peer and selects(peer.get("namespaceSelector"), user)
            for peer in rule.get("from") or []
            if peer.get("namespaceSelector") is not None or ns == namespace
        )
        for _, rule in rules
    ):
        return Check(
            "netpolicy",
            False,
            f"NetworkPolicies {names} select the registry's pods but do not admit pods of "
            f"`{namespace}` ({shown}): with an enforcing CNI, build Jobs there cannot push",
            f"add `{namespace}` to the namespaces in deploy/registry/networkpolicy.yaml, then "
            "kubectl apply -k deploy/registry",
        )
    return Check(
        "netpolicy",
        True,
        f"NetworkPolicy {names} selects the registry's pods ({pods}): {shown}; {_NOT_ENFORCED}",
    )


# --------------------------------------------------------------------------- 9. mlflow


def check_mlflow(settings: Settings, timeout_s: float) -> Check:
    uri = settings.mlflow_tracking_uri
    if not uri:
        return Check(
            "mlflow",
            None,
            "skipped: mlflow_tracking_uri is not set (trials get no MLflow server)",
        )
    parts = urlsplit(str(uri))
    if parts.scheme not in ("http", "https"):
        if parts.scheme in ("", "file", "sqlite"):
            return Check(
                "mlflow",
                False,
                f"mlflow_tracking_uri `{uri}` is a local store: trial pods cannot reach it",
                "set mlflow_tracking_uri to the in-cluster server, e.g. "
                "LAUNCH_MLFLOW_TRACKING_URI=http://mlflow.launch-system.svc.cluster.local:5000",
            )
        return Check("mlflow", None, f"skipped: `{parts.scheme}:` tracking URIs are not checked")
    host_header = parts.netloc.rpartition("@")[2]
    hostname = parts.hostname or host_header
    base = f"{parts.scheme}://{host_header}{parts.path.rstrip('/')}"
    ui_url = settings.mlflow_url

    probes: list[tuple[str, str, str | None]] = []  # (what, base URL, Host header)
    if cluster_internal(host_header) and ui_url:
        # This machine cannot resolve the in-cluster name: ask the server at mlflow_url,
        # sending the Host header trials will send.
        probes.append(
            (f"{uri} (via mlflow_url {ui_url}, Host: {host_header})", ui_url, host_header)
        )
    else:
        probes.append((str(uri), base, None))
    if ui_url and str(ui_url).rstrip("/") != base:
        probes.append((f"mlflow_url {ui_url}", str(ui_url), None))

    server = _mlflow_server_ref(hostname)
    for what, url, host in probes:
        asked_host = host or urlsplit(url).netloc.rpartition("@")[2]
        try:
            status, body = _http_get(
                url.rstrip("/") + _MLFLOW_PROBE,
                params={"max_results": "1"},
                headers={"Host": host} if host else {},
                timeout=timeout_s,
            )
        except OSError as err:
            unresolvable = cluster_internal(urlsplit(url).netloc)
            timed_out = str(err) == "timed out"
            return Check(
                "mlflow",
                False,
                f"MLflow at {what} did not answer within {timeout_s:g} s"
                if timed_out
                else f"cannot reach MLflow at {what}: {err}",
                (
                    f"this machine cannot resolve `{urlsplit(url).hostname}`: "
                    "kubectl -n launch-system port-forward svc/mlflow 5000:5000, then "
                    "LAUNCH_MLFLOW_URL=http://localhost:5000 (`mlflow_url`, used for links too)"
                    if unresolvable
                    else f"check the server ({server['check']}) and mlflow_tracking_uri / "
                    "mlflow_url (`launch config`)"
                ),
            )
        if status == 403 and _INVALID_HOST in body:
            name = asked_host.rsplit(":", 1)[0] if asked_host.count(":") == 1 else asked_host
            return Check(
                "mlflow",
                False,
                f"MLflow at {what} answered 403 Invalid Host header: MLflow >= 3.5 refuses "
                f"host names missing from its --allowed-hosts, and `{asked_host}` is missing",
                f"add `{name}` and `{name}:*` to the server's --allowed-hosts "
                f"({server['edit']}; the flag replaces the defaults, so keep localhost and "
                "127.0.0.1 in it)",
            )
        if status != 200:
            return Check(
                "mlflow",
                False,
                f"MLflow at {what}: GET {_MLFLOW_PROBE} answered {status}: {body[:200].strip()}",
                "is this an MLflow server (and the URI without a path prefix)? Check "
                "mlflow_tracking_uri / mlflow_url (`launch config`)"
                if status == 404
                else f"check the server: {server['check']}",
            )
    return Check(
        "mlflow",
        True,
        "the MLflow API answers for " + " and ".join(what for what, _, _ in probes),
    )


def _mlflow_server_ref(hostname: str) -> dict[str, str]:
    """How to look at / edit the server behind an in-cluster name (deploy/mlflow otherwise)."""
    parts = hostname.split(".")
    if len(parts) >= 3 and parts[2] == "svc":
        svc, ns = parts[0], parts[1]
    else:
        svc, ns = "mlflow", "launch-system"
    return {
        "check": f"kubectl -n {ns} get pods,svc,endpoints {svc}; kubectl -n {ns} logs "
        f"deployment/{svc}",
        "edit": f"deploy/mlflow/deployment.yaml, then kubectl apply -k deploy/mlflow; or "
        f"kubectl -n {ns} edit deployment {svc}",
    }


def _http_get(
    url: str, *, params: Mapping[str, str], headers: Mapping[str, str], timeout: float
) -> tuple[int, str]:
    """GET with requests; connection problems become OSError (requests' own subclass it)."""
    import requests

    try:
        response = requests.get(
            url, params=params, headers=dict(headers), timeout=timeout, allow_redirects=False
        )
    except requests.exceptions.RequestException as err:
        raise OSError(_short_reason(err)) from None
    return response.status_code, response.text


def _short_reason(err: Exception) -> str:
    text = str(err)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "Temporary failure in name resolution",
        "No address associated with hostname",
        "No route to host",
        "timed out",
    ):
        if marker in text:
            return marker.lower()
    return text[:200]
