"""The lab's Kubernetes API server: KubeAPIServer (lifecycle, request routing) and its HTTP handler.
The behaviour lives in the mixins: store, hooks, verbs, patch, discovery, watch (see the package docstring)."""
from __future__ import annotations

import collections
import hmac
import json
import logging
import select
import socket
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..context import LabContext
from ..httpbase import JSONHandler, LabHTTPServer
from .core import K8S_VERSION, ApiError, ResourceType, WatchRequest, warning_headers
from .discovery import Discovery
from .faults import KubeFaults
from .hooks import KindHooks
from .patch import Patcher
from .schema import Cause
from .store import Store
from .verbs import Verbs
from .watch import Watcher

LOG = logging.getLogger("maaslab.kube")


class KubeAPIServer(Store, KindHooks, Verbs, Patcher, Discovery, Watcher):
    """The component (ARCHITECTURE.md): start() binds ctx.port("kube"), sets ctx.urls["kube"]."""

    def __init__(self, ctx: LabContext):
        self.ctx = ctx
        self.dir = Path(ctx.dir) / "kube"
        self.state_file = self.dir / "state.json"
        self.tokens = [ctx.secret("kube_admin_token").encode(), ctx.secret("kube_operator_token").encode()]
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.objects: dict[str, dict] = {}
        self.rv = 0
        self.history: collections.deque = collections.deque()
        self.floor = 0                # events with rv <= floor are no longer in history
        self.types: dict[str, ResourceType] = {}
        self.reg_gen = 0              # bumps when the served API surface changes (openapi cache key)
        self._openapi_cache: dict = {}
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self.httpd: LabHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.url = ""
        self._watching: dict[int, str] = {}   # open watch streams, described (tests wait on these)
        self.faults = KubeFaults(ctx)

    def start(self) -> None:
        self._stop.clear()
        self._load()
        plain = bool(self.ctx.settings.get("plain_http"))
        port = self.ctx.port("kube")
        self.httpd = LabHTTPServer(("127.0.0.1", port), _Handler, component=self,
                                   ssl_context=None if plain else self.ctx.server_ssl_context())
        self.url = f"{'http' if plain else 'https'}://127.0.0.1:{port}"
        self.ctx.urls["kube"] = self.url
        self._threads = [self.httpd.start_background("kube-http"),
                         threading.Thread(target=self._writer, name="kube-writer", daemon=True)]
        self._threads[1].start()
        self._wait_ready(plain, port)
        LOG.info("kube API server on %s (resourceVersion %d, %d objects)", self.url, self.rv, len(self.objects))

    def _wait_ready(self, plain: bool, port: int) -> None:
        import http.client
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = (http.client.HTTPConnection("127.0.0.1", port, timeout=2) if plain else
                        http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=self.ctx.client_ssl_context()))
                conn.request("GET", "/healthz")
                ok = conn.getresponse().status == 200
                conn.close()
                if ok:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("kube API server did not become ready")
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        with self.cond:
            self.cond.notify_all()      # wake watch streams so they finish
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        self._dirty.set()
        for t in self._threads[1:]:
            t.join(timeout=5)
        self._flush()

    def handle(self, method: str, path: str, q: dict, headers, body: bytes):
        """Returns (status, body-object, extra headers) or a WatchRequest to stream."""
        parts = [p for p in path.split("/") if p]
        accept = (headers.get("Accept") or "") if headers else ""
        if path in ("/healthz", "/readyz", "/livez") or (parts and parts[0] in ("healthz", "readyz", "livez")):
            return 200, b"ok", {}
        if parts == ["version"]:
            return 200, K8S_VERSION, {}
        if parts and parts[0] == "openapi":
            return self._openapi(parts[1:], q)
        if parts == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.url.split("//", 1)[-1]}]}, {}
        with self.lock:
            groups = self._groups()
        if parts == ["apis"]:
            return 200, {"kind": "APIGroupList", "apiVersion": "v1",
                         "groups": [self._group_body(g, vs) for g, vs in groups.items()]}, {}
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
            if version != "v1":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
        elif len(parts) >= 2 and parts[0] == "apis":
            group = parts[1]
            if group not in groups:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if len(parts) == 2:
                return 200, {"kind": "APIGroup", "apiVersion": "v1", **self._group_body(group, groups[group])}, {}
            version, rest = parts[2], parts[3:]
            if version not in groups[group]:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            with self.lock:
                return 200, self._resource_list(group, version), {}
        if rest[0] == "watch":                 # legacy /watch/ paths
            rest, q = rest[1:], {**q, "watch": "true"}
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            cand = self.find_type(group, version, rest[2])
            if cand and cand.namespaced:
                ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rt = self.find_type(group, version, rest[0])
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if rt is None or (rt.namespaced and name and ns is None) or (not rt.namespaced and ns) \
                or (sub and (sub != "status" or not rt.status_sub)):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rt.namespaced and ns is None and method != "GET":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        warnings: list[str] = []
        table = "as=Table" in accept
        if method == "GET" and name is None and q.get("watch", "").lower() in ("true", "1"):
            return WatchRequest(rt, version, ns, q)
        if method == "GET":
            if name is None:
                lst = self._list(rt, version, ns, q)
                return 200, (self._table(rt, version, lst["items"], lst["metadata"]) if table else lst), {}
            with self.lock:
                obj = self._get(rt, ns, name)
                if obj is None:
                    raise self._not_found(rt, name)
                obj = self._out(rt, version, obj)
            return 200, (self._table(rt, version, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]}) if table else obj), {}
        if method in ("POST", "PUT"):
            try:
                data = json.loads(body or b"null")
            except ValueError as e:
                if (headers.get("Content-Type") or "").startswith("application/vnd.kubernetes.protobuf"):
                    raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                   "accepted media types include: application/json, application/yaml") from None
                raise ApiError(400, "BadRequest", f"error decoding body: {e}") from None
            if method == "POST" and name is None:
                return 201, self._create(rt, version, ns, data, q, warnings), warning_headers(warnings)
            if method == "PUT" and name:
                given_rv = (data.get("metadata") or {}).get("resourceVersion") if isinstance(data, dict) else None
                if rt.create_on_update and not sub:
                    with self.lock:
                        if self._get(rt, ns, name) is None:
                            if given_rv:   # registry Update: a resourceVersion for an object that does not exist
                                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.qualified} "{name}": '
                                               "the object has been modified; please apply your changes to the latest "
                                               "version and try again", {"name": name, "group": rt.group, "kind": rt.plural})
                            if isinstance(data, dict) and (data.get("metadata") or {}).get("name") not in (None, name):
                                raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
                            return 201, self._create(rt, version, ns, data, q, warnings), warning_headers(warnings)
                if (not rt.builtin or not rt.unconditional_update) and isinstance(data, dict) and not given_rv:
                    # custom resources and Leases allow no unconditional update (AllowUnconditionalUpdate=false)
                    raise self._invalid(rt, name, [Cause("FieldValueInvalid", "metadata.resourceVersion",
                                                         "Invalid value: 0x0: must be specified for an update")])
                return 200, self._update(rt, version, ns, name, data, q, warnings, sub), warning_headers(warnings)
        if method == "PATCH" and name:
            code, obj = self._patch(rt, version, ns, name, body, headers.get("Content-Type"), q, warnings, sub)
            return code, obj, warning_headers(warnings)
        if method == "DELETE" and name and not sub:
            return 200, self._delete(rt, version, ns, name, body, q), {}
        if method == "DELETE" and name is None:
            with self.lock:
                names = [(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in self._select(rt, ns, q)]
                items = [self._delete(rt, version, n, nm, body, q) for n, nm in names]
            return 200, {"apiVersion": rt.gv(version), "kind": f"{rt.kind}List", "metadata": {"resourceVersion": str(self.rv)},
                         "items": [i for i in items if i.get("kind") == rt.kind]}, {}
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def get_object(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        rt, version = self.type_for(api_version, kind)
        with self.lock:
            o = self._get(rt, namespace if rt.namespaced else None, name)
            return self._out(rt, version, o) if o else None


class _Handler(JSONHandler):
    def _dispatch(self) -> None:
        body = self.read_body()      # always drain the body so keep-alive stays in sync
        srv: KubeAPIServer = self.server.component
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip().encode() if auth[:7].lower() == "bearer " else None
        public = url.path in ("/version", "/healthz", "/readyz", "/livez") and not auth
        if not public and not (token and any(hmac.compare_digest(token, t) for t in srv.tokens)):
            self.send_json(401, ApiError(401, "Unauthorized", "Unauthorized").body())
            return
        if url.path.startswith("/lab/"):
            code, obj = srv.faults.lab_endpoint(self.command, url.path)
            self.send_json(code, obj)
            return
        close_after = None
        # health probes are never faulted (apiserver filters/with_retry_after.go exempts them too)
        if not public and url.path.split("/")[1] not in ("healthz", "readyz", "livez"):
            operator = hmac.compare_digest(token, srv.tokens[1])
            verdict = srv.faults.inject(self.command, url.path, operator)
            if verdict == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if isinstance(verdict, tuple):
                code, obj, headers = verdict
                self._send_obj(code, obj, headers)
                return
            close_after = verdict
        try:
            res = srv.handle(self.command, url.path, q, self.headers, body)
            if isinstance(res, WatchRequest):
                res.close_after = close_after
                srv.serve_watch(self, res)
                return
            code, obj, headers = res
        except ApiError as e:
            code, obj, headers = e.code, e.body(), {}
        except Exception:
            LOG.exception("kube: %s %s failed", self.command, url.path)
            code, obj, headers = 500, ApiError(500, "InternalError", "internal error").body(), {}
        if isinstance(obj, bytes):
            self.send_bytes(code, obj, "text/plain; charset=utf-8")
            return
        self._send_obj(code, obj, headers)

    def _send_obj(self, code: int, obj, headers: dict) -> None:
        self.send_response(code)
        data = json.dumps(obj).encode()
        self.send_header("Content-Type", "application/json")
        for k, v in headers.items():
            for item in (v if isinstance(v, list) else [v]):
                self.send_header(k, item)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def write_chunk(self, obj: dict) -> None:
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def client_gone(self) -> bool:
        """A watching client never sends anything: readable means it closed (or broke) the connection."""
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        if r:
            self.close_connection = True
        return bool(r)

