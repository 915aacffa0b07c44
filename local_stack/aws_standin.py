"""moto's server as the AWS stand-in, with the template's resources created in it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from local_stack.provision import LocalResources, provision

REGION = "us-east-1"


@dataclass
class AwsStandIn:
    endpoint_url: str
    resources: LocalResources
    server: Any

    def stop(self) -> None:
        self.server.stop()


def aws_environment(endpoint_url: str) -> dict[str, str]:
    """What every local component (and boto3 in it) needs to talk to the stand-in."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "mailrelay-local",
    }


def start_aws(host: str, port: int) -> AwsStandIn:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    endpoint = f"http://{host}:{port}"
    os.environ.update(aws_environment(endpoint))
    session = boto3.session.Session(region_name=REGION)
    return AwsStandIn(endpoint, provision(session), server)
