"""The server's TLS context, from certificate/key files or from PEM text (Secrets Manager via ECS)."""

from __future__ import annotations

import os
import ssl
import tempfile

from smtp_bridge.settings import BridgeSettings


def server_context(settings: BridgeSettings) -> ssl.SSLContext | None:
    if not settings.has_tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8997
    # Submission clients do not present certificates; aiosmtpd warns about anything but CERT_NONE.
    context.verify_mode = ssl.CERT_NONE
    context.check_hostname = False
    if settings.tls_cert_file and settings.tls_key_file:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        return context
    assert settings.tls_cert_pem is not None and settings.tls_key_pem is not None
    # load_cert_chain reads files only: write the PEM to a private temporary file, load it, remove it.
    with tempfile.TemporaryDirectory(prefix="mailrelay-tls-") as folder:
        path = os.path.join(folder, "chain.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(settings.tls_key_pem.get_secret_value().strip() + "\n")
            out.write(settings.tls_cert_pem.get_secret_value().strip() + "\n")
        context.load_cert_chain(path)
    return context
