"""What a client asks us to send: the JSON body of POST /v1/messages."""

from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from mailrelay.models.fields import (
    Base64Text,
    BodyText,
    ContentType,
    EmailAddress,
    Filename,
    HeaderName,
    HeaderText,
    OneOrMany,
)
from mailrelay.models.status import DeliveryMode
from mailrelay.settings import MAX_RECIPIENTS_CEILING

# Headers we set ourselves or that describe MIME structure: a client may not supply them.
RESERVED_HEADERS = frozenset(
    {
        "from", "sender", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id", "received",
        "return-path", "dkim-signature", "mime-version", "orig-date",
        # Verdicts only a receiving server may write: from a client they forge another's authentication.
        "authentication-results", "arc-authentication-results", "arc-seal", "arc-message-signature",
    }
)  # fmt: skip
# Resent-* fields (RFC 5322 §3.6.6) name who re-sent a message: they are sender claims, and only a
# complete message ("raw"), whose Resent-From is checked like From, may carry them.
RESERVED_PREFIXES = ("content-", "resent-")


class Mailbox(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    name: Annotated[HeaderText, Field(max_length=256)] | None = None


# "Name <address>" or "\"Name, with specials\" <address>", as other mail APIs accept it. Bounded before
# matching (a request may be megabytes), and each part is then validated like the object form.
_NAMED = re.compile(r'[ \t]*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<plain>[^<>"]*?))[ \t]*<(?P<email>[^<>]*)>[ \t]*')
_QUOTED_PAIR = re.compile(r"\\(.)")


def _mailbox(value: object) -> object:
    if not isinstance(value, str):
        return value
    named = _NAMED.fullmatch(value) if len(value) <= 600 else None
    if named is None:
        return {"email": value}
    name = _QUOTED_PAIR.sub(r"\1", named["quoted"]) if named["quoted"] is not None else named["plain"]
    return {"email": named["email"], "name": name or None}


MailboxIn = Annotated[Mailbox, BeforeValidator(_mailbox)]
MailboxList = Annotated[list[MailboxIn], OneOrMany, Field(max_length=MAX_RECIPIENTS_CEILING)]
# Reply-To names where answers go, not who receives: a handful is generous.
MAX_REPLY_TO = 10


class Attachment(BaseModel):
    """A file: its bytes inline (base64 ``content``), or an ``upload_id`` from POST /v1/uploads."""

    model_config = ConfigDict(extra="forbid")

    filename: Filename
    content_type: ContentType = "application/octet-stream"
    content: Base64Text | None = None
    upload_id: Annotated[str, Field(pattern=r"^upl_[0-9a-f]{32}$")] | None = None
    content_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,200}$")] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.content is None) == (self.upload_id is None):
            raise ValueError("give exactly one of 'content' (base64) and 'upload_id'")
        return self


class Tag(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
    value: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:@-]{0,256}$")]


class RawMessage(BaseModel):
    """A complete RFC 5322 message and its SMTP envelope (Bcc recipients only live here)."""

    model_config = ConfigDict(extra="forbid")

    data: Base64Text
    mail_from: EmailAddress
    rcpt_to: Annotated[list[EmailAddress], OneOrMany, Field(min_length=1, max_length=MAX_RECIPIENTS_CEILING)]


def _not_reserved(name: str) -> str:
    lowered = name.lower()
    if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIXES):
        raise ValueError(f"header {name!r} is set by mailrelay and may not be supplied")
    return name


CustomHeaderName = Annotated[HeaderName, AfterValidator(_not_reserved)]


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: MailboxIn | None = Field(None, alias="from")
    to: MailboxList = []
    cc: MailboxList = []
    bcc: MailboxList = []
    reply_to: Annotated[list[MailboxIn], OneOrMany, Field(max_length=MAX_REPLY_TO)] = []
    subject: Annotated[HeaderText, Field(max_length=998)] | None = None
    text: BodyText | None = None
    html: BodyText | None = None
    attachments: Annotated[list[Attachment], Field(max_length=100)] = []
    headers: Annotated[dict[CustomHeaderName, Annotated[HeaderText, Field(max_length=998)]], Field(max_length=50)] = {}
    tags: Annotated[list[Tag], Field(max_length=50)] = []
    metadata: Annotated[
        dict[Annotated[BodyText, Field(min_length=1, max_length=64)], Annotated[BodyText, Field(max_length=1024)]],
        Field(max_length=50),
    ] = {}
    send_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    delivery: DeliveryMode = "at_least_once"
    raw: RawMessage | None = None

    @model_validator(mode="after")
    def _shape(self) -> Self:
        structured = ("from_", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "attachments", "headers")
        if self.raw is not None:
            given = [("from" if n == "from_" else n) for n in structured if getattr(self, n)]
            if given:
                raise ValueError(f"'raw' cannot be combined with {', '.join(given)}")
            return self
        if self.from_ is None:
            raise ValueError("'from' is required (or send a complete message in 'raw')")
        if not (self.to or self.cc or self.bcc):
            raise ValueError("at least one recipient is required in to, cc or bcc")
        if self.text is None and self.html is None:
            raise ValueError("'text' or 'html' is required")
        return self

    def recipient_count(self) -> int:
        if self.raw is not None:
            return len(self.raw.rcpt_to)
        return len(self.to) + len(self.cc) + len(self.bcc)
