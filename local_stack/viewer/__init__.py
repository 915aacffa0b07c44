"""The local mail viewer started by `make run`: captured mail, delivery timelines and a JSON API."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local_stack.viewer.app import create_app
from local_stack.viewer.history import StatusHistory, dynamo_scan
from local_stack.viewer.index import MailIndex
from local_stack.viewer.mailbox import Mailbox


class ViewerServer:
    """uvicorn on its own thread, serving the viewer for some capture folders and the messages table."""

    def __init__(self, host: str, port: int, folders: list[Path], messages_table: str, dynamodb: Any) -> None:
        self.history = StatusHistory(dynamo_scan(messages_table, dynamodb))
        self.index = MailIndex(Mailbox(folders), self.history)
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = host, int(self._socket.getsockname()[1])
        hosts = sorted({host, "127.0.0.1", "localhost", "[::1]", "::1"})
        app = create_app(self.index, lambda: datetime.now(UTC), hosts)
        import uvicorn

        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="mail-viewer", daemon=True)  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self.history.start()
        self._thread.start()
        for _ in range(200):
            if self._server.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.05)
        if not self._server.started:
            raise RuntimeError(f"the mail viewer did not start on {self.url}")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self.history.stop()
        self._socket.close()
