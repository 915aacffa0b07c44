"""The SnapStart parameter: off by default; on, the API and delivery functions are snapshotted when a version
is published, and what invokes them (the HTTP API, the queue) invokes that published version."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.template.translate import sam_template, translate

FUNCTIONS = ("ApiFunction", "DeliverFunction")


def deployed(snapstart: str | None) -> dict[str, Any]:
    """The CloudFormation SAM makes of the template, with SnapStart=``snapstart`` (None: its default)."""
    sam = copy.deepcopy(sam_template())
    if snapstart is not None:
        sam["Parameters"]["SnapStart"]["Default"] = snapstart
    cfn = translate(sam)
    cfn["_parameters"] = {name: spec.get("Default") for name, spec in sam["Parameters"].items()}
    return cfn


def resolve(value: Any, cfn: dict[str, Any]) -> Any:
    """Fn::If on a condition of the form Fn::Equals [Ref Parameter, value], as CloudFormation decides it."""
    if isinstance(value, dict) and "Fn::If" in value:
        condition, when_true, when_false = value["Fn::If"]
        left, right = cfn["Conditions"][condition]["Fn::Equals"]
        return when_true if cfn["_parameters"][left["Ref"]] == right else when_false
    return value


def apply_on(cfn: dict[str, Any], function: str) -> Any:
    return resolve(cfn["Resources"][function]["Properties"]["SnapStart"]["ApplyOn"], cfn)


@pytest.fixture(scope="module")
def default() -> dict[str, Any]:
    return deployed(None)


@pytest.fixture(scope="module")
def enabled() -> dict[str, Any]:
    return deployed("enabled")


def test_snapstart_is_off_unless_asked_for(default):
    assert default["_parameters"]["SnapStart"] == "disabled"
    assert [apply_on(default, f) for f in FUNCTIONS] == ["None", "None"]


def test_enabled_it_snapshots_the_published_versions_of_both_functions(enabled):
    assert [apply_on(enabled, f) for f in FUNCTIONS] == ["PublishedVersions", "PublishedVersions"]
    resources = enabled["Resources"]
    for function in FUNCTIONS:
        props = resources[function]["Properties"]
        # What SnapStart supports: Python 3.12 or later, no EFS, no provisioned concurrency, <= 512 MB /tmp
        runtime = props["Runtime"]
        assert runtime.startswith("python3.") and int(runtime.split(".")[1]) >= 12
        assert "FileSystemConfigs" not in props
        assert props.get("EphemeralStorage", {}).get("Size", 512) <= 512
        alias = resources[f"{function}Aliaslive"]["Properties"]
        assert "ProvisionedConcurrencyConfig" not in alias
        version = alias["FunctionVersion"]["Fn::GetAtt"][0]
        assert resources[version]["Type"] == "AWS::Lambda::Version"


@pytest.mark.parametrize("snapstart", ["disabled", "enabled"])
def test_the_api_and_the_queue_invoke_the_published_alias_either_way(snapstart):
    cfn = deployed(snapstart)
    resources = cfn["Resources"]
    # the queue's event source mapping, and the HTTP API's integrations and their permissions
    (mapping,) = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"
                  and r["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["DeliveryQueue", "Arn"]}]  # fmt: skip
    assert mapping["Properties"]["FunctionName"] == {"Ref": "DeliverFunctionAliaslive"}
    api = json.dumps(resources["HttpApi"]["Properties"])
    assert "ApiFunctionAliaslive" in api and "ApiFunction.Arn" not in api
    permissions = [r["Properties"]["FunctionName"] for r in resources.values()
                   if r["Type"] == "AWS::Lambda::Permission" and "ApiFunction" in json.dumps(r["Properties"])
                   and r["Properties"]["Principal"] == "apigateway.amazonaws.com"]  # fmt: skip
    assert permissions and all(p == {"Ref": "ApiFunctionAliaslive"} for p in permissions)
