"""Hypothesis strategies for hostile input: JSON send requests, header text, addresses, raw bytes."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import strategies as st

from mailrelay.addresses import has_encoded_word

# Characters that break lines or are controls somewhere: in RFC 5322, in Unicode, in some MUA.
LINE_BREAKERS = ["\r", "\n", "\r\n", "\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"]

# Pieces that a smuggler or an injector would try, including encoded-words that decode to CR/LF.
INJECTIONS = [
    "\r\nBcc: evil@attacker.example",
    "\nX-Injected: 1",
    "\rX-Injected: 1",
    "\r\n\r\nbody",
    "\r\n.\r\nMAIL FROM:<evil@attacker.example>",
    "=?utf-8?q?=0D=0ABcc:_evil@attacker.example?=",
    "=?utf-8?b?DQpCY2M6IGV2aWxAYXR0YWNrZXIuZXhhbXBsZQ==?=",
    "=?iso-8859-1?q?caf=E9?=",
    "=?utf-8?q?=00?=",
    "=?unknown-charset?q?=0A?=",
    "=?utf-8?Q?a?= =?utf-8?Q?b?=",
    "\u0085X-Injected: 1",
    "\u2028X-Injected: 1",
]

# Text that is allowed in a header value but is awkward for an encoder: specials, quotes, non-ASCII.
AWKWARD = ['"', "\\", "(", ")", "<", ">", "@", ",", ";", ":", "=?", "?=", "\t", "  ", "é", "ü", "中", "😀", "\ufffd"]
AWKWARD += ["=?", "?q?", "_", "=", "%", "!", "'", "`", "~", "#", "\u200b", "\ufeff", "\u00a0"]
# RFC 2047 syntax: the email package decodes it when a header is set, so it must never get through.
ENCODED_WORDS = [i for i in INJECTIONS if "=?" in i] + ["=?utf-8?q?hello?=", "=?x?b??=", "a =?utf-8?Q?=0A?= b"]

_SAFE_ALPHABET = st.characters(
    codec="utf-8",
    exclude_categories=("Cc", "Cs"),  # controls and surrogates belong to the hostile alphabet
    exclude_characters="\u2028\u2029",
)
_HOSTILE_ALPHABET = st.characters() | st.sampled_from([c for c in LINE_BREAKERS if len(c) == 1] + ["\ud800", "\udfff"])

ALLOWED_DOMAIN = "example.com"
VALID_ADDRESSES = [
    "alice@example.com",
    "bob@example.org",
    "o'brien+tag@example.net",
    "first.last@sub.example.co.uk",
    "ü@bücher.de",
    "用户@例子.广告",
    "x@xn--bcher-kva.de",
    "UPPER@EXAMPLE.COM",
]
# What a lenient parser might accept; a strict one must refuse every one of them.
TRICKY_ADDRESSES = [
    "@route.example:alice@example.com",
    "alice%evil.example@example.com",
    "evil.example!alice@example.com",
    '"alice"@example.com',
    "alice@[127.0.0.1]",
    "Alice <alice@example.com>",
    "alice@example.com, bob@example.org",
    "alice@example.com\r\nRCPT TO:<evil@attacker.example>",
    "alice(comment)@example.com",
    "alice@example.com>",
    "<alice@example.com>",
    "alice@@example.com",
    "alice@",
    "",
]


def safe_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Header-safe text (no line breaks or controls) that is still awkward to encode."""
    piece = st.one_of(st.sampled_from(AWKWARD), st.text(_SAFE_ALPHABET, max_size=12))
    return st.lists(piece, max_size=max_size // 4 or 1).map("".join).filter(lambda t: not has_encoded_word(t))


def hostile_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Anything: line breaks, NUL, NEL, LS/PS, lone surrogates, encoded-words that decode to CRLF."""
    piece = st.one_of(
        st.sampled_from(INJECTIONS),
        st.sampled_from(LINE_BREAKERS),
        st.sampled_from(AWKWARD),
        st.text(_HOSTILE_ALPHABET, max_size=12),
    )
    return st.lists(piece, max_size=max_size // 4 or 1).map("".join)


def addresses(hostile: bool) -> st.SearchStrategy[str]:
    generated = st.emails(domains=st.just("example.net")).filter(
        lambda a: not (set("%!") & set(a.rpartition("@")[0]) or has_encoded_word(a))
    )
    valid = st.one_of(st.sampled_from(VALID_ADDRESSES), generated)
    if not hostile:
        return valid
    return st.one_of(valid, st.sampled_from(TRICKY_ADDRESSES), hostile_text(30), valid.map(lambda a: a + "\r\n"))


def mailbox(hostile: bool) -> st.SearchStrategy[Any]:
    text = hostile_text() if hostile else safe_text()
    return st.one_of(
        addresses(hostile),
        st.fixed_dictionaries({"email": addresses(hostile)}, optional={"name": st.one_of(st.none(), text)}),
    )


def _sender(hostile: bool) -> st.SearchStrategy[Any]:
    local = st.sampled_from(["alice", "bob", "no-reply", "a.b+c"])
    address = local.map(lambda name: f"{name}@{ALLOWED_DOMAIN}")
    text = hostile_text() if hostile else safe_text()
    return st.one_of(address, st.fixed_dictionaries({"email": address, "name": text}))


HEADER_NAMES = ["X-Tag", "List-Unsubscribe", "X-Priority", "Keywords", "Comments", "X-Mailer", "Auto-Submitted"]
RESERVED_NAMES = ["Bcc", "bcc", "Subject", "From", "Content-Type", "content-transfer-encoding", "Received", "Sender"]
BAD_NAMES = ["X-A:B", "X Y", "X-\r\nBcc", "", "X-\u00e9", "X-A\x00", "A" * 77]


def header_names(hostile: bool) -> st.SearchStrategy[str]:
    valid = st.one_of(st.sampled_from(HEADER_NAMES), st.from_regex(r"\AX-[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}\Z"))
    if not hostile:
        return valid
    return st.one_of(valid, st.sampled_from(RESERVED_NAMES + BAD_NAMES), st.text(_HOSTILE_ALPHABET, max_size=10))


def _attachment(hostile: bool) -> st.SearchStrategy[dict[str, Any]]:
    text = hostile_text(30) if hostile else safe_text(30)
    return st.fixed_dictionaries(
        {
            # well-formed file names hold no path separators and none of <>" (the model refuses them)
            "filename": text.filter(lambda n: bool(n) and not set(n) & set('/\\<>"')) if not hostile else text,
            "content": st.sampled_from(["", "aGVsbG8=", "AAECAwQ=", "not base64!" if hostile else "eA=="]),
        },
        optional={
            "content_type": st.sampled_from(["text/plain", "application/pdf", "image/png"]),
            "content_id": st.sampled_from(["logo@example.com", "part1"]),
        },
    )


def send_requests(hostile: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Send-request JSON shaped like a real one. ``hostile`` mixes in values that must be refused."""
    text = hostile_text if hostile else safe_text
    boxes = st.lists(mailbox(hostile), max_size=3)
    # A well-formed body may hold any character but NUL (which no message may carry: a 422 by design).
    body_chars = st.characters(codec="utf-8") if hostile else st.characters(codec="utf-8", exclude_characters="\x00")
    body = st.one_of(text(60), st.text(body_chars, max_size=200))
    required = {"from": _sender(hostile), "to": st.lists(mailbox(hostile), min_size=1, max_size=3)}
    return st.fixed_dictionaries(
        required,  # type: ignore[arg-type]
        optional={
            "cc": boxes,
            "bcc": boxes,
            "reply_to": boxes,
            "subject": st.one_of(text(80), st.text(_SAFE_ALPHABET, min_size=900, max_size=998)),
            "text": body,
            "html": body,
            "headers": st.dictionaries(header_names(hostile), text(40), max_size=4),
            "attachments": st.lists(_attachment(hostile), max_size=2),
        },
    ).map(lambda r: r if ("text" in r or "html" in r) else {**r, "text": "hello"})


# Where one hostile value can go in an otherwise well-formed request.
_PLACES: dict[str, Any] = {
    "subject": lambda req, bad: {**req, "subject": bad},
    "from.name": lambda req, bad: {**req, "from": {"email": "alice@example.com", "name": bad}},
    "to[0]": lambda req, bad: {**req, "to": [bad, *req["to"][1:]]},
    "to[0].name": lambda req, bad: {**req, "to": [{"email": "bob@example.org", "name": bad}]},
    "cc[0].name": lambda req, bad: {**req, "cc": [{"email": "carol@example.org", "name": bad}]},
    "reply_to[0]": lambda req, bad: {**req, "reply_to": [bad]},
    "bcc[0]": lambda req, bad: {**req, "bcc": [bad]},
    "headers.X-Tag": lambda req, bad: {**req, "headers": {"X-Tag": bad}},
    "headers.<name>": lambda req, bad: {**req, "headers": {bad: "value"}},
    "attachments[0].filename": lambda req, bad: {**req, "attachments": [{"filename": bad, "content": "eA=="}]},
    "text": lambda req, bad: {**req, "text": bad},
    "html": lambda req, bad: {**req, "html": bad},
}


def one_hostile_field() -> st.SearchStrategy[dict[str, Any]]:
    """A well-formed request with exactly one value replaced by something hostile."""
    return st.builds(
        lambda req, place, bad: _PLACES[place](req, bad),
        send_requests(hostile=False),
        st.sampled_from(sorted(_PLACES)),
        st.one_of(hostile_text(), st.sampled_from(ENCODED_WORDS + TRICKY_ADDRESSES)),
    )


def json_values() -> st.SearchStrategy[Any]:
    """Arbitrary JSON documents (as json.loads would return them), lone surrogates included."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(_HOSTILE_ALPHABET, max_size=20),
        st.sampled_from(VALID_ADDRESSES + TRICKY_ADDRESSES + INJECTIONS),
    )
    keys = st.one_of(
        st.sampled_from(["from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers", "raw"]),
        st.sampled_from(["attachments", "tags", "metadata", "send_at", "expires_at", "delivery", "email", "name"]),
        st.sampled_from(["data", "mail_from", "rcpt_to", "content", "filename", "content_type", "content_id"]),
        st.text(string.printable, max_size=8),
    )
    return st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6), max_leaves=20
    )


def header_blocks() -> st.SearchStrategy[bytes]:
    """Header sections as a hostile SMTP client or raw-message sender would write them."""
    names = st.sampled_from([b"From", b"from", b"FROM", b"Sender", b"To", b"Subject", b"Message-ID", b"Date", b"X-A"])
    values = st.one_of(
        st.sampled_from([a.encode() for a in VALID_ADDRESSES + TRICKY_ADDRESSES]),
        st.sampled_from(
            [
                b'"alice@example.com" <evil@attacker.example>',
                b"alice@example.com <evil@attacker.example>",
                b"Alice <alice@example.com>, Eve <evil@attacker.example>",
                b"undisclosed:;",
                b"group: alice@example.com;",
                b"=?utf-8?q?alice=40example.com?= <evil@attacker.example>",
                b"<alice@example.com",
                b"alice@example.com (Alice)",
                b"\xff\xfe@example.com",
            ]
        ),
        st.binary(max_size=40),
    )
    line = st.tuples(names, st.sampled_from([b": ", b":", b" : "]), values).map(lambda t: b"".join(t))
    eol = st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\n "])
    return st.lists(st.tuples(line, eol).map(lambda t: t[0] + t[1]), max_size=6).map(
        lambda lines: b"".join(lines) + b"\r\nbody\r\n"
    )
