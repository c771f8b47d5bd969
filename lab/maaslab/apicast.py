"""APIcast stand-in: the staging and production gateways of 3scale (see apicast/CONTRACT.md).

Configuration comes only from porta, over HTTPS, like APIcast's remote loader:
`GET {porta}/admin/api/account/proxy_configs/{production|sandbox}.json`.
* production: `boot` loader + cache — loaded at start, then every `apicast_refresh` seconds by a
  timer thread; requests only ever read the cached snapshot, so a promotion becomes visible at
  the next refresh, not before.
* staging: `lazy` loader, cache 0 — the sandbox configs are fetched again for every request.
Hosts → ports: porta gives each product `http://127.0.0.1:<port>` endpoints (no DNS here), so a
gateway listener is opened for every port seen in any config (the discovery thread polls
both environments; port discovery plays the part of routes/DNS, not of config caching). A
production listener whose port is in no production config answers like APIcast for an unknown
Host: 404 with an empty body.

Per request (the policy chain, in order): `cors` (preflight answered here, CORS headers added
to every response when the request has an Origin), `remove-bearer` (the workshop's custom
policy: strips a leading "Bearer " from Authorization), `apicast` (absent credentials → the
config's error_*_auth_missing, porta's 403 — APIcast's own 401 only when the config has no value;
an empty credential is present and goes to authrep; no mapping rule → 404; authrep to the backend
listener → 403/429 + Retry-After from the exceeded limit's period), `upstream_connection`
(connect/send/read timeouts → 504; a refused/reset upstream → 502);
any other policy is skipped with a WARN like APIcast's "failed to load policy". Then the call is
proxied to the backend (longest `backend_api_configs` path prefix, prefix stripped like the
routing policy) and the response is streamed back as it arrives (SSE stays incremental).
Deviation: no authorisation cache — authrep is called synchronously on every request, so usage
and limits are exact.
"""
from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .context import LabContext
from .httpbase import JSONHandler, LabHTTPServer

LOG = logging.getLogger("maaslab.apicast")

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "trailers", "transfer-encoding", "upgrade", "host", "content-length", "expect"}
BUILTIN_DEFAULT_TIMEOUT = 60.0  # nginx proxy_{connect,read,send}_timeout default
DEFAULT_ERRORS = {  # APIcast's own defaults, used only when the config has no error_* value (porta always has)
    "auth_missing": (401, "Authentication parameters missing"),
    "auth_failed": (403, "Authentication failed"),
    "no_match": (404, "No Mapping Rule matched"),
    "limits_exceeded": (429, "Limits exceeded"),
}
SEGMENT = r"[\w\-.~%!$&'()*+,;=@:]+"  # what a {var} in a mapping rule pattern matches


def _nginx_error(status: int, reason: str) -> bytes:
    return (f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}"
            f"</h1></center>\r\n<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n").encode()


class Reject(Exception):
    """A response decided by the gateway itself (policy error, upstream failure)."""

    def __init__(self, status: int, body: bytes = b"", content_type: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.content_type, self.headers = status, body, content_type, headers or {}


# --------------------------------------------------------------------------------------------
# Mapping rules
# --------------------------------------------------------------------------------------------

class MappingRule:
    def __init__(self, rule: dict[str, Any]):
        pattern = rule.get("pattern") or "/"
        path, _, query = pattern.partition("?")
        self.method = (rule.get("http_method") or "ANY").upper()
        self.metric = rule.get("metric_system_name") or "hits"
        self.delta = int(rule.get("delta") if rule.get("delta") is not None else 1)
        self.last = bool(rule.get("last"))
        anchored = path.endswith("$")
        path = re.sub(r"/+", "/", path.rstrip("$"))
        regex = "".join(SEGMENT if part.startswith("{") else re.escape(part)
                        for part in re.split(r"(\{[^}]*\})", path) if part)
        self.regex = re.compile("^" + regex + ("$" if anchored else ""))
        self.query: dict[str, str] = dict(parse_qsl(query, keep_blank_values=True))
        self.query.update({str(k): str(v) for k, v in (rule.get("querystring_parameters") or {}).items()})

    def matches(self, method: str, path: str, args: dict[str, str]) -> bool:
        if self.method not in ("ANY", method):
            return False
        if not self.regex.match(re.sub(r"/+", "/", path)):
            return False
        for k, v in self.query.items():
            if k not in args:
                return False
            if not (v.startswith("{") and v.endswith("}")) and args[k] != v:
                return False
        return True


# --------------------------------------------------------------------------------------------
# One product configuration (porta's proxy config `content`)
# --------------------------------------------------------------------------------------------

class Service:
    def __init__(self, content: dict[str, Any], version: Any):
        self.content = content
        self.version = version
        self.id = content.get("id")
        self.proxy = content.get("proxy") or {}
        self.rules = [MappingRule(r) for r in self.proxy.get("proxy_rules") or []]
        chain = [p for p in self.proxy.get("policy_chain") or [] if p.get("enabled", True) is not False]
        if not any(p.get("name") == "apicast" for p in chain):
            chain.append({"name": "apicast", "version": "builtin", "configuration": {}})
        self.chain = chain
        routes = [(c.get("path") or "/", (c.get("backend_api") or {}).get("private_endpoint"))
                  for c in content.get("backend_api_configs") or []]
        self.routes = sorted([r for r in routes if r[1]], key=lambda r: -len(r[0]))

    def error(self, kind: str, headers: dict[str, str] | None = None) -> Reject:
        """The configuration's error_* values; APIcast's own default only where the config has none
        (configuration.lua `proxy.error_x or default`: an empty string is a value in Lua, null is not)."""
        status, body = DEFAULT_ERRORS[kind]
        status = int(_value(self.proxy.get(f"error_status_{kind}"), status))
        body = str(_value(self.proxy.get(f"error_{kind}"), body))
        ctype = str(_value(self.proxy.get(f"error_headers_{kind}"), "text/plain; charset=utf-8"))
        return Reject(status, body.encode(), ctype, headers)

    def upstream_for(self, path: str) -> tuple[str, str] | None:
        """(private base URL, path to request) by longest backend path prefix, like routing."""
        for prefix, url in self.routes:
            p = "/" + prefix.strip("/")
            if p == "/" or path == p or path.startswith(p + "/"):
                rest = path if p == "/" else path[len(p):] or "/"
                return url, rest
        if self.proxy.get("api_backend"):
            return self.proxy["api_backend"], path
        return None


def _value(v: Any, default: Any) -> Any:
    return default if v is None else v


def _port_of(url: str | None) -> int | None:
    if not url:
        return None
    u = urlsplit(url)
    if u.scheme != "http" or u.hostname not in ("127.0.0.1", "localhost"):
        return None  # a real hostname (https://...:443): not something this lab can listen on
    return u.port or 80


# --------------------------------------------------------------------------------------------
# HTTP side
# --------------------------------------------------------------------------------------------

class GatewayHandler(JSONHandler):
    def version_string(self):
        return "openresty"

    def log_message(self, fmt, *args):  # path only: query strings may carry user_key
        LOG.debug("%s %s %s %s", self.server.env, self.command, urlsplit(self.path).path,
                  args[1] if len(args) > 1 else "")

    def do_GET(self):
        try:
            self.server.component.handle(self)
        except (BrokenPipeError, ConnectionResetError):  # the client went away
            self.close_connection = True

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET


class APIcast:
    def __init__(self, ctx: LabContext):
        self.ctx = ctx
        self.refresh = float(ctx.settings.get("apicast_refresh", 1.0))
        self.discovery = min(self.refresh, 0.5)
        self.production: dict[int, Service] = {}  # port -> service (the cached snapshot)
        self.production_loads = 0  # incremented each time a fetched snapshot is installed
        self.production_loaded_at = 0.0  # time.monotonic() when that fetch started
        self.listeners: dict[int, LabHTTPServer] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[tuple[str, str]] = set()
        self._porta: urllib.request.OpenerDirector | None = None
        self._upstream_ssl = ssl.create_default_context()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        # explicit openers: loopback traffic must never go through an http(s)_proxy from the env
        self._porta = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                  urllib.request.HTTPSHandler(context=self.ctx.client_ssl_context()))
        try:
            self._load_production()
            self._discover(self._fetch("sandbox"))
        except Exception as e:  # porta unreachable at boot: keep retrying from the timer thread
            LOG.warning("apicast: initial configuration load failed: %s", e)
        self._thread = threading.Thread(target=self._loop, name="apicast-config", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        with self._lock:
            servers, self.listeners = list(self.listeners.values()), {}
        # shutdown() waits up to one poll interval per server: stop them all in parallel
        stoppers = [threading.Thread(target=srv.shutdown, daemon=True) for srv in servers]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(timeout=5)
        for srv in servers:
            srv.server_close()

    def _loop(self) -> None:
        next_production = time.monotonic() + self.refresh
        while not self._stop.wait(self.discovery):
            try:
                if time.monotonic() >= next_production:
                    next_production = time.monotonic() + self.refresh
                    self._load_production()
                self._discover(self._fetch("sandbox"))
            except Exception as e:
                LOG.warning("apicast: configuration refresh failed: %s", e)

    # -- configuration ----------------------------------------------------------------------
    def _fetch(self, env: str) -> list[Service]:
        """Latest config per service of an environment, all pages."""
        token = self.ctx.secret("porta_token")
        auth = "Basic " + base64.b64encode(f"{token}:".encode()).decode()
        latest: dict[Any, Service] = {}
        page = 1
        while True:
            url = (f"{self.ctx.urls['porta']}/admin/api/account/proxy_configs/{env}.json?"
                   + urlencode({"page": page, "per_page": 500}))
            req = urllib.request.Request(url, headers={"Authorization": auth, "Accept": "application/json"})
            with self._porta.open(req, timeout=10) as resp:
                doc = json.loads(resp.read() or b"{}")
            for item in doc.get("proxy_configs") or []:
                pc = item.get("proxy_config") or item
                content = pc.get("content")
                if isinstance(content, str):
                    content = json.loads(content)
                if not content:
                    continue
                svc = Service(content, pc.get("version"))
                old = latest.get(svc.id)
                if old is None or (svc.version or 0) >= (old.version or 0):
                    latest[svc.id] = svc
                    self._check_policies(svc)
            meta = doc.get("metadata") or {}
            if page >= int(meta.get("total_pages") or 1):
                return list(latest.values())
            page += 1

    def _check_policies(self, svc: Service) -> None:
        for p in svc.chain:
            key = (p.get("name") or "", str(p.get("version") or ""))
            if key[0] not in POLICIES and key not in self._warned:
                self._warned.add(key)
                LOG.warning("failed to load policy: %s version: %s (skipped)", *key)

    def reload_production(self) -> None:
        """Load the production configs now (the orchestrator, once its seed product is promoted:
        a cluster found in steady state, not one whose gateway is still waiting for its refresh)."""
        self._load_production()

    def _load_production(self) -> None:
        started = time.monotonic()
        services = self._fetch("production")
        snapshot = {}
        for svc in services:
            port = _port_of(svc.proxy.get("endpoint"))
            if port:
                snapshot[port] = svc
        with self._lock:
            self.production = snapshot
            self.production_loads += 1
            self.production_loaded_at = started
        self._discover(services)

    def _discover(self, services: list[Service]) -> None:
        for svc in services:
            for key, env in (("endpoint", "production"), ("sandbox_endpoint", "staging")):
                port = _port_of(svc.proxy.get(key))
                if port and port not in self.listeners:
                    self._listen(port, env)

    def _listen(self, port: int, env: str) -> None:
        with self._lock:
            if port in self.listeners or self._stop.is_set():
                return
            try:
                srv = LabHTTPServer(("127.0.0.1", port), GatewayHandler, component=self)
            except OSError as e:
                LOG.error("apicast %s: cannot listen on port %s: %s", env, port, e)
                return
            srv.env = env
            self.listeners[port] = srv
        srv.start_background(f"apicast-{env}-{port}")
        LOG.info("apicast %s listening on http://127.0.0.1:%s", env, port)

    def service_for(self, env: str, port: int) -> Service | None:
        if env == "production":
            with self._lock:
                return self.production.get(port)
        try:  # staging: lazy loader, no cache
            services = self._fetch("sandbox")
        except Exception as e:
            LOG.warning("apicast staging: configuration load failed: %s", e)
            return None
        return next((s for s in services if _port_of(s.proxy.get("sandbox_endpoint")) == port), None)

    # -- request processing -----------------------------------------------------------------
    def handle(self, h: GatewayHandler) -> None:
        body = h.read_body()
        port = h.server.server_address[1]
        svc = self.service_for(h.server.env, port)
        cors: dict[str, Any] | None = None
        try:
            if svc is None:  # unknown host
                raise Reject(404)
            req = Request(h, body)
            timeouts = {}
            for policy in svc.chain:
                name, conf = policy.get("name"), policy.get("configuration") or {}
                if name == "cors":
                    cors = conf
                    if h.command == "OPTIONS" and h.headers.get("Origin") and \
                            h.headers.get("Access-Control-Request-Method"):
                        raise Reject(204)
                elif name == "remove-bearer":
                    auth = req.headers.get("Authorization")
                    if auth and auth.startswith("Bearer "):
                        req.headers.replace_header("Authorization", auth[len("Bearer "):])
                elif name == "apicast":
                    self._authorize(svc, req)
                elif name == "upstream_connection":
                    timeouts = {k: float(conf[k]) for k in ("connect_timeout", "read_timeout", "send_timeout")
                                if conf.get(k) is not None}
            self._proxy(svc, req, h, timeouts, cors)
        except Reject as r:
            _send_reject(h, r, {**r.headers, **_cors_headers(cors, h)})

    def _authorize(self, svc: Service, req: "Request") -> None:
        creds = req.credentials(svc.proxy, svc.content.get("backend_version"))
        # proxy.lua rewrite: every credential of the tuple must be there (user_key; app_id and app_key);
        # an empty string is present and goes to the backend
        if any(v is None for _k, v in creds):
            raise svc.error("auth_missing")
        usage: dict[str, int] = {}
        for rule in svc.rules:
            if rule.matches(req.method, req.path, req.args):
                usage[rule.metric] = usage.get(rule.metric, 0) + rule.delta
                if rule.last:
                    break
        if not usage:
            raise svc.error("no_match")
        params = [("service_id", str(svc.id)), *creds]
        auth_type = svc.content.get("backend_authentication_type") or "service_token"
        params.insert(0, (auth_type, svc.content.get("backend_authentication_value") or ""))
        params += [(f"usage[{m}]", str(d)) for m, d in usage.items()]
        backend = (svc.content.get("backend") or {}).get("endpoint") or self.ctx.urls.get("backend")
        url = backend.rstrip("/") + "/transactions/authrep.xml?" + urlencode(params)
        req_b = urllib.request.Request(url, headers={"3scale-options": "rejection_reason_header=1&limit_headers=1"})
        try:
            with _DIRECT.open(req_b, timeout=10) as resp:
                status, headers, text = resp.status, resp.headers, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            status, headers, text = e.code, e.headers, e.read().decode("utf-8", "replace")
        except OSError as e:  # backend listener unreachable: deny, like APIcast without a cached auth
            LOG.error("apicast: backend authrep failed: %s", e)
            raise svc.error("auth_failed") from None
        if status == 200 and "<authorized>true</authorized>" in text:
            return
        # APIcast proxy.lua handle_backend_response: only the backend's rejection reason header makes
        # it "limits exceeded" (Retry-After = 3scale-limit-reset as given); a limit of 0 is a disabled
        # metric (3scale-limit-max-value: 0), answered as a failed authorisation; anything else too.
        reason = headers.get("3scale-rejection-reason")
        if reason == "limits_exceeded" and headers.get("3scale-limit-max-value") == "0":
            reason = None
        if reason == "limits_exceeded":
            retry = headers.get("3scale-limit-reset")
            raise svc.error("limits_exceeded", {"Retry-After": retry} if retry else None)
        raise svc.error("auth_failed")

    def _proxy(self, svc: Service, req: "Request", h: GatewayHandler, timeouts: dict[str, float],
               cors: dict[str, Any] | None) -> None:
        target = svc.upstream_for(req.path)
        if target is None:
            raise Reject(404)
        base, path = target
        u = urlsplit(base)
        full_path = (u.path.rstrip("/") + path) or "/"
        if req.query:
            full_path += "?" + req.query
        connect_t = timeouts.get("connect_timeout", BUILTIN_DEFAULT_TIMEOUT)
        read_t = timeouts.get("read_timeout", BUILTIN_DEFAULT_TIMEOUT)
        send_t = timeouts.get("send_timeout", BUILTIN_DEFAULT_TIMEOUT)
        if u.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                u.hostname, u.port or 443, timeout=connect_t, context=self._upstream_ssl)
        else:
            conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=connect_t)
        try:
            try:
                conn.connect()
                conn.sock.settimeout(send_t)
                conn.putrequest(req.method, full_path, skip_accept_encoding=True)  # Host: the upstream's
                for k, v in req.headers.items():
                    if k.lower() not in HOP_BY_HOP:
                        conn.putheader(k, v)
                conn.putheader("X-Real-IP", h.client_address[0])
                if svc.proxy.get("secret_token"):
                    conn.putheader("X-3scale-proxy-secret-token", svc.proxy["secret_token"])
                if req.body or req.method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(req.body)))
                conn.endheaders(req.body or None)
                conn.sock.settimeout(read_t)
                resp = conn.getresponse()
            except TimeoutError:  # socket.timeout is TimeoutError
                LOG.warning("apicast: upstream %s timed out", u.netloc)
                raise Reject(504, _nginx_error(504, "Gateway Time-out"), "text/html") from None
            except (OSError, http.client.HTTPException) as e:
                LOG.warning("apicast: upstream %s failed: %s", u.netloc, e)
                raise Reject(502, _nginx_error(502, "Bad Gateway"), "text/html") from None
            self._relay(resp, h, cors)
        finally:
            conn.close()

    @staticmethod
    def _relay(resp: http.client.HTTPResponse, h: GatewayHandler, cors: dict[str, Any] | None) -> None:
        h.send_response(resp.status, resp.reason)
        length = resp.getheader("Content-Length")
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP | {"server", "date"}:
                h.send_header(k, v)
        for k, v in _cors_headers(cors, h).items():
            for one in v if isinstance(v, list) else [v]:
                h.send_header(k, one)
        no_body = h.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
        chunked = length is None and not no_body
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            h.send_header("Content-Length", length)
        else:
            h.send_header("Content-Length", "0")
        h.end_headers()
        if no_body:
            return
        try:
            while True:
                try:
                    data = resp.read1(65536)  # whatever has arrived: keeps SSE incremental
                except (OSError, http.client.HTTPException) as e:
                    LOG.warning("apicast: upstream response broken: %s", e)
                    h.close_connection = True
                    return
                if not data:
                    break
                h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                h.wfile.flush()
            if chunked:
                h.wfile.write(b"0\r\n\r\n")
                h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # client went away
            h.close_connection = True


POLICIES = {"cors", "remove-bearer", "apicast", "upstream_connection"}
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _cors_headers(conf: dict[str, Any] | None, h: GatewayHandler) -> dict[str, Any]:
    """APIcast cors policy header_filter: only for requests with an Origin header."""
    origin = h.headers.get("Origin")
    if conf is None or not origin:
        return {}
    out: dict[str, Any] = {}
    for name, key, default in (("Access-Control-Allow-Headers", "allow_headers",
                                h.headers.get("Access-Control-Request-Headers")),
                               ("Access-Control-Allow-Methods", "allow_methods",
                                h.headers.get("Access-Control-Request-Method"))):
        value = conf.get(key)
        if value is None:
            value = default
        if value:  # a list gives one header line per item; an empty list clears the header
            out[name] = value
    allow_origin = conf.get("allow_origin")
    if allow_origin is None or allow_origin == "*" or re.match(r"^https?://", allow_origin):
        out["Access-Control-Allow-Origin"] = allow_origin or origin
    elif re.match(allow_origin, origin):  # a non-URL value is a regular expression
        out["Access-Control-Allow-Origin"] = origin
    creds = conf.get("allow_credentials")
    out["Access-Control-Allow-Credentials"] = "true" if creds is None else str(bool(creds)).lower()
    out["Access-Control-Max-Age"] = str(conf.get("max_age") if conf.get("max_age") is not None else 600)
    return out


def _send_reject(h: GatewayHandler, r: Reject, headers: dict[str, Any]) -> None:
    h.send_response(r.status)
    if r.content_type:
        h.send_header("Content-Type", r.content_type)
    for k, v in headers.items():
        for one in v if isinstance(v, list) else [v]:
            h.send_header(k, str(one))
    h.send_header("Content-Length", str(len(r.body)))
    h.end_headers()
    if h.command != "HEAD" and r.body:
        h.wfile.write(r.body)


class Request:
    """The incoming request as the policies see and modify it."""

    def __init__(self, h: GatewayHandler, body: bytes):
        u = urlsplit(h.path)
        self.method = h.command
        self.path = u.path or "/"
        self.query = u.query
        self.args = dict(parse_qsl(u.query, keep_blank_values=True))
        self.headers = h.headers  # an email.message.Message: policies edit it in place
        self.body = body

    def header(self, name: str) -> str | None:
        """nginx `$http_<name>`: `-` and `_` alike, first occurrence; an empty header is "" (present)."""
        want = name.lower().replace("_", "-")
        for k, v in self.headers.items():
            if k.lower().replace("_", "-") == want:
                return v.strip()
        return None

    def credentials(self, proxy: dict[str, Any], backend_version: Any = "1") -> list[tuple[str, str | None]]:
        """service.lua `backend_version_credentials`: version_1 → [("user_key", v)], version_2 →
        [("app_id", v), ("app_key", v)] (names from auth_user_key / auth_app_id / auth_app_key).
        None = absent; "" is present, as any string is true in Lua, and the backend then refuses it."""
        location = proxy.get("credentials_location") or "query"
        if str(backend_version) == "2":
            id_name = proxy.get("auth_app_id") or "app_id"
            key_name = proxy.get("auth_app_key") or "app_key"
            if location == "authorization":
                userid, password, token = self.authorization()
                app_id, app_key = (userid if userid is not None else token), password
            elif location == "headers":
                app_id, app_key = self.header(id_name), self.header(key_name)
            else:
                app_id, app_key = self.arg(id_name), self.arg(key_name)
                if app_id is None or app_key is None:
                    body = self.form_args()
                    app_id = app_id if app_id is not None else body.get(id_name)
                    app_key = app_key if app_key is not None else body.get(key_name)
            return [("app_id", app_id), ("app_key", app_key)]
        name = proxy.get("auth_user_key") or "user_key"
        if location == "headers":
            user_key = self.header(name)
        elif location == "authorization":
            userid, password, token = self.authorization()
            user_key = next((v for v in (userid, password, token) if v is not None), None)
        else:
            user_key = self.arg(name)
            if user_key is None:
                user_key = self.form_args().get(name)
        return [("user_key", user_key)]

    def authorization(self) -> tuple[str | None, str | None, str | None]:
        """resty/http_authorization.lua: (userid, password) of `Basic`, token of `Bearer`; the scheme
        match is case-sensitive, and no scheme or another one gives nothing."""
        m = re.match(r"^([A-Za-z0-9]+)\s*(.*)$", self.header("Authorization") or "", re.S)
        scheme, param = (m.group(1), m.group(2)) if m else (None, "")
        if scheme == "Bearer":
            return None, None, param
        if scheme == "Basic":
            try:
                padded = param + "=" * (-len(param) % 4)  # ngx.decode_base64: padding optional
                decoded = base64.b64decode(padded, validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return None, None, None
            pair = re.match(r"^(.*):(.*)$", decoded, re.S)  # greedy: the user part ends at the last ':'
            return (pair.group(1), pair.group(2), None) if pair else (None, None, None)
        return None, None, None

    def form_args(self) -> dict[str, str]:
        """read_body_args: an application/x-www-form-urlencoded body of a POST, PUT or PATCH."""
        ctype = (self.header("Content-Type") or "").lower()
        if self.method not in ("POST", "PUT", "PATCH") or "application/x-www-form-urlencoded" not in ctype:
            return {}
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    def arg(self, name: str) -> str | None:
        """nginx `$arg_<name>`: case-insensitive name, first occurrence; `?user_key=` gives ""."""
        for k, v in parse_qsl(self.query, keep_blank_values=True):
            if k.lower() == name.lower():
                return v
        return None
