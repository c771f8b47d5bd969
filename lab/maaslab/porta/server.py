"""Routing, auth, envelopes and fault injection of the lab's porta admin API (JSON over HTTPS)."""
from __future__ import annotations

import hmac
import json
import logging
import math
import re
import socket
import time
from collections import Counter
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from ..httpbase import JSONHandler

LOG = logging.getLogger("maaslab.porta")

WRAPPERS = {"account", "application", "service", "proxy", "service_subscription", "backend_api", "metric",
            "method", "mapping_rule", "application_plan", "service_plan", "limit", "pricing_rule", "api_doc",
            "backend_usage", "user", "plan", "permissions"}
HTTP_METHODS = ("GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS")
CREDENTIALS_LOCATIONS = ("headers", "query", "authorization")
ENVS = {"sandbox": "sandbox", "staging": "sandbox", "production": "production"}
PATTERN_RE = re.compile(r"^/([\w\-.~!$&'()*+,;=:@%]|\{[\w\-.]+\}|/)*\$?(\?.*)?$")
USER_KEY_RE = re.compile(r"^([\w\-.]+|[A-Za-z0-9+=]+)$")
PROXY_FIELDS_STR = ("api_backend", "auth_user_key", "auth_app_id", "auth_app_key", "error_auth_failed",
                    "error_headers_auth_failed", "error_auth_missing", "error_headers_auth_missing", "error_no_match",
                    "error_headers_no_match", "error_limits_exceeded", "error_headers_limits_exceeded",
                    "secret_token", "hostname_rewrite", "api_test_path", "oidc_issuer_endpoint", "oidc_issuer_type")
PROXY_FIELDS_INT = ("error_status_auth_failed", "error_status_auth_missing", "error_status_no_match",
                    "error_status_limits_exceeded")
# porta db/schema.rb `proxies` column defaults: every new proxy row starts with these
PROXY_DEFAULTS = {
    "credentials_location": "query", "auth_user_key": "user_key", "auth_app_id": "app_id", "auth_app_key": "app_key",
    "error_auth_failed": "Authentication failed", "error_status_auth_failed": 403,
    "error_headers_auth_failed": "text/plain; charset=us-ascii",
    "error_auth_missing": "Authentication parameters missing", "error_status_auth_missing": 403,
    "error_headers_auth_missing": "text/plain; charset=us-ascii",
    "error_no_match": "No Mapping Rule matched", "error_status_no_match": 404,
    "error_headers_no_match": "text/plain; charset=us-ascii",
    "error_limits_exceeded": "Usage limit exceeded", "error_status_limits_exceeded": 429,
    "error_headers_limits_exceeded": "text/plain; charset=us-ascii",
}
UNAVAILABLE_503 = (b"<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n"
                   b"</body></html>\n")


class Reply(Exception):
    """Raised by handlers to answer: status + JSON object (or raw bytes/str)."""

    def __init__(self, status: int, body: Any = None, ctype: str | None = None, headers: dict | None = None):
        super().__init__(status)
        self.status, self.body, self.ctype, self.headers = status, body, ctype, headers or {}


def not_found() -> Reply:
    return Reply(404, {"status": "Not found"})


def invalid(attr: str, *msgs: str) -> Reply:
    return Reply(422, {"errors": {attr: list(msgs)}})


def clean(d: dict, keep: tuple = ()) -> dict:
    """Porta omits nil properties unless rendered with render_nil."""
    return {k: v for k, v in d.items() if v is not None or k in keep}


def truthy(v: Any) -> bool:
    return v is True or str(v).lower() in ("true", "1", "yes", "on")


def to_int(v: Any) -> int | None:
    try:
        return int(str(v).strip())
    except (TypeError, ValueError):
        return None


def parameterize(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def with_port(url: str) -> str:
    """Porta stores endpoints with an explicit port (`https://h` → `https://h:443`)."""
    u = urlsplit(url)
    port = u.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(u.scheme)
    host = f"[{u.hostname}]" if u.hostname and ":" in u.hostname else u.hostname
    return f"{u.scheme}://{host}:{port}{u.path}"


ROUTES: list[tuple[str, re.Pattern, Callable]] = []


def route(method: str, pattern: str):
    def deco(fn):
        ROUTES.append((method, re.compile("^" + pattern + "$"), fn))
        return fn
    return deco


# The few endpoints the lab also answers in XML (path without ".xml"); every other .xml is 406.
XML_ROUTES: list[tuple[str, re.Pattern, Callable]] = []


def xml_route(method: str, pattern: str):
    def deco(fn):
        XML_ROUTES.append((method, re.compile("^" + pattern + "$"), fn))
        return fn
    return deco


def xml_error(r: "Reply") -> "Reply":
    """porta's XML errors: ``<error>msg</error>`` for render_error, an empty body otherwise (e.g. 404)."""
    from xml.sax.saxutils import escape
    msg = r.body.get("error") if isinstance(r.body, dict) else None
    return Reply(r.status, f"<error>{escape(msg)}</error>" if isinstance(msg, str) else b"",
                 "application/xml; charset=utf-8", r.headers)


class Req:
    def __init__(self, method: str, path: str, params: dict, has_body: bool):
        self.method, self.path, self.params, self.has_body = method, path, params, has_body

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    def has(self, key: str) -> bool:
        return key in self.params


def parse_params(query: str, body: bytes, ctype: str) -> dict:
    params: dict[str, Any] = {}

    def add_form(text: str) -> None:
        for k, vs in parse_qs(text, keep_blank_values=True).items():
            params[k] = vs if k.endswith("[]") else vs[-1]

    add_form(query)
    if body:
        if "json" in ctype:
            try:
                data = json.loads(body)
            except ValueError:
                raise Reply(400, "Invalid JSON body", "text/plain; charset=utf-8") from None
            if isinstance(data, dict):
                params.update(data)
        else:
            add_form(body.decode("utf-8", "replace"))
    # wrap_parameters: `account[org_name]=x` or {"account": {"org_name": "x"}} both mean org_name=x
    for k in list(params):
        m = re.fullmatch(r"(\w+)\[(\w+)\]", k)
        if m and m.group(1) in WRAPPERS:
            params.setdefault(m.group(2), params[k])
        elif k in WRAPPERS and isinstance(params[k], dict):
            for ik, iv in params[k].items():
                params.setdefault(ik, iv)
    return params


def _page_args(req: Req) -> tuple[int, int]:
    """per_page (1..500, else 500) and page (from 1), as porta's ApiPagination."""
    per_page = to_int(req.get("per_page"))
    per_page = per_page if per_page and 1 <= per_page <= 500 else 500
    page = to_int(req.get("page"))
    return per_page, page if page and page >= 1 else 1


def _page_meta(total: int, per_page: int, page: int) -> dict | None:
    if total <= per_page:
        return None
    return {"per_page": per_page, "total_entries": total, "total_pages": math.ceil(total / per_page),
            "current_page": page}


def paginate(items: list, req: Req) -> tuple[list, dict | None]:
    per_page, page = _page_args(req)
    return items[(page - 1) * per_page: page * per_page], _page_meta(len(items), per_page, page)


def paginate_query(store, kind: str, req: Req, **match) -> tuple[list, dict | None]:
    """One page of a kind's objects matching `match`, read from the database (LIMIT/OFFSET and a
    COUNT, as porta's paginate does in SQL), with the same metadata as paginate()."""
    per_page, page = _page_args(req)
    items, total = store.page(kind, (page - 1) * per_page, per_page, **match)
    return items, _page_meta(total, per_page, page)


# The 3scale operator's porta client (3scale-porta-go-client) sets no User-Agent of its own, so Go's
# net/http sends its default (Go-http-client/1.1, or /2.0 over HTTP/2); `exclude_operator` keys on it.
OPERATOR_USER_AGENT = "Go-http-client/1.1"


def is_operator(h: JSONHandler) -> bool:
    return (h.headers.get("User-Agent") or "").startswith("Go-http-client/")


def hang_up(h: JSONHandler) -> None:
    """Close the connection with no answer at all (the client sees EOF / a reset)."""
    h.close_connection = True
    try:
        h.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class ServerMixin:
    """Request plumbing of Porta: counters, auth, dispatch to ROUTES, envelopes, /lab endpoints."""

    def record(self, key: str, agent: str = "") -> None:
        """Count a request by method and path, in all and per client: the User-Agent's first product
        token ("Go-http-client" is the operator's porta-go-client, "maas.threescale" the collection)."""
        client = (agent.split() or ["-"])[0].split("/")[0]
        with self.stats_lock:
            self.stats[key] += 1
            self.agent_stats.setdefault(client, Counter())[key] += 1

    def authenticate(self, handler: JSONHandler, req: Req) -> bool | None:
        """True: allowed; None: no valid token ("Access denied"); False: a valid token without the scope or
        permission (porta's "Your access token does not have the correct permissions")."""
        candidates = [req.get("access_token"), req.get("provider_key")]
        auth = handler.headers.get("Authorization") or ""
        if auth[:6].lower() == "basic ":
            import base64
            try:
                user, _, pw = base64.b64decode(auth[6:].strip()).decode().partition(":")
                candidates.append(user.strip() or pw)
            except (ValueError, UnicodeDecodeError):
                pass
        candidates = [c for c in candidates if isinstance(c, str) and c]
        if req.path.startswith("/master/"):  # the master account's token only (master/api/base_controller.rb)
            master = self.ctx.secret("master_token").encode()
            return True if any(hmac.compare_digest(c.encode(), master) for c in candidates) else None
        token = self.token.encode()
        if any(hmac.compare_digest(c.encode(), token) for c in candidates):
            return True
        return self.personal_token_allows(candidates, req)

    def personal_token_allows(self, candidates: list[str], req: Req) -> bool | None:
        """A personal access token created through the API: its scope must cover the API (admin API →
        account_management, analytics → stats), `ro` only reads, an expired token is refused."""
        store = self.store
        if store is None or not candidates:
            return None
        with store.lock:
            tokens = store.all("access_token")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for t in tokens:
            if not any(hmac.compare_digest(c.encode(), t["value"].encode()) for c in candidates):
                continue
            if t.get("expires_at") and t["expires_at"] <= now:
                return None
            scope = "stats" if req.path.startswith("/stats/") else "account_management"
            return scope in t["scopes"] and (t["permission"] == "rw" or req.method == "GET")
        return None

    def handle_admin(self, h: "AdminHandler") -> None:
        url = urlsplit(h.path)
        path = url.path
        body = h.read_body()
        if path.startswith("/lab/"):
            return self.handle_lab(h, path)
        self.record(f"{h.command} {path}", h.headers.get("User-Agent") or "")
        faults = self.ctx.faults.get("porta") if self.ctx.faults else {}
        lose, xml = False, False
        if faults and (not faults.get("path_regex") or re.search(faults["path_regex"], path)) \
                and (not faults.get("verbs") or h.command in faults["verbs"]) \
                and not (faults.get("exclude_operator") and is_operator(h)):
            if faults.get("delay"):
                with self.stats_lock:
                    self.fault_stats["delays"] += 1
                time.sleep(float(faults["delay"]))  # injected latency, not a wait on a condition
            if self.ctx.faults.fire("porta", float(faults.get("drop_rate") or 0)):
                with self.stats_lock:
                    self.fault_stats["drops"] += 1
                hang_up(h)
                return
            if self.ctx.faults.fire("porta", float(faults.get("error_rate") or 0)):
                with self.stats_lock:
                    self.fault_stats["errors"] += 1
                status = int(faults.get("error_status") or 503)
                h.send_bytes(status, UNAVAILABLE_503 if status == 503 else
                             json.dumps({"status": "Injected error"}).encode(),
                             "text/html" if status == 503 else "application/json; charset=utf-8",
                             {"Cache-Control": "no-cache"})
                return
            # decided before processing (so max_count counts it), applied after the commit
            lose = self.ctx.faults.fire("porta", float(faults.get("lost_response_rate") or 0))
        try:
            xml = path.endswith(".xml")
            if xml and not any(m == h.command and pat.match(path[:-4]) for m, pat, _fn in XML_ROUTES):
                raise Reply(406, b"", None)
            path = path[:-5] if path.endswith(".json") else path[:-4] if xml else path
            req = Req(h.command, path, parse_params(url.query, body, h.headers.get("Content-Type") or ""), bool(body))
            allowed = self.authenticate(h, req)
            if allowed is None:
                raise Reply(403, {"error": "Access denied"})
            if not allowed:  # porta Admin::Api::BaseController: a token without the scope/permission
                raise Reply(403, {"error": "Your access token does not have the correct permissions"})
            wanted = "PUT" if h.command == "PATCH" else h.command  # Rails routes `update` for PUT and PATCH
            for method, pattern, fn in (XML_ROUTES if xml else ROUTES):  # noqa: B007 (fn is used after the loop)
                m = pattern.match(path)
                if m and method == wanted:
                    break
            else:
                raise not_found()
            store = self.store
            if store is None:  # stopping: a kept-alive connection outlived the listener
                raise Reply(503, UNAVAILABLE_503, "text/html", {"Connection": "close"})
            with store.lock:
                store.begin()
                try:
                    result = fn(self, req, **m.groupdict())
                    store.commit()
                except Reply as r:
                    (store.commit if r.status < 400 else store.rollback)()
                    raise
                except BaseException:
                    store.rollback()
                    raise
            raise result if isinstance(result, Reply) else Reply(200, result)
        except Reply as r:
            if lose:  # processed and committed (or refused) like any request: only the answer is lost
                with self.stats_lock:
                    self.fault_stats["lost_responses"] += 1
                hang_up(h)
                return
            self.send(h, xml_error(r) if xml and not isinstance(r.body, (bytes, str)) else r)
        except Exception:  # a bug in the emulator: answer like porta's 500 and log it
            LOG.exception("porta: %s %s failed", h.command, path)
            h.send_json(500, {"status": "Internal Server Error"})

    @staticmethod
    def send(h: JSONHandler, r: Reply) -> None:
        if r.body is None:
            h.send_bytes(r.status, b"", "application/json; charset=utf-8", r.headers)
        elif isinstance(r.body, (bytes, str)):
            data = r.body.encode() if isinstance(r.body, str) else r.body
            h.send_bytes(r.status, data, r.ctype, r.headers)
        else:
            h.send_json(r.status, r.body, r.headers)

    def handle_lab(self, h: JSONHandler, path: str) -> None:
        if path == "/lab/stats.json" and h.command == "GET":
            with self.stats_lock:
                h.send_json(200, {"requests": sum(self.stats.values()), "by_method_path": dict(self.stats),
                                  "by_agent": {a: dict(c) for a, c in self.agent_stats.items()},
                                  "faults": dict(self.fault_stats), "backend": dict(self.backend_stats)})
        elif path == "/lab/stats/reset" and h.command == "POST":
            with self.stats_lock:
                self.stats.clear()
                self.agent_stats.clear()
                self.fault_stats.clear()
                self.backend_stats.clear()
            h.send_json(200, {})
        else:
            h.send_json(404, {"status": "Not found"})


class NoDelayHandler(JSONHandler):
    def setup(self):
        super().setup()
        # headers and body go out in two writes: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class AdminHandler(NoDelayHandler):
    def _dispatch(self):
        self.server.component.handle_admin(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class BackendHandler(NoDelayHandler):
    def do_GET(self):
        self.server.component.handle_backend(self)

    do_POST = do_GET


ID = r"(?P<id>\d+)"
A = r"/admin/api"


def created(obj: dict, location: str | None = None) -> Reply:
    return Reply(201, obj, headers={"Location": location} if location else None)
