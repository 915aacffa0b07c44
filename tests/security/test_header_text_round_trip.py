"""Any Unicode text a client may put in a header arrives decoding to exactly that text, "=?" included.

The reference reader is what a receiving client does: parse the header section (compat32, no
decoding), unfold, and decode RFC 2047 encoded-words (email.header, RFC 2047 §6.2: white space
between adjacent encoded-words is not text); file names as RFC 2231 parameters.
"""

from __future__ import annotations

import base64
import email
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header

from hypothesis import given, note
from hypothesis import strategies as st

from mailrelay.compose import from_request
from mailrelay.models.send_request import SendRequest
from mailrelay.settings import Settings
from tests.security.strategies import AWKWARD, ENCODED_WORDS

SETTINGS = Settings.model_validate({"MAILRELAY_MESSAGE_ID_DOMAIN": "example.com"})
NOW = datetime(2026, 12, 2, tzinfo=UTC)

_TEXT_ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="\u2028\u2029")
# Unicode text with the pieces that trouble encoders (encoded-word syntax, specials, spaces) mixed in.
header_text = st.lists(
    st.one_of(st.text(_TEXT_ALPHABET, min_size=1, max_size=30), st.sampled_from(AWKWARD + ENCODED_WORDS)),
    min_size=1, max_size=6,
).map("".join)  # fmt: skip


def received(request: dict) -> email.message.Message:
    data = from_request(SendRequest.model_validate(request), SETTINGS, NOW).content.read()
    note(data[:2000].decode("utf-8", "replace"))
    return email.message_from_bytes(data, policy=policy.compat32)


def decoded(raw: str) -> str:
    unfolded = raw.replace("\r\n ", " ").replace("\r\n\t", "\t").replace("\n ", " ").replace("\n\t", "\t")
    return str(make_header(decode_header(unfolded)))


def _clean(text: str) -> bool:
    # Leading and trailing white space of an unstructured header value is not part of its text
    # (RFC 5322 §3.2.2 folding), so the round trip is judged on values without it.
    return text == text.strip(" \t") and "\t" not in text


@given(header_text.filter(_clean))
def test_any_subject_arrives_as_written(subject: str) -> None:
    message = received({"from": "app@example.com", "to": "a@example.net", "subject": subject, "text": "t"})
    assert decoded(message["Subject"]) == subject


@given(header_text.filter(_clean))
def test_any_custom_header_value_arrives_as_written(value: str) -> None:
    message = received({"from": "app@example.com", "to": "a@example.net", "text": "t", "headers": {"X-Note": value}})
    assert decoded(message["X-Note"]) == value


@given(header_text.filter(lambda t: _clean(t) and len(t) <= 256))
def test_any_display_name_arrives_as_written(name: str) -> None:
    message = received({"from": {"email": "app@example.com", "name": name}, "to": "a@example.net", "text": "t"})
    raw = message["From"].replace("\r\n ", " ").replace("\n ", " ")
    if raw.startswith('"'):  # a quoted-string: read as written, never decoded (RFC 2047 §5)
        assert email.utils.parseaddr(raw) == (name, "app@example.com")
    else:  # atoms, or encoded-words
        assert decoded(raw) == f"{name} <app@example.com>"


# Message.get_filename() strips Unicode white space from the ends, as mail clients do.
@given(header_text.filter(lambda t: t == t.strip() and len(t) <= 255 and not set('/\\<>"') & set(t)))
def test_any_file_name_arrives_as_written(filename: str) -> None:
    content = base64.b64encode(b"data").decode()
    message = received({"from": "app@example.com", "to": "a@example.net", "text": "t",
                        "attachments": [{"filename": filename, "content": content}]})  # fmt: skip
    (attachment,) = [p for p in message.walk() if p.get_content_disposition() == "attachment"]
    got = attachment.get_filename()
    assert (decoded(got) if "=?" in got and "=?" not in filename else got) == filename
