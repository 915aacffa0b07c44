"""A certificate authority and server certificate for the local stack, kept across restarts
so that clients configured to trust ``ca.pem`` keep working."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalTls:
    ca_cert: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def ensure_tls(folder: Path) -> LocalTls:
    folder.mkdir(parents=True, exist_ok=True)
    tls = LocalTls(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    if not (tls.ca_cert.exists() and tls.cert.exists() and tls.key.exists()):
        import trustme

        ca = trustme.CA(organization_name="mailrelay local CA")
        server = ca.issue_cert("localhost", "127.0.0.1", "::1")
        ca.cert_pem.write_to_path(str(tls.ca_cert))
        server.private_key_pem.write_to_path(str(tls.key))
        tls.key.chmod(0o600)
        cert_chain = b"".join(blob.bytes() for blob in server.cert_chain_pems)
        tls.cert.write_bytes(cert_chain)
    return tls
