"""The aiosmtpd internals the bridge relies on, each checked against the pinned version: an upgrade that
changes one of them fails here, by name, instead of silently changing the bridge's behaviour.

Where the bridge touches an internal (smtp_bridge/protocol.py) and why:
- ``_handle_client``: the PROXY header and implicit TLS come before the greeting;
- ``_getaddr``: the path must be kept as written (aiosmtpd drops source routes);
- ``_set_post_data_state``: the one place a new envelope starts (after DATA, RSET, HELO/EHLO);
- ``_timeout_cb`` / ``_reset_timeout`` / ``_timeout_handle``: one deadline per command and one per DATA;
- ``_reader._buffer``, ``_original_transport``, ``_tls_protocol``, asyncio's ``sslproto``: implicit TLS
  after a PROXY header, with the bytes that arrived with it;
- ``command_size_limits``: per-session limits (aiosmtpd keeps them on the class);
- ``__init__``: the session sets SMTP.__init__'s attributes itself, with the method tables found once.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import re
import tomllib
from asyncio import sslproto
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.proxy_protocol import get_proxy
from aiosmtpd.smtp import SMTP

from local_stack.template import project_root
from smtp_bridge.handler import BridgeHandler
from smtp_bridge.protocol import CALL_LIMITS, BridgeSMTP, Listener
from smtp_bridge.tls import server_context
from tests.bridge.conftest import Certs, bridge_settings


def pinned_version() -> str:
    config = tomllib.loads((project_root() / "pyproject.toml").read_text())
    (requirement,) = [r for r in config["project"]["optional-dependencies"]["bridge"] if r.startswith("aiosmtpd")]
    match = re.fullmatch(r"aiosmtpd==([0-9.]+)", requirement)
    assert match, f"aiosmtpd must be pinned exactly, not {requirement!r}"
    return match.group(1)


def test_the_installed_aiosmtpd_is_the_pinned_one() -> None:
    assert importlib.metadata.version("aiosmtpd") == pinned_version()


def test_the_overridden_methods_keep_their_signatures() -> None:
    assert inspect.iscoroutinefunction(SMTP._handle_client)
    assert list(inspect.signature(SMTP._handle_client).parameters) == ["self"]
    assert list(inspect.signature(SMTP._getaddr).parameters) == ["self", "arg"]
    assert list(inspect.signature(SMTP._set_post_data_state).parameters) == ["self"]
    assert list(inspect.signature(SMTP._timeout_cb).parameters) == ["self"]
    assert list(inspect.signature(SMTP._reset_timeout).parameters) == ["self", "duration"]
    assert list(inspect.signature(get_proxy).parameters) == ["reader_func"]


def test_a_new_envelope_starts_only_through_set_post_data_state() -> None:
    assert "_set_post_data_state()" in inspect.getsource(SMTP.smtp_DATA)
    assert "_set_post_data_state()" in inspect.getsource(SMTP._set_rset_state)
    for verb in (SMTP.smtp_RSET, SMTP.smtp_HELO, SMTP.smtp_EHLO):
        assert "_set_rset_state()" in inspect.getsource(verb)


def test_the_session_attributes_the_bridge_reads_are_set_by_aiosmtpd() -> None:
    source = inspect.getsource(SMTP)
    for attribute in ("_original_transport", "_tls_protocol", "_timeout_handle", "_reader", "_writer",
                      "_proxy_timeout", "command_size_limits"):  # fmt: skip
        assert f"self.{attribute}" in source, attribute
    assert isinstance(asyncio.StreamReader()._buffer, bytearray)  # type: ignore[attr-defined]


def test_asyncio_sslproto_offers_what_the_tls_upgrade_uses() -> None:
    parameters = inspect.signature(sslproto.SSLProtocol.__init__).parameters
    assert {"loop", "app_protocol", "sslcontext", "waiter", "server_side", "ssl_handshake_timeout"} <= set(parameters)
    assert callable(sslproto.SSLProtocol.get_buffer)
    assert callable(sslproto.SSLProtocol.buffer_updated)
    assert "self._app_transport" in inspect.getsource(sslproto.SSLProtocol.__init__)


# StreamReaderProtocol's own state: fresh objects per session, compared by type only.
_STREAM_STATE = {"_loop", "_stream_reader_wr", "_source_traceback", "_strong_reader", "_reject_connection",
                 "_stream_writer", "_task", "_transport", "_over_ssl", "_closed", "_paused", "_drain_waiter",
                 "_connection_lost", "_client_connected_cb"}  # fmt: skip


def _same(ours: Any, theirs: Any, selves: tuple[object, object]) -> bool:
    """Equal, where a method bound to the reference session must be bound to ours."""
    if inspect.ismethod(theirs):
        owner = selves[0] if theirs.__self__ is selves[1] else theirs.__self__
        return inspect.ismethod(ours) and ours.__func__ is theirs.__func__ and ours.__self__ is owner
    if isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(_same(ours[k], theirs[k], selves) for k in theirs)
    if isinstance(theirs, tuple):
        return len(ours) == len(theirs) and all(_same(a, b, selves) for a, b in zip(ours, theirs, strict=True))
    return bool(ours == theirs)


@pytest.mark.parametrize(("listener", "proxy"), [("starttls", False), ("implicit", True), ("plain", False)])
def test_the_session_is_built_as_smtp_init_builds_it(certs: Certs, listener: Listener, proxy: bool) -> None:
    """BridgeSMTP sets SMTP.__init__'s attributes itself (its per-connection introspection is costly)."""
    overrides: dict[str, Any] = {"plain_port": 0, "allowed_networks": [{"cidr": "127.0.0.0/8", "client_id": "c"}]}
    if proxy:
        overrides |= {"proxy_protocol": True, "proxy_trusted_networks": ["127.0.0.0/8"]}
    settings = bridge_settings(certs, **overrides)
    tls = server_context(settings)
    runtime = SimpleNamespace(settings=settings, tls_context=tls, size_limit=1_000_000)
    handler = BridgeHandler(runtime)  # type: ignore[arg-type]

    async def build() -> tuple[BridgeSMTP, BridgeSMTP]:
        ours = BridgeSMTP(handler, runtime, listener)  # type: ignore[arg-type]
        theirs = BridgeSMTP.__new__(BridgeSMTP)
        SMTP.__init__(
            theirs, handler, data_size_limit=1_000_000, enable_SMTPUTF8=True, decode_data=False,
            hostname=settings.hostname, ident="ESMTP mailrelay", tls_context=tls if listener == "starttls" else None,
            require_starttls=listener == "starttls", timeout=settings.command_timeout_seconds, auth_required=False,
            auth_require_tls=True, command_call_limit=CALL_LIMITS,
            proxy_protocol_timeout=settings.proxy_protocol_timeout_seconds if proxy else None,
        )  # fmt: skip
        return ours, theirs

    ours, theirs = asyncio.run(build())
    expected = vars(theirs)
    assert expected.keys() <= vars(ours).keys()
    for name, value in expected.items():
        if name in _STREAM_STATE:
            assert type(getattr(ours, name)) is type(value), name
        else:
            assert _same(getattr(ours, name), value, (ours, theirs)), name
    assert ours._auth_methods.keys() == {"LOGIN", "PLAIN"}
