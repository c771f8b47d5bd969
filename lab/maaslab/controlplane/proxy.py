"""The fault proxy in front of the real kube-apiserver: what the collection and every user client
reach (`urls["kube"]`), while the lab's controllers connect to the API server directly.

It forwards each request unchanged (bodies, protobuf or JSON, headers and bearer token; only the
hop-by-hop headers of RFC 9110 §7.6.1 are dropped) over a keep-alive TLS connection per thread,
streams chunked answers (watches) as they come, and applies the `kube` fault switches of
faults.json before forwarding (`maaslab.kube.faults.KubeFaults`: the same switches, error bodies and
counters as before):

* `error_rate`/`error_status`/`retry_after`: answer the Status a real API server writes, unforwarded.
* `drop_rate`: close the client connection unanswered, nothing forwarded.
* `watch_close_after`: a watch is forwarded with `timeoutSeconds` lowered to that value, so the API
  server itself ends the stream cleanly then (apiserver handlers/watch.go: the timeout closes the
  chunked response without an ERROR event).
* `exclude_operator` (default true): requests bearing the operator's token are never faulted.

TLS client certificates end at the proxy (the lab's users authenticate with bearer tokens);
`/lab/stats.json` and `POST /lab/stats/reset` (any lab token) are the proxy's own counters.
"""
from __future__ import annotations

import hmac
import http.client
import logging
import math
import select
import socket
import threading
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from ..context import LabContext
from ..httpbase import JSONHandler, LabHTTPServer
from ..kube.faults import KubeFaults

LOG = logging.getLogger("maaslab.controlplane.proxy")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
              "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"}
HEALTH = ("/healthz", "/readyz", "/livez", "/version")


class FaultProxy:
    def __init__(self, ctx: LabContext, upstream: str):
        self.ctx = ctx
        up = urlsplit(upstream)
        self.upstream = (up.hostname, up.port)
        self.faults = KubeFaults(ctx)
        self.tokens = [ctx.secret(n).encode() for n in ("kube_admin_token", "kube_operator_token", "kube_kserve_token")]
        self.operator_token = ctx.secret("kube_operator_token").encode()
        self.server: LabHTTPServer | None = None
        self.url = ""
        self._watching: dict[int, str] = {}
        self._lock = threading.Lock()

    def watches(self) -> list[str]:
        """The open watch streams through the proxy, as decoded `path?query` strings (tests wait on
        them to know a client is watching before they change what it watches)."""
        with self._lock:
            return list(self._watching.values())

    def start(self) -> None:
        port = self.ctx.port("kube")
        self.server = LabHTTPServer(("127.0.0.1", port), ProxyHandler, component=self,
                                    ssl_context=self.ctx.server_ssl_context())
        self.server.start_background("kube-proxy")
        self.url = f"https://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(*self.upstream, timeout=None, context=self.ctx.client_ssl_context())


class ProxyHandler(JSONHandler):
    server_version = "maaslab-kube-proxy"

    def _upstream(self, fresh: bool = False) -> http.client.HTTPSConnection:
        conn = getattr(self, "_conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = self._conn = self.server.component.connect()
        return conn

    def finish(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()
        super().finish()

    def _dispatch(self) -> None:
        proxy: FaultProxy = self.server.component
        body = self.read_body()
        url = urlsplit(self.path)
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip().encode() if auth[:7].lower() == "bearer " else b""
        known = bool(token) and any(hmac.compare_digest(token, t) for t in proxy.tokens)
        if url.path.startswith("/lab/"):
            if not known:
                self.send_json(401, _status(401, "Unauthorized", "Unauthorized"))
                return
            code, obj = proxy.faults.lab_endpoint(self.command, url.path)
            self.send_json(code, obj)
            return
        path, shortened = self.path, False
        if not url.path.startswith(HEALTH):
            operator = bool(token) and hmac.compare_digest(token, proxy.operator_token)
            verdict = proxy.faults.inject(self.command, url.path, operator)
            if verdict == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if isinstance(verdict, tuple):
                code, obj, headers = verdict
                self.send_json(code, obj, headers, content_type="application/json")
                return
            if isinstance(verdict, float):
                query = dict(parse_qsl(url.query, keep_blank_values=True))
                if query.get("watch") in ("true", "1"):
                    limit = max(1, math.ceil(verdict))
                    query["timeoutSeconds"] = str(min(limit, int(query.get("timeoutSeconds") or limit)))
                    path = url.path + "?" + urlencode(query)
                    shortened = True
        watch = parse_qs_get(url.query, "watch") in ("true", "1")
        if watch:
            with proxy._lock:
                proxy._watching[id(self)] = unquote(path)
        try:
            ended = self._forward(path, body)
        finally:
            if watch:
                with proxy._lock:
                    proxy._watching.pop(id(self), None)
        if ended and shortened:
            proxy.faults.count("watch_closes")   # the API server ended it at our shortened timeout

    def _forward(self, path: str, body: bytes) -> bool:
        """Forward the request; True when a streamed answer ran to its end (not cut by the client)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        resp = None
        for attempt in (0, 1):
            conn = self._upstream(fresh=attempt == 1)
            try:
                conn.request(self.command, path, body=body or None, headers=headers)
                resp = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # a kept-alive upstream connection the API server closed: once more on a new one
                if attempt == 1 or self.command not in ("GET", "HEAD") and not isinstance(e, BrokenPipeError):
                    self._bad_gateway(e)
                    return False
            except OSError as e:
                self._bad_gateway(e)
                return False
        assert resp is not None
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        if resp.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            ended = self._stream(resp, "watch=true" in path or "watch=1" in path)
        else:
            ended = False
            data = resp.read()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        if resp.will_close:
            self._upstream().close()
            self._conn = None
        return ended

    def _stream(self, resp: http.client.HTTPResponse, watch: bool) -> bool:
        """Copy a chunked answer chunk by chunk. For a watch, a client that goes away (its side of
        the connection turns readable: it sends nothing while it watches) closes the upstream stream."""
        done, cut = threading.Event(), threading.Event()
        conn = self._upstream()

        def watchdog():
            while not done.is_set():
                try:
                    readable, _, _ = select.select([self.connection], [], [], 1.0)
                except (OSError, ValueError):
                    readable = [True]
                if readable and not done.is_set():
                    cut.set()
                    try:
                        conn.sock.shutdown(socket.SHUT_RDWR)
                    except (OSError, AttributeError):
                        pass
                    return

        if watch:
            threading.Thread(target=watchdog, name="kube-proxy-watchdog", daemon=True).start()
        try:
            while True:
                data = resp.read1(65536)
                if not data:
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            done.set()  # before the last chunk: the client may send its next request right after it
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (OSError, http.client.HTTPException, ValueError):
            cut.set()
        finally:
            done.set()
        if cut.is_set():
            self.close_connection = True
            self._upstream().close()
            self._conn = None
        return not cut.is_set()

    def _bad_gateway(self, err: Exception) -> None:
        LOG.warning("kube proxy: %s %s: %s", self.command, self.path, err)
        self._conn = None
        self.send_json(502, _status(502, "InternalError", f"kube-apiserver unreachable: {err}"))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


def parse_qs_get(query: str, key: str) -> str | None:
    return dict(parse_qsl(query, keep_blank_values=True)).get(key)


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
