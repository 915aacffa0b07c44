"""A STARTTLS sink for the delivery case (smtp-sink has no TLS): aiosmtpd answering 250 to everything.

``python -m bench.tls_sink CERT KEY PORTFILE`` serves on a free loopback port until SIGTERM and counts
messages; the count is printed when it stops.
"""

from __future__ import annotations

import signal
import ssl
import sys
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from bench.peers import free_port


class Counting:
    def __init__(self) -> None:
        self.messages = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        return "250 2.0.0 Ok"


def main() -> int:
    cert, key, port_file = sys.argv[1:4]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = Counting()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            server_hostname="localhost", ready_timeout=20)  # fmt: skip
    controller.start()
    Path(port_file).write_text(str(port))
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()
    print(handler.messages)
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    sys.exit(main())
