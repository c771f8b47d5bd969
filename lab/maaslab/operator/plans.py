"""Application plans of a Product: plans, limits, pricing rules.

Upstream: 3scale-operator controllers/capabilities/application_plans.go, application_plan_reconciler.go.
"""
from __future__ import annotations

from .errors import PortaError
from .porta_client import PortaClient, strip_suffix, unwrap
from .threescale import SyncError, metric_ids


def sync_plans(porta: PortaClient, pid: int, spec: dict, backends: dict[str, dict]) -> None:
    """Plans by system name (created, updated, published/hidden, deleted when not in the CR), their limits
    and pricing rules (authoritative). Errors carry application_plans.go's prefixes."""
    sn = spec["systemName"]
    try:
        ids = metric_ids(porta, f"/admin/api/services/{pid}")
        return _sync_plans(porta, pid, spec, ids, backends)
    except PortaError as e:
        raise SyncError(f"error sync product [{sn}] plans: {e}") from e


def _sync_plans(porta: PortaClient, pid: int, spec: dict, ids: dict[str, int], backends: dict[str, dict]) -> None:
    svc = f"/admin/api/services/{pid}"
    plans = {p.get("system_name"): p for p in
             porta.list(f"{svc}/application_plans.json", "plans", "application_plan", paginated=False)}
    backend_ids: dict[str, dict[str, int]] = {}

    def metric_id(ref: dict) -> int:
        be = ref.get("backend")
        if not be:
            return ids[ref["systemName"]]
        if be not in backend_ids:  # look the backend's metric/method ids up in porta
            bid = (backends[be].get("status") or {}).get("backendId")
            base = f"/admin/api/backend_apis/{bid}"
            ms = porta.list(f"{base}/metrics.json", "metrics", "metric")
            m = {strip_suffix(x["system_name"]): x["id"] for x in ms}
            if "hits" in m:
                for x in porta.list(f"{base}/metrics/{m['hits']}/methods.json", "methods", "method"):
                    m[strip_suffix(x["system_name"])] = x["id"]
            backend_ids[be] = m
        return backend_ids[be][ref["systemName"]]

    desired = spec.get("applicationPlans") or {}
    for key, p in desired.items():
        want = {"name": p.get("name") or key, "approval_required": str(bool(p.get("appsRequireApproval"))).lower()}
        if p.get("trialPeriod") is not None:
            want["trial_period_days"] = str(p["trialPeriod"])
        if p.get("setupFee") is not None:
            want["setup_fee"] = p["setupFee"]
        if p.get("costMonth") is not None:
            want["cost_per_month"] = p["costMonth"]
        cur = plans.get(key)
        if cur is None:
            extra = {"state_event": "publish"} if p.get("published") else {}
            cur = porta.call("POST", f"{svc}/application_plans.json", {"system_name": key, **want, **extra})
            cur = cur.get("application_plan", cur)
        else:
            changed = {}
            for k, v in want.items():
                c = cur.get(k)
                if k in ("setup_fee", "cost_per_month"):
                    same = c is not None and float(c) == float(v)
                else:
                    same = str(c).lower() == str(v).lower()
                if not same:
                    changed[k] = v
            if p.get("published") is not None and (cur.get("state") == "published") != bool(p["published"]):
                changed["state_event"] = "publish" if p["published"] else "hide"
            if changed:
                porta.call("PUT", f"{svc}/application_plans/{cur['id']}.json", changed)
        plan = f"/admin/api/application_plans/{cur['id']}"
        # limits (authoritative)
        want_l = [(metric_id(x["metricMethodRef"]), x["period"], int(x["value"])) for x in p.get("limits") or []]
        for lim in unwrap(porta.call("GET", f"{plan}/limits.json"), "limits", "limit"):
            k = (lim.get("metric_id"), lim.get("period"), int(lim.get("value") or 0))
            if k in want_l:
                want_l.remove(k)
            else:
                porta.call("DELETE", f"{plan}/metrics/{lim['metric_id']}/limits/{lim['id']}.json")
        for mid, period, value in want_l:
            porta.call("POST", f"{plan}/metrics/{mid}/limits.json", {"period": period, "value": value})
        # pricing rules (authoritative)
        want_p = [(metric_id(x["metricMethodRef"]), int(x["from"]), int(x["to"]), float(x["pricePerUnit"]))
                  for x in p.get("pricingRules") or []]
        for pr in unwrap(porta.call("GET", f"{plan}/pricing_rules.json"), "pricing_rules", "pricing_rule"):
            k = (pr.get("metric_id"), int(pr.get("min") or 0), int(pr.get("max") or 0), float(pr.get("cost_per_unit") or 0))
            if k in want_p:
                want_p.remove(k)
            else:
                porta.call("DELETE", f"{plan}/metrics/{pr['metric_id']}/pricing_rules/{pr['id']}.json")
        for mid, lo, hi, cost in want_p:
            porta.call("POST", f"{plan}/metrics/{mid}/pricing_rules.json", {"min": lo, "max": hi, "cost_per_unit": cost})
    for key, cur in plans.items():
        if key not in desired:
            porta.call("DELETE", f"{svc}/application_plans/{cur['id']}.json")
