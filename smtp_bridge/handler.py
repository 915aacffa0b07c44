"""aiosmtpd's hooks: each one turns an SMTP step into a call to the core and the result into a reply.

Policy (address syntax, sender rights, size, recipients, canonical form) is the core's; this module
only decides which client is speaking and how each outcome is worded.
"""

from __future__ import annotations

import asyncio
import binascii
from base64 import b64decode
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.smtp import AuthResult, Envelope, Session, TLSSetupException

from mailrelay.addresses import parse_address, sender_allowed
from mailrelay.clients import hash_key
from mailrelay.compose import from_smtp
from mailrelay.errors import BareNewline, InvalidRequest, MailrelayError, Unauthenticated
from mailrelay.message_data import MessageData
from mailrelay.models.client import Client
from mailrelay.submission import Accepted
from mailrelay.suppression.rules import refusal
from smtp_bridge import replies
from smtp_bridge.budget import declared_size
from smtp_bridge.observability import logger
from smtp_bridge.protocol import BridgeEnvelope, BridgeSMTP
from smtp_bridge.received import received_header
from smtp_bridge.runtime import SessionRuntime

MAX_AUTH_DELAY_SECONDS = 10.0


@dataclass(frozen=True)
class SessionLogin:
    """What a session keeps of its AUTH: the client and a hash of its key, never the key itself."""

    client_id: str
    key_hash: str


class BridgeHandler:
    def __init__(self, runtime: SessionRuntime) -> None:
        self.runtime = runtime

    # -- who is sending -------------------------------------------------------------------------

    def current_client(self, server: BridgeSMTP, session: Session) -> Client | None:
        """Who is sending, read now (blocking): the AUTH client if its key is still the active one,
        else the client bound to the allowlisted network; None: AUTH is required.

        Read at MAIL and again when DATA ends, so a key revoked during an open session stops working
        at its next transaction, not when the session closes.
        """
        login = session.auth_data if session.authenticated else None
        if isinstance(login, SessionLogin):
            try:
                return self.runtime.clients.reauthenticate(login.client_id, login.key_hash)
            except Unauthenticated:
                logger.info("AUTH credentials no longer valid", extra={"client_id": login.client_id})
                session.authenticated = False
                session.auth_data = None
                return None
        client_id = server.allowlisted_client_id
        if client_id is None:
            return None
        client = self.runtime.clients.store.get(client_id)
        if client is None or client.state != "active":
            logger.error("allowlisted network bound to an unknown or revoked client", extra={"client_id": client_id})
            return None
        return client

    # -- hooks ------------------------------------------------------------------------------------

    async def handle_EHLO(
        self, server: BridgeSMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        # We answer with enhanced codes and handle pipelined commands in order (RFC 6409 §7: SHOULD).
        return [*responses[:-1], "250-ENHANCEDSTATUSCODES", "250-PIPELINING", responses[-1]]

    async def handle_MAIL(
        self, server: BridgeSMTP, session: Session, envelope: BridgeEnvelope, address: str, options: list[str]
    ) -> str:
        if server.lifetime_over:
            return replies.SESSION_TOO_OLD
        try:
            client = await self.runtime.run_blocking(self.current_client, server, session)
        except Exception:  # the client store is unreachable: ours, so temporary
            logger.exception("client lookup failed", extra={"client_address": server.client_address})
            return replies.LOCAL_ERROR
        if client is None:
            self._log_refusal(server, None, replies.AUTH_REQUIRED)
            return replies.AUTH_REQUIRED
        try:
            sender = parse_address(address, "MAIL FROM")
        except InvalidRequest as exc:
            return self._log_refusal(server, client, replies.for_address(exc))
        if not sender_allowed(sender, client.allowed_from):
            return self._log_refusal(server, client, f"550 5.7.1 Sender not allowed for this client: {sender.smtp}")
        size = declared_size(options)
        if size is not None and not self.runtime.budget.fits(size):  # RFC 1870 §6.1: 452 when it won't fit now
            self.runtime.metrics.incr("budget_refused")
            return self._log_refusal(server, client, replies.INSUFFICIENT_STORAGE)
        envelope.mail_from = address
        envelope.client_id = client.id
        envelope.mail_options.extend(options)
        server.begin_transaction()
        return replies.SENDER_OK

    async def handle_RCPT(
        self, server: BridgeSMTP, session: Session, envelope: BridgeEnvelope, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self.runtime.settings.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        try:
            recipient = parse_address(address, "RCPT TO")
        except InvalidRequest as exc:
            return replies.for_address(exc)
        refusal = await self._suppressed(envelope, recipient.smtp)
        if refusal is not None:
            return self._log_refusal(server, None, refusal)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return replies.RECIPIENT_OK

    async def _suppressed(self, envelope: BridgeEnvelope, recipient: str) -> str | None:
        """The refusal for a recipient on the sending client's suppression list (a 451 when it cannot be read)."""
        suppressions = self.runtime.submissions.suppressions
        if suppressions is None or envelope.client_id is None:
            return None
        try:
            found = await self.runtime.run_blocking(suppressions.active, envelope.client_id, [recipient])
        except Exception:  # the list is unreachable: ours, so temporary
            logger.exception("suppression look-up failed", extra={"client_id": envelope.client_id})
            return replies.LOCAL_ERROR
        entry = found.get(recipient)
        return replies.suppressed(refusal(entry)) if entry is not None else None

    async def handle_DATA(self, server: BridgeSMTP, session: Session, envelope: BridgeEnvelope) -> str:
        """The message as received (streamed by BridgeSMTP.smtp_DATA), or the first problem found in it."""
        assert envelope.incoming is not None
        client: Client | None = None
        server.storage_started()
        try:
            data = envelope.incoming.finish()
            received = received_header(server, session, datetime.now(UTC))
            client, accepted = await self.runtime.run_blocking(self._submit, server, session, envelope, data, received)
            if client is None or accepted is None:
                return self._log_refusal(server, None, replies.AUTH_REQUIRED)
            self.runtime.metrics.incr("duplicates_answered" if accepted.duplicate else "messages_accepted")
            reply = replies.accepted(accepted.id)
            logger.info(
                "re-sent message answered with its first id" if accepted.duplicate else "message accepted",
                extra={"client_address": server.client_address, "client_id": client.id,
                       "message_id": accepted.id, "recipients": len(envelope.rcpt_tos), "size": data.size,
                       "reply": reply},
            )  # fmt: skip
            return reply
        except MailrelayError as exc:
            if isinstance(exc, BareNewline):
                self.runtime.metrics.incr("bare_newline_rejected")
            reply = replies.for_error(exc)
        except Exception:
            logger.exception("message not accepted: unexpected error", extra={"client_address": server.client_address})
            reply = replies.LOCAL_ERROR
        finally:
            server.storage_finished()
        return self._log_refusal(server, client, reply)

    def _submit(
        self, server: BridgeSMTP, session: Session, envelope: Envelope, data: MessageData, received: bytes
    ) -> tuple[Client | None, Accepted | None]:
        """The client is read again first: a key revoked since MAIL does not get this message through."""
        client = self.current_client(server, session)
        if client is None:
            return None, None
        settings = self.runtime.core
        submission = from_smtp(
            mail_from=envelope.mail_from or "", rcpt_to=list(envelope.rcpt_tos), data=data, settings=settings,
            now=datetime.now(UTC), smtputf8=bool(envelope.smtp_utf8), received=received,
        )  # fmt: skip
        limit = self.runtime.settings.max_recipients
        return client, self.runtime.submissions.submit(client, submission, max_recipients=limit)

    async def handle_exception(self, error: Exception) -> str:
        """Never a 5xx for a failure of ours (aiosmtpd's default is '500 Error: ...')."""
        if isinstance(error, TLSSetupException):  # a client's failed STARTTLS handshake: counted when it failed
            logger.info("STARTTLS handshake failed", extra={"error": repr(error.__cause__)})
            return replies.LOCAL_ERROR  # never sent: aiosmtpd closes the connection
        self.runtime.metrics.incr("handler_exceptions")
        logger.exception("SMTP session error", extra={"error": type(error).__name__})
        return replies.LOCAL_ERROR

    # -- AUTH (PLAIN and LOGIN; aiosmtpd offers them only under TLS) ---------------------------------

    async def auth_PLAIN(self, server: BridgeSMTP, args: list[str]) -> AuthResult:
        blob = await _challenge(server, "") if len(args) == 1 else await _b64(server, args[1])
        if not isinstance(blob, bytes):  # the client aborted or sent bad base64, and was told so
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Cannot split the AUTH PLAIN value")
            return AuthResult(success=False, handled=True)
        return await self._verify(server, parts[1], parts[2])

    async def auth_LOGIN(self, server: BridgeSMTP, args: list[str]) -> AuthResult:
        login: object = (
            await _challenge(server, server.AuthLoginUsernameChallenge)
            if len(args) == 1
            else await _b64(server, args[1])
        )
        if not isinstance(login, bytes):
            return AuthResult(success=False, handled=True)
        password = await _challenge(server, server.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._verify(server, login, password)

    async def _verify(self, server: BridgeSMTP, login: bytes, password: bytes) -> AuthResult:
        """Valid credentials always succeed; failures are counted per client address and slowed down.

        The credentials are checked before the address's failure count, so clients sharing a NAT
        address with someone who keeps failing are never locked out. Keys hold 256 random bits, so
        the delay and the disconnect bound the cost of guessing, not its chance of success.
        """
        runtime = self.runtime
        address = server.client_address
        username = login.decode("utf-8", "surrogateescape")
        key = password.decode("utf-8", "surrogateescape")
        try:
            client = await runtime.run_blocking(runtime.clients.authenticate_login, username, key)
        except Unauthenticated:
            failures = runtime.throttle.failed(address)
            runtime.metrics.incr("auth_failed")
            # Never log the password; the user name only shortened and printable.
            logger.info(
                "AUTH failed",
                extra={"client_address": address, "username": username[:64].encode("ascii", "replace").decode(),
                       "failures": failures},
            )  # fmt: skip
            await asyncio.sleep(min(MAX_AUTH_DELAY_SECONDS, runtime.settings.auth_failure_delay_seconds * failures))
            if failures >= runtime.settings.auth_failure_limit:
                return await self._throttled(server)
            return AuthResult(success=False, handled=False, message=replies.AUTH_INVALID)
        except Exception:  # the client store is unreachable: ours, so temporary
            logger.exception("AUTH lookup failed", extra={"client_address": address})
            return AuthResult(success=False, handled=False, message=replies.AUTH_UNAVAILABLE)
        runtime.metrics.incr("auth_succeeded")
        logger.info("AUTH succeeded", extra={"client_address": address, "client_id": client.id})
        login_data = SessionLogin(client_id=client.id, key_hash=hash_key(key))
        return AuthResult(success=True, handled=False, auth_data=login_data, message=replies.AUTH_OK)

    async def _throttled(self, server: BridgeSMTP) -> AuthResult:
        self.runtime.metrics.incr("auth_throttled")
        await server.push(replies.AUTH_THROTTLED)
        server._close()
        return AuthResult(success=False, handled=True)

    # -- logs -------------------------------------------------------------------------------------

    def _log_refusal(self, server: BridgeSMTP, client: Client | None, reply: str) -> str:
        logger.info(
            "transaction refused",
            extra={"client_address": server.client_address, "client_id": client.id if client else None, "reply": reply},
        )
        return reply


async def _challenge(server: BridgeSMTP, challenge: str) -> object:
    """The client's answer to a 334 challenge; an answer too long to read is refused as RFC 4954 §4 says."""
    try:
        return await server.challenge_auth(challenge)
    except ValueError:  # the stream reader's line limit: the rest of that line is discarded
        await server.push("500 5.5.6 Authentication exchange line is too long")
        return None


async def _b64(server: Any, value: str) -> bytes | None:
    try:
        return b64decode(value.encode(), validate=True)
    except (binascii.Error, ValueError):
        await server.push("501 5.5.2 Cannot decode base64")
        return None
