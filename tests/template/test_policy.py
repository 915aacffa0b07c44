"""template.yaml obeys the policy rules, and each rule catches the violation it exists for."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.template import policy
from tests.template.translate import sam_template, translate

SAM = sam_template()
CFN = translate(SAM)

Mutation = Callable[[dict[str, Any]], None]


def props(template: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = template["Resources"][name].setdefault("Properties", {})
    return result


def sqs_event(template: dict[str, Any]) -> dict[str, Any]:
    """The SQS event of the first function that has one (the delivery function)."""
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            for event in (resource["Properties"].get("Events") or {}).values():
                if event["Type"] == "SQS":
                    result: dict[str, Any] = event["Properties"]
                    return result
    raise AssertionError("no SQS-triggered function in the template")


def sqs_function(template: dict[str, Any]) -> dict[str, Any]:
    for resource in template["Resources"].values():
        events = (resource.get("Properties") or {}).get("Events") or {}
        if resource["Type"] == "AWS::Serverless::Function" and any(e["Type"] == "SQS" for e in events.values()):
            result: dict[str, Any] = resource["Properties"]
            return result
    raise AssertionError("no SQS-triggered function in the template")


def stream_event(template: dict[str, Any]) -> dict[str, Any]:
    """The DynamoDB stream event of the events function."""
    (event,) = [e for e in props(template, "EventsFunction")["Events"].values() if e["Type"] == "DynamoDB"]
    result: dict[str, Any] = event["Properties"]
    return result


def first(template: dict[str, Any], kind: str) -> str:
    return next(name for name, r in template["Resources"].items() if r["Type"] == kind)


def target_group_attribute(template: dict[str, Any], name: str, key: str, value: str) -> None:
    attributes = props(template, name)["TargetGroupAttributes"]
    attributes[:] = [a for a in attributes if a["Key"] != key] + [{"Key": key, "Value": value}]


def bridge_env(template: dict[str, Any]) -> dict[str, Any]:
    """The bridge container's environment as a dict view that writes back into the template."""
    container = props(template, "BridgeTaskDefinition")["ContainerDefinitions"][0]

    class Env(dict[str, Any]):
        def __setitem__(self, key: str, value: Any) -> None:
            container["Environment"] = [e for e in container["Environment"] if e["Name"] != key]
            container["Environment"].append({"Name": key, "Value": value})

    return Env()


def add_resource(name: str, resource: dict[str, Any]) -> Mutation:
    return lambda t: t["Resources"].__setitem__(name, resource)


# One (rule, mutation of the SAM template) pair per way to break each rule.
MUTATIONS: dict[str, tuple[str, Mutation]] = {
    "no ReportBatchItemFailures": (
        "report_batch_item_failures",
        lambda t: sqs_event(t).pop("FunctionResponseTypes"),
    ),
    "function timeout above visibility / 6": (
        "visibility_covers_six_timeouts",
        lambda t: sqs_function(t).__setitem__("Timeout", props(t, "DeliveryQueue")["VisibilityTimeout"] // 6 + 1),
    ),
    "queue visibility below 6 x timeout": (
        "visibility_covers_six_timeouts",
        lambda t: props(t, "DeliveryQueue").__setitem__("VisibilityTimeout", 60),
    ),
    "visibility left at the SQS default": (
        "visibility_covers_six_timeouts",
        lambda t: props(t, "DeliveryQueue").pop("VisibilityTimeout"),
    ),
    "DLQ retention equal to the source's": (
        "dead_letter_outlives_source",
        lambda t: props(t, "DeliveryDeadLetterQueue").__setitem__(
            "MessageRetentionPeriod", props(t, "DeliveryQueue")["MessageRetentionPeriod"]
        ),
    ),
    "DLQ retention left at the default (4 days)": (
        "dead_letter_outlives_source",
        lambda t: props(t, "DeliveryDeadLetterQueue").pop("MessageRetentionPeriod"),
    ),
    "queue without SSE": ("encrypted_at_rest", lambda t: props(t, "DeliveryQueue").pop("SqsManagedSseEnabled")),
    "queue with SSE turned off": (
        "encrypted_at_rest",
        lambda t: props(t, "DeliveryDeadLetterQueue").__setitem__("SqsManagedSseEnabled", False),
    ),
    "table without SSE": ("encrypted_at_rest", lambda t: props(t, "ClientsTable").pop("SSESpecification")),
    "bucket without encryption": ("encrypted_at_rest", lambda t: props(t, "PayloadBucket").pop("BucketEncryption")),
    "unencrypted SNS topic": ("encrypted_at_rest", add_resource("Alerts", {"Type": "AWS::SNS::Topic"})),
    "table without PITR": (
        "point_in_time_recovery",
        lambda t: props(t, "MessagesTable").pop("PointInTimeRecoverySpecification"),
    ),
    "PITR disabled": (
        "point_in_time_recovery",
        lambda t: props(t, "IdempotencyTable")["PointInTimeRecoverySpecification"].__setitem__(
            "PointInTimeRecoveryEnabled", False
        ),
    ),
    "route served by a function that does not authenticate": (
        "routes_authenticate",
        lambda t: add_resource(
            "AdminFunction",
            {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "functions/api",
                    "Handler": "admin.handler",
                    "LoggingConfig": {"LogGroup": {"Ref": "ApiFunctionLogs"}},
                    "Events": {
                        "Admin": {
                            "Type": "HttpApi",
                            "Properties": {"ApiId": {"Ref": "HttpApi"}, "Method": "GET", "Path": "/v1/admin"},
                        }
                    },
                },
            },
        )(t),
    ),
    "payload lifecycle shorter than queue + DLQ": (
        "payloads_outlive_queues",
        lambda t: props(t, "PayloadBucket")["LifecycleConfiguration"]["Rules"][0].__setitem__("ExpirationInDays", 20),
    ),
    "bucket without public access block": (
        "bucket_is_private_and_tls_only",
        lambda t: props(t, "PayloadBucket").pop("PublicAccessBlockConfiguration"),
    ),
    "public access block incomplete": (
        "bucket_is_private_and_tls_only",
        lambda t: props(t, "PayloadBucket")["PublicAccessBlockConfiguration"].__setitem__(
            "RestrictPublicBuckets", False
        ),
    ),
    "no TLS-only bucket policy": (
        "bucket_is_private_and_tls_only",
        lambda t: t["Resources"].pop("PayloadBucketPolicy"),
    ),
    "TLS deny turned into an allow": (
        "bucket_is_private_and_tls_only",
        lambda t: props(t, "PayloadBucketPolicy")["PolicyDocument"]["Statement"][0].__setitem__("Effect", "Allow"),
    ),
    "log group without retention": ("log_retention", lambda t: props(t, "ApiFunctionLogs").pop("RetentionInDays")),
    "function logging to its implicit log group": (
        "log_retention",
        lambda t: sqs_function(t).pop("LoggingConfig"),
    ),
    "x86_64 function": ("arm64_and_recent_python", lambda t: sqs_function(t).__setitem__("Architectures", ["x86_64"])),
    "x86_64 by default (Globals)": ("arm64_and_recent_python", lambda t: t["Globals"]["Function"].pop("Architectures")),
    "python3.11 function": ("arm64_and_recent_python", lambda t: sqs_function(t).__setitem__("Runtime", "python3.11")),
    "PROXY v2 on the submission target group": (
        "bridge_sees_client_addresses",
        lambda t: target_group_attribute(t, "BridgeSubmissionTargets", "proxy_protocol_v2.enabled", "true"),
    ),
    "client addresses not preserved": (
        "bridge_sees_client_addresses",
        lambda t: target_group_attribute(t, "BridgeImplicitTlsTargets", "preserve_client_ip.enabled", "false"),
    ),
    "bridge waiting for a PROXY header nobody sends": (
        "bridge_sees_client_addresses",
        lambda t: bridge_env(t).__setitem__("MAILRELAY_BRIDGE_PROXY_PROTOCOL", "true"),
    ),
    "container listening on 587": (
        "unprivileged_container_ports",
        lambda t: props(t, "BridgeTaskDefinition")["ContainerDefinitions"][0]["PortMappings"][0].__setitem__(
            "ContainerPort", 587
        ),
    ),
    "sysctl for privileged ports": (
        "unprivileged_container_ports",
        lambda t: props(t, "BridgeTaskDefinition")["ContainerDefinitions"][0].__setitem__(
            "SystemControls", [{"Namespace": "net.ipv4.ip_unprivileged_port_start", "Value": "0"}]
        ),
    ),
    "one subnet list for load balancer and tasks": (
        "separate_subnets",
        lambda t: props(t, "BridgeService")["NetworkConfiguration"]["AwsvpcConfiguration"].__setitem__(
            "Subnets", {"Ref": "BridgeLoadBalancerSubnetIds"}
        ),
    ),
    "no Rules": ("bridge_parameters_ruled", lambda t: t.pop("Rules")),
    "no rule for the TLS secret": (
        "bridge_parameters_ruled",
        lambda t: t["Rules"]["BridgeNeedsItsNetwork"]["Assertions"].pop(),
    ),
    "alarm without actions": ("alarms_notify", lambda t: props(t, "DeadLetterQueueNotEmptyAlarm").pop("AlarmActions")),
    "alarm without OK actions": ("alarms_notify", lambda t: props(t, "DeliveryFailuresAlarm").pop("OKActions")),
    "clients table deleted with the stack": (
        "stateful_data_retained",
        lambda t: t["Resources"]["ClientsTable"].pop("DeletionPolicy"),
    ),
    "clients table replaced without a copy": (
        "stateful_data_retained",
        lambda t: t["Resources"]["ClientsTable"].pop("UpdateReplacePolicy"),
    ),
    "SAM's SQS policy on the delivery function": (
        "no_broad_managed_policies",
        lambda t: (sqs_function(t).pop("Role"), sqs_function(t).__setitem__("Policies", [])),
    ),
    "plain listener allowed on the internet": (
        "plain_listener_internal_only",
        lambda t: t["Rules"].pop("PlainListenerOnlyInternal"),
    ),
    "stream mapping without partial failures": (
        "stream_records_never_dropped",
        lambda t: stream_event(t).pop("FunctionResponseTypes"),
    ),
    "stream mapping without bisect": (
        "stream_records_never_dropped",
        lambda t: stream_event(t).__setitem__("BisectBatchOnFunctionError", False),
    ),
    "stream records dropped after 3 retries": (
        "stream_records_never_dropped",
        lambda t: stream_event(t).__setitem__("MaximumRetryAttempts", 3),
    ),
    "stream records dropped after an hour": (
        "stream_records_never_dropped",
        lambda t: stream_event(t).__setitem__("MaximumRecordAgeInSeconds", 3600),
    ),
    "no on-failure destination": ("stream_records_never_dropped", lambda t: stream_event(t).pop("DestinationConfig")),
    "stream without the old image": (
        "streams_carry_both_images",
        lambda t: props(t, "MessagesTable")["StreamSpecification"].__setitem__("StreamViewType", "NEW_IMAGE"),
    ),
    "PutEvents on every bus": (
        "event_puts_name_their_bus",
        lambda t: next(
            s
            for s in props(t, "EventsRole")["Policies"][0]["PolicyDocument"]["Statement"]
            if s["Action"] == ["events:PutEvents"]
        ).__setitem__("Resource", "*"),
    ),
    "events dead-letter queue without its alarm": (
        "dead_letters_alarmed",
        lambda t: t["Resources"].pop("EventsDeadLetterQueueNotEmptyAlarm"),
    ),
    "SAM's DynamoDB policy on the events function": (
        "no_broad_managed_policies",
        lambda t: (props(t, "EventsFunction").pop("Role"), props(t, "EventsFunction").__setitem__("Policies", [])),
    ),
    "webhook jobs dropped before the schedule ends": (
        "webhook_queue_outlives_its_retries",
        lambda t: props(t, "WebhookQueue").__setitem__("MessageRetentionPeriod", 86400),
    ),
    "webhook jobs dead-lettered before their last attempt": (
        "webhook_queue_outlives_its_retries",
        lambda t: props(t, "WebhookQueue")["RedrivePolicy"].__setitem__("maxReceiveCount", 5),
    ),
    "webhook dead-letter queue without its alarm": (
        "dead_letters_alarmed",
        lambda t: t["Resources"].pop("WebhookDeadLetterQueueNotEmptyAlarm"),
    ),
    "python3.9 everywhere": (
        "arm64_and_recent_python",
        lambda t: t["Globals"]["Function"].__setitem__("Runtime", "python3.9"),
    ),
}


def test_the_rules_see_what_they_must_check() -> None:
    """Guards against vacuous passes: the translated template has the resources the rules look at."""
    kinds = {r["Type"] for r in CFN["Resources"].values()}
    assert {"AWS::Lambda::EventSourceMapping", "AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::S3::Bucket"} <= kinds
    assert {"AWS::Logs::LogGroup", "AWS::Lambda::Function", "AWS::ApiGatewayV2::Api"} <= kinds
    assert list(policy._sqs_mappings(CFN)), "no SQS event source mapping found"
    assert list(policy._stream_mappings(CFN)), "no DynamoDB stream event source mapping found"
    assert {(m, p) for m, p, _, _ in policy.http_routes(CFN)} >= {("POST", "/v1/messages"), ("GET", "/v1/openapi.json")}
    assert policy.payload_bucket(CFN) == "PayloadBucket"
    assert set(policy.RULES) == {rule for rule, _ in MUTATIONS.values()}, "every rule has a mutation test"


@pytest.mark.parametrize("rule", sorted(policy.RULES))
def test_template_obeys(rule: str) -> None:
    assert policy.RULES[rule](CFN) == []


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_rule_catches(mutation: str) -> None:
    rule, mutate = MUTATIONS[mutation]
    broken = copy.deepcopy(SAM)
    mutate(broken)
    violations = policy.RULES[rule](translate(broken))
    assert violations, f"{rule} did not notice: {mutation}"


def test_sam_template_has_the_report_batch_item_failures_flag_too() -> None:
    """The same rule read on the SAM source: a reviewer sees the flag where it is written."""
    assert "ReportBatchItemFailures" in sqs_event(SAM)["FunctionResponseTypes"]
