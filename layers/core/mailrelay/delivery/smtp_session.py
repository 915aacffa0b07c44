"""One SMTP client session to one upstream, on smtplib, verified TLS only.

smtplib verifies nothing unless it is given a context, so every TLS handshake here uses
``ssl.create_default_context()`` (certificate and host name). A session never continues in
plaintext when STARTTLS is missing or fails, and AUTH is only ever sent over TLS.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache

from mailrelay.delivery.deadline import Deadline, DeadlineReached
from mailrelay.delivery.replies import RecipientOutcome, describe, local_reply, outcome_of, reply_from
from mailrelay.delivery.upstreams import Upstream
from mailrelay.models.status import SmtpReply
from mailrelay.ports import CredentialSource, StorageError

_LEADING_DOT = re.compile(rb"(?m)^\.")
NO_REPLY_TO_DATA_END = "no reply to the end of data (timeout or connection lost); the upstream may have it"
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")


@dataclass(frozen=True)
class SmtpTimeouts:
    connect: float
    reply: float
    data_done: float


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    rcpt_to: tuple[str, ...]
    smtputf8: bool = False


class UpstreamUnavailable(Exception):
    """This upstream cannot take mail now (connection, TLS, greeting, AUTH, 421): try the next one."""

    def __init__(self, upstream: Upstream, kind: str, detail: str, reply: SmtpReply | None = None) -> None:
        super().__init__(f"{upstream.name}: {detail}")
        self.upstream = upstream
        self.kind = kind  # connect | tls | auth | credentials | greeting | closed
        self.reply = reply


@lru_cache(maxsize=16)
def tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)  # CERT_REQUIRED + check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class UpstreamSession:
    def __init__(self, upstream: Upstream, smtp: smtplib.SMTP) -> None:
        self.upstream = upstream
        self._smtp = smtp
        self.last_used = time.monotonic()
        self.broken = False
        self.last_error: str | None = None

    # -- opening --------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        upstream: Upstream,
        credentials: CredentialSource,
        ehlo_name: str,
        deadline: Deadline,
        timeouts: SmtpTimeouts,
    ) -> UpstreamSession:
        implicit = upstream.tls == "implicit" and not upstream.insecure_plaintext
        context = None if upstream.insecure_plaintext else tls_context(upstream.ca_file)
        timeout = deadline.timeout(timeouts.connect)
        smtp: smtplib.SMTP | None = None
        try:
            # smtplib checks the certificate against the host given to the constructor (server_hostname)
            if implicit:
                smtp = smtplib.SMTP_SSL(upstream.host, upstream.port, ehlo_name or None, timeout=timeout,
                                        context=context)  # fmt: skip
            else:
                smtp = smtplib.SMTP(upstream.host, upstream.port, ehlo_name or None, timeout=timeout)
            cls._handshake(smtp, upstream, context, deadline, timeouts)
            if upstream.secret_id:
                cls._authenticate(smtp, upstream, upstream.secret_id, credentials)
        except BaseException as exc:
            if smtp is not None:
                smtp.close()
            raise _unavailable(upstream, exc) from None
        return cls(upstream, smtp)

    @staticmethod
    def _handshake(
        smtp: smtplib.SMTP, upstream: Upstream, context: ssl.SSLContext | None, deadline: Deadline,
        timeouts: SmtpTimeouts,
    ) -> None:  # fmt: skip
        _set_timeout(smtp, deadline.timeout(timeouts.reply))
        _ehlo(smtp, upstream)
        if upstream.tls == "starttls" and not upstream.insecure_plaintext:
            if not smtp.has_extn("starttls"):
                raise UpstreamUnavailable(
                    upstream, "tls", "STARTTLS is not offered; refusing to continue without TLS (nothing was sent)"
                )
            smtp.starttls(context=context)  # raises on any reply but 220
            _ehlo(smtp, upstream)

    @staticmethod
    def _authenticate(smtp: smtplib.SMTP, upstream: Upstream, secret_id: str, credentials: CredentialSource) -> None:
        if not isinstance(smtp.sock, ssl.SSLSocket):  # defence in depth: config validation forbids it already
            raise UpstreamUnavailable(upstream, "auth", "refusing to send credentials without TLS")
        for refresh in (False, True):  # a 535 may mean the secret was rotated: fetch it once more
            try:
                secret = credentials.get(secret_id, refresh=refresh)
            except StorageError as exc:
                raise UpstreamUnavailable(upstream, "credentials", f"cannot read credentials: {exc}") from None
            try:
                smtp.login(secret.username, secret.password)
                return
            except smtplib.SMTPNotSupportedError:
                raise UpstreamUnavailable(upstream, "auth", "the upstream offers no AUTH mechanism") from None
            except smtplib.SMTPAuthenticationError as exc:
                reply = reply_from(exc.smtp_code, exc.smtp_error)
                if exc.smtp_code != 535 or refresh:
                    detail = f"authentication failed: {describe(reply)}"
                    raise UpstreamUnavailable(upstream, "auth", detail, reply) from None

    # -- liveness -------------------------------------------------------------------------------

    def check(self, deadline: Deadline, timeouts: SmtpTimeouts, *, reset: bool) -> bool:
        """RSET between messages of a batch; NOOP for a session kept from an earlier invocation."""
        try:
            _set_timeout(self._smtp, deadline.timeout(timeouts.reply))
            code, _ = self._smtp.rset() if reset else self._smtp.noop()
        except (OSError, smtplib.SMTPException, DeadlineReached):
            return False
        return code == 250

    def close(self) -> None:
        try:
            if self._smtp.sock is not None and not self.broken:
                self._smtp.sock.settimeout(1)
                self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self._smtp.close()

    # -- one mail transaction -------------------------------------------------------------------

    def send(
        self, envelope: Envelope, data: bytes, deadline: Deadline, timeouts: SmtpTimeouts
    ) -> dict[str, RecipientOutcome]:
        """One transaction; an outcome for every recipient, or UpstreamUnavailable before DATA ends."""
        smtp = self._smtp
        self.last_used = time.monotonic()
        self.last_error = None
        outcomes: dict[str, RecipientOutcome] = {}
        accepted: list[str] = []
        try:
            _set_timeout(smtp, deadline.timeout(timeouts.reply))
            options = self._mail_options(envelope, data)
            if isinstance(options, SmtpReply):
                return {r: outcome_of(options) for r in envelope.rcpt_to}
            reply = reply_from(*smtp.mail(envelope.mail_from, options))
            self._raise_if_closing(reply)
            if reply.code != 250:
                return {r: outcome_of(reply) for r in envelope.rcpt_to}
            for rcpt in envelope.rcpt_to:
                _set_timeout(smtp, deadline.timeout(timeouts.reply))
                reply = reply_from(*smtp.rcpt(rcpt))
                self._raise_if_closing(reply)
                if 200 <= reply.code < 300:
                    accepted.append(rcpt)
                else:
                    outcomes[rcpt] = outcome_of(reply)
            if not accepted:
                return outcomes
            reply = reply_from(*smtp.docmd("DATA"))
            self._raise_if_closing(reply)
            if reply.code != 354:
                outcomes.update({r: outcome_of(reply) for r in accepted})
                return outcomes
            done_timeout = deadline.timeout(timeouts.data_done)
            smtp.send(_LEADING_DOT.sub(b"..", data) + b".\r\n")  # queued bytes already end with CRLF
        except DeadlineReached:
            self.broken = True
            self.last_error = "the invocation ran out of time before the message was sent"
            outcomes.update({r: RecipientOutcome("deferred") for r in envelope.rcpt_to if r not in outcomes})
            return outcomes
        except (OSError, smtplib.SMTPException) as exc:
            self.broken = True
            raise UpstreamUnavailable(self.upstream, "closed", f"connection lost before end of data: {exc}") from None
        # The final "." is out: from here a missing reply means the upstream may have the message.
        try:
            _set_timeout(smtp, done_timeout)
            reply = reply_from(*smtp.getreply())
        except (OSError, smtplib.SMTPException):
            self.broken = True
            self.last_error = NO_REPLY_TO_DATA_END
            outcomes.update({r: RecipientOutcome("uncertain") for r in accepted})
            return outcomes
        if reply.code == 421:
            self.broken = True
        outcomes.update({r: outcome_of(reply) for r in accepted})
        return outcomes

    def _mail_options(self, envelope: Envelope, data: bytes) -> list[str] | SmtpReply:
        smtp = self._smtp
        options: list[str] = []
        if smtp.has_extn("size"):
            limit = smtp.esmtp_features.get("size", "")
            if limit.isdigit() and 0 < int(limit) < len(data):
                detail = f"message of {len(data)} bytes exceeds the upstream's limit of {limit}"
                return local_reply(552, "5.3.4", detail)
            options.append(f"SIZE={len(data)}")
        if smtp.has_extn("8bitmime") and _EIGHT_BIT.search(data):
            options.append("BODY=8BITMIME")
        if envelope.smtputf8:
            if not smtp.has_extn("smtputf8"):
                return local_reply(550, "5.6.7", "the message needs SMTPUTF8, which the upstream does not offer")
            options.append("SMTPUTF8")
        return options

    def _raise_if_closing(self, reply: SmtpReply) -> None:
        if reply.code == 421:
            self.broken = True
            raise UpstreamUnavailable(self.upstream, "closed", f"closing: {describe(reply)}", reply)


def _unavailable(upstream: Upstream, exc: BaseException) -> BaseException:
    """Failures while opening a session, as UpstreamUnavailable (anything unexpected passes through)."""
    if isinstance(exc, UpstreamUnavailable | DeadlineReached):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return UpstreamUnavailable(upstream, "tls", f"TLS certificate verification failed: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return UpstreamUnavailable(upstream, "tls", f"TLS handshake failed: {exc.reason or exc}")
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = reply_from(exc.smtp_code, exc.smtp_error)
        return UpstreamUnavailable(upstream, "greeting", f"refused: {describe(reply)}", reply)
    if isinstance(exc, OSError | smtplib.SMTPException):
        return UpstreamUnavailable(upstream, "connect", f"{type(exc).__name__}: {exc}")
    return exc


def _set_timeout(smtp: smtplib.SMTP, seconds: float) -> None:
    if smtp.sock is not None:
        smtp.sock.settimeout(seconds)


def _ehlo(smtp: smtplib.SMTP, upstream: Upstream) -> None:
    code, message = smtp.ehlo()
    if code != 250:
        reply = reply_from(code, message)
        raise UpstreamUnavailable(upstream, "greeting", f"EHLO refused: {describe(reply)}", reply)
