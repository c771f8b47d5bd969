"""Products, application/service plans, limits, pricing rules (porta admin/api/services_controller,
*_plans_controller, application_plan_metric_limits_controller, pricing_rules_controller)."""
from __future__ import annotations

import math
import re
import secrets
import time

from ..context import now_iso
from .db import PERIODS
from .server import (
    A, ID, PROXY_DEFAULTS, created, invalid, not_found, paginate, parameterize, Reply, Req, route, to_int,
    truthy)


class ServicesMixin:
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
                 "api_backend": None, **PROXY_DEFAULTS,
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


# ---- services
@route("GET", A + "/services")
def services_list(api, req: Req):
    page, meta = paginate(api.services(), req)
    out: dict = {"services": [{"service": api.service_json(s)} for s in page]}
    if meta:
        out["metadata"] = meta
    return out


@route("POST", A + "/services")
def service_create(api, req: Req):
    s = api._create_service(req.params)
    return created({"service": api.service_json(s)}, f"{api.base}{A}/services/{s['id']}")


@route("GET", A + "/services/" + ID)
def service_show(api, req: Req, id):
    return {"service": api.service_json(api.need_service(id))}


@route("PUT", A + "/services/" + ID)
def service_update(api, req: Req, id):
    s = api.need_service(id)
    before = dict(s)
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
    if s != before:  # system_name is immutable: porta ignores it here
        s["updated_at"] = now_iso()
        api.store.save("service", s)
    return {"service": api.service_json(s)}


@route("DELETE", A + "/services/" + ID)
def service_delete(api, req: Req, id):
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


# ---- plans
@route("GET", A + "/services/(?P<sid>\\d+)/(?P<kind>application|service)_plans")
def plans_list(api, req: Req, sid, kind):
    s = api.need_service(sid)
    ptype = "ApplicationPlan" if kind == "application" else "ServicePlan"
    return {"plans": [api.wrap_plan(p) for p in api.store.all("plan", type=ptype, service_id=s["id"])]}


@route("GET", A + "/(?P<kind>application|service)_plans")
def plans_all(api, req: Req, kind):
    ptype = "ApplicationPlan" if kind == "application" else "ServicePlan"
    live = {s["id"] for s in api.services()}
    return {"plans": [api.wrap_plan(p) for p in api.store.all("plan", type=ptype) if p["service_id"] in live]}


@route("POST", A + "/services/(?P<sid>\\d+)/(?P<kind>application|service)_plans")
def plan_create(api, req: Req, sid, kind):
    s = api.need_service(sid)
    ptype = "ApplicationPlan" if kind == "application" else "ServicePlan"
    if not str(req.get("name") or "").strip():
        raise invalid("name", "can't be blank")
    data = api._plan_data(ptype, s["id"], req.params)
    if api.store.first("plan", type=ptype, service_id=s["id"], system_name=data["system_name"]):
        raise invalid("system_name", "has already been taken")
    return created(api.wrap_plan(api.store.insert("plan", data)))


def need_plan(api, sid, kind, id) -> dict:
    s = api.need_service(sid)
    return api.need("plan", id, service_id=s["id"],
                    type="ApplicationPlan" if kind == "application" else "ServicePlan")


PLAN = A + "/services/(?P<sid>\\d+)/(?P<kind>application|service)_plans/" + ID


@route("GET", PLAN)
def plan_show(api, req: Req, sid, kind, id):
    return api.wrap_plan(need_plan(api, sid, kind, id))


@route("PUT", PLAN)
def plan_update(api, req: Req, sid, kind, id):
    return api.wrap_plan(api.store.save("plan", update_plan_fields(req, need_plan(api, sid, kind, id))))


def update_plan_fields(req: Req, p: dict) -> dict:
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
    return p


@route("DELETE", PLAN)
def plan_delete(api, req: Req, sid, kind, id):
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
def plan_default(api, req: Req, sid, kind, id):
    p = need_plan(api, sid, kind, id)
    for other in api.store.all("plan", type=p["type"], service_id=p["service_id"], default=True):
        other["default"] = False
        api.store.save("plan", other)
    p["default"] = True
    p["updated_at"] = now_iso()
    return api.wrap_plan(api.store.save("plan", p))


# ---- limits and pricing rules
LIM = A + "/application_plans/(?P<pid>\\d+)/metrics/(?P<mid>\\d+)"


def plan_metric(api, pid, mid) -> tuple[dict, dict]:
    plan = api.need("plan", pid, type="ApplicationPlan")
    api.need_service(plan["service_id"])
    m = api.need("metric", mid)
    ok = m["owner"] == "service" and m["owner_id"] == plan["service_id"]
    ok = ok or (m["owner"] == "backend_api" and
                api.store.first("backend_usage", service_id=plan["service_id"], backend_id=m["owner_id"]) is not None)
    if not ok:
        raise not_found()
    return plan, m


def limit_fields(api, req: Req, lim: dict) -> dict:
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
def plan_limits(api, req: Req, pid):
    plan = api.need("plan", pid, type="ApplicationPlan")
    page, meta = paginate(api.store.all("limit", plan_id=plan["id"]), req)
    out: dict = {"limits": [api.limit_json(x) for x in page]}
    if meta:
        out["metadata"] = meta
    return out


@route("GET", LIM + "/limits")
def limits_list(api, req: Req, pid, mid):
    plan, m = plan_metric(api, pid, mid)
    return {"limits": [api.limit_json(x) for x in api.store.all("limit", plan_id=plan["id"], metric_id=m["id"])]}


@route("POST", LIM + "/limits")
def limit_create(api, req: Req, pid, mid):
    plan, m = plan_metric(api, pid, mid)
    lim = limit_fields(api, req, {"plan_id": plan["id"], "metric_id": m["id"], "created_at": now_iso()})
    return created(api.limit_json(api.store.insert("limit", lim)))


@route("GET", LIM + "/limits/" + ID)
def limit_show(api, req: Req, pid, mid, id):
    plan, m = plan_metric(api, pid, mid)
    return api.limit_json(api.need("limit", id, plan_id=plan["id"], metric_id=m["id"]))


@route("PUT", LIM + "/limits/" + ID)
def limit_update(api, req: Req, pid, mid, id):
    plan, m = plan_metric(api, pid, mid)
    lim = limit_fields(api, req, api.need("limit", id, plan_id=plan["id"], metric_id=m["id"]))
    return api.limit_json(api.store.save("limit", lim))


@route("DELETE", LIM + "/limits/" + ID)
def limit_delete(api, req: Req, pid, mid, id):
    plan, m = plan_metric(api, pid, mid)
    api.store.delete("limit", api.need("limit", id, plan_id=plan["id"], metric_id=m["id"])["id"])
    return Reply(200, None)


@route("GET", A + "/application_plans/(?P<pid>\\d+)/pricing_rules")
def plan_pricing_rules(api, req: Req, pid):
    plan = api.need("plan", pid, type="ApplicationPlan")
    return {"pricing_rules": [api.pricing_json(r) for r in api.store.all("pricing_rule", plan_id=plan["id"])]}


@route("GET", LIM + "/pricing_rules")
def pricing_list(api, req: Req, pid, mid):
    plan, m = plan_metric(api, pid, mid)
    return {"pricing_rules": [api.pricing_json(r)
                              for r in api.store.all("pricing_rule", plan_id=plan["id"], metric_id=m["id"])]}


@route("POST", LIM + "/pricing_rules")
def pricing_create(api, req: Req, pid, mid):
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
def pricing_delete(api, req: Req, pid, mid, id):
    plan, m = plan_metric(api, pid, mid)
    api.store.delete("pricing_rule", api.need("pricing_rule", id, plan_id=plan["id"], metric_id=m["id"])["id"])
    return Reply(200, None)
