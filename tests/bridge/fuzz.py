"""Stateful SMTP session fuzzing against the real bridge, shared by the state machine and the long loop.

- A grammar of client steps: commands in any order (well-formed, malformed, oversized, 8-bit, NUL, bare
  CR/LF, pipelined bursts), DATA bodies with the same hazards, AUTH dialogues, STARTTLS and implicit TLS
  with full, truncated and failed handshakes, and abrupt disconnects (FIN or RST) at any point.
- A runner that speaks them over raw sockets and checks every reply: well-formed (RFC 5321 §4.2), a code
  allowed for the command it answers, exactly one reply per command line, and EOF only where allowed.
- A ledger that reconciles what the bridge acknowledged with 250 after the final dot with what it queued.

Steps are drawn from a ``random.Random``: hypothesis supplies one it can shrink and derandomise, the loop
seeds its own. The checks assert behaviour a client sees (replies, EOF) and what got queued, so they hold
whatever the bridge does inside (buffering or streaming DATA, an in-flight budget answering 452).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
import ssl
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from random import Random
from typing import Any

from mailrelay.canonical import has_bare_newline

HOST = "127.0.0.1"
# The plain listener serves an allowlisted network: the fuzzer connects from this loopback address to be
# in it, and from HOST to be outside it (the other listeners see both kinds of client too).
ALLOWLISTED_SOURCE = "127.0.0.2"
ALLOWED_NETWORKS = [{"cidr": f"{ALLOWLISTED_SOURCE}/32", "client_id": "shop"}]
TOKEN = re.compile(rb"fuzz-[0-9a-f]{16}")
QUEUED_AS = re.compile(r"queued as (\S+)")
VARYING = re.compile(r'fuzz-[0-9a-f]{16}|\d+|\\x[0-9a-f]{2}|"[^"]*"')

# ---------------------------------------------------------------------------------------------------
# Which reply codes may answer which command: RFC 5321 §4.3.2, plus the extensions the bridge offers.
# ---------------------------------------------------------------------------------------------------

# RFC 5321 §4.3.2: any command may be answered 500 (unrecognised, line too long), 501 (syntax) or 421.
ANY_COMMAND = {421, 500, 501}
# RFC 3207 §4: on the STARTTLS-required port every command but NOOP/EHLO/STARTTLS/QUIT gets 530 before TLS.
ANY_COMMAND |= {530}
ALLOWED: dict[str, set[int]] = {
    # §4.3.2 connection establishment; 421 when a connection cap is reached.
    "greeting": {220, 554, 421},
    "EHLO": {250, 502, 504, 550},
    "HELO": {250, 502, 504, 550},
    "MAIL": {250, 451, 452, 455, 503, 550, 552, 553, 555},
    "RCPT": {250, 251, 450, 451, 452, 455, 503, 550, 551, 552, 553, 555},
    # The DATA command itself, then the reply after the final dot.
    "DATA": {354, 450, 451, 452, 503, 550, 554},
    "DATA-END": {250, 450, 451, 452, 550, 552, 554},
    "RSET": {250},
    "NOOP": {250},
    "VRFY": {250, 251, 252, 502, 504, 550, 551, 553},
    "EXPN": {250, 251, 252, 502, 504, 550, 551, 553},
    # aiosmtpd answers HELP with 250 (and 501 for an unknown topic) instead of 214: harmless to clients.
    "HELP": {211, 214, 250, 502, 504},
    "QUIT": {221},
    # RFC 3207 §4; 503 when TLS is already active (a bad sequence of commands, RFC 5321 §4.2.4).
    "STARTTLS": {220, 454, 503},
    # RFC 4954 §4 and §6 (334 continues the dialogue; 538 encryption required; 503 already authenticated).
    "AUTH": {235, 334, 432, 454, 503, 504, 534, 535, 538},
    # RFC 3030: BDAT; the bridge does not offer CHUNKING, so "not recognized" (500/502) is expected.
    "BDAT": {250, 451, 452, 502, 503, 504, 552, 554},
    # A line that is no command: 500, or aiosmtpd's "502 Too many unrecognized commands, goodbye".
    "UNKNOWN": {502},
}
# The bridge asks for AUTH at MAIL, and again at the final dot when the key was revoked meanwhile (RFC 4954 §6).
ALLOWED["MAIL"] |= {530}
ALLOWED["DATA-END"] |= {530}
# Replies after which the server closes (421, 221) or may close (aiosmtpd's 502 "goodbye") the connection.
CLOSING = {421, 221, 502}
MODAL = {"DATA", "BDAT", "AUTH", "STARTTLS", "QUIT"}  # change what the next bytes mean: last in a burst
COMMANDS = set(ALLOWED) - {"greeting", "DATA-END", "UNKNOWN"}


def verb(line: bytes) -> str:
    """The command a server reads in a line (the word before the first space), or UNKNOWN."""
    word = line.rstrip(b"\r\n").partition(b" ")[0].upper()
    name = word.decode("ascii", "replace")
    return name if name in COMMANDS else "UNKNOWN"


def allowed(command: str) -> set[int]:
    return ALLOWED[command] | ANY_COMMAND


# ---------------------------------------------------------------------------------------------------
# Findings and the run's ledger
# ---------------------------------------------------------------------------------------------------


@dataclass
class Finding:
    kind: str
    detail: str
    transcript: list[str]

    @property
    def signature(self) -> str:
        """Findings of one cause share a signature (digits and quoted values vary between sessions)."""
        return f"{self.kind}: {VARYING.sub('~', self.detail)[:160]}"

    def render(self) -> str:
        return f"{self.kind}: {self.detail}\n  " + "\n  ".join(self.transcript[-30:])


class FindingError(AssertionError):
    pass


@dataclass
class Ledger:
    """What each DATA transaction's client saw, by the token in its message; reconciled with the queue."""

    acknowledged: dict[str, str] = field(default_factory=dict)  # token -> message id from the 250
    refused: set[str] = field(default_factory=set)  # the final reply was not 250: never queued
    in_doubt: set[str] = field(default_factory=set)  # the dot was sent, its reply never read: at most once
    unfinished: set[str] = field(default_factory=set)  # no final dot: never queued
    queued: dict[str, list[str]] = field(default_factory=dict)  # token -> ids of queued messages
    foreign: list[str] = field(default_factory=list)  # queued messages holding no token, or several
    not_canonical: list[str] = field(default_factory=list)  # queued with bare CR/LF, NUL or a line > 998
    sessions: int = 0
    commands: int = 0
    failed_handshakes: int = 0
    transcripts: dict[str, list[str]] = field(default_factory=dict)  # token -> its session's transcript
    by_port: dict[int, list[str]] = field(default_factory=dict)  # client port -> its session's transcript

    def merge(self, other: Ledger) -> None:
        """Add a client process's ledger (its sessions are disjoint from ours)."""
        self.acknowledged.update(other.acknowledged)
        for name in ("refused", "in_doubt", "unfinished"):
            getattr(self, name).update(getattr(other, name))
        self.transcripts.update(other.transcripts)
        self.by_port.update(other.by_port)
        self.sessions += other.sessions
        self.commands += other.commands
        self.failed_handshakes += other.failed_handshakes

    def record_queued(self, message_id: str, raw: bytes) -> None:
        lines = raw.split(b"\r\n")
        if has_bare_newline(raw) or b"\x00" in raw or max(map(len, lines)) > 998:
            self.not_canonical.append(message_id)
        tokens = {t.decode() for t in TOKEN.findall(raw)}
        if len(tokens) != 1:
            self.foreign.append(message_id)
            return
        self.queued.setdefault(tokens.pop(), []).append(message_id)

    def reconcile(self) -> list[Finding]:
        found: list[Finding] = []

        def add(kind: str, token: str, detail: str) -> None:
            found.append(Finding(kind, f"{token}: {detail}", self.transcripts.get(token, [])))

        for token, message_id in self.acknowledged.items():
            ids = self.queued.get(token, [])
            if ids != [message_id]:
                add("acknowledged-not-queued-once", token, f"250 named {message_id}; queued as {ids}")
        for token in self.refused | self.unfinished:
            if token in self.queued and token not in self.acknowledged:
                add("queued-without-250", token, f"queued as {self.queued[token]} after no 250 for the dot")
        for token in self.in_doubt:
            if len(self.queued.get(token, [])) > 1:
                add("queued-twice", token, f"queued as {self.queued[token]}")
        known = set(self.acknowledged) | self.refused | self.in_doubt | self.unfinished
        for token in set(self.queued) - known:
            add("queued-unknown", token, f"queued as {self.queued[token]}, never sent as a transaction")
        for message_id in self.foreign:
            found.append(Finding("queued-foreign", f"{message_id} holds no single fuzz token", []))
        for message_id in self.not_canonical:
            found.append(Finding("queued-not-canonical", f"{message_id} has bare CR/LF, NUL or a long line", []))
        return found


# ---------------------------------------------------------------------------------------------------
# The grammar: bytes a client might send
# ---------------------------------------------------------------------------------------------------

WORDS = ["hello", "world", "lorem", "ipsum", "report", "invoice", "=?utf-8?q?x?=", "\t", "", "a" * 80]
GOOD_SENDERS = ["app@example.com", "x.y+z@example.com", "APP@Example.COM"]
BAD_SENDERS = ["ceo@victim.com", "app@example.com.evil.org", "app@sub.example.com"]
GOOD_RCPTS = ["someone@example.net", "a@example.org", "r.x@example.com"]
MALFORMED_PATHS = [
    "<@relay.example:app@example.com>", "<app%example.net@example.com>", "<example.net!app@example.com>",
    "<app@example.com>>", "<app@example.com", "app@example.com>", "<>", "<\"q q\"@example.com>", "<a@[127.0.0.1]>",
    "<a@b@example.com>", "<.a@example.com>", "<a..b@example.com>", "<a@example..com>", "<a@-example.com>",
    "<äpp@example.com>", "<app@exämple.com>", "<" + "a" * 70 + "@example.com>", "<a@" + "b" * 300 + ".com>",
    "<" + "a" * 600 + "@example.com>", "<a@example.com> (comment)", "<a b@example.com>", "<a\\@b@example.com>",
]  # fmt: skip
MAIL_PARAMS = [
    "", "", "", " SIZE=1000", " SIZE=99999999999", " SIZE=abc", " SIZE=", " BODY=8BITMIME", " BODY=7BIT",
    " BODY=BINARYMIME", " SMTPUTF8", " SMTPUTF8=yes", " FOO=bar", " AUTH=<>", " RET=HDRS", " SIZE=" + "9" * 600,
    " SIZE=10 SIZE=20", "  SIZE=5", "\tSIZE=5",
]  # fmt: skip
HOSTS = [
    "client.test", "client.test", "[127.0.0.1]", "[IPv6:::1]", "x", "-bad-", "a" * 300, "client.test extra words",
    "ümlaut.test", "a_b.test",
]  # fmt: skip
EOL = [b"\r\n"] * 12 + [b"\n", b"\r\r\n", b" \r\n", b"\t\r\n"]
HAZARDS = [b"\x00", b"\xff", b"\xc3\xa4", b"\r", b"\x1b[31m", b"\x7f", b"\xed\xa0\x80", b"%s%n", b'"', b"\\"]


def _mutate_text(rng: Random, text: bytes) -> bytes:
    """Usually the text itself; sometimes with a NUL, 8-bit, control or bare-CR byte inside, or enormous."""
    roll = rng.random()
    if roll < 0.8:
        return text
    if roll < 0.95:
        at = rng.randint(0, len(text))
        return text[:at] + rng.choice(HAZARDS) + text[at:]
    return text + b"x" * rng.choice([400, 1000, 1100, 5000, 70_000])


def _line(rng: Random, text: bytes) -> bytes:
    return _mutate_text(rng, text) + rng.choice(EOL)


def _case(rng: Random, word: str) -> str:
    return word if rng.random() < 0.85 else rng.choice([word.lower(), word.title()])


def ehlo_line(rng: Random) -> bytes:
    cmd = _case(rng, rng.choice(["EHLO"] * 4 + ["HELO"]))
    host = rng.choice(HOSTS) if rng.random() < 0.9 else ""
    return _line(rng, f"{cmd} {host}".rstrip().encode())


def mail_line(rng: Random, sender: str | None = None, clean: bool = False) -> bytes:
    """MAIL FROM; ``clean``: well-formed (the transaction is meant to get through)."""
    sender = sender or rng.choice(GOOD_SENDERS * 3 + BAD_SENDERS)
    if clean:
        return f"MAIL FROM:<{sender}>{rng.choice(['', ' BODY=8BITMIME', ' SIZE=2000'])}\r\n".encode()
    path = f"<{sender}>" if rng.random() < 0.85 else rng.choice(MALFORMED_PATHS)
    keyword = rng.choice(["MAIL FROM:"] * 8 + ["MAIL FROM: ", "mail from:", "MAIL FROM ", "MAIL ", "MAIL"])
    return _line(rng, f"{keyword}{path}{rng.choice(MAIL_PARAMS)}".encode())


def rcpt_line(rng: Random, index: int = 0, clean: bool = False) -> bytes:
    address = rng.choice(GOOD_RCPTS) if index == 0 else f"r{index}@example.org"
    if clean:
        return f"RCPT TO:<{address}>\r\n".encode()
    path = f"<{address}>" if rng.random() < 0.85 else rng.choice(MALFORMED_PATHS)
    keyword = rng.choice(["RCPT TO:"] * 8 + ["RCPT TO: ", "rcpt to:", "RCPT ", "RCPT"])
    params = rng.choice(["", "", "", " NOTIFY=NEVER", " FOO=bar", " ORCPT=rfc822;x@y"])
    return _line(rng, f"{keyword}{path}{params}".encode())


def simple_line(rng: Random) -> bytes:
    """A non-modal command, with or without arguments, sometimes damaged."""
    choices = [
        b"NOOP", b"NOOP ignored words", b"RSET", b"RSET now", b"VRFY someone@example.net", b"VRFY", b"VRFY <a@b>",
        b"VRFY postmaster", b"EXPN staff", b"HELP", b"HELP MAIL", b"HELP nothing", b"XCLIENT ADDR=1.2.3.4",
        b"", b" ", b"NOOP\x00", b"TURN", b"ETRN example.com", b"\x16\x03\x01\x00\xa5", b"GET / HTTP/1.1",
        b"MAIL\rFROM:<app@example.com>", b"NO\rOP", b"\xff\xfe", b"RCPT TO:<\x00@example.com>", b"VRFY \xff",
        b"VRFY a\rb", b"HELO", b"EHLO",
    ]  # fmt: skip
    return _line(rng, rng.choice(choices))


def garbage_line(rng: Random) -> bytes:
    size = rng.choice([0, 1, 10, 100, 511, 512, 513, 1000, 1001, 1002, 2000, 70_000])
    junk = rng.randbytes(min(size, 64)).replace(b"\n", b"")
    junk = (junk * (size // max(1, len(junk)) + 1))[:size] if junk else b"x" * size
    if verb(junk) in MODAL:
        junk = b"X" + junk
    return junk + rng.choice(EOL)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class Credentials:
    login: str
    password: str

    @property
    def login_pair(self) -> tuple[str, str]:
        return (self.login, self.password)


def auth_lines(rng: Random, creds: Credentials) -> tuple[bytes, list[bytes]]:
    """An AUTH command and the responses to send to each 334 challenge, in order."""
    good = rng.random() < 0.5
    login = creds.login if good or rng.random() < 0.5 else rng.choice(["nobody", "", "shop\x00x", "ü" * 10])
    password = creds.password if good else rng.choice(["wrong", "", creds.password + "x", "k" * 3000])
    mechanism = rng.choice(["PLAIN"] * 4 + ["LOGIN"] * 3 + ["plain", "CRAM-MD5", "XOAUTH2", ""])
    plain = b64(b"\x00" + login.encode() + b"\x00" + password.encode())
    responses = [plain]
    if mechanism.upper() == "LOGIN":
        responses = [b64(login.encode()), b64(password.encode())]
    bad = rng.random()
    if bad < 0.1:
        responses[rng.randrange(len(responses))] = "*"  # the client cancels (RFC 4954 §4)
    elif bad < 0.2:
        responses[rng.randrange(len(responses))] = rng.choice(["!!!", "=", "YWJj\x00", b64(b"a\x00b"), "a b"])
    elif bad < 0.25:
        responses[0] = b64(b"x" * rng.choice([600, 1000, 3000]))
    inline = rng.random() < 0.5
    command = f"AUTH {mechanism}".rstrip()
    if inline and responses:
        command += " " + responses.pop(0)
    if rng.random() < 0.05:
        command += " extra"
    lines = [r.encode() + rng.choice(EOL[:14]) for r in responses]
    return _line(rng, command.encode()) if rng.random() < 0.9 else command.encode() + b"\r\n", lines


def message_content(rng: Random, token: str, sender: str) -> bytes:
    """A DATA body (dot-stuffed, without the final dot) carrying ``token``, with hazards now and then."""
    headers = [f"From: {sender}", "To: someone@example.net", f"Subject: {token}", "MIME-Version: 1.0"]
    if rng.random() < 0.1:
        headers.append(f"From: {rng.choice(BAD_SENDERS)}")
    if rng.random() < 0.1:
        headers.append("Bcc: hidden@example.net")
    rng.shuffle(headers)
    lines = [h.encode() for h in headers] + [b""]
    lines += [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12))).encode() for _ in range(rng.randint(0, 8))]
    lines.append(f"token {token}".encode())
    hazard = rng.random()
    at = rng.randint(1, len(lines))
    if hazard < 0.06:
        lines.insert(at, b"x" * rng.choice([997, 998, 999, 1000, 1001, 1002, 5000, 70_000]))
    elif hazard < 0.1:
        lines[at - 1] += rng.choice([b"\n.\n", b"\n.\r", b"\r.\r", b"\r.\n", b"\n", b"\r", b"\n.", b".\n"])
    elif hazard < 0.13:
        lines[at - 1] += rng.choice(HAZARDS)
    elif hazard < 0.16:
        lines += [b"y" * 76] * rng.choice([300, 900])  # past the size limit, or into the payload store
    elif hazard < 0.2:
        lines.insert(at, rng.choice([b".", b"..", b".x", b". ", b"...."]))
    elif hazard < 0.22:
        lines = lines[-1:]  # no header section at all
    body = b"\r\n".join(lines) + b"\r\n"
    if body.startswith(b"."):
        body = b"." + body
    return body.replace(b"\r\n.", b"\r\n..")


# ---------------------------------------------------------------------------------------------------
# The runner: one client session over a raw socket
# ---------------------------------------------------------------------------------------------------


@dataclass
class Endpoints:
    ports: dict[str, int]
    client_context: ssl.SSLContext  # trusts the bridge's CA
    creds: Credentials
    handshake_timeout: float
    hello: bytes = b""  # a real ClientHello, for truncated handshakes

    def __post_init__(self) -> None:
        self.hello = client_hello(self.client_context)


def client_hello(context: ssl.SSLContext) -> bytes:
    """The first flight of a TLS handshake, as a client would send it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


class Closed(Exception):
    """The server closed the connection (where that is allowed)."""


REPLY_LINE = re.compile(rb"\d{3}[ -][\t\x20-\x7e]*\r\n|\d{3}\r\n")
# RFC 6531 §3.7.4.2: reply text may hold UTF-8 in answer to a command that requested SMTPUTF8.
REPLY_LINE_UTF8 = re.compile(rb"\d{3}[ -][\t\x20-\x7e\x80-\xff]*\r\n")


class Session:
    """One client: sends steps, reads and checks each reply, keeps a transcript for reproducers."""

    reply_timeout = 30.0

    def __init__(self, endpoints: Endpoints, ledger: Ledger, listener: str, source: str) -> None:
        self.endpoints = endpoints
        self.ledger = ledger
        self.listener = listener
        self.source = source
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.transcript: list[str] = [f"connect {listener} listener from {source}"]
        self.findings: list[Finding] = []
        self.closed = False
        self.tls = listener == "implicit"
        self.authenticated = False
        self.in_mail = False
        self.extended = False
        self.local_port = 0
        self.last_code = 0
        self.utf8_asked = False  # the command being answered carries SMTPUTF8
        self.last_text = ""

    # -- plumbing ----------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.transcript.append(text)

    def find(self, kind: str, detail: str) -> None:
        self.findings.append(Finding(kind, detail, list(self.transcript)))
        self.note(f"!! {kind}: {detail}")
        raise FindingError(kind)

    async def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.note(f"C: {data[:300]!r}{'...' if len(data) > 300 else ''} ({len(data)} bytes)")
        self.ledger.commands += max(1, data.count(b"\n"))
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, command: str) -> int:
        """Read one reply to ``command``, check it; returns its code (raises Closed at an allowed EOF)."""
        assert self.reader is not None
        lines: list[bytes] = []
        while True:
            try:
                line = await asyncio.wait_for(self.reader.readline(), self.reply_timeout)
            except (ConnectionResetError, ssl.SSLError) as exc:
                # A server closing with our pipelined bytes unread resets the connection, and the kernel
                # may drop its last reply with it: nothing a client can hold against the server.
                self.note(f"S: reset {exc!r}")
                self.closed = True
                raise Closed from exc
            except TimeoutError:
                self.find("no-reply", f"no reply to {command} within {self.reply_timeout:.0f} s")
            if not line:
                self.note(f"S: EOF (awaiting the reply to {command})")
                if lines:
                    self.find("truncated-reply", f"EOF inside a reply to {command}: {lines!r}")
                if self.last_code in CLOSING:
                    self.closed = True
                    raise Closed
                self.find("closed-without-reply", f"connection closed instead of a reply to {command}")
            self.note(f"S: {line!r}")
            if REPLY_LINE.fullmatch(line) is None and not (self.utf8_asked and REPLY_LINE_UTF8.fullmatch(line)):
                self.find("malformed-reply", f"reply to {command}: {line!r}")
            lines.append(line)
            if line[3:4] != b"-":
                break
        codes = {ln[:3] for ln in lines}
        if len(codes) != 1:
            self.find("inconsistent-multiline", f"reply to {command} mixes codes {sorted(codes)}")
        code = int(lines[0][:3])
        self.last_code = code
        self.last_text = lines[-1].decode("ascii", "replace")
        if code not in allowed(command):
            self.find("unexpected-code", f"{code} for {command}: {lines[-1]!r}")
        if code in (421, 221):
            await self.expect_close(code, command)
        return code

    async def expect_close(self, code: int, command: str) -> None:
        """After 421 and 221 the server closes the connection (RFC 5321 §3.8, §4.1.1.10)."""
        assert self.reader is not None
        try:
            rest = await asyncio.wait_for(self.reader.read(65536), self.reply_timeout)
        except TimeoutError:
            self.find("not-closed", f"{code} to {command}, yet the connection stayed open")
        except (ConnectionError, ssl.SSLError):
            rest = b""
        if rest:
            self.find("data-after-close-reply", f"{code} to {command}, then {rest[:200]!r}")
        self.closed = True
        raise Closed

    async def expect_eof(self, what: str, timeout: float) -> None:
        """The server must drop this connection (within ``timeout``) without a cleartext SMTP reply."""
        assert self.reader is not None
        received = b""
        try:
            while chunk := await asyncio.wait_for(self.reader.read(65536), timeout):
                received += chunk
        except TimeoutError:
            self.find("not-dropped", f"{what}: connection still open after {timeout:.0f} s")
        except (ConnectionError, ssl.SSLError):
            pass
        if re.match(rb"\d{3}[ -]", received) and self.listener == "implicit" and not self.tls:
            self.find("cleartext-on-tls-port", f"{what}: {received[:200]!r}")
        self.note(f"S: EOF after {what} ({len(received)} bytes)")
        self.closed = True

    async def guarded(self, step: Any) -> None:
        """Run a step; a write refused by a server that has closed is the end of the session, no finding
        (a read would have reported a close that no reply allowed)."""
        try:
            await step
        except (ConnectionError, ssl.SSLError) as exc:
            self.note(f"C: {exc!r}")
            self.closed = True
            raise Closed from exc

    def opened(self) -> None:
        assert self.writer is not None
        self.local_port = self.writer.get_extra_info("sockname")[1]
        self.ledger.by_port[self.local_port] = self.transcript
        self.note(f"local port {self.local_port}")

    # -- connection ----------------------------------------------------------------------------

    async def open(self, rng: Random) -> None:
        context = self.endpoints.client_context if self.listener == "implicit" else None
        port = self.endpoints.ports[self.listener]
        if self.listener == "implicit" and rng.random() < 0.08:
            await self._open_raw(port)
            await self.broken_handshake(rng)
            return
        self.reader, self.writer = await asyncio.open_connection(
            HOST, port, ssl=context, server_hostname="localhost" if context else None, local_addr=(self.source, 0)
        )
        self.opened()
        code = await self.reply("greeting")
        if code != 220:
            await self.expect_eof(f"greeting {code}", 5)

    async def _open_raw(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, port, local_addr=(self.source, 0))
        self.opened()

    async def broken_handshake(self, rng: Random) -> None:
        """Part of a ClientHello (or none, or noise), then FIN, RST or silence until the server drops us."""
        hello = self.endpoints.hello
        kind = rng.choice(["truncated", "truncated", "noise", "nothing"])
        payload = {"truncated": hello[: rng.randint(1, len(hello) - 1)], "noise": b"EHLO client.test\r\n"}.get(kind)
        self.ledger.failed_handshakes += 1
        if payload:
            await self.send(payload)
        self.note(f"TLS handshake: {kind}")
        end = rng.choice(["wait", "fin", "fin", "rst", "rst"])
        if end == "wait":
            await self.expect_eof(f"{kind} handshake", self.endpoints.handshake_timeout + 10)
        else:
            self.disconnect(end)

    def disconnect(self, how: str) -> None:
        """Close abruptly: FIN, or RST (linger 0)."""
        assert self.writer is not None
        self.note(f"C: disconnect ({how})")
        if how == "rst":
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.writer.transport.abort()
        else:
            self.writer.close()
        self.closed = True

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 5)
        self.closed = True

    # -- steps -----------------------------------------------------------------------------------

    async def step(self, rng: Random) -> None:
        """One client step, chosen by what the client knows of the session (or at random)."""
        roll = rng.random()
        if roll < 0.03:
            self.disconnect(rng.choice(["fin", "rst"]))
        elif roll < 0.05:
            await self.send(_mutate_text(rng, rng.choice([b"MAIL FROM:<app@exa", b"EHL", b"D", b"AUTH PLAIN AG"])))
            self.disconnect(rng.choice(["fin", "rst"]))
        elif roll < 0.13:
            await self.exchange(rng, [ehlo_line(rng)])
        elif roll < 0.2 and self.listener != "plain":
            await self.exchange(rng, [_line(rng, rng.choice([b"STARTTLS"] * 5 + [b"STARTTLS now", b"starttls"]))])
        elif roll < 0.3 and self.listener != "plain":
            command, responses = auth_lines(rng, self.endpoints.creds)
            await self.exchange(rng, [command], responses)
        elif roll < 0.62:
            await self.transaction(rng)
        elif roll < 0.67:
            await self.bdat(rng)
        elif roll < 0.82:
            burst = [rng.choice([simple_line, ehlo_line, mail_line, rcpt_line])(rng) for _ in range(rng.randint(1, 6))]
            if rng.random() < 0.2:
                burst.append(_line(rng, rng.choice([b"DATA", b"QUIT", b"STARTTLS", b"AUTH PLAIN", b"BDAT 1 LAST"])))
            await self.exchange(rng, burst)
        elif roll < 0.9:
            await self.exchange(rng, [garbage_line(rng)])
        else:
            await self.exchange(rng, [simple_line(rng)])

    async def finish(self, rng: Random) -> None:
        """End the session: usually QUIT (221, then EOF), else an abrupt disconnect."""
        if self.closed:
            return
        if rng.random() < 0.75:
            with contextlib.suppress(Closed):
                await self.exchange(rng, [b"QUIT\r\n"])
            if not self.closed:
                await self.expect_eof("QUIT", 10)
        else:
            self.disconnect(rng.choice(["fin", "rst"]))

    async def exchange(self, rng: Random, lines: list[bytes], responses: Iterable[bytes] = ()) -> None:
        """Send ``lines`` pipelined (modal commands only last), then read one reply per line."""
        modal = [i for i, ln in enumerate(lines) if verb(ln) in MODAL]
        if modal and modal[0] != len(lines) - 1:
            lines = lines[: modal[0] + 1]
        await self.send(b"".join(lines))
        answers = list(responses)
        for line in lines:
            for part in line.split(b"\n")[:-1]:  # the server reads a command up to each LF
                command = verb(part)
                self.utf8_asked = b"SMTPUTF8" in part.upper()
                code = await self.reply(command)
                await self.after(rng, command, code, answers)

    async def after(self, rng: Random, command: str, code: int, answers: list[bytes]) -> None:
        """Follow a reply that changes what comes next (354, 334, 220 to STARTTLS) and track state."""
        if command == "MAIL":
            self.in_mail = self.in_mail or code == 250
        elif command in ("RSET", "EHLO", "HELO") and code == 250:
            self.in_mail = False
            self.extended = command == "EHLO" or self.extended
        elif command == "AUTH" and code == 235:
            self.authenticated = True
        if command == "DATA" and code == 354:
            await self.data(rng)
        elif command == "AUTH":
            while code == 334:
                if not answers or rng.random() < 0.03:
                    if rng.random() < 0.5:
                        self.disconnect(rng.choice(["fin", "rst"]))
                        return
                    answers = [b"*\r\n"]
                await self.send(answers.pop(0))
                code = await self.reply("AUTH")
            if code == 235:
                self.authenticated = True
        elif command == "STARTTLS" and code == 220:
            await self.handshake(rng)

    async def handshake(self, rng: Random) -> None:
        roll = rng.random()
        if roll < 0.1:
            await self.broken_handshake(rng)
            return
        assert self.writer is not None and self.reader is not None
        context = self.endpoints.client_context
        if roll < 0.15:
            context = ssl.create_default_context()  # a client that does not trust the bridge's CA
        self.note("TLS handshake (STARTTLS)")
        try:
            await asyncio.wait_for(self.writer.start_tls(context, server_hostname="localhost"), 30)
        except ssl.SSLCertVerificationError:
            self.ledger.failed_handshakes += 1
            self.note("C: certificate not trusted; disconnect")
            self.disconnect("fin")
            return
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            self.find("starttls-handshake-failed", repr(exc))
        self.tls = True
        self.extended = False
        self.authenticated = False
        self.in_mail = False
        try:  # a command sent after STARTTLS in the same packet must not be answered (RFC 3207 §6)
            early = await asyncio.wait_for(self.reader.read(1), 0.02)
        except TimeoutError:
            return
        self.find("answer-after-starttls", f"the server spoke first after the handshake: {early!r}")

    async def transaction(self, rng: Random) -> None:
        """EHLO and AUTH as needed, MAIL, RCPTs and DATA: one step at a time, or pipelined."""
        lines: list[bytes] = []
        if not self.extended or rng.random() < 0.1:
            lines.append(_line(rng, b"EHLO client.test") if rng.random() < 0.9 else ehlo_line(rng))
        if self.listener == "starttls" and not self.tls and rng.random() < 0.9:
            await self.exchange(rng, [*lines, b"STARTTLS\r\n"])
            if self.closed:
                return
            lines = [b"EHLO client.test\r\n"]
        if self.source != ALLOWLISTED_SOURCE and not self.authenticated and self.tls and rng.random() < 0.85:
            auth = b64(b"\x00" + self.endpoints.creds.login.encode() + b"\x00" + self.endpoints.creds.password.encode())
            await self.exchange(rng, [*lines, f"AUTH PLAIN {auth}\r\n".encode()])
            if self.closed:
                return
            lines = []
        sender = rng.choice(GOOD_SENDERS * 6 + BAD_SENDERS)
        clean = rng.random() < 0.75
        lines.append(mail_line(rng, sender, clean))
        count = rng.choice([1] * 10 + [2, 3, 0, 51, 101])
        lines += [rcpt_line(rng, i, clean) for i in range(count)]
        lines.append(_line(rng, b"DATA") if rng.random() < 0.95 else b"DATA x\r\n")
        if rng.random() < 0.5:
            await self.exchange(rng, lines)
        else:
            for line in lines:
                await self.exchange(rng, [line])
                if self.closed:
                    return

    async def data(self, rng: Random) -> None:
        """After 354: a body, then the final dot (or a disconnect before or after it)."""
        token = f"fuzz-{rng.getrandbits(64):016x}"
        ledger = self.ledger
        ledger.transcripts[token] = self.transcript
        body = message_content(rng, token, rng.choice(GOOD_SENDERS * 6 + BAD_SENDERS))
        end = rng.random()
        if end < 0.04:
            cut = rng.randint(0, len(body))
            await self.send(body[:cut])
            ledger.unfinished.add(token)
            self.disconnect(rng.choice(["fin", "rst"]))
            return
        pieces = rng.randint(1, 3)
        cuts = sorted(rng.randint(0, len(body)) for _ in range(pieces - 1))
        for start, stop in zip([0, *cuts], [*cuts, len(body)], strict=True):
            await self.send(body[start:stop])
        ledger.in_doubt.add(token)
        await self.send(b".\r\n")
        if end < 0.07:
            self.disconnect(rng.choice(["fin", "rst"]))
            return
        try:
            code = await self.reply("DATA-END")
        except Closed:
            ledger.in_doubt.discard(token)
            ledger.refused.add(token)
            raise
        ledger.in_doubt.discard(token)
        self.in_mail = False
        if code != 250:
            ledger.refused.add(token)
            return
        match = QUEUED_AS.search(self.last_text)
        if match is None:
            ledger.in_doubt.add(token)
            self.find("250-without-id", f"final 250 names no message: {self.last_text!r}")
        ledger.acknowledged[token] = match.group(1)

    async def bdat(self, rng: Random) -> None:
        """BDAT (RFC 3030), which the bridge does not offer: its chunk must not become a message."""
        token = f"fuzz-{rng.getrandbits(64):016x}"
        chunk = message_content(rng, token, "app@example.com")[: rng.choice([10, 200, 2000])]
        chunk = chunk.rsplit(b"\n", 1)[0] + b"\n" if b"\n" in chunk else chunk + b"\r\n"
        self.ledger.unfinished.add(token)
        self.ledger.transcripts[token] = self.transcript
        await self.send(f"BDAT {len(chunk)} LAST\r\n".encode() + chunk)
        code = await self.reply("BDAT")
        if 200 <= code < 300:  # CHUNKING after all: this chunk was the message
            self.ledger.unfinished.discard(token)
            match = QUEUED_AS.search(self.last_text)
            if match:
                self.ledger.acknowledged[token] = match.group(1)
            return
        for part in chunk.split(b"\n")[:-1]:  # refused: the server reads the chunk as command lines
            command = verb(part)
            if command in MODAL:
                return  # cannot follow a modal command hidden in the chunk; end here
            await self.reply(command)


def new_session(endpoints: Endpoints, ledger: Ledger, rng: Random) -> Session:
    """A client on a random listener, from inside or outside the allowlisted network."""
    listener = rng.choice(sorted(endpoints.ports))
    source = ALLOWLISTED_SOURCE if rng.random() < 0.4 else HOST
    ledger.sessions += 1
    return Session(endpoints, ledger, listener, source)


async def run_session(endpoints: Endpoints, ledger: Ledger, rng: Random, max_steps: int = 7) -> list[Finding]:
    """One whole session: connect, a few steps, then QUIT or a disconnect; the findings it made."""
    session = new_session(endpoints, ledger, rng)
    with contextlib.suppress(Closed, FindingError):
        await session.guarded(session.open(rng))
        for _ in range(rng.randint(0, max_steps)):
            if session.closed:
                break
            await session.guarded(session.step(rng))
        await session.guarded(session.finish(rng))
    await session.close()
    return session.findings


# ---------------------------------------------------------------------------------------------------
# What the bridge logs and counts, and what it holds once every session has closed
# ---------------------------------------------------------------------------------------------------


def exception_findings(records: list[tuple[int | None, str]], ledger: Ledger) -> list[Finding]:
    """Logged exceptions (client port, text), each with the transcript of the session it happened in."""
    return [Finding("exception-logged", text, ledger.by_port.get(port or -1, [])) for port, text in records]


def leftovers(runtime: Any) -> dict[str, Any]:
    """What a bridge with no open session must not hold: sessions, transactions, caps."""
    caps = runtime.caps
    return {
        "sessions": len(runtime.sessions),
        "transactions": runtime.transactions,
        "connections counted": caps.total,
        "clients counted": dict(caps.per_client),
    }


def live_objects(kinds: tuple[type, ...]) -> Counter[str]:
    import gc

    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects() if isinstance(o, kinds))


# Findings not yet fixed, each with a regression test that reproduces it (test_fuzz_findings.py): counted and
# printed but failing nothing. Every finding so far is fixed; add an entry only while a fix is pending.
# While a failed TLS handshake could leave its session open, this allowed one leftover per failed handshake.
FAILED_HANDSHAKE_LEAKS = False
KNOWN: dict[str, re.Pattern[str]] = {}


def known(finding: Finding) -> str | None:
    """The regression test of an already reported finding, or None for a new one."""
    text = f"{finding.kind}: {finding.detail}"
    return next((name for name, pattern in KNOWN.items() if pattern.search(text)), None)


@dataclass
class FindingLog:
    """Findings by signature: how many, and the first one's transcript (a long run can have thousands)."""

    counts: Counter[str] = field(default_factory=Counter)
    first: dict[str, Finding] = field(default_factory=dict)

    def add(self, findings: Iterable[Finding]) -> None:
        for finding in findings:
            self.counts[finding.signature] += 1
            self.first.setdefault(finding.signature, finding)

    def merge(self, other: FindingLog) -> None:
        self.counts.update(other.counts)
        for signature, finding in other.first.items():
            self.first.setdefault(signature, finding)

    def total(self) -> int:
        return sum(self.counts.values())

    def new(self) -> int:
        return sum(n for sig, n in self.counts.items() if known(self.first[sig]) is None)

    def render(self) -> list[str]:
        out = [f"  findings: {self.total()} ({len(self.counts)} distinct, {self.new()} not known before)"]
        for signature, count in self.counts.most_common():
            first = self.first[signature]
            label = known(first)
            out.append(f"    [{count}x] {signature}" + (f"  (known: {label})" if label else "  (NEW)"))
            out.append("      first: " + first.render().replace("\n", "\n      "))
        return out


@dataclass
class Summary:
    sessions: int
    commands: int
    findings: FindingLog
    seconds: float
    acknowledged: int
    queued: int
    extra: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        out = [
            "SMTP session fuzz summary",
            f"  sessions: {self.sessions}",
            f"  commands: {self.commands}",
            f"  messages acknowledged (250 after the dot): {self.acknowledged}; queued: {self.queued}",
            f"  time: {self.seconds:.0f} s ({self.sessions / max(self.seconds, 1e-9):.0f} sessions/s)",
        ]
        out += [f"  {k}: {v}" for k, v in self.extra.items()]
        return "\n".join(out + self.findings.render())


# ---------------------------------------------------------------------------------------------------
# The long run's clients, in processes of their own (the bridge keeps the test process's interpreter)
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a client process needs to reach the bridge (picklable)."""

    ports: dict[str, int]
    ca_file: str
    login: tuple[str, str]
    handshake_timeout: float

    def endpoints(self) -> Endpoints:
        context = ssl.create_default_context(cafile=self.ca_file)
        return Endpoints(self.ports, context, Credentials(*self.login), self.handshake_timeout)


async def run_many(endpoints: Endpoints, ledger: Ledger, log: FindingLog, numbers: Iterable[int], seed: str,
                   concurrency: int) -> None:  # fmt: skip
    """Sessions ``numbers`` (each seeded by seed and number), ``concurrency`` at a time."""
    queue = iter(numbers)

    async def client() -> None:
        for number in queue:
            log.add(await run_session(endpoints, ledger, Random(f"{seed}:{number}")))

    await asyncio.gather(*(client() for _ in range(concurrency)))


def client_process(target: Target, numbers: range, seed: str, concurrency: int) -> tuple[Ledger, FindingLog]:
    ledger, log = Ledger(), FindingLog()
    asyncio.run(run_many(target.endpoints(), ledger, log, numbers, seed, concurrency))
    return ledger, log
