"""The lab's 3scale admin API ("porta") and backend listener (apisonator stand-in).

Speaks the contract in shared/reference/porta/CONTRACT.md (JSON only) over HTTPS, and the
backend listener protocol of lab/ARCHITECTURE.md over plain HTTP. State: <dir>/porta.sqlite3.

Documented deviations from the real porta:
* `.xml` answers 406 (only JSON is emulated).
* Endpoints are `http://127.0.0.1:<port>` allocated per product (no DNS in the lab).
* private_endpoint validation rejects localhost/127.x like porta, except the lab model server
  (host:port of ctx.urls["model"]), so a Backend can point at it.
* Backend-API metrics keep their plain system_name in the API and in proxy rules (real porta
  suffixes them with `.<backend id>`); the listener resolves a name product-first.
* Backend usages list is a bare JSON array (as porta), paginated without `metadata`.
* `/lab/stats.json` and `POST /lab/stats/reset` are lab-only (request counters, no auth).
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import socket
import threading
import time
from collections import Counter
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

from .context import LabContext, free_port, now_iso
from .httpbase import JSONHandler, LabHTTPServer
from .porta_db import PERIODS, Store, iso, period_bounds

LOG = logging.getLogger("maaslab.porta")

WRAPPERS = {"account", "application", "service", "proxy", "service_subscription", "backend_api", "metric",
            "method", "mapping_rule", "application_plan", "service_plan", "limit", "pricing_rule", "api_doc",
            "backend_usage", "user", "plan"}
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


def paginate(items: list, req: Req) -> tuple[list, dict | None]:
    per_page = to_int(req.get("per_page"))
    per_page = per_page if per_page and 1 <= per_page <= 500 else 500
    page = to_int(req.get("page"))
    page = page if page and page >= 1 else 1
    total = len(items)
    meta = None
    if total > per_page:
        meta = {"per_page": per_page, "total_entries": total, "total_pages": math.ceil(total / per_page),
                "current_page": page}
    return items[(page - 1) * per_page: page * per_page], meta


class Porta:
    """Admin API (HTTPS, ctx.urls["porta"]) + backend listener (HTTP, ctx.urls["backend"])."""

    def __init__(self, ctx: LabContext):
        self.ctx = ctx
        self.store: Store | None = None
        self.servers: list[LabHTTPServer] = []
        self.stats_lock = threading.Lock()
        self.stats: Counter = Counter()
        self.fault_stats: Counter = Counter()
        self.backend_stats: Counter = Counter()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.ctx.dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.ctx.dir / "porta.sqlite3")
        _ = self.token  # create the credential now, so lab.json written after start() holds it
        admin = LabHTTPServer(("127.0.0.1", self.ctx.port("porta")), AdminHandler, component=self,
                              ssl_context=self.ctx.server_ssl_context())
        backend = LabHTTPServer(("127.0.0.1", self.ctx.port("backend")), BackendHandler, component=self)
        self.servers = [admin, backend]
        self.ctx.urls["porta"] = f"https://127.0.0.1:{admin.server_address[1]}"
        self.ctx.urls["backend"] = f"http://127.0.0.1:{backend.server_address[1]}"
        with self.store.lock:
            if self.store.meta("seeded") is None:
                self.store.begin()
                try:
                    self._seed()
                    self.store.set_meta("seeded", now_iso())
                    self.store.commit()
                except BaseException:
                    self.store.rollback()
                    raise
        admin.start_background("porta-admin")
        backend.start_background("porta-backend")
        LOG.info("porta admin API on %s, backend listener on %s", self.ctx.urls["porta"], self.ctx.urls["backend"])

    def stop(self) -> None:
        # shut both listeners down in parallel: each shutdown() waits up to one poll interval
        waiters = [threading.Thread(target=srv.shutdown) for srv in self.servers]
        for t in waiters:
            t.start()
        for t in waiters:
            t.join()
        for srv in self.servers:
            srv.server_close()
        self.servers = []
        store, self.store = self.store, None
        if store:
            store.close()

    @property
    def base(self) -> str:
        return self.ctx.urls["porta"]

    @property
    def token(self) -> str:
        return self.ctx.secret("porta_token")

    # ------------------------------------------------------------------ seed
    def _seed(self) -> None:
        st = self.store
        now = now_iso()
        tenant = self.ctx.settings.get("tenant", "3scale")
        st.insert("provider", {
            "org_name": tenant, "state": "approved", "created_at": now, "updated_at": now,
            "admin_domain": f"{tenant}-admin.apps.maaslab.local", "domain": f"{tenant}.apps.maaslab.local",
            "from_email": f"no-reply@{tenant}.apps.maaslab.local",
            "support_email": f"admin@{tenant}.apps.maaslab.local",
            "finance_support_email": f"admin@{tenant}.apps.maaslab.local",
            "site_access_code": secrets.token_hex(5)})
        svc = self._create_service({"name": "API", "system_name": "api", "description": "Echo API"}, default=True)
        backend = st.insert("backend_api", {"name": "API Backend", "system_name": "api_backend",
                                            "description": "Echo API backend",
                                            "private_endpoint": "https://echo-api.3scale.net:443",
                                            "created_at": now, "updated_at": now})
        self._create_metric({"friendly_name": "Hits", "system_name": "hits", "unit": "hit",
                             "description": "Number of API hits"}, "backend_api", backend["id"])
        st.insert("backend_usage", {"service_id": svc["id"], "backend_id": backend["id"], "path": "/"})
        for name in ("Basic", "Unlimited"):
            st.insert("plan", self._plan_data("ApplicationPlan", svc["id"], {"name": name, "state_event": "publish"}))
        for i in range(1, int(self.ctx.settings.get("users", 5)) + 1):
            self._signup({"org_name": f"user{i}", "username": f"user{i}", "email": f"user{i}@example.com",
                          "password": "openshift"})

    # ------------------------------------------------------------------ helpers: lookups
    def need(self, kind: str, oid: Any, **match: Any) -> dict:
        obj = self.store.get(kind, oid)
        if obj is None or any(obj.get(k) != v for k, v in match.items()):
            raise not_found()
        return obj

    def need_service(self, sid: Any) -> dict:
        svc = self.store.get("service", sid)
        if svc is None or svc.get("state") == "deleted":
            raise not_found()
        return svc

    def services(self) -> list[dict]:
        return [s for s in self.store.all("service") if s.get("state") != "deleted"]

    def provider(self) -> dict:
        return self.store.all("provider")[0]

    def used_ports(self) -> set[int]:
        ports = set(self.ctx.ports.values())
        for s in self.store.all("service"):
            for key in ("endpoint", "sandbox_endpoint"):
                p = urlsplit(s["proxy"][key]).port
                if p:
                    ports.add(p)
        return ports

    def alloc_port(self, taken: set[int]) -> int:
        for _ in range(100):
            p = free_port()
            if p not in taken:
                taken.add(p)
                return p
        raise RuntimeError("no free port for a product endpoint")

    # ------------------------------------------------------------------ representers
    def links(self, *pairs: tuple[str, str]) -> list[dict]:
        return [{"rel": rel, "href": self.base + path} for rel, path in pairs]

    def account_json(self, a: dict) -> dict:
        return clean({"id": a["id"], "created_at": a["created_at"], "updated_at": a["updated_at"], "state": a["state"],
                      "annotations": {}, "credit_card_stored": False, "monthly_billing_enabled": True,
                      "monthly_charging_enabled": True, "org_name": a["org_name"],
                      "extra_fields": a.get("extra_fields") or None,
                      "links": self.links(("self", f"/admin/api/accounts/{a['id']}"),
                                          ("users", f"/admin/api/accounts/{a['id']}/users"))})

    def provider_json(self, p: dict) -> dict:
        d = {"id": p["id"], "created_at": p["created_at"], "updated_at": p["updated_at"], "state": p["state"],
             "annotations": {}, "credit_card_stored": False, "monthly_billing_enabled": True,
             "monthly_charging_enabled": True, "org_name": p["org_name"], "admin_domain": p["admin_domain"],
             "domain": p["domain"], "admin_base_url": f"https://{p['admin_domain']}/",
             "base_url": f"https://{p['domain']}/", "from_email": p.get("from_email"),
             "support_email": p.get("support_email"), "finance_support_email": p.get("finance_support_email"),
             "site_access_code": p.get("site_access_code"),
             "links": self.links(("self", f"/admin/api/accounts/{p['id']}"),
                                 ("users", f"/admin/api/accounts/{p['id']}/users"))}
        return clean(d)

    def user_json(self, u: dict) -> dict:
        return clean({"id": u["id"], "state": u["state"], "role": u["role"], "created_at": u["created_at"],
                      "updated_at": u["updated_at"], "username": u["username"], "email": u["email"],
                      "links": self.links(("self", f"/admin/api/accounts/{u['account_id']}/users/{u['id']}"),
                                          ("account", f"/admin/api/accounts/{u['account_id']}"))})

    def service_json(self, s: dict) -> dict:
        sid = s["id"]
        return clean({"id": sid, "name": s["name"], "state": s["state"], "system_name": s["system_name"],
                      "backend_version": s["backend_version"], "deployment_option": s["deployment_option"],
                      "support_email": self.provider().get("support_email"), "description": s.get("description"),
                      "intentions_required": False, "buyers_manage_apps": True, "buyers_manage_keys": True,
                      "referrer_filters_required": False, "custom_keys_enabled": True,
                      "buyer_key_regenerate_enabled": True, "mandatory_app_key": True, "buyer_can_select_plan": False,
                      "buyer_plan_change_permission": "request", "created_at": s["created_at"],
                      "updated_at": s["updated_at"], "annotations": {},
                      "links": self.links(("metrics", f"/admin/api/services/{sid}/metrics"),
                                          ("end_user_plans", f"/admin/api/services/{sid}/end_user_plans"),
                                          ("self", f"/admin/api/services/{sid}"),
                                          ("service_plans", f"/admin/api/services/{sid}/service_plans"),
                                          ("application_plans", f"/admin/api/services/{sid}/application_plans"),
                                          ("features", f"/admin/api/services/{sid}/features"))})

    def plan_json(self, p: dict) -> dict:
        sid = p["service_id"]
        d = {"id": p["id"], "name": p["name"], "state": p["state"], "setup_fee": float(p["setup_fee"]),
             "cost_per_month": float(p["cost_per_month"]), "trial_period_days": p.get("trial_period_days"),
             "cancellation_period": 0, "approval_required": p["approval_required"], "default": p["default"],
             "created_at": p["created_at"], "updated_at": p["updated_at"]}
        if p["type"] == "ApplicationPlan":
            d.update(custom=False, system_name=p["system_name"],
                     links=self.links(("service", f"/admin/api/services/{sid}"),
                                      ("self", f"/admin/api/services/{sid}/application_plans/{p['id']}")))
        else:
            d["links"] = self.links(("service", f"/admin/api/services/{sid}"),
                                    ("self", f"/admin/api/services/{sid}/service_plans/{p['id']}"))
        return clean(d)

    def wrap_plan(self, p: dict) -> dict:
        return {"application_plan" if p["type"] == "ApplicationPlan" else "service_plan": self.plan_json(p)}

    def app_json(self, a: dict) -> dict:
        svc = self.store.get("service", a["service_id"]) or {}
        plan = self.store.get("plan", a["plan_id"]) or {}
        acc = self.store.get("account", a["account_id"]) or {}
        aid, acc_id = a["id"], a["account_id"]
        d = {"id": aid, "state": a["state"], "enabled": a["state"] == "live", "created_at": a["created_at"],
             "updated_at": a["updated_at"], "service_id": a["service_id"], "service_name": svc.get("name"),
             "plan_id": a["plan_id"], "plan_name": plan.get("name"), "account_id": acc_id,
             "org_name": acc.get("org_name"), "first_traffic_at": a.get("first_traffic_at"),
             "first_daily_traffic_at": a.get("first_daily_traffic_at"), "name": a.get("name"),
             "description": a.get("description")}
        if svc.get("backend_version", "1") == "1":
            d.update(user_key=a["user_key"], provider_verification_key=a.get("provider_verification_key"))
        else:
            d["application_id"] = a.get("application_id")
        base = f"/admin/api/accounts/{acc_id}/applications/{aid}"
        d["links"] = self.links(("self", base), ("service", f"/admin/api/services/{a['service_id']}"),
                                ("account", f"/admin/api/accounts/{acc_id}"),
                                ("plan", f"/admin/api/services/{a['service_id']}/application_plans/{a['plan_id']}"),
                                ("keys", base + "/keys"), ("referrer_filters", base + "/referrer_filters"))
        return clean(d, keep=("first_traffic_at", "first_daily_traffic_at", "provider_verification_key"))

    def contract_json(self, c: dict) -> dict:
        return clean({"id": c["id"], "plan_id": c["plan_id"], "user_account_id": c["account_id"],
                      "service_id": c["service_id"], "state": c["state"], "created_at": c["created_at"],
                      "updated_at": c["updated_at"], "setup_fee": 0.0, "type": "ServiceContract",
                      "tenant_id": self.provider()["id"], "accepted_at": c.get("accepted_at")})

    def owner_path(self, owner: str, oid: int) -> str:
        return f"/admin/api/services/{oid}" if owner == "service" else f"/admin/api/backend_apis/{oid}"

    def metric_json(self, m: dict) -> dict:
        parent = self.owner_path(m["owner"], m["owner_id"])
        d = {"id": m["id"], "name": m["system_name"], "system_name": m["system_name"],
             "friendly_name": m["friendly_name"], "description": m.get("description"),
             "created_at": m["created_at"], "updated_at": m["updated_at"]}
        if m.get("parent_id"):
            d["parent_id"] = m["parent_id"]
            d["links"] = self.links(("parent", f"{parent}/metrics/{m['parent_id']}"),
                                    ("self", f"{parent}/metrics/{m['parent_id']}/methods/{m['id']}"))
            return {"method": clean(d)}
        d["unit"] = m.get("unit")
        d["links"] = self.links(("parent", parent), ("self", f"{parent}/metrics/{m['id']}"))
        return {"metric": clean(d)}

    def rule_json(self, r: dict) -> dict:
        parent = self.owner_path(r["owner"], r["owner_id"])
        sub = "/proxy/mapping_rules" if r["owner"] == "service" else "/mapping_rules"
        return {"mapping_rule": clean({
            "id": r["id"], "metric_id": r["metric_id"], "pattern": r["pattern"], "http_method": r["http_method"],
            "delta": r["delta"], "position": r["position"], "last": r["last"], "created_at": r["created_at"],
            "updated_at": r["updated_at"],
            "links": self.links(("self", f"{parent}{sub}/{r['id']}"), ("parent", parent))})}

    def backend_json(self, b: dict) -> dict:
        return {"backend_api": clean({
            "id": b["id"], "name": b["name"], "system_name": b["system_name"], "description": b.get("description"),
            "private_endpoint": b["private_endpoint"], "account_id": self.provider()["id"],
            "created_at": b["created_at"], "updated_at": b["updated_at"],
            "links": self.links(("metrics", f"/admin/api/backend_apis/{b['id']}/metrics"),
                                ("mapping_rules", f"/admin/api/backend_apis/{b['id']}/mapping_rules"),
                                ("self", f"/admin/api/backend_apis/{b['id']}"))})}

    def usage_json(self, u: dict) -> dict:
        return {"backend_usage": {
            "id": u["id"], "path": u["path"], "service_id": u["service_id"], "backend_id": u["backend_id"],
            "links": self.links(("service", f"/admin/api/services/{u['service_id']}"),
                                ("backend_api", f"/admin/api/backend_apis/{u['backend_id']}"))}}

    def limit_json(self, lim: dict) -> dict:
        return {"limit": {"id": lim["id"], "period": lim["period"], "value": lim["value"],
                          "metric_id": lim["metric_id"], "plan_id": lim["plan_id"],
                          "created_at": lim["created_at"], "updated_at": lim["updated_at"],
                          "links": self.links(
                              ("self", f"/admin/api/application_plans/{lim['plan_id']}/metrics/{lim['metric_id']}"
                                       f"/limits/{lim['id']}"),
                              ("plan", f"/admin/api/application_plans/{lim['plan_id']}"))}}

    def pricing_json(self, r: dict) -> dict:
        return {"pricing_rule": {"id": r["id"], "metric_id": r["metric_id"], "cost_per_unit": r["cost_per_unit"],
                                 "min": r["min"], "max": r["max"], "plan_id": r["plan_id"],
                                 "created_at": r["created_at"], "updated_at": r["updated_at"]}}

    def proxy_json(self, s: dict) -> dict:
        p = s["proxy"]
        d = {"service_id": s["id"], "endpoint": p["endpoint"], "sandbox_endpoint": p["sandbox_endpoint"],
             "api_backend": self.api_backend(s)}
        for k in ("credentials_location", "auth_user_key", "auth_app_id", "auth_app_key", "error_auth_failed",
                  "error_auth_missing", "error_status_auth_failed", "error_headers_auth_failed",
                  "error_status_auth_missing", "error_headers_auth_missing", "error_no_match",
                  "error_status_no_match", "error_headers_no_match", "error_limits_exceeded",
                  "error_status_limits_exceeded", "error_headers_limits_exceeded", "secret_token",
                  "hostname_rewrite", "oauth_login_url", "api_test_path", "api_test_success",
                  "oidc_issuer_endpoint", "oidc_issuer_type"):
            d[k] = p.get(k)
        d.update(policies_config=s["policies"], deployment_option=s["deployment_option"],
                 lock_version=p["lock_version"], created_at=p["created_at"], updated_at=p["updated_at"],
                 links=self.links(("service", f"/admin/api/services/{s['id']}"),
                                  ("self", f"/admin/api/services/{s['id']}/proxy")))
        return {"proxy": clean(d, keep=("api_backend",))}

    def config_json(self, c: dict) -> dict:
        return {"proxy_config": {"id": c["id"], "version": c["version"], "environment": c["environment"],
                                 "content": c["content"]}}

    def doc_json(self, d: dict) -> dict:
        return {"api_doc": clean({
            "id": d["id"], "system_name": d["system_name"], "name": d["name"], "description": d.get("description"),
            "published": d["published"], "skip_swagger_validations": d["skip_swagger_validations"],
            "body": d["body"], "service_id": d.get("service_id"), "created_at": d["created_at"],
            "updated_at": d["updated_at"]})}

    # ------------------------------------------------------------------ domain operations
    def _signup(self, p: dict) -> dict:
        st = self.store
        errors: dict[str, list[str]] = {}
        for f in ("org_name", "username", "email"):
            if not str(p.get(f) or "").strip():
                errors.setdefault(f, []).append("can't be blank")
        email = str(p.get("email") or "")
        if email and not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
            errors.setdefault("email", []).append("should look like an email address")
        users = st.all("user")
        if p.get("username") and any(u["username"] == p["username"] for u in users):
            errors.setdefault("username", []).append("has already been taken")
        if email and any(u["email"].lower() == email.lower() for u in users):
            errors.setdefault("email", []).append("has already been taken")
        if errors:
            raise Reply(422, {"errors": errors})
        now = now_iso()
        acc = st.insert("account", {"org_name": str(p["org_name"]), "state": "approved", "created_at": now,
                                    "updated_at": now})
        salt = secrets.token_hex(8)
        pw = str(p.get("password") or "")
        st.insert("user", {"account_id": acc["id"], "username": str(p["username"]), "email": email, "role": "admin",
                           "state": "active", "created_at": now, "updated_at": now, "salt": salt,
                           "password_sha256": hashlib.sha256((salt + pw).encode()).hexdigest()})
        # subscribe to the given or the default service plans, as porta's signup does
        plans = []
        if p.get("service_plan_id"):
            sp = st.get("plan", p["service_plan_id"])
            if not sp or sp["type"] != "ServicePlan":
                raise not_found()
            plans.append(sp)
        else:
            plans = [sp for sp in st.all("plan", type="ServicePlan", default=True)]
        for sp in plans:
            self._subscribe(acc, sp)
        if p.get("application_plan_id"):
            ap = st.get("plan", p["application_plan_id"])
            if not ap or ap["type"] != "ApplicationPlan":
                raise not_found()
            self._create_app(acc, ap, {"name": f"{acc['org_name']}'s App"})
        return acc

    def _purge_deleted_services(self) -> None:
        """Real porta marks a product deleted and purges it in a background job (its system name is
        taken until then); the lab purges on the next create once `porta_purge_delay` (1 s) passed."""
        delay = float(self.ctx.settings.get("porta_purge_delay", 1.0))
        for svc in self.store.all("service"):
            if svc.get("state") == "deleted" and time.time() - float(svc.get("deleted_at") or 0) >= delay:
                self.store.delete("service", svc["id"])

    def _create_service(self, p: dict, default: bool = False) -> dict:
        st = self.store
        name = str(p.get("name") or "").strip()
        if not name:
            raise invalid("name", "can't be blank")
        system_name = str(p.get("system_name") or parameterize(name))
        if not re.fullmatch(r"\w[\w\-/]+", system_name) or len(system_name) > 255:
            raise invalid("system_name", "invalid. Only ASCII letters, numbers, dashes and underscores are allowed.")
        self._purge_deleted_services()
        if any(s["system_name"] == system_name for s in st.all("service")):
            raise invalid("system_name", "has already been taken")
        backend_version = str(p.get("backend_version") or "1")
        if backend_version not in ("1", "2", "oauth", "oidc"):
            raise invalid("backend_version", "is not included in the list")
        deployment = str(p.get("deployment_option") or "hosted")
        if deployment not in ("hosted", "self_managed"):
            raise invalid("deployment_option", "is not included in the list")
        now = now_iso()
        taken = self.used_ports()
        prod, stage = self.alloc_port(taken), self.alloc_port(taken)
        proxy = {"endpoint": f"http://127.0.0.1:{prod}", "sandbox_endpoint": f"http://127.0.0.1:{stage}",
                 "api_backend": None, "credentials_location": "query", "auth_user_key": "user_key",
                 "auth_app_id": "app_id", "auth_app_key": "app_key",
                 "error_auth_failed": "Authentication failed", "error_status_auth_failed": 403,
                 "error_headers_auth_failed": "text/plain; charset=us-ascii",
                 "error_auth_missing": "Authentication parameters missing", "error_status_auth_missing": 401,
                 "error_headers_auth_missing": "text/plain; charset=us-ascii",
                 "error_no_match": "No Mapping Rule matched", "error_status_no_match": 404,
                 "error_headers_no_match": "text/plain; charset=us-ascii",
                 "error_limits_exceeded": "Limits exceeded", "error_status_limits_exceeded": 429,
                 "error_headers_limits_exceeded": "text/plain; charset=us-ascii",
                 "secret_token": "Shared_secret_sent_from_proxy_to_API_backend_" + secrets.token_hex(8),
                 "api_test_path": "/", "lock_version": 0, "created_at": now, "updated_at": now}
        svc = st.insert("service", {
            "name": name, "system_name": system_name, "description": p.get("description"), "state": "incomplete",
            "backend_version": backend_version, "deployment_option": deployment, "created_at": now,
            "updated_at": now, "default": default, "service_token": secrets.token_hex(32), "proxy": proxy,
            "policies": [{"name": "apicast", "version": "builtin", "configuration": {}, "enabled": True}]})
        st.insert("plan", self._plan_data("ServicePlan", svc["id"], {"name": "Default", "state_event": "publish"}))
        hits = self._create_metric({"friendly_name": "Hits", "system_name": "hits", "unit": "hit",
                                    "description": "Number of API hits"}, "service", svc["id"])
        st.insert("mapping_rule", {"owner": "service", "owner_id": svc["id"], "http_method": "GET", "pattern": "/",
                                   "delta": 1, "metric_id": hits["id"], "position": 1, "last": False,
                                   "created_at": now, "updated_at": now})
        return svc

    def _plan_data(self, ptype: str, sid: int, p: dict) -> dict:
        now = now_iso()
        name = str(p.get("name") or "").strip()
        return {"type": ptype, "service_id": sid, "name": name,
                "system_name": str(p.get("system_name") or parameterize(name)),
                "state": "published" if p.get("state_event") == "publish" else "hidden",
                "approval_required": truthy(p.get("approval_required", False)),
                "setup_fee": float(p.get("setup_fee") or 0), "cost_per_month": float(p.get("cost_per_month") or 0),
                "trial_period_days": to_int(p.get("trial_period_days")), "default": False,
                "created_at": now, "updated_at": now}

    def _create_metric(self, p: dict, owner: str, owner_id: int, parent_id: int | None = None) -> dict:
        friendly = str(p.get("friendly_name") or p.get("name") or "").strip()
        errors: dict[str, list[str]] = {}
        if not friendly:
            errors["friendly_name"] = ["can't be blank"]
        system_name = str(p.get("system_name") or parameterize(friendly))
        if friendly and not re.fullmatch(r"[\w\-/.]+", system_name):
            errors["system_name"] = ["invalid. Only ASCII letters, numbers, dashes and underscores are allowed."]
        if parent_id is None and not str(p.get("unit") or "").strip():
            errors["unit"] = ["can't be blank"]
        siblings = self.store.all("metric", owner=owner, owner_id=owner_id)
        if friendly and any(m["system_name"] == system_name for m in siblings):
            errors.setdefault("system_name", []).append("has already been taken")
        if friendly and any(m["friendly_name"] == friendly for m in siblings):
            errors["friendly_name"] = ["has already been taken"]
        if errors:
            raise Reply(422, {"errors": errors})
        now = now_iso()
        return self.store.insert("metric", {
            "owner": owner, "owner_id": owner_id, "parent_id": parent_id, "system_name": system_name,
            "friendly_name": friendly, "unit": None if parent_id else str(p["unit"]),
            "description": p.get("description"), "created_at": now, "updated_at": now})

    def metric_in_latest_configs(self, m: dict) -> bool:
        """porta Metric#belongs_to_latest_config?: the latest sandbox or production config of a product
        owning the metric (or using its backend) has a proxy rule with its id."""
        st = self.store
        if m["owner"] == "service":
            sids = [m["owner_id"]]
        else:
            sids = [u["service_id"] for u in st.all("backend_usage", backend_id=m["owner_id"])]
        for sid in sids:
            for env in ("sandbox", "production"):
                c = self.latest_config(sid, env)
                if c and any(r.get("metric_id") == m["id"] for r in c["content"]["proxy"].get("proxy_rules") or []):
                    return True
        return False

    def destroy_metric(self, m: dict) -> None:
        """DELETE of a metric or method: porta's Metric#destroyable? refusals answer 403 with the errors."""
        errors = []
        if self.metric_in_latest_configs(m):
            kind = "Method" if m.get("parent_id") else "Metric"
            errors.append(f"{kind} is used by the latest gateway configuration and cannot be deleted")
        if m["system_name"] == "hits":
            errors.append("The Hits metric cannot be deleted")
        if errors:
            raise Reply(403, {"errors": {"base": errors}})
        self._delete_metric(m)

    def _delete_metric(self, m: dict) -> None:
        st = self.store
        for child in st.all("metric", parent_id=m["id"]):
            self._delete_metric(child)
        for kind in ("mapping_rule", "limit", "pricing_rule"):
            for obj in st.all(kind, metric_id=m["id"]):
                st.delete(kind, obj["id"])
        st.delete("metric", m["id"])

    def check_private_endpoint(self, url: Any) -> str:
        url = str(url or "").strip()
        if not url:
            raise invalid("private_endpoint", "can't be blank")
        if len(url) > 255:
            raise invalid("private_endpoint", "is too long (maximum is 255 characters)")
        try:
            u = urlsplit(url)
            normalized = with_port(url)  # also validates the port (ValueError)
        except ValueError:
            raise invalid("private_endpoint", "is invalid") from None
        host = u.hostname or ""
        if (u.scheme not in ("http", "https", "ws", "wss") or not host or u.username or u.password or u.query
                or u.fragment or len(host) > 255 or any(len(lbl) > 63 for lbl in host.split("."))):
            raise invalid("private_endpoint", "is invalid")
        if host == "localhost" or host.startswith("127."):
            # lab deviation: the local model server is the one loopback target porta accepts
            model = self.ctx.urls.get("model") or ""
            same = model and urlsplit(model).hostname == host and \
                urlsplit(with_port(model)).port == urlsplit(normalized).port
            if not same:
                raise invalid("private_endpoint", "Sorry, this domain is protected")
        return normalized

    def _subscribe(self, acc: dict, sp: dict) -> dict:
        if self.store.first("contract", account_id=acc["id"], service_id=sp["service_id"]):
            raise invalid("base", "already subscribed to this service")
        now = now_iso()
        live = not sp["approval_required"]
        return self.store.insert("contract", {
            "account_id": acc["id"], "plan_id": sp["id"], "service_id": sp["service_id"],
            "state": "live" if live else "pending", "created_at": now, "updated_at": now,
            "accepted_at": now if live else None})

    def _unsubscribe(self, c: dict) -> None:
        st = self.store
        apps = st.all("application", account_id=c["account_id"], service_id=c["service_id"])
        live = [a for a in apps if a["state"] != "suspended"]
        if live:
            msg = ("There is 1 unsuspended application subscribed to the service" if len(live) == 1 else
                   f"There are {len(live)} unsuspended applications subscribed to the service")
            raise Reply(403, {"errors": {"base": [msg]}})
        for a in apps:
            st.delete("application", a["id"])
        st.delete("contract", c["id"])

    def _check_user_key(self, key: Any, exclude: int | None = None) -> str:
        key = str(key if key is not None else "")
        if not key or len(key) > 256 or not USER_KEY_RE.fullmatch(key):
            raise invalid("user_key", "is invalid")
        if any(a["user_key"] == key and a["id"] != exclude for a in self.store.all("application")):
            raise invalid("user_key", "has already been taken")
        return key

    def _create_app(self, acc: dict, plan: dict, p: dict) -> dict:
        st = self.store
        svc = self.need_service(plan["service_id"])
        if not st.first("contract", account_id=acc["id"], service_id=svc["id"]):
            # implicit subscription: default service plan, else the first one (find_or_create_service_contract)
            sps = st.all("plan", type="ServicePlan", service_id=svc["id"])
            sp = next((x for x in sps if x["default"]), sps[0] if sps else None)
            if sp is None:
                raise Reply(422, {"error": "You cannot subscribe to that service."})
            self._subscribe(acc, sp)
        user_key = self._check_user_key(p["user_key"]) if p.get("user_key") is not None else secrets.token_hex(16)
        app_id = None
        if svc["backend_version"] != "1":
            app_id = str(p.get("application_id") or secrets.token_hex(4))
            if not re.fullmatch(r"[\x21-\x7e]{4,255}", app_id):
                raise invalid("application_id", "is invalid")
            if st.first("application", application_id=app_id):
                raise invalid("application_id", "has already been taken")
        now = now_iso()
        return st.insert("application", {
            "account_id": acc["id"], "plan_id": plan["id"], "service_id": svc["id"], "name": p.get("name"),
            "description": p.get("description"), "user_key": user_key, "application_id": app_id,
            "state": "pending" if plan["approval_required"] else "live", "created_at": now, "updated_at": now,
            "first_traffic_at": None, "first_daily_traffic_at": None})

    def api_backend(self, s: dict) -> str | None:
        if s["proxy"].get("api_backend"):
            return s["proxy"]["api_backend"]
        for u in self.store.all("backend_usage", service_id=s["id"]):
            if u["path"] == "/":
                b = self.store.get("backend_api", u["backend_id"])
                return b["private_endpoint"] if b else None
        return None

    def build_content(self, s: dict) -> dict:
        """The APIcast configuration snapshot that deploy/promote store (see ARCHITECTURE.md)."""
        st = self.store
        p = s["proxy"]
        metrics = {m["id"]: m for m in st.all("metric")}
        rules = []
        own = sorted(st.all("mapping_rule", owner="service", owner_id=s["id"]), key=lambda r: (r["position"], r["id"]))
        for r in own:
            rules.append((r, r["pattern"]))
        backends = []
        for u in st.all("backend_usage", service_id=s["id"]):
            b = st.get("backend_api", u["backend_id"])
            if not b:
                continue
            backends.append({"path": u["path"], "backend_api": {"system_name": b["system_name"],
                                                                "private_endpoint": b["private_endpoint"]}})
            brules = sorted(st.all("mapping_rule", owner="backend_api", owner_id=b["id"]),
                            key=lambda r: (r["position"], r["id"]))
            prefix = u["path"].rstrip("/")
            for r in brules:
                rules.append((r, prefix + r["pattern"] if prefix else r["pattern"]))
        proxy_rules = [{"id": r["id"], "http_method": r["http_method"], "pattern": pattern,
                        "metric_id": r["metric_id"],
                        "metric_system_name": metrics.get(r["metric_id"], {}).get("system_name", "hits"),
                        "delta": r["delta"], "last": r["last"], "parameters": re.findall(r"\{(\w+)\}", pattern),
                        "querystring_parameters": dict(kv.split("=", 1) if "=" in kv else (kv, "")
                                                       for kv in pattern.partition("?")[2].split("&") if kv)}
                       for r, pattern in rules]
        proxy = {k: p.get(k) for k in ("endpoint", "sandbox_endpoint", "credentials_location", "auth_user_key",
                                        "auth_app_id", "auth_app_key", "error_auth_failed",
                                        "error_status_auth_failed", "error_headers_auth_failed",
                                        "error_auth_missing", "error_status_auth_missing",
                                        "error_headers_auth_missing", "error_no_match", "error_status_no_match",
                                        "error_headers_no_match", "error_limits_exceeded",
                                        "error_status_limits_exceeded", "error_headers_limits_exceeded",
                                        "secret_token", "hostname_rewrite")}
        proxy.update(api_backend=self.api_backend(s), service_id=s["id"],
                     policy_chain=[{"name": x["name"], "version": x["version"],
                                    "configuration": x.get("configuration") or {}}
                                   for x in s["policies"] if x.get("enabled", True)],
                     proxy_rules=proxy_rules)
        return {"id": s["id"], "system_name": s["system_name"], "name": s["name"],
                "backend_version": s["backend_version"], "deployment_option": s["deployment_option"],
                "backend_authentication_type": "service_token", "backend_authentication_value": s["service_token"],
                "backend": {"endpoint": self.ctx.urls["backend"],
                            "host": urlsplit(self.ctx.urls["backend"]).netloc},
                "proxy": proxy, "backend_api_configs": backends}

    def latest_config(self, sid: int, env: str) -> dict | None:
        configs = self.store.all("proxy_config", service_id=sid, environment=env)
        return max(configs, key=lambda c: c["version"]) if configs else None

    def deploy(self, s: dict) -> dict | None:
        """New sandbox version only if the generated content differs from the latest one."""
        content = self.build_content(s)
        latest = self.latest_config(s["id"], "sandbox")
        if latest and latest["content"] == content:
            return None
        if s["state"] == "incomplete":
            s["state"] = "published"
            self.store.save("service", s)
        return self.store.insert("proxy_config", {
            "service_id": s["id"], "environment": "sandbox", "version": (latest["version"] + 1) if latest else 1,
            "content": content, "created_at": now_iso()})

    # ------------------------------------------------------------------ request plumbing
    def record(self, key: str) -> None:
        with self.stats_lock:
            self.stats[key] += 1

    def authenticate(self, handler: JSONHandler, req: Req) -> bool:
        candidates = [req.get("access_token"), req.get("provider_key")]
        auth = handler.headers.get("Authorization") or ""
        if auth[:6].lower() == "basic ":
            import base64
            try:
                user, _, pw = base64.b64decode(auth[6:].strip()).decode().partition(":")
                candidates.append(user.strip() or pw)
            except (ValueError, UnicodeDecodeError):
                pass
        token = self.token.encode()
        return any(isinstance(c, str) and c and hmac.compare_digest(c.encode(), token) for c in candidates)

    def handle_admin(self, h: "AdminHandler") -> None:
        url = urlsplit(h.path)
        path = url.path
        body = h.read_body()
        if path.startswith("/lab/"):
            return self.handle_lab(h, path)
        self.record(f"{h.command} {path}")
        faults = self.ctx.faults.get("porta") if self.ctx.faults else {}
        if faults and (not faults.get("path_regex") or re.search(faults["path_regex"], path)):
            if faults.get("delay"):
                with self.stats_lock:
                    self.fault_stats["delays"] += 1
                time.sleep(float(faults["delay"]))  # injected latency, not a wait on a condition
            if self.ctx.faults.chance(float(faults.get("drop_rate") or 0)):
                with self.stats_lock:
                    self.fault_stats["drops"] += 1
                h.close_connection = True
                try:
                    h.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if self.ctx.faults.chance(float(faults.get("error_rate") or 0)):
                with self.stats_lock:
                    self.fault_stats["errors"] += 1
                status = int(faults.get("error_status") or 503)
                h.send_bytes(status, UNAVAILABLE_503 if status == 503 else
                             json.dumps({"status": "Injected error"}).encode(),
                             "text/html" if status == 503 else "application/json; charset=utf-8",
                             {"Cache-Control": "no-cache"})
                return
        try:
            if path.endswith(".xml"):
                raise Reply(406, b"", None)
            path = path[:-5] if path.endswith(".json") else path
            req = Req(h.command, path, parse_params(url.query, body, h.headers.get("Content-Type") or ""), bool(body))
            if not self.authenticate(h, req):
                raise Reply(403, {"error": "Access denied"})
            wanted = "PUT" if h.command == "PATCH" else h.command  # Rails routes `update` for PUT and PATCH
            for method, pattern, fn in ROUTES:  # noqa: B007 (fn is used after the loop)
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
            self.send(h, r)
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
                                  "faults": dict(self.fault_stats), "backend": dict(self.backend_stats)})
        elif path == "/lab/stats/reset" and h.command == "POST":
            with self.stats_lock:
                self.stats.clear()
                self.fault_stats.clear()
                self.backend_stats.clear()
            h.send_json(200, {})
        else:
            h.send_json(404, {"status": "Not found"})

    # ------------------------------------------------------------------ backend listener
    def handle_backend(self, h: "BackendHandler") -> None:
        url = urlsplit(h.path)
        h.read_body()
        kind = {"/transactions/authrep.xml": "authrep", "/transactions/authorize.xml": "authorize"}.get(url.path)
        if kind is None or h.command != "GET":
            return h.send_bytes(404, b"", None)
        with self.stats_lock:
            self.backend_stats[kind] += 1
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        store = self.store
        if store is None:
            return h.send_bytes(503, b"", None, {"Connection": "close"})
        with store.lock:
            store.begin()
            try:
                status, xml = self.authrep(q, report=kind == "authrep")
                store.commit()
            except BaseException:
                store.rollback()
                raise
        h.send_bytes(status, ('<?xml version="1.0" encoding="UTF-8"?>' + xml).encode(),
                     "application/vnd.3scale-v2.0+xml")

    def authrep(self, q: dict, report: bool) -> tuple[int, str]:
        st = self.store

        def error(status: int, code: str, msg: str) -> tuple[int, str]:
            return status, f"<error code={quoteattr(code)}>{escape(msg)}</error>"

        svc = st.get("service", q.get("service_id"))
        if svc is None or svc.get("state") == "deleted":
            return error(404, "service_id_invalid", f'service id "{q.get("service_id", "")}" is invalid')
        if not hmac.compare_digest(str(q.get("service_token", "")).encode(), svc["service_token"].encode()):
            return error(403, "service_token_invalid", "service token is invalid")
        key = q.get("user_key")
        app = st.first("application", service_id=svc["id"], user_key=key) if key else None
        if app is None:
            return error(403, "user_key_invalid", f'user key "{key or ""}" is invalid')
        if app["state"] != "live":
            return error(403, "application_not_active", "application is not active")
        metrics = st.all("metric", owner="service", owner_id=svc["id"])
        for u in st.all("backend_usage", service_id=svc["id"]):
            metrics += st.all("metric", owner="backend_api", owner_id=u["backend_id"])
        by_name: dict[str, dict] = {}
        for m in metrics:  # product metrics win over backend metrics of the same name
            by_name.setdefault(m["system_name"], m)
        by_id = {m["id"]: m for m in metrics}
        usage: Counter = Counter()
        for k, v in q.items():
            mm = re.fullmatch(r"usage\[(.+)\]", k)
            if not mm:
                continue
            m = by_name.get(mm.group(1))
            if m is None:
                return error(404, "metric_invalid", f'metric "{mm.group(1)}" is invalid')
            delta = to_int(v) or 0
            # a method counts for its parent metric too; backend hits roll up to product hits
            while m is not None:
                usage[m["id"]] += delta
                parent = by_id.get(m.get("parent_id")) if m.get("parent_id") else None
                if parent is None and m["owner"] == "backend_api":
                    parent = next((x for x in metrics if x["owner"] == "service" and not x.get("parent_id")
                                   and x["system_name"] == m["system_name"]), None)
                m = parent
        plan = st.get("plan", app["plan_id"]) or {"name": ""}
        now = datetime.datetime.now(datetime.timezone.utc)
        reports, exceeded = [], False
        for lim in st.all("limit", plan_id=app["plan_id"]):
            m = by_id.get(lim["metric_id"])
            if m is None:
                continue
            start, end = period_bounds(lim["period"], now)
            current = st.usage(app["id"], m["id"], lim["period"], iso(start))
            over = current + usage.get(m["id"], 0) > lim["value"]
            exceeded = exceeded or (over and usage.get(m["id"], 0) > 0)
            shown = current + (usage.get(m["id"], 0) if report else 0)
            period_xml = "" if lim["period"] == "eternity" else (
                f"<period_start>{iso(start)}</period_start><period_end>{iso(end)}</period_end>")
            flag = ' exceeded="true"' if over else ""
            reports.append(f'<usage_report metric={quoteattr(m["system_name"])} period="{lim["period"]}"{flag}>'
                           f'{period_xml}'
                           f'<max_value>{lim["value"]}</max_value><current_value>{shown}</current_value></usage_report>')
        body_tail = f"<plan>{escape(plan['name'])}</plan>" + (
            f"<usage_reports>{''.join(reports)}</usage_reports>" if reports else "")
        if exceeded:
            return 409, ("<status><authorized>false</authorized><reason>usage limits are exceeded</reason>"
                         + body_tail + "</status>")
        if report and usage:
            for mid, delta in usage.items():
                for period in PERIODS:
                    st.add_usage(app["id"], mid, period, iso(period_bounds(period, now)[0]), delta)
            if not app.get("first_traffic_at") or not str(app.get("first_daily_traffic_at", "")).startswith(
                    now.strftime("%Y-%m-%d")):
                app["first_traffic_at"] = app.get("first_traffic_at") or iso(now)
                app["first_daily_traffic_at"] = iso(now)
                st.save("application", app)
        return 200, "<status><authorized>true</authorized>" + body_tail + "</status>"


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


# ====================================================================== admin API routes
ID = r"(?P<id>\d+)"
A = r"/admin/api"


def created(obj: dict, location: str | None = None) -> Reply:
    return Reply(201, obj, headers={"Location": location} if location else None)


# ---- provider
@route("GET", A + "/provider")
def provider_show(api: Porta, req: Req):
    return {"account": api.provider_json(api.provider())}


@route("PUT", A + "/provider")
def provider_update(api: Porta, req: Req):
    p = api.provider()
    for k in ("from_email", "support_email", "finance_support_email", "site_access_code"):
        if req.has(k):
            p[k] = "" if req.get(k) is None else str(req.get(k))
    p["updated_at"] = now_iso()
    api.store.save("provider", p)
    return {"account": api.provider_json(p)}


# ---- accounts
@route("GET", A + "/accounts")
def accounts_list(api: Porta, req: Req):
    accs = api.store.all("account")
    if req.get("state"):
        accs = [a for a in accs if a["state"] == req.get("state")]
    page, meta = paginate(accs, req)
    out: dict = {"accounts": [{"account": api.account_json(a)} for a in page]}
    if meta:
        out["metadata"] = meta
    return out


@route("GET", A + "/accounts/find")
def accounts_find(api: Porta, req: Req):
    users = api.store.all("user")
    if req.get("username"):
        u = next((x for x in users if x["username"] == req.get("username")), None)
    elif req.get("user_id"):
        u = next((x for x in users if x["id"] == to_int(req.get("user_id"))), None)
    elif req.get("email"):
        u = next((x for x in users if x["email"].lower() == str(req.get("email")).lower()), None)
    else:
        u = None
    acc = api.store.get("account", u["account_id"]) if u else None
    if acc is None:
        raise not_found()
    return {"account": api.account_json(acc)}


@route("GET", A + "/accounts/" + ID)
def account_show(api: Porta, req: Req, id):
    return {"account": api.account_json(api.need("account", id))}


@route("PUT", A + "/accounts/" + ID)
def account_update(api: Porta, req: Req, id):
    acc = api.need("account", id)
    if req.has("org_name"):
        if not str(req.get("org_name") or "").strip():
            raise invalid("org_name", "can't be blank")
        acc["org_name"] = str(req.get("org_name"))
    acc["updated_at"] = now_iso()
    api.store.save("account", acc)
    return {"account": api.account_json(acc)}


@route("DELETE", A + "/accounts/" + ID)
def account_delete(api: Porta, req: Req, id):
    acc = api.need("account", id)
    for kind in ("user", "application", "contract"):
        for obj in api.store.all(kind, account_id=acc["id"]):
            api.store.delete(kind, obj["id"])
    api.store.delete("account", acc["id"])
    return Reply(200, None)


@route("POST", A + "/signup")
def signup(api: Porta, req: Req):
    acc = api._signup(req.params)
    return created({"account": api.account_json(acc)}, f"{api.base}{A}/accounts/{acc['id']}")


@route("GET", A + "/accounts/" + r"(?P<aid>\d+)/users")
def users_list(api: Porta, req: Req, aid):
    api.need("account", aid)
    users = api.store.all("user", account_id=int(aid))
    for f in ("state", "role"):
        if req.get(f):
            users = [u for u in users if u[f] == req.get(f)]
    return {"users": [{"user": api.user_json(u)} for u in users]}


@route("GET", A + "/accounts/" + r"(?P<aid>\d+)/users/" + ID)
def user_show(api: Porta, req: Req, aid, id):
    return {"user": api.user_json(api.need("user", id, account_id=int(aid)))}


USER_EVENTS = {"activate": ("state", "active"), "suspend": ("state", "suspended"), "unsuspend": ("state", "active"),
               "admin": ("role", "admin"), "member": ("role", "member")}


@route("POST", A + "/accounts/" + r"(?P<aid>\d+)/users")
def user_create(api: Porta, req: Req, aid):
    acc = api.need("account", aid)
    errors: dict[str, list[str]] = {}
    users = api.store.all("user")
    for f in ("username", "email"):
        if not str(req.get(f) or "").strip():
            errors[f] = ["can't be blank"]
        elif any(str(u[f]).lower() == str(req.get(f)).lower() for u in users):
            errors[f] = ["has already been taken"]
    if errors:
        raise Reply(422, {"errors": errors})
    now, salt = now_iso(), secrets.token_hex(8)
    user = api.store.insert("user", {
        "account_id": acc["id"], "username": str(req.get("username")), "email": str(req.get("email")),
        "role": "member", "state": "pending", "created_at": now, "updated_at": now, "salt": salt,
        "password_sha256": hashlib.sha256((salt + str(req.get("password") or "")).encode()).hexdigest()})
    return created({"user": api.user_json(user)})


@route("PUT", A + "/accounts/" + r"(?P<aid>\d+)/users/" + ID)
def user_update(api: Porta, req: Req, aid, id):
    user = api.need("user", id, account_id=int(aid))
    for f in ("username", "email"):
        if req.has(f):
            if any(str(u[f]).lower() == str(req.get(f)).lower() and u["id"] != user["id"]
                   for u in api.store.all("user")):
                raise invalid(f, "has already been taken")
            user[f] = str(req.get(f))
    user["updated_at"] = now_iso()
    return {"user": api.user_json(api.store.save("user", user))}


@route("PUT", A + "/accounts/" + r"(?P<aid>\d+)/users/" + ID + "/(?P<event>activate|suspend|unsuspend|admin|member)")
def user_event(api: Porta, req: Req, aid, id, event):
    user = api.need("user", id, account_id=int(aid))
    field, value = USER_EVENTS[event]
    user[field], user["updated_at"] = value, now_iso()
    return {"user": api.user_json(api.store.save("user", user))}


@route("DELETE", A + "/accounts/" + r"(?P<aid>\d+)/users/" + ID)
def user_delete(api: Porta, req: Req, aid, id):
    user = api.need("user", id, account_id=int(aid))
    if user["role"] == "admin" and len(api.store.all("user", account_id=user["account_id"], role="admin")) == 1:
        raise Reply(403, {"errors": {"base": ["last admin of an account cannot be deleted"]}})
    api.store.delete("user", user["id"])
    return Reply(200, None)


# ---- services
@route("GET", A + "/services")
def services_list(api: Porta, req: Req):
    page, meta = paginate(api.services(), req)
    out: dict = {"services": [{"service": api.service_json(s)} for s in page]}
    if meta:
        out["metadata"] = meta
    return out


@route("POST", A + "/services")
def service_create(api: Porta, req: Req):
    s = api._create_service(req.params)
    return created({"service": api.service_json(s)}, f"{api.base}{A}/services/{s['id']}")


@route("GET", A + "/services/" + ID)
def service_show(api: Porta, req: Req, id):
    return {"service": api.service_json(api.need_service(id))}


@route("PUT", A + "/services/" + ID)
def service_update(api: Porta, req: Req, id):
    s = api.need_service(id)
    if req.has("name"):
        if not str(req.get("name") or "").strip():
            raise invalid("name", "can't be blank")
        s["name"] = str(req.get("name"))
    if req.has("description"):
        s["description"] = req.get("description")
    if req.has("backend_version"):
        if str(req.get("backend_version")) not in ("1", "2", "oauth", "oidc"):
            raise invalid("backend_version", "is not included in the list")
        s["backend_version"] = str(req.get("backend_version"))
    if req.has("deployment_option"):
        if req.get("deployment_option") not in ("hosted", "self_managed"):
            raise invalid("deployment_option", "is not included in the list")
        s["deployment_option"] = req.get("deployment_option")
    s["updated_at"] = now_iso()  # system_name is immutable: porta ignores it here
    api.store.save("service", s)
    return {"service": api.service_json(s)}


@route("DELETE", A + "/services/" + ID)
def service_delete(api: Porta, req: Req, id):
    s = api.need_service(id)
    if s.get("default") or len(api.services()) == 1:
        raise Reply(403, {"errors": {"base": ["This service cannot be removed"]}})
    st = api.store
    for kind in ("application", "contract"):
        for obj in st.all(kind, service_id=s["id"]):
            st.delete(kind, obj["id"])
    for u in st.all("backend_usage", service_id=s["id"]):
        st.delete("backend_usage", u["id"])
    s["state"] = "deleted"
    s["deleted_at"] = time.time()
    s["updated_at"] = now_iso()
    st.save("service", s)
    return Reply(200, None)


# ---- metrics and methods (products and backend APIs)
OWNERS = {"services": "service", "backend_apis": "backend_api"}
OWN = r"/(?P<owners>services|backend_apis)/(?P<oid>\d+)"


def need_owner(api: Porta, owners: str, oid: str) -> tuple[str, int]:
    owner = OWNERS[owners]
    if owner == "service":
        api.need_service(oid)
    else:
        api.need("backend_api", oid)
    return owner, int(oid)


def maybe_paginated(api: Porta, req: Req, owner: str, key: str, items: list) -> dict:
    if owner == "backend_api":
        items, meta = paginate(items, req)
    else:
        meta = None
    out: dict = {key: items}
    if meta:
        out["metadata"] = meta
    return out


@route("GET", A + OWN + "/metrics")
def metrics_list(api: Porta, req: Req, owners, oid):
    owner, oid = need_owner(api, owners, oid)
    ms = api.store.all("metric", owner=owner, owner_id=oid)
    if owner == "backend_api":  # backend API metrics endpoint lists metrics only
        ms = [m for m in ms if not m.get("parent_id")]
    return maybe_paginated(api, req, owner, "metrics", [api.metric_json(m) for m in ms])


@route("POST", A + OWN + "/metrics")
def metric_create(api: Porta, req: Req, owners, oid):
    owner, oid = need_owner(api, owners, oid)
    return created(api.metric_json(api._create_metric(req.params, owner, oid)))


def need_metric(api: Porta, owners, oid, mid, parent=None) -> tuple[str, dict]:
    owner, oid = need_owner(api, owners, oid)
    m = api.need("metric", mid, owner=owner, owner_id=oid)
    if (parent is None and m.get("parent_id")) or (parent is not None and m.get("parent_id") != int(parent)):
        raise not_found()
    return owner, m


def update_metric(api: Porta, req: Req, m: dict) -> None:
    if req.has("friendly_name"):
        if not str(req.get("friendly_name") or "").strip():
            raise invalid("friendly_name", "can't be blank")
        if any(x["friendly_name"] == req.get("friendly_name") and x["id"] != m["id"]
               for x in api.store.all("metric", owner=m["owner"], owner_id=m["owner_id"])):
            raise invalid("friendly_name", "has already been taken")
        m["friendly_name"] = str(req.get("friendly_name"))
    if req.has("description"):
        m["description"] = req.get("description")
    if req.has("unit") and not m.get("parent_id"):
        m["unit"] = str(req.get("unit"))
    m["updated_at"] = now_iso()
    api.store.save("metric", m)


@route("GET", A + OWN + "/metrics/" + ID)
def metric_show(api: Porta, req: Req, owners, oid, id):
    return api.metric_json(need_metric(api, owners, oid, id)[1])


@route("PUT", A + OWN + "/metrics/" + ID)
def metric_update(api: Porta, req: Req, owners, oid, id):
    m = need_metric(api, owners, oid, id)[1]
    update_metric(api, req, m)
    return api.metric_json(m)


@route("DELETE", A + OWN + "/metrics/" + ID)
def metric_delete(api: Porta, req: Req, owners, oid, id):
    api.destroy_metric(need_metric(api, owners, oid, id)[1])
    return Reply(200, None)


MET = r"/metrics/(?P<mid>\d+)/methods"


@route("GET", A + OWN + MET)
def methods_list(api: Porta, req: Req, owners, oid, mid):
    owner, m = need_metric(api, owners, oid, mid)
    return maybe_paginated(api, req, owner, "methods",
                           [api.metric_json(x) for x in api.store.all("metric", parent_id=m["id"])])


@route("POST", A + OWN + MET)
def method_create(api: Porta, req: Req, owners, oid, mid):
    owner, m = need_metric(api, owners, oid, mid)
    return created(api.metric_json(api._create_metric(req.params, owner, m["owner_id"], parent_id=m["id"])))


@route("GET", A + OWN + MET + "/" + ID)
def method_show(api: Porta, req: Req, owners, oid, mid, id):
    return api.metric_json(need_metric(api, owners, oid, id, parent=mid)[1])


@route("PUT", A + OWN + MET + "/" + ID)
def method_update(api: Porta, req: Req, owners, oid, mid, id):
    m = need_metric(api, owners, oid, id, parent=mid)[1]
    update_metric(api, req, m)
    return api.metric_json(m)


@route("DELETE", A + OWN + MET + "/" + ID)
def method_delete(api: Porta, req: Req, owners, oid, mid, id):
    api.destroy_metric(need_metric(api, owners, oid, id, parent=mid)[1])
    return Reply(200, None)


# ---- mapping rules
RULES = r"/(?P<owners>services|backend_apis)/(?P<oid>\d+)(?:/proxy)?/mapping_rules"


def rule_fields(api: Porta, req: Req, owner: str, oid: int, rule: dict) -> dict:
    errors: dict[str, list[str]] = {}
    if req.has("http_method") or "http_method" not in rule:
        method = str(req.get("http_method") or "").upper()
        if method not in HTTP_METHODS:
            errors["http_method"] = ["is not included in the list"]
        rule["http_method"] = method
    if req.has("pattern") or "pattern" not in rule:
        pattern = str(req.get("pattern") or "")
        if not pattern:
            errors["pattern"] = ["can't be blank"]
        elif not PATTERN_RE.match(pattern) or len(pattern) > 255:
            errors["pattern"] = ["is invalid"]
        else:
            names = re.findall(r"\{(\w+)\}", pattern)
            if len(names) != len(set(names)):
                errors["pattern"] = ["is invalid"]
        rule["pattern"] = pattern
    if req.has("delta") or "delta" not in rule:
        delta = to_int(req.get("delta"))
        if delta is None:
            errors["delta"] = ["is not a number"]
        elif delta <= 0:
            errors["delta"] = ["must be greater than 0"]
        rule["delta"] = delta
    if req.has("metric_id") or "metric_id" not in rule:
        allowed = {m["id"] for m in api.store.all("metric", owner=owner, owner_id=oid)}
        if owner == "service":
            for u in api.store.all("backend_usage", service_id=oid):
                allowed |= {m["id"] for m in api.store.all("metric", owner="backend_api", owner_id=u["backend_id"])}
        mid = to_int(req.get("metric_id"))
        if mid not in allowed:
            errors["metric_id"] = ["can't be blank"] if mid is None else ["is invalid"]
        rule["metric_id"] = mid
    if req.has("last") or "last" not in rule:
        rule["last"] = truthy(req.get("last", False))
    if errors:
        raise Reply(422, {"errors": errors})
    siblings = [r for r in api.store.all("mapping_rule", owner=owner, owner_id=oid) if r["id"] != rule.get("id")]
    if req.has("position") and to_int(req.get("position")):
        rule["position"] = to_int(req.get("position"))
    elif "position" not in rule:
        rule["position"] = max((r["position"] for r in siblings), default=0) + 1
    rule["updated_at"] = now_iso()
    return rule


@route("GET", A + RULES)
def rules_list(api: Porta, req: Req, owners, oid):
    owner, oid = need_owner(api, owners, oid)
    rules = sorted(api.store.all("mapping_rule", owner=owner, owner_id=oid), key=lambda r: (r["position"], r["id"]))
    return maybe_paginated(api, req, owner, "mapping_rules", [api.rule_json(r) for r in rules])


@route("POST", A + RULES)
def rule_create(api: Porta, req: Req, owners, oid):
    owner, oid = need_owner(api, owners, oid)
    rule = rule_fields(api, req, owner, oid, {"owner": owner, "owner_id": oid, "created_at": now_iso()})
    return created(api.rule_json(api.store.insert("mapping_rule", rule)))


@route("GET", A + RULES + "/" + ID)
def rule_show(api: Porta, req: Req, owners, oid, id):
    owner, oid = need_owner(api, owners, oid)
    return api.rule_json(api.need("mapping_rule", id, owner=owner, owner_id=oid))


@route("PUT", A + RULES + "/" + ID)  # PATCH for products, PUT for backends: both accepted
def rule_update(api: Porta, req: Req, owners, oid, id):
    owner, oid = need_owner(api, owners, oid)
    rule = rule_fields(api, req, owner, oid, api.need("mapping_rule", id, owner=owner, owner_id=oid))
    return api.rule_json(api.store.save("mapping_rule", rule))


@route("DELETE", A + RULES + "/" + ID)
def rule_delete(api: Porta, req: Req, owners, oid, id):
    owner, oid = need_owner(api, owners, oid)
    api.store.delete("mapping_rule", api.need("mapping_rule", id, owner=owner, owner_id=oid)["id"])
    return Reply(200, None)


# ---- backend APIs and usages
@route("GET", A + "/backend_apis")
def backends_list(api: Porta, req: Req):
    page, meta = paginate(api.store.all("backend_api"), req)
    out: dict = {"backend_apis": [api.backend_json(b) for b in page]}
    if meta:
        out["metadata"] = meta
    return out


@route("POST", A + "/backend_apis")
def backend_create(api: Porta, req: Req):
    name = str(req.get("name") or "").strip()
    if not name:
        raise invalid("name", "can't be blank")
    system_name = str(req.get("system_name") or parameterize(name))
    if not re.fullmatch(r"\w[\w\-/]+", system_name):
        raise invalid("system_name", "invalid. Only ASCII letters, numbers, dashes and underscores are allowed.")
    if api.store.first("backend_api", system_name=system_name):
        raise invalid("system_name", "has already been taken")
    endpoint = api.check_private_endpoint(req.get("private_endpoint"))
    now = now_iso()
    b = api.store.insert("backend_api", {"name": name, "system_name": system_name,
                                         "description": req.get("description"), "private_endpoint": endpoint,
                                         "created_at": now, "updated_at": now})
    api._create_metric({"friendly_name": "Hits", "system_name": "hits", "unit": "hit",
                        "description": "Number of API hits"}, "backend_api", b["id"])
    return created(api.backend_json(b))


@route("GET", A + "/backend_apis/" + ID)
def backend_show(api: Porta, req: Req, id):
    return api.backend_json(api.need("backend_api", id))


@route("PUT", A + "/backend_apis/" + ID)
def backend_update(api: Porta, req: Req, id):
    b = api.need("backend_api", id)
    if req.has("name"):
        if not str(req.get("name") or "").strip():
            raise invalid("name", "can't be blank")
        b["name"] = str(req.get("name"))
    if req.has("description"):
        b["description"] = req.get("description")
    if req.has("private_endpoint"):
        b["private_endpoint"] = api.check_private_endpoint(req.get("private_endpoint"))
    b["updated_at"] = now_iso()
    return api.backend_json(api.store.save("backend_api", b))


@route("DELETE", A + "/backend_apis/" + ID)
def backend_delete(api: Porta, req: Req, id):
    b = api.need("backend_api", id)
    live = {s["id"] for s in api.services()}
    if any(u["service_id"] in live for u in api.store.all("backend_usage", backend_id=b["id"])):
        raise Reply(403, {"errors": {"base": ["cannot be deleted because it is used by at least one Product"]}})
    for m in api.store.all("metric", owner="backend_api", owner_id=b["id"]):
        if not m.get("parent_id"):
            api._delete_metric(m)
    for r in api.store.all("mapping_rule", owner="backend_api", owner_id=b["id"]):
        api.store.delete("mapping_rule", r["id"])
    for u in api.store.all("backend_usage", backend_id=b["id"]):
        api.store.delete("backend_usage", u["id"])
    api.store.delete("backend_api", b["id"])
    return Reply(200, None)


def usage_path(api: Porta, req: Req, sid: int, exclude: int | None) -> str:
    path = str(req.get("path") if req.get("path") is not None else "/")
    path = "/" + path.strip("/") if path.strip("/") else "/"
    if len(path) > 255 or not re.fullmatch(r"/[\w\-.~/%]*", path):
        raise invalid("path", "is invalid")
    if any(u["path"].lower() == path.lower() and u["id"] != exclude
           for u in api.store.all("backend_usage", service_id=sid)):
        raise invalid("path", "has already been taken")
    return path


@route("GET", A + "/services/(?P<sid>\\d+)/backend_usages")
def usages_list(api: Porta, req: Req, sid):
    s = api.need_service(sid)
    page, _ = paginate(api.store.all("backend_usage", service_id=s["id"]), req)
    return Reply(200, [api.usage_json(u) for u in page])


@route("POST", A + "/services/(?P<sid>\\d+)/backend_usages")
def usage_create(api: Porta, req: Req, sid):
    s = api.need_service(sid)
    b = api.store.get("backend_api", req.get("backend_api_id"))
    if b is None:
        raise invalid("backend_api", "can't be blank")
    if api.store.first("backend_usage", service_id=s["id"], backend_id=b["id"]):
        raise invalid("backend_api_id", "has already been taken")
    path = usage_path(api, req, s["id"], None)
    return created(api.usage_json(api.store.insert("backend_usage", {"service_id": s["id"], "backend_id": b["id"],
                                                                      "path": path})))


@route("GET", A + "/services/(?P<sid>\\d+)/backend_usages/" + ID)
def usage_show(api: Porta, req: Req, sid, id):
    s = api.need_service(sid)
    return api.usage_json(api.need("backend_usage", id, service_id=s["id"]))


@route("PUT", A + "/services/(?P<sid>\\d+)/backend_usages/" + ID)
def usage_update(api: Porta, req: Req, sid, id):
    s = api.need_service(sid)
    u = api.need("backend_usage", id, service_id=s["id"])
    if req.has("path"):
        u["path"] = usage_path(api, req, s["id"], u["id"])
    return api.usage_json(api.store.save("backend_usage", u))


@route("DELETE", A + "/services/(?P<sid>\\d+)/backend_usages/" + ID)
def usage_delete(api: Porta, req: Req, sid, id):
    s = api.need_service(sid)
    api.store.delete("backend_usage", api.need("backend_usage", id, service_id=s["id"])["id"])
    return Reply(200, None)


# ---- plans
@route("GET", A + "/services/(?P<sid>\\d+)/(?P<kind>application|service)_plans")
def plans_list(api: Porta, req: Req, sid, kind):
    s = api.need_service(sid)
    ptype = "ApplicationPlan" if kind == "application" else "ServicePlan"
    return {"plans": [api.wrap_plan(p) for p in api.store.all("plan", type=ptype, service_id=s["id"])]}


@route("GET", A + "/(?P<kind>application|service)_plans")
def plans_all(api: Porta, req: Req, kind):
    ptype = "ApplicationPlan" if kind == "application" else "ServicePlan"
    live = {s["id"] for s in api.services()}
    return {"plans": [api.wrap_plan(p) for p in api.store.all("plan", type=ptype) if p["service_id"] in live]}


@route("POST", A + "/services/(?P<sid>\\d+)/(?P<kind>application|service)_plans")
def plan_create(api: Porta, req: Req, sid, kind):
    s = api.need_service(sid)
    ptype = "ApplicationPlan" if kind == "application" else "ServicePlan"
    if not str(req.get("name") or "").strip():
        raise invalid("name", "can't be blank")
    data = api._plan_data(ptype, s["id"], req.params)
    if api.store.first("plan", type=ptype, service_id=s["id"], system_name=data["system_name"]):
        raise invalid("system_name", "has already been taken")
    return created(api.wrap_plan(api.store.insert("plan", data)))


def need_plan(api: Porta, sid, kind, id) -> dict:
    s = api.need_service(sid)
    return api.need("plan", id, service_id=s["id"],
                    type="ApplicationPlan" if kind == "application" else "ServicePlan")


PLAN = A + "/services/(?P<sid>\\d+)/(?P<kind>application|service)_plans/" + ID


@route("GET", PLAN)
def plan_show(api: Porta, req: Req, sid, kind, id):
    return api.wrap_plan(need_plan(api, sid, kind, id))


@route("PUT", PLAN)
def plan_update(api: Porta, req: Req, sid, kind, id):
    p = need_plan(api, sid, kind, id)
    if req.has("name"):
        if not str(req.get("name") or "").strip():
            raise invalid("name", "can't be blank")
        p["name"] = str(req.get("name"))
    if req.has("approval_required"):
        p["approval_required"] = truthy(req.get("approval_required"))
    for f in ("setup_fee", "cost_per_month"):
        if req.has(f):
            try:
                p[f] = float(req.get(f) or 0)
            except ValueError:
                raise invalid(f, "is not a number") from None
    if req.has("trial_period_days"):
        p["trial_period_days"] = to_int(req.get("trial_period_days"))
    if req.get("state_event") in ("publish", "hide"):
        p["state"] = "published" if req.get("state_event") == "publish" else "hidden"
    p["updated_at"] = now_iso()
    return api.wrap_plan(api.store.save("plan", p))


@route("DELETE", PLAN)
def plan_delete(api: Porta, req: Req, sid, kind, id):
    p = need_plan(api, sid, kind, id)
    users = api.store.all("application" if kind == "application" else "contract", plan_id=p["id"])
    if users:
        raise Reply(403, {"errors": {"base": ["This plan cannot be deleted because it has subscriptions"]}})
    for k in ("limit", "pricing_rule"):
        for obj in api.store.all(k, plan_id=p["id"]):
            api.store.delete(k, obj["id"])
    api.store.delete("plan", p["id"])
    return Reply(200, None)


@route("PUT", PLAN + "/default")
def plan_default(api: Porta, req: Req, sid, kind, id):
    p = need_plan(api, sid, kind, id)
    for other in api.store.all("plan", type=p["type"], service_id=p["service_id"], default=True):
        other["default"] = False
        api.store.save("plan", other)
    p["default"] = True
    p["updated_at"] = now_iso()
    return api.wrap_plan(api.store.save("plan", p))


# ---- limits and pricing rules
LIM = A + "/application_plans/(?P<pid>\\d+)/metrics/(?P<mid>\\d+)"


def plan_metric(api: Porta, pid, mid) -> tuple[dict, dict]:
    plan = api.need("plan", pid, type="ApplicationPlan")
    api.need_service(plan["service_id"])
    m = api.need("metric", mid)
    ok = m["owner"] == "service" and m["owner_id"] == plan["service_id"]
    ok = ok or (m["owner"] == "backend_api" and
                api.store.first("backend_usage", service_id=plan["service_id"], backend_id=m["owner_id"]) is not None)
    if not ok:
        raise not_found()
    return plan, m


def limit_fields(api: Porta, req: Req, lim: dict) -> dict:
    if req.has("period") or "period" not in lim:
        if req.get("period") not in PERIODS:
            raise invalid("period", "is not included in the list")
        lim["period"] = req.get("period")
    if req.has("value") or "value" not in lim:
        v = to_int(req.get("value"))
        if v is None or v < 0:
            raise invalid("value", "is not a number" if v is None else "must be greater than or equal to 0")
        lim["value"] = v
    if any(x["period"] == lim["period"] and x["id"] != lim.get("id")
           for x in api.store.all("limit", plan_id=lim["plan_id"], metric_id=lim["metric_id"])):
        raise invalid("period", "has already been taken")
    lim["updated_at"] = now_iso()
    return lim


@route("GET", A + "/application_plans/(?P<pid>\\d+)/limits")
def plan_limits(api: Porta, req: Req, pid):
    plan = api.need("plan", pid, type="ApplicationPlan")
    page, meta = paginate(api.store.all("limit", plan_id=plan["id"]), req)
    out: dict = {"limits": [api.limit_json(x) for x in page]}
    if meta:
        out["metadata"] = meta
    return out


@route("GET", LIM + "/limits")
def limits_list(api: Porta, req: Req, pid, mid):
    plan, m = plan_metric(api, pid, mid)
    return {"limits": [api.limit_json(x) for x in api.store.all("limit", plan_id=plan["id"], metric_id=m["id"])]}


@route("POST", LIM + "/limits")
def limit_create(api: Porta, req: Req, pid, mid):
    plan, m = plan_metric(api, pid, mid)
    lim = limit_fields(api, req, {"plan_id": plan["id"], "metric_id": m["id"], "created_at": now_iso()})
    return created(api.limit_json(api.store.insert("limit", lim)))


@route("GET", LIM + "/limits/" + ID)
def limit_show(api: Porta, req: Req, pid, mid, id):
    plan, m = plan_metric(api, pid, mid)
    return api.limit_json(api.need("limit", id, plan_id=plan["id"], metric_id=m["id"]))


@route("PUT", LIM + "/limits/" + ID)
def limit_update(api: Porta, req: Req, pid, mid, id):
    plan, m = plan_metric(api, pid, mid)
    lim = limit_fields(api, req, api.need("limit", id, plan_id=plan["id"], metric_id=m["id"]))
    return api.limit_json(api.store.save("limit", lim))


@route("DELETE", LIM + "/limits/" + ID)
def limit_delete(api: Porta, req: Req, pid, mid, id):
    plan, m = plan_metric(api, pid, mid)
    api.store.delete("limit", api.need("limit", id, plan_id=plan["id"], metric_id=m["id"])["id"])
    return Reply(200, None)


@route("GET", A + "/application_plans/(?P<pid>\\d+)/pricing_rules")
def plan_pricing_rules(api: Porta, req: Req, pid):
    plan = api.need("plan", pid, type="ApplicationPlan")
    return {"pricing_rules": [api.pricing_json(r) for r in api.store.all("pricing_rule", plan_id=plan["id"])]}


@route("GET", LIM + "/pricing_rules")
def pricing_list(api: Porta, req: Req, pid, mid):
    plan, m = plan_metric(api, pid, mid)
    return {"pricing_rules": [api.pricing_json(r)
                              for r in api.store.all("pricing_rule", plan_id=plan["id"], metric_id=m["id"])]}


@route("POST", LIM + "/pricing_rules")
def pricing_create(api: Porta, req: Req, pid, mid):
    plan, m = plan_metric(api, pid, mid)
    lo, hi = to_int(req.get("min")), to_int(req.get("max")) if req.get("max") not in (None, "") else None
    if lo is None or lo < 1:
        raise invalid("min", "must be greater than 0")
    if hi is not None and hi < lo:
        raise invalid("max", "must be greater than min")
    try:
        cost = float(req.get("cost_per_unit"))
    except (TypeError, ValueError):
        raise invalid("cost_per_unit", "is not a number") from None
    for r in api.store.all("pricing_rule", plan_id=plan["id"], metric_id=m["id"]):
        rhi = r["max"] if r["max"] is not None else math.inf
        if lo <= rhi and (hi if hi is not None else math.inf) >= r["min"]:
            raise invalid("min", "overlaps with other pricing rule")
    now = now_iso()
    rule = api.store.insert("pricing_rule", {"plan_id": plan["id"], "metric_id": m["id"], "min": lo, "max": hi,
                                             "cost_per_unit": f"{cost:g}", "created_at": now, "updated_at": now})
    return created(api.pricing_json(rule))


@route("DELETE", LIM + "/pricing_rules/" + ID)
def pricing_delete(api: Porta, req: Req, pid, mid, id):
    plan, m = plan_metric(api, pid, mid)
    api.store.delete("pricing_rule", api.need("pricing_rule", id, plan_id=plan["id"], metric_id=m["id"])["id"])
    return Reply(200, None)


# ---- policies, proxy, deploy, configs
@route("GET", A + "/services/(?P<sid>\\d+)/proxy/policies")
def policies_show(api: Porta, req: Req, sid):
    return {"policies_config": api.need_service(sid)["policies"]}


@route("PUT", A + "/services/(?P<sid>\\d+)/proxy/policies")
def policies_update(api: Porta, req: Req, sid):
    s = api.need_service(sid)
    raw = req.get("policies_config")
    if raw is None:
        raise Reply(400, "Required parameter missing: policies_config", "text/plain; charset=utf-8")
    try:
        chain = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise invalid("policies_config", "is invalid") from None
    if not isinstance(chain, list) or not all(isinstance(x, dict) and x.get("name") and x.get("version")
                                              for x in chain):
        raise invalid("policies_config", "is invalid")
    if not any(x["name"] == "apicast" for x in chain):
        raise invalid("policies_config", "apicast policy is required")
    s["policies"] = [{"name": str(x["name"]), "version": str(x["version"]),
                      "configuration": x.get("configuration") if isinstance(x.get("configuration"), dict) else {},
                      "enabled": truthy(x.get("enabled", True))} for x in chain]
    s["proxy"]["updated_at"] = now_iso()
    api.store.save("service", s)
    return {"policies_config": s["policies"]}


@route("GET", A + "/services/(?P<sid>\\d+)/proxy")
def proxy_show(api: Porta, req: Req, sid):
    return api.proxy_json(api.need_service(sid))


@route("PUT", A + "/services/(?P<sid>\\d+)/proxy")
def proxy_patch(api: Porta, req: Req, sid):
    s = api.need_service(sid)
    p = s["proxy"]
    for k in ("endpoint", "sandbox_endpoint"):
        if req.get(k):
            try:
                u = urlsplit(str(req.get(k)))
                ok = u.scheme in ("http", "https") and u.hostname and not u.query and not u.fragment
                p[k] = with_port(str(req.get(k))) if ok else None
            except ValueError:
                ok = False
            if not ok:
                raise invalid(k, "is invalid")
    if req.has("credentials_location"):
        if req.get("credentials_location") not in CREDENTIALS_LOCATIONS:
            raise invalid("credentials_location", "is not included in the list")
        p["credentials_location"] = req.get("credentials_location")
    for k in PROXY_FIELDS_STR:
        if req.has(k):
            p[k] = None if req.get(k) in (None, "") and k in ("api_backend", "hostname_rewrite") else str(req.get(k))
    for k in PROXY_FIELDS_INT:
        if req.has(k):
            v = to_int(req.get(k))
            if v is None:
                raise invalid(k, "is not a number")
            p[k] = v
    p["lock_version"] += 1
    p["updated_at"] = now_iso()
    api.store.save("service", s)
    api.deploy(s)  # porta's ProxiesController#update deploys to staging right away
    return api.proxy_json(s)


@route("POST", A + "/services/(?P<sid>\\d+)/proxy/deploy")
def proxy_deploy(api: Porta, req: Req, sid):
    s = api.need_service(sid)
    api.deploy(s)
    return created(api.proxy_json(s))


def need_env(env: str) -> str:
    if env not in ENVS:
        raise Reply(400, {"error": "invalid environment"})
    return ENVS[env]


CFG = A + "/services/(?P<sid>\\d+)/proxy/configs/(?P<env>[^/]+)"


@route("GET", CFG)
def configs_list(api: Porta, req: Req, sid, env):
    env = need_env(env)
    s = api.need_service(sid)
    cfgs = sorted(api.store.all("proxy_config", service_id=s["id"], environment=env), key=lambda c: c["version"])
    return {"proxy_configs": [api.config_json(c) for c in cfgs]}


@route("GET", CFG + "/latest")
def config_latest(api: Porta, req: Req, sid, env):
    env = need_env(env)
    c = api.latest_config(api.need_service(sid)["id"], env)
    if c is None:
        raise not_found()
    return api.config_json(c)


@route("GET", CFG + "/(?P<version>\\d+)")
def config_show(api: Porta, req: Req, sid, env, version):
    env = need_env(env)
    c = api.store.first("proxy_config", service_id=api.need_service(sid)["id"], environment=env, version=int(version))
    if c is None:
        raise not_found()
    return api.config_json(c)


@route("POST", CFG + "/(?P<version>\\d+)/promote")
def config_promote(api: Porta, req: Req, sid, env, version):
    env = need_env(env)
    s = api.need_service(sid)
    c = api.store.first("proxy_config", service_id=s["id"], environment=env, version=int(version))
    if c is None:
        raise not_found()
    if not req.has("to"):
        raise Reply(400, "Required parameter missing: to", "text/plain; charset=utf-8")
    to = ENVS.get(str(req.get("to")))
    if to is None or to == env:
        raise invalid("environment", "is not included in the list")
    if api.store.first("proxy_config", service_id=s["id"], environment=to, version=c["version"]):
        raise invalid("version", "has already been taken")
    copy = api.store.insert("proxy_config", {"service_id": s["id"], "environment": to, "version": c["version"],
                                             "content": c["content"], "created_at": now_iso()})
    return created(api.config_json(copy))


@route("GET", A + "/account/proxy_configs/(?P<env>[^/]+)")
def account_configs(api: Porta, req: Req, env):
    env = need_env(env)
    latest: dict[int, dict] = {}
    for c in api.store.all("proxy_config", environment=env):  # one scan: APIcast staging asks per request
        if c["version"] >= latest.get(c["service_id"], {"version": 0})["version"]:
            latest[c["service_id"]] = c
    out = []
    for s in api.services():
        c = latest.get(s["id"])
        if c is None:
            continue
        if req.get("version") not in (None, "", "latest") and str(c["version"]) != str(req.get("version")):
            continue
        if req.get("host"):
            key = "endpoint" if env == "production" else "sandbox_endpoint"
            if urlsplit(c["content"]["proxy"].get(key) or "").hostname != req.get("host"):
                continue
        out.append(api.config_json(c))
    page, meta = paginate(out, req)
    res: dict = {"proxy_configs": page}
    if meta:
        res["metadata"] = meta
    return res


# ---- ActiveDocs
def doc_fields(api: Porta, req: Req, d: dict) -> dict:
    if req.has("name") or "name" not in d:
        if not str(req.get("name") or "").strip():
            raise invalid("name", "can't be blank")
        d["name"] = str(req.get("name"))
    if req.has("description"):
        d["description"] = req.get("description")
    for f in ("published", "skip_swagger_validations"):
        if req.has(f) or f not in d:
            d[f] = truthy(req.get(f, False))
    if req.has("service_id"):
        sid = req.get("service_id")
        d["service_id"] = api.need_service(sid)["id"] if sid not in (None, "") else None
    if req.has("body") or "body" not in d:
        body = req.get("body")
        body = json.dumps(body) if isinstance(body, (dict, list)) else str(body or "")
        try:
            spec = json.loads(body)
        except ValueError:
            raise invalid("body", "JSON Spec is invalid") from None
        if not d["skip_swagger_validations"] and not (isinstance(spec, dict) and
                                                      (spec.get("swagger") or spec.get("openapi"))):
            raise invalid("body", "JSON Spec is invalid")
        d["body"] = body
    d["updated_at"] = now_iso()
    return d


@route("GET", A + "/active_docs")
def docs_list(api: Porta, req: Req):
    return {"api_docs": [api.doc_json(d) for d in api.store.all("active_doc")]}


@route("POST", A + "/active_docs")
def doc_create(api: Porta, req: Req):
    d = doc_fields(api, req, {"created_at": now_iso(), "service_id": None})
    d["system_name"] = str(req.get("system_name") or parameterize(d["name"]))
    if api.store.first("active_doc", system_name=d["system_name"]):
        raise invalid("system_name", "has already been taken")
    return created(api.doc_json(api.store.insert("active_doc", d)))


@route("GET", A + "/active_docs/" + ID)
def doc_show(api: Porta, req: Req, id):
    return api.doc_json(api.need("active_doc", id))


@route("PUT", A + "/active_docs/" + ID)
def doc_update(api: Porta, req: Req, id):
    return api.doc_json(api.store.save("active_doc", doc_fields(api, req, api.need("active_doc", id))))


@route("DELETE", A + "/active_docs/" + ID)
def doc_delete(api: Porta, req: Req, id):
    api.store.delete("active_doc", api.need("active_doc", id)["id"])
    return Reply(200, None)


# ---- service subscriptions / contracts / buy
SUBS = A + "/accounts/(?P<aid>\\d+)/(?P<res>service_subscriptions|service_contracts)"


@route("GET", SUBS)
def subs_list(api: Porta, req: Req, aid, res):
    acc = api.need("account", aid)
    entity = res[:-1]
    return {res: [{entity: api.contract_json(c)} for c in api.store.all("contract", account_id=acc["id"])]}


@route("POST", A + "/accounts/(?P<aid>\\d+)/service_subscriptions")
def sub_create(api: Porta, req: Req, aid):
    acc = api.need("account", aid)
    if not req.has_body and not req.has("plan_id"):
        raise Reply(400, "Required parameter missing: service_subscription", "text/plain; charset=utf-8")
    sp = api.store.get("plan", req.get("plan_id"))
    if sp is None or sp["type"] != "ServicePlan" or api.store.get("service", sp["service_id"]) is None:
        raise not_found()
    c = api._subscribe(acc, sp)
    return created({"service_subscription": api.contract_json(c)})


@route("GET", A + "/accounts/(?P<aid>\\d+)/service_subscriptions/" + ID)
def sub_show(api: Porta, req: Req, aid, id):
    return {"service_subscription": api.contract_json(api.need("contract", id, account_id=int(aid)))}


@route("DELETE", SUBS + "/" + ID)
def sub_delete(api: Porta, req: Req, aid, res, id):
    api._unsubscribe(api.need("contract", id, account_id=int(aid)))
    return Reply(200, None)


@route("PUT", A + "/accounts/(?P<aid>\\d+)/service_subscriptions/" + ID + "/change_plan")
def sub_change_plan(api: Porta, req: Req, aid, id):
    c = api.need("contract", id, account_id=int(aid))
    sp = api.store.get("plan", req.get("plan_id"))
    if sp is None or sp["type"] != "ServicePlan":
        raise not_found()
    if sp["service_id"] != c["service_id"]:
        raise invalid("plan", "must belong to the same product")
    c.update(plan_id=sp["id"], updated_at=now_iso())
    api.store.save("contract", c)
    return {"service_plan": api.plan_json(sp)}


@route("PUT", A + "/accounts/(?P<aid>\\d+)/service_subscriptions/" + ID + "/approve")
def sub_approve(api: Porta, req: Req, aid, id):
    c = api.need("contract", id, account_id=int(aid))
    if c["state"] != "pending":
        raise invalid("state", "cannot transition via \"accept\"")
    now = now_iso()
    c.update(state="live", updated_at=now, accepted_at=now)
    api.store.save("contract", c)
    return {"service_subscription": api.contract_json(c)}


@route("POST", A + "/accounts/(?P<aid>\\d+)/service_plans/(?P<spid>\\d+)/buy")
def buy(api: Porta, req: Req, aid, spid):
    acc = api.need("account", aid)
    sp = api.need("plan", spid, type="ServicePlan")
    api.need_service(sp["service_id"])
    api._subscribe(acc, sp)
    return created({"service_plan": api.plan_json(sp)})


@route("GET", A + "/accounts/(?P<aid>\\d+)/service_plans")
def bought_plans(api: Porta, req: Req, aid):
    acc = api.need("account", aid)
    plans = [api.store.get("plan", c["plan_id"]) for c in api.store.all("contract", account_id=acc["id"])]
    return {"plans": [{"service_plan": api.plan_json(p)} for p in plans if p]}


# ---- applications
APPS = A + "/accounts/(?P<aid>\\d+)/applications"


@route("GET", APPS)
def apps_list(api: Porta, req: Req, aid):
    acc = api.need("account", aid)
    apps = api.store.all("application", account_id=acc["id"])
    if req.get("state"):
        apps = [a for a in apps if a["state"] == req.get("state")]
    return {"applications": [{"application": api.app_json(a)} for a in apps]}


@route("POST", APPS)
def app_create(api: Porta, req: Req, aid):
    acc = api.need("account", aid)
    plan = api.store.get("plan", req.get("plan_id"))
    if plan is None or plan["type"] != "ApplicationPlan":
        raise not_found()
    app = api._create_app(acc, plan, req.params)
    return created({"application": api.app_json(app)},
                   f"{api.base}{A}/accounts/{acc['id']}/applications/{app['id']}")


def find_app(api: Porta, req: Req, account_id: int | None) -> dict:
    apps = api.store.all("application", **({"account_id": account_id} if account_id else {}))
    if req.get("service_id"):
        apps = [a for a in apps if a["service_id"] == to_int(req.get("service_id"))]

    def version(a):
        return (api.store.get("service", a["service_id"]) or {}).get("backend_version", "1")
    if req.get("application_id") and account_id is None:
        found = [a for a in apps if a["id"] == to_int(req.get("application_id"))]
    elif req.get("user_key"):
        found = [a for a in apps if a["user_key"] == req.get("user_key") and version(a) == "1"]
    elif req.get("app_id"):
        found = [a for a in apps if a.get("application_id") == req.get("app_id") and version(a) != "1"]
    else:
        found = []
    if not found:
        raise not_found()
    return {"application": api.app_json(found[0])}


@route("GET", APPS + "/find")
def app_find_account(api: Porta, req: Req, aid):
    return find_app(api, req, api.need("account", aid)["id"])


@route("GET", A + "/applications/find")
def app_find(api: Porta, req: Req):
    return find_app(api, req, None)


@route("GET", A + "/applications")
def apps_all(api: Porta, req: Req):
    apps = api.store.all("application")
    for f in ("service_id", "plan_id"):
        if req.get(f):
            apps = [a for a in apps if a[f] == to_int(req.get(f))]
    page, meta = paginate(apps, req)
    out: dict = {"applications": [{"application": api.app_json(a)} for a in page]}
    if meta:
        out["metadata"] = meta
    return out


def need_app(api: Porta, aid, id) -> dict:
    return api.need("application", id, account_id=int(aid))


@route("GET", APPS + "/" + ID)
def app_show(api: Porta, req: Req, aid, id):
    return {"application": api.app_json(need_app(api, aid, id))}


@route("PUT", APPS + "/" + ID)
def app_update(api: Porta, req: Req, aid, id):
    app = need_app(api, aid, id)
    for f in ("name", "description"):
        if req.has(f):
            app[f] = req.get(f)
    if req.has("user_key"):
        app["user_key"] = api._check_user_key(req.get("user_key"), exclude=app["id"])
    app["updated_at"] = now_iso()
    return {"application": api.app_json(api.store.save("application", app))}


@route("DELETE", APPS + "/" + ID)
def app_delete(api: Porta, req: Req, aid, id):
    api.store.delete("application", need_app(api, aid, id)["id"])
    return Reply(200, None)


TRANSITIONS = {"suspend": ({"live"}, "suspended"), "resume": ({"suspended"}, "live"), "accept": ({"pending"}, "live")}


@route("PUT", APPS + "/" + ID + "/(?P<event>suspend|resume|accept)")
def app_transition(api: Porta, req: Req, aid, id, event):
    app = need_app(api, aid, id)
    sources, target = TRANSITIONS[event]
    if app["state"] not in sources:
        raise Reply(422, {"error": {"from": app["state"], "event": event,
                                    "error": f"State cannot transition via \"{event}\"", "object": "application"}})
    app.update(state=target, updated_at=now_iso())
    return {"application": api.app_json(api.store.save("application", app))}


@route("PUT", APPS + "/" + ID + "/change_plan")
def app_change_plan(api: Porta, req: Req, aid, id):
    app = need_app(api, aid, id)
    plan = api.store.get("plan", req.get("plan_id"))
    if plan is None or plan["type"] != "ApplicationPlan":
        raise not_found()
    if plan["service_id"] != app["service_id"]:
        raise invalid("plan", "must belong to the same product")
    app.update(plan_id=plan["id"], updated_at=now_iso())
    api.store.save("application", app)
    return {"application_plan": api.plan_json(plan)}


# ---- analytics
STATS_GRANULARITY = {"minute": None, "hour": "minute", "day": "hour", "week": "day", "month": "day",
                     "year": "month"}
STEP = {"minute": datetime.timedelta(minutes=1), "hour": datetime.timedelta(hours=1), "day": datetime.timedelta(days=1)}


@route("GET", "/stats/applications/" + ID + "/usage")
def app_usage(api: Porta, req: Req, id):
    app = api.need("application", id)
    if not req.get("metric_name"):
        raise invalid("metric_name", "can't be blank")
    period = str(req.get("period") or "month")
    if period not in STATS_GRANULARITY:
        raise invalid("period", "is not included in the list")
    metrics = api.store.all("metric", owner="service", owner_id=app["service_id"])
    m = next((x for x in metrics if x["system_name"] == req.get("metric_name")), None)
    if m is None:
        raise not_found()
    st = api.store
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = period_bounds(period, now)
    total = st.usage(app["id"], m["id"], period, iso(start))
    prev_start = period_bounds(period, start - datetime.timedelta(seconds=1))[0]
    previous = st.usage(app["id"], m["id"], period, iso(prev_start))
    gran = STATS_GRANULARITY[period]
    values = []
    if gran:
        t = start
        while t < end:
            values.append(st.usage(app["id"], m["id"], gran, iso(t)))
            t = period_bounds(gran, t + (STEP.get(gran) or datetime.timedelta(days=32)))[0] if gran == "month" \
                else t + STEP[gran]
    else:
        values = [total]
    plan = st.get("plan", app["plan_id"]) or {}
    acc = st.get("account", app["account_id"]) or {}
    return {"metric": {"id": m["id"], "name": m["friendly_name"], "system_name": m["system_name"],
                       "unit": m.get("unit") or "hit"},
            "period": {"name": period, "since": iso(start), "until": iso(end - datetime.timedelta(seconds=1)),
                       "timezone": "Etc/UTC", "granularity": gran or period},
            "total": total, "values": values, "previous_total": previous,
            "change": round((total - previous) * 100.0 / previous, 2) if previous else 0.0,
            "application": {"id": app["id"], "name": app.get("name"), "state": app["state"],
                            "description": app.get("description"),
                            "plan": {"id": plan.get("id"), "name": plan.get("name")},
                            "account": {"id": acc.get("id"), "name": acc.get("org_name")},
                            "service": {"id": app["service_id"]}}}
