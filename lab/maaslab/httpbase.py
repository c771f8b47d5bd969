"""A threaded HTTP/1.1 server base shared by the lab components (stdlib only)."""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOG = logging.getLogger("maaslab.http")


class LabHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, component: Any = None, ssl_context=None):
        super().__init__(addr, handler)
        self.component = component
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True)

    def start_background(self, name: str) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name=name, daemon=True)
        t.start()
        return t


class JSONHandler(BaseHTTPRequestHandler):
    """Keep-alive handler helpers: read the whole body always, answer JSON or text."""

    protocol_version = "HTTP/1.1"
    server_version = "maaslab"
    # headers and body are separate writes: without TCP_NODELAY, Nagle + the client's delayed ACK
    # add ~40 ms to every response on a keep-alive connection
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet by default; components log what matters
        LOG.debug("%s %s", self.address_string(), fmt % args)

    def read_body(self) -> bytes:
        # One handler object serves every request of a keep-alive connection: the cached body
        # belongs to the request whose headers object it was read for.
        if getattr(self, "_body_headers", None) is self.headers:
            return self._body
        self._body_headers = self.headers
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self._body = self.rfile.read(length)
        elif (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self._body = b"".join(chunks)
        else:
            self._body = b""
        return self._body

    def send_bytes(self, status: int, body: bytes, content_type: str | None = "application/json",
                   headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None,
                  content_type: str = "application/json; charset=utf-8") -> None:
        self.send_bytes(status, json.dumps(obj).encode(), content_type, headers)
