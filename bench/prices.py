"""Public list prices the cost case multiplies the counted requests by: us-east-1, Lambda on arm64,
DynamoDB on-demand, SQS standard, first volume tier, no free tier. Taken on PRICES_DATE.

``verified`` says where the figure was read. The AWS pricing pages themselves could not be opened from
the machine these were taken on: each figure was read on the secondary pages named in ``seen_at``, which
quote the AWS page in ``source``; a figure only one page gave, or none, says so. Check them against
``source`` before you rely on a result.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_DATE = "2026-12-02"
REGION = "us-east-1"


@dataclass(frozen=True)
class Price:
    usd: float  # per ``per`` units
    per: int
    unit: str
    source: str
    verified: str


PRICES: dict[str, Price] = {
    "lambda.request": Price(
        0.20,
        1_000_000,
        "invocation",
        "https://aws.amazon.com/lambda/pricing/",
        "two secondary pages agree (cloudchipr.com/blog/aws-lambda-pricing, a Lambda cost note)",
    ),
    "lambda.gb_second_arm64": Price(
        0.0000133334,
        1,
        "GB-second (arm64, first 7.5 billion a month)",
        "https://aws.amazon.com/lambda/pricing/",
        "two secondary pages agree (cloudchipr.com/blog/aws-lambda-pricing, a Lambda "
        "cost note); billed per 1 ms of duration",
    ),
    "apigw.http_request": Price(
        1.00,
        1_000_000,
        "HTTP API request (first 300 million a month)",
        "https://aws.amazon.com/api-gateway/pricing/",
        "three secondary pages agree (apigatewaycost.com, awsforengineers.com, amnic.com)",
    ),
    "sqs.request": Price(
        0.40,
        1_000_000,
        "standard-queue request (each 64 KB of payload is one request)",
        "https://aws.amazon.com/sqs/pricing/",
        "three secondary pages agree (cloudburn.io 2026-03, factualminds.com 2026-06, unanswered.io)",
    ),
    "dynamodb.write_unit": Price(
        0.625,
        1_000_000,
        "on-demand write request unit (1 KB)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        "one secondary page (airbyte.com, after the November 2024 cut); another still "
        "quotes the older $1.25: NOT VERIFIED",
    ),
    "dynamodb.read_unit": Price(
        0.125,
        1_000_000,
        "on-demand read request unit (4 KB strongly consistent)",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
        "one secondary page (airbyte.com); another still quotes $0.25: NOT VERIFIED",
    ),
    "dynamodb.stream_read_by_lambda": Price(
        0.0,
        1,
        "GetRecords made by a Lambda trigger",
        "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CostOptimization_StreamsUsage.html",
        "AWS documentation: 'Read requests made by AWS Lambda-based consumers of DynamoDB Streams are free'",
    ),
    "s3.put": Price(
        0.005,
        1_000,
        "PUT request (S3 Standard)",
        "https://aws.amazon.com/s3/pricing/",
        "NOT VERIFIED (only an example figure on a secondary page)",
    ),
    "s3.get": Price(
        0.0004,
        1_000,
        "GET request (S3 Standard)",
        "https://aws.amazon.com/s3/pricing/",
        "NOT VERIFIED (commonly quoted; no page read)",
    ),
    "s3.delete": Price(
        0.0,
        1,
        "DELETE request",
        "https://aws.amazon.com/s3/pricing/",
        "NOT VERIFIED (DELETE is free on the pricing page as commonly quoted)",
    ),
    "eventbridge.event": Price(
        1.00,
        1_000_000,
        "custom event put on a bus (each 64 KB of an entry is one event)",
        "https://aws.amazon.com/eventbridge/pricing/",
        "NOT VERIFIED (commonly quoted; no page read)",
    ),
    "ses.email": Price(
        0.10,
        1_000,
        "email sent through SES's API (attachments' data billed apart)",
        "https://aws.amazon.com/ses/pricing/",
        "one secondary page (acecloudinterviews.com: 'starting at $0.10 per thousand emails')",
    ),
}


def usd(name: str, count: float) -> float:
    """What ``count`` units of ``name`` cost."""
    price = PRICES[name]
    return count * price.usd / price.per
