"""Amazon SES bounce, complaint and delivery notifications, as SNS delivers them to a Lambda function.

Facts relied on:
- The Lambda event is ``{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "<string>", ...}}]}``;
  the SES notification is the JSON string in ``Sns.Message``
  (https://docs.aws.amazon.com/lambda/latest/dg/with-sns.html).
- A notification holds ``notificationType`` (Bounce, Complaint or Delivery; ``eventType`` when it comes
  from event publishing), a ``mail`` object and one ``bounce``, ``complaint`` or ``delivery`` object.
  One notification may cover several recipients or one; SES may add fields, so unknown ones are
  ignored. ``mail.messageId`` is SES's id; the original Message-ID is in ``mail.commonHeaders.messageId``
  and ``mail.headers`` when the identity includes original headers
  (https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html).
- ``bounce.bounceType`` is Permanent, Transient or Undetermined; each ``bouncedRecipients`` item has
  ``emailAddress`` and, when the receiver sent a DSN, ``status`` and ``diagnosticCode``
  ("smtp; 550 5.1.1 ..."); complaints list ``complainedRecipients`` (same page, and the examples at
  https://docs.aws.amazon.com/ses/latest/dg/notification-examples.html).

- SES's SMTP interface answers the end of DATA with ``250 Ok <MessageID>``, "a unique string of characters
  that Amazon SES uses to identify a message" (SMTP response codes returned by Amazon SES:
  https://docs.aws.amazon.com/ses/latest/DeveloperGuide/smtp-response-codes.html); that is the
  ``mail.messageId`` of the message's notifications.

Correlation: by that id first (delivery records it per recipient, and the status store finds the message
by it), then by mailrelay's own Message-ID (``<id@domain>``, its local part is our id) for messages
delivered before the id was recorded. A message that carried its own Message-ID is found by the first.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mailrelay.delivery.replies import reply_from
from mailrelay.feedback.model import Feedback, RecipientFeedback
from mailrelay.ids import is_message_id
from mailrelay.models.status import SmtpReply

_KINDS = {"Bounce": "bounce", "Complaint": "complaint", "Delivery": "delivery"}
_SMTP_ACCEPTED = re.compile(r"^(?:2\.\d{1,3}\.\d{1,3} )?Ok ([!-~]{1,200})$", re.IGNORECASE)
_DIAGNOSTIC = re.compile(r"^\s*(?:smtp;\s*)?([245]\d\d)[ -](.*)$", re.IGNORECASE | re.DOTALL)


class NotAnSesNotification(ValueError):
    """The SNS message is not an SES bounce, complaint or delivery notification."""


def message_id_from_reply(reply: SmtpReply | None) -> str | None:
    """SES's id for a message, from its SMTP interface's reply to the end of DATA (None: not that reply)."""
    if reply is None or reply.code != 250:
        return None
    match = _SMTP_ACCEPTED.match(reply.text)
    return match[1] if match else None


def feedback_from_sns_event(event: dict[str, Any]) -> list[Feedback]:
    """Every notification in a Lambda SNS event (NotAnSesNotification for one that is not)."""
    return [parse_notification(record["Sns"]["Message"]) for record in event.get("Records", [])]


def parse_notification(message: str) -> Feedback:
    try:
        data = json.loads(message)
    except ValueError:
        raise NotAnSesNotification("the SNS message is not JSON") from None
    kind = _KINDS.get(str(data.get("notificationType") or data.get("eventType")))
    mail = data.get("mail")
    if kind is None or not isinstance(mail, dict) or not isinstance(data.get(kind), dict):
        raise NotAnSesNotification("not an SES Bounce, Complaint or Delivery notification")
    detail: dict[str, Any] = data[kind]
    if kind == "bounce":
        items = detail.get("bouncedRecipients", [])
        recipients = tuple(RecipientFeedback(str(r["emailAddress"]), _reply(r)) for r in items)
        permanent = detail.get("bounceType") == "Permanent"
    elif kind == "complaint":
        recipients = tuple(RecipientFeedback(str(r["emailAddress"])) for r in detail.get("complainedRecipients", []))
        permanent = True
    else:
        recipients = tuple(RecipientFeedback(str(r)) for r in detail.get("recipients", []))
        permanent = True
    return Feedback(kind, permanent, _our_message_id(mail), str(mail.get("messageId", "")), recipients)  # type: ignore[arg-type]


def _reply(recipient: dict[str, Any]) -> SmtpReply | None:
    match = _DIAGNOSTIC.match(str(recipient.get("diagnosticCode") or ""))
    if match:
        return reply_from(int(match[1]), match[2])
    status = recipient.get("status")
    return SmtpReply(code=550 if str(status).startswith("5") else 450, enhanced=status) if status else None


def _our_message_id(mail: dict[str, Any]) -> str | None:
    candidates = [(mail.get("commonHeaders") or {}).get("messageId")]
    candidates += [h.get("value") for h in mail.get("headers") or [] if str(h.get("name")).lower() == "message-id"]
    for value in candidates:
        local = str(value or "").strip().lstrip("<").partition("@")[0]
        if is_message_id(local):
            return local
    return None
