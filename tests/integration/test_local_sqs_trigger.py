"""The local SQS trigger batches as Lambda's event source mapping does, so the local stack's hand-off
time is what a deployment with the template's settings would see."""

from __future__ import annotations

import threading

import boto3
import pytest

from local_stack.sqs_poller import SqsPoller
from local_stack.stack import batching_window
from local_stack.template import load_template


@pytest.fixture
def queue(aws) -> tuple[object, str, str]:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="trigger-test")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, url, arn


def _poller(queue, batches: list[list[str]], **settings) -> SqsPoller:
    sqs, url, arn = queue

    def handler(event, context):
        batches.append([r["body"] for r in event["Records"]])
        return {"batchItemFailures": []}

    return SqsPoller(sqs, url, arn, handler, **settings)


def test_the_template_delivers_without_a_batching_window():
    deliver = load_template()["Resources"]["DeliverFunction"]["Properties"]
    assert batching_window(next(e["Properties"] for e in deliver["Events"].values() if e["Type"] == "SQS")) == 0


def test_without_a_window_a_lone_message_is_handed_over_at_once(queue):
    sqs, url, _ = queue
    batches: list[list[str]] = []
    poller = _poller(queue, batches, window_seconds=0)
    sqs.send_message(QueueUrl=url, MessageBody="one")
    assert poller.poll_once() == 1
    assert batches == [["one"]]
    assert poller.poll_once() == 0  # deleted after the handler succeeded


def test_a_window_gathers_what_arrives_during_it_into_one_invocation(queue):
    sqs, url, _ = queue
    batches: list[list[str]] = []
    poller = _poller(queue, batches, window_seconds=2)
    sqs.send_message(QueueUrl=url, MessageBody="first")
    later = threading.Timer(0.3, lambda: sqs.send_message(QueueUrl=url, MessageBody="second"))
    later.start()
    assert poller.poll_once() == 2
    later.join()
    assert batches == [["first", "second"]]


def test_a_full_batch_does_not_wait_for_the_window(queue):
    sqs, url, _ = queue
    for i in range(12):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    batches: list[list[str]] = []
    poller = _poller(queue, batches, window_seconds=300)  # were it waited for, the test would time out
    assert poller.poll_once() == 10
    assert [len(b) for b in batches] == [10]


@pytest.mark.parametrize(("settings", "message"), [
    ({"batch_size": 11, "window_seconds": 0}, "BatchSize 11 needs a batching window of at least 1 s"),
    ({"batch_size": 10, "window_seconds": 301}, "outside 0..300"),
])  # fmt: skip
def test_settings_lambda_refuses_are_refused(queue, settings, message):
    with pytest.raises(ValueError, match=message):
        _poller(queue, [], **settings)
