"""aiosmtpd's SMTP session, adjusted where its defaults do not fit a submission server on AWS.

What changes, and why:
- PROXY v2 is read first (only v2; only from trusted peers), and the client address it carries is the
  one used for allowlists, connection caps, AUTH throttling and logs.
- Implicit TLS starts *after* the PROXY header (the NLB sends it in clear ahead of the TLS stream),
  using the same in-protocol upgrade as STARTTLS; both have a short handshake deadline (aiosmtpd's
  is fixed at 60 s).
- Deadlines: one per command (aiosmtpd's timer, which only a complete valid command resets) and one
  for the whole DATA upload, started at 354 — a client trickling bytes cannot stretch either. The
  timer is paused while we store the message, so a slow write is answered instead of cut off.
- Replies: aiosmtpd's stock replies get enhanced status codes, and a 5xx for an exception of ours
  can never reach the client (it becomes 451 4.3.0).
- Drain: idle sessions get 421 and are closed; a session inside a transaction finishes it first.
- DATA is streamed: each line is checked and canonicalised as it arrives (mailrelay.incoming), the
  body spooled, and the process-wide in-flight budget charged; aiosmtpd would hold the whole message
  as a list of lines. A refused message is still read to its final dot (but not kept), and answered once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import ipaddress
import re
import ssl
from asyncio import sslproto
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiosmtpd.proxy_protocol import V2_CMD, get_proxy
from aiosmtpd.smtp import SMTP, Envelope, TLSSetupException, _AuthMechAttr, login_always_fail, syntax

from mailrelay.incoming import IncomingMessage
from smtp_bridge import replies
from smtp_bridge.access import allowlisted_client, in_networks
from smtp_bridge.budget import InsufficientStorage, Reservation, declared_size
from smtp_bridge.observability import logger
from smtp_bridge.runtime import SessionRuntime

Listener = Literal["starttls", "implicit", "plain"]

# The usual path, <dot-atom@domain> then parameters, which aiosmtpd's RFC 5322 parser (a large share of
# the CPU per message) would return unchanged; anything else goes through that parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(
    rf"[ \t]*<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>[ \t]*((?:[^ \t(].*)?)", re.DOTALL
)

# Per-session command budgets (aiosmtpd answers "421 4.7.0 <CMD> sent too many times" and closes).
CALL_LIMITS = {"AUTH": 3, "NOOP": 20, "HELP": 5, "VRFY": 5, "EXPN": 5, "EHLO": 10, "HELO": 10, "STARTTLS": 2}
CALL_LIMITS["*"] = 100_000


@dataclass(frozen=True)
class _MethodNames:
    """Which attributes SMTP.__init__ takes as verbs, hooks and AUTH mechanisms (it scans for them with
    dir() and inspect.getmembers() at every connection). The attributes are still read per session."""

    verbs: tuple[tuple[str, str], ...]  # (verb, attribute of the session)
    hooks: tuple[tuple[str, str], ...]  # (hook, attribute of the handler)
    auth: tuple[tuple[str, str, bool], ...]  # (mechanism, attribute, of the session itself)


_NAMES: dict[tuple[type[SMTP], type], _MethodNames] = {}


def _method_names(session_class: type[SMTP], handler_class: type) -> _MethodNames:
    names = _NAMES.get((session_class, handler_class))
    if names is None:
        names = _NAMES[session_class, handler_class] = _find_names(session_class, handler_class)
    return names


def _find_names(session_class: type[SMTP], handler_class: type) -> _MethodNames:
    """Found as aiosmtpd finds them (same prefixes, same precedence), once per pair of classes."""
    auth: dict[str, tuple[str, bool]] = {}
    for owner, builtin in ((session_class, True), (handler_class, False)):
        for name, fn in inspect.getmembers(owner, inspect.isfunction):
            if name.startswith("auth_"):
                mechanism = getattr(fn, "__auth_mechanism_name__", name.replace("auth_", "").replace("__", "-"))
                auth[mechanism] = (name, builtin)
    return _MethodNames(
        verbs=tuple((n.replace("smtp_", ""), n) for n in dir(session_class) if n.startswith("smtp_")),
        hooks=tuple((n.replace("handle_", ""), n) for n in dir(handler_class) if n.startswith("handle_")),
        auth=tuple((mechanism, name, builtin) for mechanism, (name, builtin) in auth.items()),
    )


@functools.lru_cache(maxsize=64)
def _ehlo_hook_version(hook: Callable[..., Any]) -> str:
    """aiosmtpd's reading of the EHLO hook's signature: 4 parameters the deprecated form, 5 the current one."""
    return {4: "old", 5: "new"}[len(inspect.signature(hook).parameters)]


class BridgeEnvelope(Envelope):
    """aiosmtpd's envelope, carrying the message as it was received instead of its bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.incoming: IncomingMessage | None = None
        self.client_id: str | None = None  # who is sending, as read at MAIL (for RCPT's suppression look-up)


class BridgeSMTP(SMTP):
    def __init__(self, handler: Any, runtime: SessionRuntime, listener: Listener) -> None:
        settings = runtime.settings
        tls_context = runtime.tls_context if listener == "starttls" else None
        # What SMTP.__init__ sets for these arguments, without the introspection it repeats for every
        # connection (inspect.getmembers, dir, inspect.signature: a fifth of the CPU per new connection).
        # tests/bridge/test_aiosmtpd_contract.py checks that both build the same session.
        self.loop = asyncio.get_running_loop()
        asyncio.StreamReaderProtocol.__init__(
            self,
            asyncio.StreamReader(loop=self.loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected,
            loop=self.loop,
        )
        self.event_handler = handler
        self.hostname = settings.hostname
        self.tls_context = tls_context
        self._timeout_handle = None
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._proxy_timeout = settings.proxy_protocol_timeout_seconds if settings.proxy_protocol else None
        names = _method_names(type(self), type(handler))
        self._auth_methods = {
            mechanism: _AuthMechAttr(getattr(self if builtin else handler, name), builtin)
            for mechanism, name, builtin in names.auth
        }
        self._handle_hooks = {hook: getattr(handler, name) for hook, name in names.hooks}
        ehlo = self._handle_hooks.get("EHLO")
        # What only aiosmtpd reads.
        vars(self).update({
            "__ident__": "ESMTP mailrelay",
            "data_size_limit": runtime.size_limit,
            "enable_SMTPUTF8": True,
            "_decode_data": False,
            "require_starttls": tls_context and listener == "starttls",
            "_timeout_duration": settings.command_timeout_seconds,
            "_tls_handshake_okay": True,
            "_handler_coroutine": None,
            "_auth_require_tls": True,
            "_authenticator": None,
            "_auth_callback": login_always_fail,
            "_auth_required": False,  # the MAIL hook decides: AUTH or an allowlisted network
            "_ehlo_hook_ver": None if ehlo is None else _ehlo_hook_version(ehlo),
            "_smtp_methods": {verb: getattr(self, name) for verb, name in names.verbs},
            "_enforce_call_limit": True,
            "_call_limit_base": CALL_LIMITS,
            "_call_limit_default": CALL_LIMITS["*"],
        })  # fmt: skip
        # aiosmtpd keeps these in a class attribute that every new session clears and every EHLO
        # raises: one dict per session, so concurrent sessions cannot change each other's limits.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self.runtime = runtime
        self.listener: Listener = listener
        self.client_address = "unknown"
        self.allowlisted_client_id: str | None = None
        # A session ends after session_max_seconds, at its first moment outside a transaction.
        self.lifetime_over = False
        self._lifetime_handle: asyncio.TimerHandle | None = None
        self._in_transaction = False  # counted in runtime.transactions
        self._admitted = False
        self._storing = False
        self._closing = False
        self._greeted = False  # nothing is said before the PROXY header, nor in clear on the TLS port

    # -- connection lifetime --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self._original_transport is None and self.transport is None
        super().connection_made(transport)
        if first:
            self.runtime.sessions.add(self)
            peer = transport.get_extra_info("peername")
            self.client_address = str(peer[0]) if peer else "unknown"

    def connection_lost(self, error: Exception | None) -> None:
        self._release()
        super().connection_lost(error)

    def _release(self) -> None:
        """Give back what the session holds (idempotent): asyncio never calls connection_lost for a
        connection whose TLS handshake failed, so that path releases here itself."""
        self.runtime.sessions.discard(self)
        if self._lifetime_handle is not None:
            self._lifetime_handle.cancel()
        self.end_transaction()
        if self._admitted:
            self._admitted = False
            self.runtime.caps.release(self.client_address)

    async def _handle_client(self) -> None:
        try:
            if self._proxy_timeout is not None and not await self._read_proxy_header():
                self._close()
                return
            if not self._admit():
                return
            if self.listener == "implicit" and not await self._start_implicit_tls():
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            self._close()
            return
        self._greeted = True
        await super()._handle_client()

    async def _read_proxy_header(self) -> bool:
        """The PROXY v2 header must come first, from a trusted peer; LOCAL (health checks) is allowed."""
        self._reset_timeout(self._proxy_timeout)
        if not in_networks(self.client_address, self.runtime.settings.proxy_trusted_networks):
            logger.warning("PROXY peer not trusted", extra={"peer": self.client_address})
            return False
        proxy = await get_proxy(self._reader)
        self._proxy_timeout = None  # aiosmtpd must not wait for a second header
        if not proxy or proxy.version != 2:
            self.runtime.metrics.incr("proxy_refused")
            logger.info("connection without a valid PROXY v2 header refused", extra={"peer": self.client_address})
            return False
        if proxy.command == V2_CMD.PROXY and isinstance(proxy.src_addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
            self.client_address = str(proxy.src_addr)
        else:
            # LOCAL: the load balancer's own health check; it gets no network's privileges.
            self.client_address = f"local:{self.client_address}"
        if self.session is not None:
            self.session.proxy_data = proxy
        self._reset_timeout()
        return True

    def _admit(self) -> bool:
        runtime = self.runtime
        runtime.metrics.incr("connections")
        if runtime.draining:
            self._refuse(replies.SHUTTING_DOWN)
            return False
        if not runtime.caps.admit(self.client_address):
            runtime.metrics.incr("connections_refused_cap")
            logger.info("connection cap reached", extra={"client_address": self.client_address})
            self._refuse(replies.TOO_MANY_CONNECTIONS)
            return False
        self._admitted = True
        self._lifetime_handle = self.loop.call_later(runtime.settings.session_max_seconds, self._lifetime_reached)
        self.allowlisted_client_id = allowlisted_client(self.client_address, runtime.settings.allowed_networks)
        if self.listener == "plain" and self.allowlisted_client_id is None:
            runtime.metrics.incr("connections_refused_plain")
            self._refuse(replies.NOT_ALLOWED_NETWORK)
            return False
        return True

    def _refuse(self, status: str) -> None:
        if self.listener != "implicit":  # no cleartext reply into a TLS port
            self._send_and_forget(status)
        self._close()

    def _send_and_forget(self, status: str) -> None:
        """A last reply before closing, outside the command loop (refusal, timeout, drain)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.runtime.metrics.reply(status)
        with contextlib.suppress(AttributeError, ConnectionError, RuntimeError):  # torn down underneath us
            self._writer.write(status.encode("ascii") + b"\r\n")

    def _close(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.close()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """The path exactly as written, or malformed: aiosmtpd's parser silently drops source routes
        (``<@relay:user@host>`` -> ``user@host``), which would let a routed recipient through."""
        simple = _SIMPLE_PATH.fullmatch(arg)
        if simple is not None:
            local_part = simple.group(1).rpartition("@")[0]
            if self.local_part_limit and len(local_part) > self.local_part_limit:
                return None, None
            return simple.group(1), simple.group(2)
        return self._parsed_path(arg)

    def _parsed_path(self, arg: str) -> tuple[str | None, str | None]:
        address, rest = super()._getaddr(arg)
        if address:
            written = arg.strip()
            consumed = written[: len(written) - len(rest or "")].strip() if rest else written
            if consumed.startswith("<") and consumed.endswith(">"):
                consumed = consumed[1:-1]
            if consumed != address:
                return None, None
        return address, rest

    def _create_envelope(self) -> BridgeEnvelope:
        return BridgeEnvelope()

    # -- DATA, streamed ----------------------------------------------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        envelope = self.envelope
        assert isinstance(envelope, BridgeEnvelope)
        if not envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        reservation = self.runtime.budget.reserve(declared_size(envelope.mail_options))
        if reservation is None:
            self.runtime.metrics.incr("budget_refused")
            await self.push(replies.for_error(InsufficientStorage()))
            return
        spool = self.runtime.new_spool()
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            incoming = IncomingMessage(
                spool, max_bytes=self.runtime.size_limit, bare_newlines=self.runtime.settings.bare_newlines
            )
            if not await self._receive(incoming, reservation):
                self._close()  # the client went away before its final dot: nothing to answer
                return
            envelope.incoming = incoming
            status = await self.event_handler.handle_DATA(self, self.session, envelope)
            self._set_post_data_state()
            await self.push(status)
        finally:
            envelope.incoming = None
            spool.close()
            reservation.release()

    async def _receive(self, incoming: IncomingMessage, reservation: Reservation) -> bool:
        """Read DATA up to its final dot (RFC 5321 §4.5.2), line by line, into ``incoming``; False when
        the connection ended first."""
        reader = self._reader
        received = 0
        partial = False  # inside a line too long for the reader, whose rest is still coming
        while True:
            try:
                line = await reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as exc:
                line = await reader.read(exc.consumed)  # drained, never kept
                incoming.line_too_long()
                partial = True
            except asyncio.IncompleteReadError:
                return False
            if not line:
                return False
            if not partial and line == b".\r\n":
                return True
            received += len(line)
            if incoming.error is None and not reservation.grow_to(received):
                self.runtime.metrics.incr("budget_refused")
                incoming.fail(InsufficientStorage())
            if partial:
                incoming.add_line(line)  # only counted: the message already failed
                partial = not line.endswith(b"\r\n")
                continue
            incoming.add_line(line[1:] if line.startswith(b".") else line)

    # -- transactions (the group commit waits for those that are open) ------------------------------

    def begin_transaction(self) -> None:
        if not self._in_transaction:
            self._in_transaction = True
            self.runtime.transactions += 1

    def end_transaction(self) -> None:
        if self._in_transaction:
            self._in_transaction = False
            self.runtime.transactions -= 1

    def _set_post_data_state(self) -> None:
        """aiosmtpd's one place that starts a new envelope: after DATA, RSET, HELO/EHLO."""
        self.end_transaction()
        super()._set_post_data_state()  # type: ignore[no-untyped-call]

    # -- TLS ------------------------------------------------------------------------------------

    @property
    def is_tls(self) -> bool:
        return self._tls_protocol is not None

    async def _upgrade_tls(self, context: ssl.SSLContext, pending: bytes) -> None:
        """Put TLS under this session (as aiosmtpd's STARTTLS does), with our handshake deadline."""
        waiter = self.loop.create_future()
        timeout = self.runtime.settings.tls_handshake_timeout_seconds
        self._tls_protocol = sslproto.SSLProtocol(
            self.loop,
            self,
            context,
            waiter,
            server_side=True,
            ssl_handshake_timeout=timeout,  # type: ignore[arg-type]
        )
        original = self.transport
        assert isinstance(original, asyncio.Transport)
        self._original_transport = original
        original.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(original)
        while pending:  # bytes of the ClientHello that arrived with the PROXY header
            buffer = self._tls_protocol.get_buffer(len(pending))
            n = min(len(buffer), len(pending))
            buffer[:n] = pending[:n]
            self._tls_protocol.buffer_updated(n)
            pending = pending[n:]
        original.resume_reading()  # the stream reader may have paused it
        self._reset_timeout(timeout + 1)  # backstop; connection_made resets it once the handshake is done
        await waiter

    async def _start_implicit_tls(self) -> bool:
        context = self.runtime.tls_context
        assert context is not None
        buffered: bytearray = self._reader._buffer  # type: ignore[attr-defined]
        pending = bytes(buffered)
        buffered.clear()
        try:
            await self._upgrade_tls(context, pending)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.runtime.metrics.incr("tls_handshake_failed")
            logger.info("TLS handshake failed", extra={"client_address": self.client_address, "error": repr(exc)})
            self._close()
            self._release()
            return False
        return True

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        if arg:
            await self.push("501 5.5.4 Syntax: STARTTLS")
            return
        if self.tls_context is None or self._tls_protocol is not None:
            await self.push("503 5.5.1 TLS already active" if self._tls_protocol else "454 4.7.0 TLS not available")
            return
        await self.push("220 2.0.0 Ready to start TLS")
        try:
            await self._upgrade_tls(self.tls_context, b"")
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.runtime.metrics.incr("tls_handshake_failed")
            raise TLSSetupException() from error

    # -- deadlines --------------------------------------------------------------------------------

    def _timeout_cb(self) -> None:
        self.runtime.metrics.incr("timeouts")
        logger.info("session timed out", extra={"client_address": self.client_address})
        if not self._closing and self._greeted:
            self._send_and_forget(replies.TIMEOUT)
        self._close()

    def _lifetime_reached(self) -> None:
        """No session lasts for ever (a stolen key, RSET after RSET): 421 now, or after its transaction."""
        self.lifetime_over = True
        self.runtime.metrics.incr("sessions_expired")
        self.close_if_idle(replies.SESSION_TOO_OLD)

    def storage_started(self) -> None:
        """Our write must not be cut off by the client's DATA deadline: answer it instead."""
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        self._storing = True

    def storage_finished(self) -> None:
        self._storing = False
        if not self._closing:
            self._reset_timeout()

    # -- replies ------------------------------------------------------------------------------------

    async def push(self, status: str | bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # commands read after a closing reply: the client gets nothing more
        if isinstance(status, bytes):
            await super().push(status)
            return
        # RFC 5321 §4.2: reply text is printable ASCII; aiosmtpd's stock replies echo what the client sent.
        status = replies.printable(replies.rewrite_stock(status))
        self.runtime.metrics.reply(status)
        await super().push(status)
        if status.startswith("354"):
            self._reset_timeout(self.runtime.settings.data_timeout_seconds)
        elif status[3:4] == " " and not status.startswith("334"):
            if self.runtime.draining:
                self.close_if_idle()
            elif self.lifetime_over:
                self.close_if_idle(replies.SESSION_TOO_OLD)

    def close_if_idle(self, reply: str = replies.SHUTTING_DOWN) -> bool:
        """Drain or end of life: 421 and close unless a transaction (MAIL given, DATA, storage) is in progress."""
        if self._closing or self._storing or (self.envelope is not None and self.envelope.mail_from):
            return False
        if not self._admitted:
            self._close()
            return True
        if self._greeted:
            self._send_and_forget(reply)
        self._close()
        return True
