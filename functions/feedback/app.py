"""Feedback function (SNS subscription to the topic an SES configuration set publishes to): each bounce,
complaint or delivery notification -> the recipient's state and the client's suppression list.

SNS invokes the function asynchronously: a failed write raises, Lambda retries, and what still fails goes
to the dead-letter queue. A message that is not an SES notification can never succeed: logged, dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from mailrelay.feedback.service import FeedbackService
from mailrelay.feedback.ses import NotAnSesNotification, parse_notification
from mailrelay.settings import get_settings
from mailrelay.wiring import build_feedback_service

Handler = Callable[[dict[str, Any], Any], dict[str, int]]
logger = Logger(service="mailrelay-feedback")
copy_config_to_registered_loggers(source_logger=logger, include={"mailrelay"})


def create_handler(service: Callable[[], FeedbackService]) -> Handler:
    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
        changed = 0
        for record in event.get("Records", []):
            try:
                feedback = parse_notification(record["Sns"]["Message"])
            except NotAnSesNotification as exc:
                logger.error("SNS message dropped", extra={"reason": str(exc)})
                continue
            changed += service().apply(feedback)
        return {"recipients_changed": changed}

    return handler


@cache
def service() -> FeedbackService:
    return build_feedback_service(get_settings())


lambda_handler = create_handler(service)
