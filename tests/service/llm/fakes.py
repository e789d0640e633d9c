"""Tiny scripted HTTP servers for failure modes a real model server will not produce on demand."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handler = Callable[[BaseHTTPRequestHandler, Any], None]


@dataclass
class Seen:
    """One request the fake server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@contextmanager
def fake_server(handle: Handler) -> Iterator[tuple[str, list[Seen]]]:
    """Serve ``handle`` on a loopback port; yields (base URL with /v1, requests seen)."""
    seen: list[Seen] = []

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _any(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(n)) if n else None
            seen.append(Seen(self.command, self.path, dict(self.headers), body))
            handle(self, body)

        do_GET = do_POST = _any  # noqa: N815 (http.server's names)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}/v1", seen
    finally:
        srv.shutdown()
        srv.server_close()


def send_json(h: BaseHTTPRequestHandler, status: int, obj: Any) -> None:
    data = json.dumps(obj).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def start_sse(h: BaseHTTPRequestHandler) -> None:
    """Headers of an event stream delimited by connection close (no length, no chunking)."""
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    h.send_header("Connection", "close")
    h.end_headers()
    h.close_connection = True


def send_event(h: BaseHTTPRequestHandler, obj: Any) -> None:
    payload = obj if isinstance(obj, str) else json.dumps(obj)
    h.wfile.write(f"data: {payload}\n\n".encode())
    h.wfile.flush()


def text_chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}


@dataclass
class SilentServer:
    """Accepts connections and never answers: a model server stuck before its first token."""

    port: int = 0
    accepted: int = 0
    _sock: socket.socket = field(default_factory=socket.socket)
    _conns: list[socket.socket] = field(default_factory=list)

    def __enter__(self) -> SilentServer:
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.05)  # so the accept loop notices the close
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
        for c in self._conns:
            c.close()
