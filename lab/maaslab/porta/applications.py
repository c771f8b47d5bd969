"""Applications and their analytics (porta admin/api/applications_controller,
buyers_applications_controller, stats/data/applications_controller)."""
from __future__ import annotations

import datetime
import re
import secrets
from typing import Any

from ..context import now_iso
from .db import iso, period_bounds
from .server import A, ID, USER_KEY_RE, created, invalid, not_found, paginate, Reply, Req, route, to_int


class ApplicationsMixin:
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


# ---- applications
APPS = A + "/accounts/(?P<aid>\\d+)/applications"


@route("GET", APPS)
def apps_list(api, req: Req, aid):
    acc = api.need("account", aid)
    apps = api.store.all("application", account_id=acc["id"])
    if req.get("state"):
        apps = [a for a in apps if a["state"] == req.get("state")]
    return {"applications": [{"application": api.app_json(a)} for a in apps]}


@route("POST", APPS)
def app_create(api, req: Req, aid):
    acc = api.need("account", aid)
    plan = api.store.get("plan", req.get("plan_id"))
    if plan is None or plan["type"] != "ApplicationPlan":
        raise not_found()
    app = api._create_app(acc, plan, req.params)
    return created({"application": api.app_json(app)},
                   f"{api.base}{A}/accounts/{acc['id']}/applications/{app['id']}")


def find_app(api, req: Req, account_id: int | None) -> dict:
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
def app_find_account(api, req: Req, aid):
    return find_app(api, req, api.need("account", aid)["id"])


@route("GET", A + "/applications/find")
def app_find(api, req: Req):
    return find_app(api, req, None)


@route("GET", A + "/applications")
def apps_all(api, req: Req):
    apps = api.store.all("application")
    for f in ("service_id", "plan_id"):
        if req.get(f):
            apps = [a for a in apps if a[f] == to_int(req.get(f))]
    page, meta = paginate(apps, req)
    out: dict = {"applications": [{"application": api.app_json(a)} for a in page]}
    if meta:
        out["metadata"] = meta
    return out


def need_app(api, aid, id) -> dict:
    return api.need("application", id, account_id=int(aid))


@route("GET", APPS + "/" + ID)
def app_show(api, req: Req, aid, id):
    return {"application": api.app_json(need_app(api, aid, id))}


@route("PUT", APPS + "/" + ID)
def app_update(api, req: Req, aid, id):
    app = need_app(api, aid, id)
    for f in ("name", "description"):
        if req.has(f):
            app[f] = req.get(f)
    if req.has("user_key"):
        app["user_key"] = api._check_user_key(req.get("user_key"), exclude=app["id"])
    app["updated_at"] = now_iso()
    return {"application": api.app_json(api.store.save("application", app))}


@route("DELETE", APPS + "/" + ID)
def app_delete(api, req: Req, aid, id):
    api.store.delete("application", need_app(api, aid, id)["id"])
    return Reply(200, None)


TRANSITIONS = {"suspend": ({"live"}, "suspended"), "resume": ({"suspended"}, "live"), "accept": ({"pending"}, "live")}


@route("PUT", APPS + "/" + ID + "/(?P<event>suspend|resume|accept)")
def app_transition(api, req: Req, aid, id, event):
    app = need_app(api, aid, id)
    sources, target = TRANSITIONS[event]
    if app["state"] not in sources:
        raise Reply(422, {"error": {"from": app["state"], "event": event,
                                    "error": f"State cannot transition via \"{event}\"", "object": "application"}})
    app.update(state=target, updated_at=now_iso())
    return {"application": api.app_json(api.store.save("application", app))}


@route("PUT", APPS + "/" + ID + "/change_plan")
def app_change_plan(api, req: Req, aid, id):
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
def app_usage(api, req: Req, id):
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
