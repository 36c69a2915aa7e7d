"""A pure Kubernetes RBAC evaluator for the offline tests: which requests a set of Roles,
ClusterRoles and their bindings (parsed manifests) allows a group. The matching follows
kubernetes/kubernetes pkg/apis/rbac/v1/evaluation_helpers.go (VerbMatches, APIGroupMatches,
ResourceMatches with `*` and `*/<subresource>`, ResourceNameMatches: a rule with resourceNames
never matches a request without a name, such as list or create).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Request:
    """One API request: `verb` on `resource[/subresource]` of `group`, named `name` ("" for
    collections), in `namespace` (None: cluster scope)."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    name: str = ""
    namespace: str | None = None


def rule_allows(rule: Obj, req: Request) -> bool:
    if not ({"*", req.verb} & set(rule.get("verbs") or [])):
        return False
    if not ({"*", req.group} & set(rule.get("apiGroups") or [])):
        return False
    combined = f"{req.resource}/{req.subresource}" if req.subresource else req.resource
    resources = rule.get("resources") or []
    if not any(
        r in ("*", combined) or (req.subresource and r == f"*/{req.subresource}") for r in resources
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or req.name in names


def _bound(binding: Obj, group: str) -> bool:
    return any(
        s.get("kind") == "Group" and s.get("name") == group for s in binding.get("subjects") or []
    )


def rules_for(docs: Iterable[Obj], group: str, namespace: str | None) -> list[Obj]:
    """The rules that apply to members of `group` for requests in `namespace` (None: cluster
    scope): ClusterRoleBindings everywhere, RoleBindings in their own namespace (to a Role of
    that namespace or a ClusterRole)."""
    docs = list(docs)
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs}
    found: list[Obj] = []
    for d in docs:
        ns = d["metadata"].get("namespace")
        if d["kind"] == "ClusterRoleBinding" and _bound(d, group):
            key = ("ClusterRole", None, d["roleRef"]["name"])
        elif d["kind"] == "RoleBinding" and ns == namespace and _bound(d, group):
            ref = d["roleRef"]
            key = (ref["kind"], ns if ref["kind"] == "Role" else None, ref["name"])
        else:
            continue
        if key in roles:
            found += roles[key].get("rules") or []
    return found


def allows(docs: Iterable[Obj], group: str, req: Request) -> bool:
    return any(rule_allows(rule, req) for rule in rules_for(docs, group, req.namespace))
