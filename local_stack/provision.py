"""Creates the template's queues, tables and bucket in a stand-in (moto) and derives the
environment the functions would see, so the local stack and the tests cannot drift from it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from local_stack.template import load_template


@dataclass
class LocalResources:
    names: dict[str, str] = field(default_factory=dict)  # logical id -> queue URL / table / bucket name
    arns: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    # Variables whose value is a template parameter's default (limits, domains): a developer's own
    # environment may set them differently; the others name local resources and are always ours.
    tunable: frozenset[str] = frozenset()
    queue_attributes: dict[str, dict[str, str]] = field(default_factory=dict)


def provision(session: Any, template: dict[str, Any] | None = None, prefix: str = "mailrelay") -> LocalResources:
    """Create every SQS queue, DynamoDB table (with its indexes and stream), S3 bucket and event bus the
    template declares."""
    template = template or load_template()
    resources: dict[str, Any] = template["Resources"]
    out = LocalResources()
    sqs, ddb, s3 = session.client("sqs"), session.client("dynamodb"), session.client("s3")
    events = session.client("events")
    ordered = sorted(resources.items(), key=lambda kv: "RedrivePolicy" in kv[1].get("Properties", {}))
    for logical, resource in ordered:
        props = resource.get("Properties", {})
        kind = resource["Type"]
        name = f"{prefix}-{logical}".lower()
        if kind == "AWS::SQS::Queue":
            attributes = {k: str(v) for k, v in props.items() if k in _QUEUE_ATTRIBUTES}
            if "RedrivePolicy" in props:
                policy = dict(props["RedrivePolicy"])
                policy["deadLetterTargetArn"] = out.arns[policy["deadLetterTargetArn"]["Fn::GetAtt"][0]]
                attributes["RedrivePolicy"] = json.dumps(policy)
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            out.names[logical] = url
            out.arns[logical] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            out.queue_attributes[logical] = attributes
        elif kind == "AWS::DynamoDB::Table":
            options: dict[str, Any] = {}
            if "GlobalSecondaryIndexes" in props:
                options["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            if "StreamSpecification" in props:
                options["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
            table = ddb.create_table(
                TableName=name,
                AttributeDefinitions=props["AttributeDefinitions"],
                KeySchema=props["KeySchema"],
                BillingMode="PAY_PER_REQUEST",
                **options,
            )["TableDescription"]
            out.names[logical] = name
            out.arns[logical] = table["TableArn"]
            if "LatestStreamArn" in table:
                out.arns[f"{logical}.StreamArn"] = table["LatestStreamArn"]
        elif kind == "AWS::S3::Bucket":
            region = s3.meta.region_name
            config = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            s3.create_bucket(Bucket=name, **config)
            out.names[logical] = name
        elif kind == "AWS::Events::EventBus":
            out.arns[logical] = events.create_event_bus(Name=name)["EventBusArn"]
            out.names[logical] = name
    out.environment = function_environment(template, out, resources)
    if "EventBus" in out.names:  # the events function's own variable (the template picks this bus or a named one)
        out.environment["MAILRELAY_EVENT_BUS_NAME"] = out.names["EventBus"]
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    parameters = template.get("Parameters", {})
    out.tunable = frozenset(
        k for k, v in variables.items() if isinstance(v, dict) and v.get("Ref") in parameters and k in out.environment
    )
    return out


_QUEUE_ATTRIBUTES = {"VisibilityTimeout", "MessageRetentionPeriod", "MaximumMessageSize", "DelaySeconds"}


def function_environment(template: dict[str, Any], out: LocalResources, resources: dict[str, Any]) -> dict[str, str]:
    """Globals' variables with !Ref resolved to local names and parameters to their defaults."""
    params = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    env: dict[str, str] = {}
    for key, value in variables.items():
        if isinstance(value, dict) and "Ref" in value:
            ref = value["Ref"]
            if ref in out.names:
                env[key] = out.names[ref]
            elif ref in params:
                env[key] = params[ref]
        elif not isinstance(value, dict):
            env[key] = str(value)
    return env
