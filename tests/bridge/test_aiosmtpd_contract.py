"""The aiosmtpd internals the bridge relies on, each checked against the pinned version: an upgrade that
changes one of them fails here, by name, instead of silently changing the bridge's behaviour.

Where the bridge touches an internal (smtp_bridge/protocol.py) and why:
- ``_handle_client``: the PROXY header and implicit TLS come before the greeting;
- ``_getaddr``: the path must be kept as written (aiosmtpd drops source routes);
- ``_set_post_data_state``: the one place a new envelope starts (after DATA, RSET, HELO/EHLO);
- ``_timeout_cb`` / ``_reset_timeout`` / ``_timeout_handle``: one deadline per command and one per DATA;
- ``_reader._buffer``, ``_original_transport``, ``_tls_protocol``, asyncio's ``sslproto``: implicit TLS
  after a PROXY header, with the bytes that arrived with it;
- ``command_size_limits``: per-session limits (aiosmtpd keeps them on the class).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import re
import tomllib
from asyncio import sslproto

from aiosmtpd.proxy_protocol import get_proxy
from aiosmtpd.smtp import SMTP

from local_stack.template import project_root


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
