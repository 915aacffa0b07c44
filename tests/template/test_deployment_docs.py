"""What the README tells a user to deploy and configure exists in the template and is allowed by it."""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from typing import Any

import pytest

from local_stack.template import project_root
from tests.template.policy import Template, referenced, resources
from tests.template.test_policy import CFN, SAM
from tests.template.translate import PSEUDO_PARAMETERS, translate

README = (project_root() / "README.md").read_text()
OUTPUT_LIKE = re.compile(r"`([A-Z][A-Za-z0-9]*(?:Name|Url|Arn|Endpoint))`")


def _sub(value: Any, template: Template) -> str:
    """A Fn::Sub string with pseudo parameters and parameter defaults filled in."""
    if isinstance(value, dict) and "Fn::Sub" not in value:
        return json.dumps(value)  # a Ref or GetAtt: not a name pattern
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    if isinstance(text, list):
        text = text[0]
    names = PSEUDO_PARAMETERS | {n: str(s.get("Default", "")) for n, s in template.get("Parameters", {}).items()}
    return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: names.get(m.group(1), m.group(0)), str(text))


def delivery_role_secret_patterns(template: Template) -> list[str]:
    """The secret ARNs (glob patterns) the delivery function's role may read."""
    roles = [
        referenced(props.get("Role"))
        for _, props in resources(template, "AWS::Lambda::Function")
        if "MAILRELAY_UPSTREAMS_PARAMETER" in ((props.get("Environment") or {}).get("Variables") or {})
    ]
    patterns: list[str] = []
    for name, props in resources(template, "AWS::IAM::Role"):
        if name not in roles:
            continue
        for policy in props.get("Policies") or []:
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if statement["Effect"] == "Allow" and "secretsmanager:GetSecretValue" in actions:
                    targets = (
                        statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                    )
                    patterns += [_sub(t, template) for t in targets]
    return patterns


def secret_arn(secret_id: str) -> str:
    """The ARN Secrets Manager gives a secret named ``secret_id`` (a name gets a random 6-character suffix)."""
    if secret_id.startswith("arn:"):
        return secret_id
    region, account = PSEUDO_PARAMETERS["AWS::Region"], PSEUDO_PARAMETERS["AWS::AccountId"]
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}-AbCdEf"


def configured_secret_ids(template: Template, readme: str) -> set[str]:
    """Every secret_id the README's examples and the template's own upstream list use."""
    found = set(re.findall(r'"secret_id":\s*"([^"]+)"', readme))
    for _, props in resources(template, "AWS::SSM::Parameter"):
        value = _sub(props["Value"], template)
        found |= {u["secret_id"] for u in json.loads(value) if u.get("secret_id")}
    return found


def unreadable_secrets(template: Template, readme: str) -> list[str]:
    patterns = delivery_role_secret_patterns(template)
    return sorted(
        s
        for s in configured_secret_ids(template, readme)
        if not any(fnmatch.fnmatchcase(secret_arn(s), p) for p in patterns)
    )


def missing_outputs(template: Template, readme: str) -> list[str]:
    known = set(template.get("Outputs", {})) | set(template.get("Parameters", {}))
    return sorted(set(OUTPUT_LIKE.findall(readme)) - known)


def test_every_upstream_secret_in_the_docs_is_readable_by_the_delivery_role() -> None:
    assert configured_secret_ids(CFN, README) >= {"mailrelay/upstream/primary"}
    assert len(configured_secret_ids(CFN, README)) >= 3, "the README's multi-upstream example was not found"
    assert unreadable_secrets(CFN, README) == []


def test_a_secret_outside_the_prefix_is_caught() -> None:
    readme = README + '\n```json\n[{"host": "x", "port": 587, "secret_id": "prod/smtp-password"}]\n```\n'
    assert unreadable_secrets(CFN, readme) == ["prod/smtp-password"]


def test_a_role_limited_to_one_secret_is_caught() -> None:
    broken = copy.deepcopy(SAM)
    statements = broken["Resources"]["DeliveryRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    for statement in statements:
        if statement["Action"] == ["secretsmanager:GetSecretValue"]:
            statement["Resource"] = {"Ref": "UpstreamSecret"}
    assert unreadable_secrets(translate(broken), README) != []


def test_every_output_the_readme_names_exists() -> None:
    assert OUTPUT_LIKE.findall(README), "the README names no outputs"
    assert missing_outputs(CFN, README) == []


@pytest.mark.parametrize("name", ["BridgeLoadBalancerDnsName", "ApiEndpointUrl"])
def test_a_misnamed_output_is_caught(name: str) -> None:
    assert missing_outputs(CFN, README + f"\nRead the `{name}` output.\n") == [name]
