"""Template policy rules. Each takes the translated CloudFormation template and returns its violations.

Rules run on what SAM deploys (the translator's output), so SAM shorthands (Events, Globals, implicit
roles) cannot hide anything. Parameter references resolve to their defaults.

Encryption rule, per type:
- SQS queue: SqsManagedSseEnabled true or a KmsMasterKeyId (explicit: not relying on the account default).
- DynamoDB table: SSESpecification.SSEEnabled true (KMS; the default AWS-owned key is not enough here).
- S3 bucket: a BucketEncryption rule with a default SSE algorithm.
- SNS topic: a KmsMasterKeyId (SNS has no service-managed encryption at rest by default).
- CloudWatch log group: always encrypted at rest by CloudWatch Logs with a service key; a KmsKeyId is
  optional, so log groups pass with the default encryption (checkov's CKV_AWS_158 is skipped in the template).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

Template = dict[str, Any]
Rule = Callable[[Template], list[str]]

SQS_DEFAULT_VISIBILITY = 30
SQS_DEFAULT_RETENTION = 345_600
LAMBDA_DEFAULT_TIMEOUT = 3
# The function that authenticates every request itself (see ApiFunction in template.yaml) and the one route
# that is public on purpose.
AUTHENTICATING_FUNCTIONS = frozenset({"ApiFunction"})
PUBLIC_ROUTES = frozenset({("GET", "/v1/openapi.json")})
MIN_PYTHON = (3, 12)
PAYLOAD_KEY_PREFIX = "messages/"  # S3PayloadStore.key_for


def resources(template: Template, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") == kind:
            yield name, resource.get("Properties") or {}


def resolve(template: Template, value: Any) -> Any:
    """A literal, or a Ref to a parameter resolved to its default (numbers come back as int)."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        spec = template.get("Parameters", {}).get(value["Ref"])
        if spec is None or "Default" not in spec:
            raise ValueError(f"cannot resolve {value!r}")
        value = spec["Default"]
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def referenced(value: Any) -> str | None:
    """The logical id behind {"Ref": X} or {"Fn::GetAtt": [X, ...]}."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return str(target[0] if isinstance(target, list) else target.split(".")[0])
    return None


def behind_alias(template: Template, target: str | None) -> str | None:
    """The function a logical id invokes: itself, or the function an alias (AutoPublishAlias) points to."""
    resource = template.get("Resources", {}).get(target, {}) if target else {}
    if resource.get("Type") == "AWS::Lambda::Alias":
        return referenced(resource["Properties"]["FunctionName"])
    return target


def _sqs_mappings(template: Template) -> Iterator[tuple[str, dict[str, Any], str, str]]:
    """(mapping id, properties, queue id, function id) for every event source mapping fed by an SQS queue."""
    queues = dict(resources(template, "AWS::SQS::Queue"))
    for name, props in resources(template, "AWS::Lambda::EventSourceMapping"):
        queue = referenced(props.get("EventSourceArn"))
        if queue in queues:
            function = behind_alias(template, referenced(props.get("FunctionName"))) or str(props.get("FunctionName"))
            yield name, props, queue, function


def report_batch_item_failures(template: Template) -> list[str]:
    return [
        f"{name}: SQS mapping without FunctionResponseTypes [ReportBatchItemFailures] (failed records would be lost)"
        for name, props, _, _ in _sqs_mappings(template)
        if "ReportBatchItemFailures" not in (props.get("FunctionResponseTypes") or [])
    ]


def visibility_covers_six_timeouts(template: Template) -> list[str]:
    found = []
    functions = dict(resources(template, "AWS::Lambda::Function"))
    queues = dict(resources(template, "AWS::SQS::Queue"))
    for name, _, queue, function in _sqs_mappings(template):
        timeout = resolve(template, functions.get(function, {}).get("Timeout", LAMBDA_DEFAULT_TIMEOUT))
        visibility = resolve(template, queues[queue].get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY))
        if timeout * 6 > visibility:
            found.append(f"{name}: {queue} VisibilityTimeout {visibility} < 6 x {function} Timeout {timeout}")
    return found


def dead_letter_outlives_source(template: Template) -> list[str]:
    found = []
    queues = dict(resources(template, "AWS::SQS::Queue"))
    for name, props in queues.items():
        redrive = props.get("RedrivePolicy")
        if not redrive:
            continue
        dlq = referenced(redrive.get("deadLetterTargetArn"))
        if dlq not in queues:
            found.append(f"{name}: dead-letter target {redrive.get('deadLetterTargetArn')!r} is not a queue here")
            continue
        source = resolve(template, props.get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION))
        kept = resolve(template, queues[dlq].get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION))
        if kept <= source:
            found.append(f"{name}: DLQ {dlq} keeps messages {kept}s, not longer than the source's {source}s")
    return found


def encrypted_at_rest(template: Template) -> list[str]:
    found = []
    for name, props in resources(template, "AWS::SQS::Queue"):
        if props.get("SqsManagedSseEnabled") is not True and not props.get("KmsMasterKeyId"):
            found.append(f"{name}: SQS queue without SqsManagedSseEnabled or KmsMasterKeyId")
    for name, props in resources(template, "AWS::DynamoDB::Table"):
        if (props.get("SSESpecification") or {}).get("SSEEnabled") is not True:
            found.append(f"{name}: DynamoDB table without SSESpecification.SSEEnabled")
    for name, props in resources(template, "AWS::S3::Bucket"):
        rules = (props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or []
        if not any((r.get("ServerSideEncryptionByDefault") or {}).get("SSEAlgorithm") for r in rules):
            found.append(f"{name}: S3 bucket without default encryption")
    for name, props in resources(template, "AWS::SNS::Topic"):
        if not props.get("KmsMasterKeyId"):
            found.append(f"{name}: SNS topic without KmsMasterKeyId")
    # AWS::Logs::LogGroup: encrypted by CloudWatch Logs by default (see the module docstring).
    return found


def point_in_time_recovery(template: Template) -> list[str]:
    return [
        f"{name}: DynamoDB table without point-in-time recovery"
        for name, props in resources(template, "AWS::DynamoDB::Table")
        if (props.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled") is not True
    ]


def _invoked_function(template: Template, uri: str) -> str | None:
    """The function an integration URI invokes: ``${Fn.Arn}``, or ``${FnAliaslive}`` (a published alias)."""
    if "/functions/${" not in uri:
        return None
    return behind_alias(template, uri.split("/functions/${", 1)[1].split("}", 1)[0].removesuffix(".Arn"))


def http_routes(template: Template) -> Iterator[tuple[str, str, str | None, bool]]:
    """(METHOD, path, function id, has an API Gateway authorizer) for every HTTP API route."""
    for _, props in resources(template, "AWS::ApiGatewayV2::Api"):
        for path, item in ((props.get("Body") or {}).get("paths") or {}).items():
            for method, operation in item.items():
                integration = operation.get("x-amazon-apigateway-integration") or {}
                uri = integration.get("uri", {})
                text = uri.get("Fn::Sub", "") if isinstance(uri, dict) else str(uri)
                text = text[0] if isinstance(text, list) else text
                function = _invoked_function(template, text)
                authorized = bool(operation.get("security"))
                yield method.upper(), path, function, authorized
    for _, props in resources(template, "AWS::ApiGatewayV2::Route"):
        method, _, path = str(props.get("RouteKey", "")).partition(" ")
        yield method, path, None, props.get("AuthorizationType", "NONE") != "NONE"


def routes_authenticate(template: Template) -> list[str]:
    """Every route but the public ones is served by a function that authenticates in its code (or has an
    API Gateway authorizer). This project authenticates in ApiFunction: an HTTP API authorizer can only
    answer a bare 403, not a 401 problem document. tests/template proves ApiFunction answers 401."""
    found = []
    for method, path, function, authorized in http_routes(template):
        if (method, path) in PUBLIC_ROUTES or authorized:
            continue
        if function not in AUTHENTICATING_FUNCTIONS:
            found.append(f"{method} {path}: served by {function!r}, which does not authenticate requests")
    return found


def payload_bucket(template: Template) -> str | None:
    for _, props in resources(template, "AWS::Lambda::Function"):
        bucket = referenced(((props.get("Environment") or {}).get("Variables") or {}).get("MAILRELAY_PAYLOAD_BUCKET"))
        if bucket:
            return bucket
    return None


def payloads_outlive_queues(template: Template) -> list[str]:
    """Leftover payloads may be swept only after a message could still sit in the queue and then the DLQ."""
    bucket = payload_bucket(template)
    if bucket is None:
        return ["no function names a payload bucket (MAILRELAY_PAYLOAD_BUCKET)"]
    queues = dict(resources(template, "AWS::SQS::Queue"))
    longest = 0
    for props in queues.values():
        dlq = referenced((props.get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
        if dlq in queues:
            total = resolve(template, props.get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION)) + resolve(
                template, queues[dlq].get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION)
            )
            longest = max(longest, total)
    rules = ((template["Resources"][bucket].get("Properties") or {}).get("LifecycleConfiguration") or {}).get(
        "Rules"
    ) or []
    found = []
    for rule in rules:
        prefix = rule.get("Prefix") or (rule.get("Filter") or {}).get("Prefix") or ""
        if not PAYLOAD_KEY_PREFIX.startswith(prefix):
            continue  # another part of the bucket (uploads/)
        days = rule.get("ExpirationInDays")
        if rule.get("Status") == "Enabled" and days is not None and resolve(template, days) * 86400 < longest:
            found.append(f"{bucket}: rule {rule.get('Id')} expires payloads after {days} days, before queue + DLQ")
    return found


def bucket_is_private_and_tls_only(template: Template) -> list[str]:
    found = []
    policies = [props for _, props in resources(template, "AWS::S3::BucketPolicy")]
    for name, props in resources(template, "AWS::S3::Bucket"):
        block = props.get("PublicAccessBlockConfiguration") or {}
        flags = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        if not all(block.get(flag) is True for flag in flags):
            found.append(f"{name}: public access block is not complete")
        if not any(referenced(p.get("Bucket")) == name and _denies_plain_http(p) for p in policies):
            found.append(f"{name}: no bucket policy denies requests without TLS (aws:SecureTransport)")
    return found


def _denies_plain_http(policy: dict[str, Any]) -> bool:
    for statement in (policy.get("PolicyDocument") or {}).get("Statement") or []:
        condition = (statement.get("Condition") or {}).get("Bool") or {}
        actions = statement.get("Action")
        actions = actions if isinstance(actions, list) else [actions]
        if (
            statement.get("Effect") == "Deny"
            and str(condition.get("aws:SecureTransport")).lower() == "false"
            and ("s3:*" in actions or "*" in actions)
            and statement.get("Principal") in ("*", {"AWS": "*"})
        ):
            return True
    return False


def log_retention(template: Template) -> list[str]:
    found = [
        f"{name}: log group without RetentionInDays"
        for name, props in resources(template, "AWS::Logs::LogGroup")
        if not props.get("RetentionInDays")
    ]
    groups = {name for name, _ in resources(template, "AWS::Logs::LogGroup")}
    for name, props in resources(template, "AWS::Lambda::Function"):
        # Without its own log group a function logs to /aws/lambda/<name>, created on first use, kept forever.
        if referenced((props.get("LoggingConfig") or {}).get("LogGroup")) not in groups:
            found.append(f"{name}: function does not log to a log group of this template (no retention)")
    return found


def arm64_and_recent_python(template: Template) -> list[str]:
    found = []
    for name, props in resources(template, "AWS::Lambda::Function"):
        if props.get("Architectures") != ["arm64"]:
            found.append(f"{name}: Architectures {props.get('Architectures')!r}, not [arm64]")
        runtime = str(props.get("Runtime", ""))
        version = tuple(int(p) for p in runtime.removeprefix("python").split(".") if p.isdigit())
        if not runtime.startswith("python") or version < MIN_PYTHON:
            found.append(f"{name}: runtime {runtime!r} is older than python{'.'.join(map(str, MIN_PYTHON))}")
    return found


# -- the SMTP bridge as AWS runs it ----------------------------------------------------------------


def _bridge_environment(template: Template) -> dict[str, Any]:
    for _, props in resources(template, "AWS::ECS::TaskDefinition"):
        for container in props.get("ContainerDefinitions") or []:
            return {e["Name"]: e["Value"] for e in container.get("Environment") or []}
    return {}


def _target_group_attributes(props: dict[str, Any]) -> dict[str, Any]:
    return {a["Key"]: a["Value"] for a in props.get("TargetGroupAttributes") or []}


def bridge_sees_client_addresses(template: Template) -> list[str]:
    """Each bridge target group preserves client addresses with PROXY off, and the bridge does not wait for a
    PROXY header. An NLB sends PROXY v2 only with the client's first payload, so a server-first protocol
    (SMTP's 220 on 587) behind it never greets; a bridge waiting for a header nobody sends greets no one."""
    found = []
    bridge_waits = str(_bridge_environment(template).get("MAILRELAY_BRIDGE_PROXY_PROTOCOL", "false")).lower() == "true"
    groups = list(resources(template, "AWS::ElasticLoadBalancingV2::TargetGroup"))
    for name, props in groups:
        attributes = _target_group_attributes(props)
        if str(attributes.get("proxy_protocol_v2.enabled", "false")).lower() == "true":
            found.append(f"{name}: PROXY v2 on an NLB comes only with the client's first payload; SMTP never greets")
        if str(attributes.get("preserve_client_ip.enabled", "false")).lower() != "true":
            found.append(f"{name}: client addresses are not preserved (allow-lists would see the load balancer)")
    if groups and bridge_waits:
        found.append("the bridge waits for a PROXY header (MAILRELAY_BRIDGE_PROXY_PROTOCOL) before its greeting")
    return found


def unprivileged_container_ports(template: Template) -> list[str]:
    """Ports >= 1024 in the container and its target groups: no dependency on a sysctl for a non-root user."""
    found = []
    for name, props in resources(template, "AWS::ECS::TaskDefinition"):
        for container in props.get("ContainerDefinitions") or []:
            for mapping in container.get("PortMappings") or []:
                if int(mapping["ContainerPort"]) < 1024:
                    found.append(f"{name}: container port {mapping['ContainerPort']} is privileged")
            for control in container.get("SystemControls") or []:
                found.append(f"{name}: depends on the system control {control.get('Namespace')}")
    for name, props in resources(template, "AWS::ElasticLoadBalancingV2::TargetGroup"):
        if int(props.get("Port", 1024)) < 1024:
            found.append(f"{name}: target port {props['Port']} is privileged")
    return found


def separate_subnets(template: Template) -> list[str]:
    """The load balancer (public or internal subnets) and the tasks (often private) take separate parameters."""
    lb = [referenced(p.get("Subnets")) for _, p in resources(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")]
    tasks = [
        referenced(((p.get("NetworkConfiguration") or {}).get("AwsvpcConfiguration") or {}).get("Subnets"))
        for _, p in resources(template, "AWS::ECS::Service")
    ]
    shared = set(lb) & set(tasks)
    return [f"the load balancer and the tasks share the subnet parameter {s}" for s in sorted(map(str, shared))]


def _refs(value: Any) -> set[str]:
    """Every name a value refers to: Ref, and ${Name} inside Fn::Sub."""
    if isinstance(value, dict):
        found = {str(value["Ref"])} if "Ref" in value else set()
        sub = value.get("Fn::Sub")
        if sub is not None:
            found |= set(re.findall(r"\$\{([A-Za-z0-9]+)\}", str(sub[0] if isinstance(sub, list) else sub)))
        return found.union(*(_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value))
    return set()


def bridge_parameters_ruled(template: Template) -> list[str]:
    """Every empty-default parameter the bridge's resources need is asserted non-empty by a Rule, so a
    deployment without it is refused with a reason instead of failing midway."""
    parameters = template.get("Parameters", {})
    placeholders = {n for n, spec in parameters.items() if spec.get("Default") in ("", [])}
    needed = set()
    for resource in template.get("Resources", {}).values():
        if resource.get("Condition") == "HasBridge":
            needed |= _refs(resource.get("Properties")) & placeholders
    needed.discard("BridgeImageUri")  # the condition itself
    asserted = set()
    for rule in (template.get("Rules") or {}).values():
        if "BridgeImageUri" in _refs(rule.get("RuleCondition")):
            for assertion in rule.get("Assertions") or []:
                if assertion.get("AssertDescription"):
                    asserted |= _refs(assertion.get("Assert"))
    return [f"no Rule refuses a bridge deployment without {name}" for name in sorted(needed - asserted)]


def alarms_notify(template: Template) -> list[str]:
    found = []
    for name, props in resources(template, "AWS::CloudWatch::Alarm"):
        if not props.get("AlarmActions") or not props.get("OKActions"):
            found.append(f"{name}: notifies nobody (AlarmActions and OKActions)")
    return found


STATEFUL_TABLES = ("MAILRELAY_CLIENTS_TABLE", "MAILRELAY_MESSAGES_TABLE")


def stateful_data_retained(template: Template) -> list[str]:
    """`sam delete` must not take every API key (and the sending history) with it."""
    found = []
    names = set()
    for _, props in resources(template, "AWS::Lambda::Function"):
        variables = (props.get("Environment") or {}).get("Variables") or {}
        names |= {referenced(variables.get(v)) for v in STATEFUL_TABLES} - {None}
    for name in sorted(map(str, names)):
        resource = template["Resources"].get(name, {})
        for policy_name in ("DeletionPolicy", "UpdateReplacePolicy"):
            if resource.get(policy_name) != "Retain":
                found.append(f"{name}: {policy_name} is not Retain")
    return found or ([] if names else ["no function names the clients or messages table"])


def no_broad_managed_policies(template: Template) -> list[str]:
    """AWSLambdaSQSQueueExecutionRole and AWSLambdaDynamoDBExecutionRole (SAM's defaults for SQS and DynamoDB
    events) reach every queue and every stream in the account."""
    found = []
    for name, props in resources(template, "AWS::IAM::Role"):
        for arn in props.get("ManagedPolicyArns") or []:
            if "AWSLambdaSQSQueueExecutionRole" in str(arn) or "AWSLambdaDynamoDBExecutionRole" in str(arn):
                found.append(f"{name}: {arn}")
    return found


def plain_listener_internal_only(template: Template) -> list[str]:
    """A cleartext port-25 listener exists only behind a Rule that refuses it on an internet-facing scheme."""
    plain = [n for n, p in resources(template, "AWS::ElasticLoadBalancingV2::Listener") if int(p.get("Port", 0)) == 25]
    if not plain:
        return []
    for rule in (template.get("Rules") or {}).values():
        for assertion in rule.get("Assertions") or []:
            if "BridgeLoadBalancerScheme" in _refs(assertion.get("Assert")) and "internal" in str(assertion):
                return []
    return [f"{', '.join(plain)}: no Rule keeps the plain listener off internet-facing load balancers"]


# -- delivery events ----------------------------------------------------------------------------------


def _stream_mappings(template: Template) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(mapping id, properties, table id) for every event source mapping fed by a DynamoDB stream."""
    tables = dict(resources(template, "AWS::DynamoDB::Table"))
    for name, props in resources(template, "AWS::Lambda::EventSourceMapping"):
        table = referenced(props.get("EventSourceArn"))
        if table in tables:
            yield name, props, table


def stream_records_never_dropped(template: Template) -> list[str]:
    """A stream record whose events failed is retried until it leaves the stream (24 h), one failing record
    does not hold its batch (bisect, partial failures), and what finally expires is described in a queue.
    Lambda's defaults for MaximumRetryAttempts and MaximumRecordAgeInSeconds are -1 (infinite):
    https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-params.html."""
    found = []
    for name, props, _ in _stream_mappings(template):
        if "ReportBatchItemFailures" not in (props.get("FunctionResponseTypes") or []):
            found.append(f"{name}: stream mapping without ReportBatchItemFailures")
        if props.get("BisectBatchOnFunctionError") is not True:
            found.append(f"{name}: stream mapping without BisectBatchOnFunctionError")
        for limit in ("MaximumRetryAttempts", "MaximumRecordAgeInSeconds"):
            if resolve(template, props.get(limit, -1)) != -1:
                found.append(f"{name}: {limit} {props[limit]} drops records still in the stream")
        if not ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"):
            found.append(f"{name}: no on-failure destination: records that expire unprocessed leave no trace")
    return found


def streams_carry_both_images(template: Template) -> list[str]:
    """Events are derived from the record before and after each write."""
    tables = dict(resources(template, "AWS::DynamoDB::Table"))
    return [
        f"{table}: stream view {view!r}, not NEW_AND_OLD_IMAGES"
        for _, _, table in _stream_mappings(template)
        if (view := (tables[table].get("StreamSpecification") or {}).get("StreamViewType")) != "NEW_AND_OLD_IMAGES"
    ]


def _statements(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, props in resources(template, "AWS::IAM::Role"):
        for policy_doc in props.get("Policies") or []:
            for statement in (policy_doc.get("PolicyDocument") or {}).get("Statement") or []:
                yield name, statement


def event_puts_name_their_bus(template: Template) -> list[str]:
    found = []
    for role, statement in _statements(template):
        actions = statement.get("Action")
        actions = actions if isinstance(actions, list) else [actions]
        if statement.get("Effect") == "Allow" and {"events:PutEvents", "events:*", "*"} & set(actions):
            targets = statement.get("Resource")
            targets = targets if isinstance(targets, list) else [targets]
            if any(t == "*" or (isinstance(t, str) and t.endswith(":*")) for t in targets):
                found.append(f"{role}: events:PutEvents on {targets!r}, not one bus")
    return found


def dead_letters_alarmed(template: Template) -> list[str]:
    """Every queue that receives what could not be processed (a redrive target, a mapping's on-failure
    destination) has an alarm on its depth."""
    queues = dict(resources(template, "AWS::SQS::Queue"))
    dead = {referenced((p.get("RedrivePolicy") or {}).get("deadLetterTargetArn")) for p in queues.values()}
    for _, props in resources(template, "AWS::Lambda::EventSourceMapping"):
        dead.add(referenced(((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")))
    watched = set()
    for _, alarm in resources(template, "AWS::CloudWatch::Alarm"):
        if alarm.get("Namespace") == "AWS/SQS":
            watched |= {referenced(d.get("Value")) for d in alarm.get("Dimensions") or []}
    return [f"{q}: dead-letter queue without an alarm" for q in sorted(map(str, (dead & set(queues)) - watched))]


def webhook_queue_outlives_its_retries(template: Template) -> list[str]:
    """A webhook job is kept through every attempt of the retry schedule, and is not moved to the dead-letter
    queue by its receive count before its last attempt (each attempt is one receive)."""
    from mailrelay.webhooks.settings import DEFAULT_RETRY_SCHEDULE

    found = []
    for _, props, queue, _ in _sqs_mappings(template):
        if referenced(props.get("FunctionName")) != "WebhookFunction":
            continue
        queue_props = template["Resources"][queue].get("Properties") or {}
        retention = resolve(template, queue_props.get("MessageRetentionPeriod", SQS_DEFAULT_RETENTION))
        if retention <= sum(DEFAULT_RETRY_SCHEDULE):
            found.append(
                f"{queue}: keeps jobs {retention}s, not past the retry schedule's {sum(DEFAULT_RETRY_SCHEDULE)}s"
            )
        receives = resolve(template, (queue_props.get("RedrivePolicy") or {}).get("maxReceiveCount", 0))
        if receives <= len(DEFAULT_RETRY_SCHEDULE):
            found.append(f"{queue}: maxReceiveCount {receives} moves jobs away before their last attempt")
    return found or ([] if "WebhookFunction" in template.get("Resources", {}) else ["no webhook function"])


RULES: dict[str, Rule] = {
    "report_batch_item_failures": report_batch_item_failures,
    "visibility_covers_six_timeouts": visibility_covers_six_timeouts,
    "dead_letter_outlives_source": dead_letter_outlives_source,
    "encrypted_at_rest": encrypted_at_rest,
    "point_in_time_recovery": point_in_time_recovery,
    "routes_authenticate": routes_authenticate,
    "payloads_outlive_queues": payloads_outlive_queues,
    "bucket_is_private_and_tls_only": bucket_is_private_and_tls_only,
    "log_retention": log_retention,
    "arm64_and_recent_python": arm64_and_recent_python,
    "bridge_sees_client_addresses": bridge_sees_client_addresses,
    "unprivileged_container_ports": unprivileged_container_ports,
    "separate_subnets": separate_subnets,
    "bridge_parameters_ruled": bridge_parameters_ruled,
    "alarms_notify": alarms_notify,
    "stateful_data_retained": stateful_data_retained,
    "no_broad_managed_policies": no_broad_managed_policies,
    "plain_listener_internal_only": plain_listener_internal_only,
    "stream_records_never_dropped": stream_records_never_dropped,
    "streams_carry_both_images": streams_carry_both_images,
    "event_puts_name_their_bus": event_puts_name_their_bus,
    "dead_letters_alarmed": dead_letters_alarmed,
    "webhook_queue_outlives_its_retries": webhook_queue_outlives_its_retries,
}
