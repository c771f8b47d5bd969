"""The lab's 3scale admin API ("porta") and backend listener (apisonator stand-in).

Speaks the contract in shared/reference/porta/CONTRACT.md (JSON only) over HTTPS, and the
backend listener protocol of lab/ARCHITECTURE.md over plain HTTP. State: <dir>/porta.sqlite3.

Documented deviations from the real porta:
* `.xml` answers 406 (only JSON is emulated), except `GET /admin/api/accounts.xml` (accounts_xml: the
  account list with users and bought plans, which the JSON list lacks).
* Endpoints are `http://127.0.0.1:<port>` allocated per product (no DNS in the lab).
* private_endpoint validation rejects localhost/127.x like porta, except the lab model server
  (host:port of ctx.urls["model"]), so a Backend can point at it.
* Backend usages list is a bare JSON array (as porta), paginated without `metadata`.
* `/lab/stats.json` and `POST /lab/stats/reset` are lab-only (request counters and injected faults
  {errors, drops, delays, lost_responses}, no auth).
* Not emulated: CMS, invoices/billing, fields definitions, features, referrer filters, SSO,
  webhook delivery (webhooks are stored and shown only), the master API but for its tenant create/show/
  delete (master.py; the tenants' own admin portals are not served).
* Signup follows a tenant whose service plans are hidden in the admin UI (porta's default).
* The backend listener answers a wrong/missing app_key and an inactive application with 403
  `<error>` (apisonator: 409 `<status>` with the reason), so the lab APIcast maps them to 403.
* `porta_release` setting: "2.16" (default) or "next" (porta master: 15-character passwords).

Layout (one module per family of porta's app/controllers/admin/api): server (routing, auth,
envelopes, faults), representers, accounts, account_plans, users, services, metrics, backends,
proxy, active_docs, applications, stats, tenant (webhooks, personal access tokens),
backend_listener, db. Porta is composed of the per-area mixins.
"""
from __future__ import annotations

import secrets
import threading
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from ..context import LabContext, free_port, now_iso
from ..httpbase import LabHTTPServer
from .db import Store
from . import account_plans, accounts_xml, active_docs, master, stats, tenant  # noqa: F401 (importing a module registers its routes)
from .accounts import AccountsMixin
from .applications import ApplicationsMixin
from .backend_listener import BackendListenerMixin
from .backends import BackendsMixin
from .metrics import MetricsMixin
from .proxy import ProxyMixin
from .representers import RepresentersMixin
from .server import LOG, AdminHandler, BackendHandler, ServerMixin, not_found
from .services import ServicesMixin
from .users import UsersMixin


class Porta(ServerMixin, RepresentersMixin, AccountsMixin, UsersMixin, ServicesMixin, MetricsMixin, BackendsMixin,
            ProxyMixin, ApplicationsMixin, BackendListenerMixin):
    """Admin API (HTTPS, ctx.urls["porta"]) + backend listener (HTTP, ctx.urls["backend"])."""

    def __init__(self, ctx: LabContext):
        self.ctx = ctx
        self.store: Store | None = None
        self.servers: list[LabHTTPServer] = []
        self.stats_lock = threading.Lock()
        self.stats: Counter = Counter()
        self.agent_stats: dict[str, Counter] = {}  # the same counts per client (User-Agent product token)
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
        tenant_name = self.ctx.settings.get("tenant", "3scale")
        st.insert("provider", {
            "org_name": tenant_name, "state": "approved", "created_at": now, "updated_at": now,
            "admin_domain": f"{tenant_name}-admin.apps.maaslab.local", "domain": f"{tenant_name}.apps.maaslab.local",
            "from_email": f"no-reply@{tenant_name}.apps.maaslab.local",
            "support_email": f"admin@{tenant_name}.apps.maaslab.local",
            "finance_support_email": f"admin@{tenant_name}.apps.maaslab.local",
            "site_access_code": secrets.token_hex(5)})
        provider = self.provider()
        # the tenant's admin user (system-seed ADMIN_USER / ADMIN_PASSWORD)
        self.new_user(provider["id"], {"username": "admin", "email": f"admin@{tenant_name}.apps.maaslab.local",
                                       "password": self.ctx.secret("admin_password")}, "admin", "active",
                      provider=True)
        # Logic::ProviderSignup: a default account plan; the sample product's "Default" service plan and
        # "Basic" application plan are the defaults, so an API signup subscribes and gets an application
        st.insert("plan", dict(self._plan_data("AccountPlan", None, {"name": "Default", "state_event": "publish"}),
                               default=True))
        svc = self._create_service({"name": "API", "system_name": "api", "description": "Echo API"}, default=True)
        backend = st.insert("backend_api", {"name": "API Backend", "system_name": "api_backend",
                                            "description": "Echo API backend",
                                            "private_endpoint": "https://echo-api.3scale.net:443",
                                            "created_at": now, "updated_at": now})
        self._create_metric({"friendly_name": "Hits", "system_name": "hits", "unit": "hit",
                             "description": "Number of API hits"}, "backend_api", backend["id"])
        st.insert("backend_usage", {"service_id": svc["id"], "backend_id": backend["id"], "path": "/"})
        for name in ("Basic", "Unlimited"):
            st.insert("plan", dict(self._plan_data("ApplicationPlan", svc["id"], {"name": name,
                                                                                  "state_event": "publish"}),
                                   default=name == "Basic"))
        for sp in st.all("plan", type="ServicePlan", service_id=svc["id"]):
            sp["default"] = True
            st.save("plan", sp)
        # the workshop's developers: signed up like an API signup, but with the workshop password
        # "openshift" even under `--porta-release next` (seed=True skips the 15-character policy)
        for i in range(1, int(self.ctx.settings.get("users", 5)) + 1):
            self._signup({"org_name": f"user{i}", "username": f"user{i}", "email": f"user{i}@example.com",
                          "password": "openshift"}, seed=True)

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
