"""Which stack a command talks to: flags, then environment, then the local stack's file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LOCAL_FILE = Path(".mailrelay") / "local.json"


class TargetError(RuntimeError):
    pass


def local_stack_info() -> dict[str, Any] | None:
    """The JSON `make run` writes (.mailrelay/local.json), found from the current folder upwards."""
    explicit = os.environ.get("MAILRELAY_LOCAL_FILE")
    candidates = [Path(explicit)] if explicit else [p / LOCAL_FILE for p in (Path.cwd(), *Path.cwd().parents)]
    for path in candidates:
        if path.is_file():
            data: dict[str, Any] = json.loads(path.read_text())
            return data
    return None


def stack_output(stack: str, key: str) -> str:
    import boto3

    outputs = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    for output in outputs:
        if output["OutputKey"] == key:
            value: str = output["OutputValue"]
            return value
    raise TargetError(f"stack {stack} has no output {key}")


def dynamodb_client_and_table(table: str | None, stack: str | None) -> tuple[Any, str]:
    """The clients table (`mailrelay keys`)."""
    return dynamodb_table(table, stack, output="ClientsTableName", variable="MAILRELAY_CLIENTS_TABLE",
                          local_key="clients_table")  # fmt: skip


def dynamodb_table(table: str | None, stack: str | None, *, output: str, variable: str, local_key: str
                   ) -> tuple[Any, str]:  # fmt: skip
    """A DynamoDB client and table name: --table, the stack's ``output``, ``variable``, or the local stack's."""
    import boto3

    if table:
        return boto3.client("dynamodb"), table
    if stack:
        return boto3.client("dynamodb"), stack_output(stack, output)
    if os.environ.get(variable):
        return boto3.client("dynamodb"), os.environ[variable]
    local = local_stack_info()
    if local and local_key in local:
        client = boto3.client(
            "dynamodb",
            endpoint_url=local["aws_endpoint_url"],
            region_name=local.get("aws_region", "us-east-1"),
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto accepts any credentials
        )
        return client, str(local[local_key])
    raise TargetError(
        f"no stack given: pass --stack NAME (deployed) or --table NAME, set {variable}, "
        "or start the local stack with `make run`"
    )
