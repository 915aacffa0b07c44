"""The events path as Lambda runs it, for tests: the messages table's stream feeds the real events handler
(through the local stack's stream poller), and a rule on the event bus copies every event to a queue."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3

from local_stack.provision import LocalResources
from local_stack.stream_poller import StreamPoller, streams_client


@dataclass
class EventsPath:
    aws: LocalResources
    recorder: Any = None  # the EventRecorder the handler uses (tests may swap its bus client)
    poller: StreamPoller = field(init=False)
    target_queue: str = field(init=False)

    def __post_init__(self) -> None:
        from functions.events.app import create_handler
        from mailrelay.events.settings import get_event_settings
        from mailrelay.wiring import build_event_recorder

        self.recorder = self.recorder or build_event_recorder(get_event_settings())
        handler = create_handler(lambda: self.recorder)
        region = boto3.session.Session().region_name or "us-east-1"
        stream = self.aws.arns["MessagesTable.StreamArn"]
        self.poller = StreamPoller(streams_client(region), stream, handler, region=region)
        sqs, events = boto3.client("sqs"), boto3.client("events")
        self.target_queue = sqs.create_queue(QueueName="bus-copy")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.target_queue, AttributeNames=["QueueArn"])["Attributes"]
        bus = self.aws.names["EventBus"]
        events.put_rule(Name="everything", EventBusName=bus, EventPattern=json.dumps({"source": ["mailrelay"]}))
        events.put_targets(Rule="everything", EventBusName=bus, Targets=[{"Id": "copy", "Arn": arn["QueueArn"]}])

    def drain(self, rounds: int = 10) -> None:
        """Poll until the stream has nothing left to hand over."""
        for _ in range(rounds):
            if self.poller.poll_once() == 0:
                return

    def on_bus(self) -> list[dict[str, Any]]:
        """Every event the bus routed so far (as EventBridge delivers them to a rule's target)."""
        sqs = boto3.client("sqs")
        found = []
        while True:
            got = sqs.receive_message(QueueUrl=self.target_queue, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return found
            for m in got:
                found.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.target_queue, ReceiptHandle=m["ReceiptHandle"])

    def stored(self) -> list[dict[str, Any]]:
        """Every stored event, in the order the events function stored them."""
        table = self.aws.names["EventsTable"]
        items = boto3.client("dynamodb").scan(TableName=table)["Items"]
        return [json.loads(i["body"]["S"]) for i in sorted(items, key=lambda i: i["position"]["S"])]
