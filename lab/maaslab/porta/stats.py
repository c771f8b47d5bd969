"""Analytics API: usage of an application or of a product (porta stats/data/applications_controller,
stats/data/services_controller; values come from the backend listener's counters)."""
from __future__ import annotations

import datetime

from .db import iso, period_bounds
from .server import ID, Reply, Req, invalid, not_found, route

STATS_GRANULARITY = {"minute": None, "hour": "minute", "day": "hour", "week": "day", "month": "day",
                     "year": "month"}
STEP = {"minute": datetime.timedelta(minutes=1), "hour": datetime.timedelta(hours=1), "day": datetime.timedelta(days=1)}


def _series(api, req: Req, service_id: int, app_ids: list[int]) -> dict:
    # Stats::Data::BaseController#usage_params: params.require → 400 plain text (ApplicationController)
    for name in ["metric_name"] + ([] if req.get("period") else ["granularity", "since"]):
        if not req.get(name):
            raise Reply(400, f"Required parameter missing: {name}", "text/plain; charset=utf-8")
    period = str(req.get("period") or "month")  # lab: a since/granularity range is read as this month
    if period not in STATS_GRANULARITY:
        raise invalid("period", "is not included in the list")
    metrics = api.store.all("metric", owner="service", owner_id=service_id)
    m = next((x for x in metrics if x["system_name"] == req.get("metric_name")), None)
    if m is None:
        raise not_found()
    st = api.store

    def usage(gran: str, start: datetime.datetime) -> int:
        return sum(st.usage(a, m["id"], gran, iso(start)) for a in app_ids)

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = period_bounds(period, now)
    total = usage(period, start)
    previous = usage(period, period_bounds(period, start - datetime.timedelta(seconds=1))[0])
    gran = STATS_GRANULARITY[period]
    values = []
    if gran:
        t = start
        while t < end:
            values.append(usage(gran, t))
            t = period_bounds(gran, t + datetime.timedelta(days=32))[0] if gran == "month" else t + STEP[gran]
    else:
        values = [total]
    return {"metric": {"id": m["id"], "name": m["friendly_name"], "system_name": m["system_name"],
                       "unit": m.get("unit") or "hit"},
            "period": {"name": period, "since": iso(start), "until": iso(end - datetime.timedelta(seconds=1)),
                       "timezone": "Etc/UTC", "granularity": gran or period},
            "total": total, "values": values, "previous_total": previous,
            "change": round((total - previous) * 100.0 / previous, 2) if previous else 0.0}


@route("GET", "/stats/applications/" + ID + "/usage")
def app_usage(api, req: Req, id):
    app = api.need("application", id)
    out = _series(api, req, app["service_id"], [app["id"]])
    plan = api.store.get("plan", app["plan_id"]) or {}
    acc = api.store.get("account", app["account_id"]) or {}
    out["application"] = {"id": app["id"], "name": app.get("name"), "state": app["state"],
                          "description": app.get("description"),
                          "plan": {"id": plan.get("id"), "name": plan.get("name")},
                          "account": {"id": acc.get("id"), "name": acc.get("org_name")},
                          "service": {"id": app["service_id"]}}
    return out


@route("GET", "/stats/services/" + ID + "/usage")
def service_usage(api, req: Req, id):
    svc = api.need_service(id)
    out = _series(api, req, svc["id"], [a["id"] for a in api.store.all("application", service_id=svc["id"])])
    out["service"] = {"id": svc["id"], "name": svc["name"], "system_name": svc["system_name"],
                      "state": svc["state"]}
    return out
