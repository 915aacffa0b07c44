"""The suppressions table, the optional SES feedback function and what each role may do with them."""

from __future__ import annotations

from typing import Any

from tests.template.translate import sam_template

SAM = sam_template()
RESOURCES = SAM["Resources"]


def _target(value: Any) -> str | None:
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
        if "Fn::Sub" in value:
            text = value["Fn::Sub"]
            return text.split("${", 1)[1].split(".", 1)[0] if "${" in text else None
    return None


def actions_on(statements: list[dict[str, Any]], resource: str) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if any(_target(t) == resource for t in targets):
            found |= set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    return found


def role_statements(role: str) -> list[dict[str, Any]]:
    return [s for p in RESOURCES[role]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def api_statements() -> list[dict[str, Any]]:
    return [s for p in RESOURCES["ApiFunction"]["Properties"]["Policies"] if "Statement" in p for s in p["Statement"]]


def test_the_suppressions_table_is_one_partition_per_client_kept_encrypted_and_recoverable():
    table = RESOURCES["SuppressionsTable"]
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "client_id", "KeyType": "HASH"},
                                  {"AttributeName": "address", "KeyType": "RANGE"}]  # fmt: skip
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"
    variables = SAM["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["MAILRELAY_SUPPRESSIONS_TABLE"] == {"Ref": "SuppressionsTable"}


def test_each_role_gets_only_the_calls_it_makes_on_the_suppressions_table():
    assert actions_on(api_statements(), "SuppressionsTable") == {
        "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:DeleteItem"}  # fmt: skip
    assert actions_on(role_statements("DeliveryRole"), "SuppressionsTable") == {"dynamodb:PutItem"}
    assert actions_on(role_statements("BridgeTaskRole"), "SuppressionsTable") == {"dynamodb:BatchGetItem"}
    assert actions_on(role_statements("FeedbackRole"), "SuppressionsTable") == {"dynamodb:PutItem"}
    assert actions_on(role_statements("FeedbackRole"), "MessagesTable") == {"dynamodb:GetItem", "dynamodb:PutItem"}


def test_the_feedback_function_exists_only_with_a_topic_and_subscribes_to_it():
    feedback = [n for n in RESOURCES if n.startswith("Feedback")]
    assert sorted(feedback) == ["FeedbackDeadLetterQueue", "FeedbackFunction", "FeedbackFunctionLogs",
                                "FeedbackInvokePermission", "FeedbackRole", "FeedbackSubscription"]  # fmt: skip
    assert {RESOURCES[n].get("Condition") for n in feedback} == {"HasSesFeedback"}
    assert SAM["Conditions"]["HasSesFeedback"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "SesFeedbackTopicArn"}, ""]}]}
    assert SAM["Parameters"]["SesFeedbackTopicArn"]["Default"] == ""
    function = RESOURCES["FeedbackFunction"]["Properties"]
    subscription = RESOURCES["FeedbackSubscription"]["Properties"]
    assert subscription == {"Protocol": "lambda", "Endpoint": {"Fn::GetAtt": ["FeedbackFunction", "Arn"]},
                            "TopicArn": {"Ref": "SesFeedbackTopicArn"}}  # fmt: skip
    permission = RESOURCES["FeedbackInvokePermission"]["Properties"]
    assert permission["Principal"] == "sns.amazonaws.com" and permission["SourceArn"] == {"Ref": "SesFeedbackTopicArn"}
    assert function["DeadLetterQueue"]["TargetArn"] == {"Fn::GetAtt": ["FeedbackDeadLetterQueue", "Arn"]}
    assert actions_on(role_statements("FeedbackRole"), "FeedbackDeadLetterQueue") == {"sqs:SendMessage"}


def test_the_suppression_routes_are_served_by_the_api_function():
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"])
              for e in RESOURCES["ApiFunction"]["Properties"]["Events"].values()}  # fmt: skip
    assert {("GET", "/v1/suppressions"), ("GET", "/v1/suppressions/{email}"), ("PUT", "/v1/suppressions/{email}"),
            ("DELETE", "/v1/suppressions/{email}")} <= routes  # fmt: skip
