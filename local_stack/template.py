"""Reads template.yaml so local resources match what deploys, with cfn-lint's CloudFormation YAML loader
(it knows every short tag: !Ref, !GetAtt A.B, !Sub, !If, !Condition, ...)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def load_template(path: Path | None = None) -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml  # a second or so to import: only when a template is read

    nodes = cfn_yaml.load(str(path or project_root() / "template.yaml"))
    data: dict[str, Any] = json.loads(json.dumps(nodes))  # plain dicts and strings, not cfn-lint's node types
    return data
