"""template.yaml as deployed: the SAM template, and the CloudFormation aws-sam-translator makes of it, offline.

Translated the way cfn-lint used to (before it validated SAM directly): local CodeUri/ContentUri become
fake S3 URIs, the managed-policy map is a stub (only policy names that SAM must resolve are in it), and
pseudo parameters get fixed values. No AWS credentials and no network are needed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from local_stack.template import load_template, project_root

TEMPLATE = project_root() / "template.yaml"
PSEUDO_PARAMETERS = {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
PSEUDO_PARAMETERS |= {"AWS::StackName": "mailrelay", "AWS::URLSuffix": "amazonaws.com"}
_MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSLambdaSQSQueueExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
}


def sam_template(path: Path | None = None) -> dict[str, Any]:
    return load_template(path or TEMPLATE)


def _fake_code_locations(template: dict[str, Any]) -> None:
    for name, resource in template.get("Resources", {}).items():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = f"s3://mailrelay-build/{name}.zip"
        if resource.get("Type") == "AWS::Serverless::LayerVersion" and isinstance(props.get("ContentUri"), str):
            props["ContentUri"] = f"s3://mailrelay-build/{name}.zip"


def translate(template: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation template SAM would deploy for ``template`` (which is not modified)."""
    sam = copy.deepcopy(template)
    _fake_code_locations(sam)
    parameters = {
        name: spec["Default"] for name, spec in sam.get("Parameters", {}).items() if "Default" in spec
    } | PSEUDO_PARAMETERS
    session = boto3.session.Session(region_name=PSEUDO_PARAMETERS["AWS::Region"])  # only its region is read
    translator = Translator(managed_policy_map=None, sam_parser=Parser(), boto_session=session)
    result: dict[str, Any] = translator.translate(
        sam_template=sam, parameter_values=parameters, get_managed_policy_map=lambda: _MANAGED_POLICIES
    )
    return result
