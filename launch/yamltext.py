"""Manifests as YAML text that every reader (kubectl, Go's yaml, PyYAML) reads back the same.

Pure: PyYAML only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes every string a YAML 1.2 reader (kubectl, Go) would take for a number."""


# PyYAML (YAML 1.1) quotes "0.1" but not "1e-05", which go-yaml and YAML 1.2 read as a float.
_LOOKS_SCALAR = re.compile(
    r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$"
    r"|^[-+]?\.?(inf|nan)$|^(true|false|yes|no|on|off|y|n|null|~)$",
    re.IGNORECASE,
)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "'" if _LOOKS_SCALAR.match(data) else ("|" if "\n" in data else None)
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(document: Mapping[str, Any]) -> str:
    """A manifest as block YAML, keys in order, number-like strings quoted for every reader."""
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1 << 16
    )
