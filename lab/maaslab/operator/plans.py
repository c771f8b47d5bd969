"""Application plans of a Product: plans (by system name), their limits and pricing rules, the CR
authoritative. Each plan runs its own task runner (SyncPlan, SyncLimits, SyncPricingRules).

Upstream: 3scale-operator controllers/capabilities/application_plans.go (delete not desired →
reconcile matched → create new, "error sync product [sn] plan[s] ..." prefixes) and
application_plan_reconciler.go (the per-plan tasks and their prefixes).
"""
from __future__ import annotations

from .errors import CLIENT_ERRORS
from .porta_client import PortaClient, unwrap
from .runtime import run_tasks
from .threescale import SyncError, metric_ids


def sync_plans(porta: PortaClient, pid: int, spec: dict, backends: dict[str, dict]) -> None:
    sn, svc = spec["systemName"], f"/admin/api/services/{pid}"
    desired = spec.get("applicationPlans") or {}
    try:
        plans = {p.get("system_name"): p for p in
                 porta.list(f"{svc}/application_plans.json", "plans", "application_plan", paginated=False)}
        for key, cur in plans.items():
            if key not in desired:
                porta.call("DELETE", f"{svc}/application_plans/{cur['id']}.json")
    except CLIENT_ERRORS as e:
        raise SyncError(f"error sync product [{sn}] plans: {e}") from e
    ids = MetricIds(porta, svc, backends)
    for key in [k for k in desired if k in plans] + [k for k in desired if k not in plans]:
        try:
            cur = plans.get(key)
            if cur is None:  # created with system_name = name = key; SyncPlan sets the rest
                cur = porta.call("POST", f"{svc}/application_plans.json", {"system_name": key, "name": key})
                cur = cur.get("application_plan", cur)
            plan_tasks(porta, svc, key, desired[key], cur, ids)
        except Exception as e:  # noqa: BLE001 - wrapped like upstream
            raise SyncError(f"error sync product [{sn}] plan [{key}]: {e}") from e


class MetricIds:
    """findID: product metric/method ids, or a used backend's (looked up once per reconcile)."""

    def __init__(self, porta: PortaClient, svc: str, backends: dict[str, dict]):
        self.porta, self.svc, self.backends = porta, svc, backends
        self.cache: dict[str | None, dict[str, int]] = {}

    def __call__(self, ref: dict) -> int:
        be = ref.get("backend")
        if be not in self.cache:
            base = self.svc if not be else f"/admin/api/backend_apis/{(self.backends[be].get('status') or {}).get('backendId')}"
            self.cache[be] = metric_ids(self.porta, base)
        return self.cache[be][ref["systemName"]]


def plan_tasks(porta: PortaClient, svc: str, key: str, p: dict, cur: dict, metric_id: MetricIds) -> None:
    plan = f"/admin/api/application_plans/{cur['id']}"

    def sync_plan():
        want = {"name": p.get("name") or key, "approval_required": str(bool(p.get("appsRequireApproval"))).lower()}
        if p.get("trialPeriod") is not None:
            want["trial_period_days"] = str(p["trialPeriod"])
        if p.get("setupFee") is not None:
            want["setup_fee"] = p["setupFee"]
        if p.get("costMonth") is not None:
            want["cost_per_month"] = p["costMonth"]
        changed = {}
        for k, v in want.items():
            c = cur.get(k)
            same = (c is not None and float(c) == float(v)) if k in ("setup_fee", "cost_per_month") \
                else str(c).lower() == str(v).lower()
            if not same:
                changed[k] = v
        if (cur.get("state") == "published") != bool(p.get("published")):
            changed["state_event"] = "publish" if p.get("published") else "hide"
        if changed:
            try:
                porta.call("PUT", f"{svc}/application_plans/{cur['id']}.json", changed)
            except CLIENT_ERRORS as e:
                raise SyncError(f"error sync plan [{key};{cur['id']}]: {e}") from e

    def sync_limits():
        try:
            existing = unwrap(porta.call("GET", f"{plan}/limits.json"), "limits", "limit")
        except CLIENT_ERRORS as e:
            raise SyncError(f"error sync plan [{key}] limits: {e}") from e
        want = [(metric_id(x["metricMethodRef"]), x["period"], int(x["value"])) for x in p.get("limits") or []]
        for lim in existing:
            k = (lim.get("metric_id"), lim.get("period"), int(lim.get("value") or 0))
            if k in want:
                want.remove(k)
            else:
                porta.call("DELETE", f"{plan}/metrics/{lim['metric_id']}/limits/{lim['id']}.json")
        for mid, period, value in want:
            porta.call("POST", f"{plan}/metrics/{mid}/limits.json", {"period": period, "value": value})

    def sync_pricing_rules():
        try:
            existing = unwrap(porta.call("GET", f"{plan}/pricing_rules.json"), "pricing_rules", "pricing_rule")
        except CLIENT_ERRORS as e:
            raise SyncError(f"error sync plan [{key}] pricing rules: {e}") from e
        want = [(metric_id(x["metricMethodRef"]), int(x["from"]), int(x["to"]), float(x["pricePerUnit"]))
                for x in p.get("pricingRules") or []]
        for pr in existing:
            k = (pr.get("metric_id"), int(pr.get("min") or 0), int(pr.get("max") or 0), float(pr.get("cost_per_unit") or 0))
            if k in want:
                want.remove(k)
            else:
                porta.call("DELETE", f"{plan}/metrics/{pr['metric_id']}/pricing_rules/{pr['id']}.json")
        for mid, lo, hi, cost in want:
            porta.call("POST", f"{plan}/metrics/{mid}/pricing_rules.json", {"min": lo, "max": hi, "cost_per_unit": cost})

    run_tasks([("SyncPlan", sync_plan), ("SyncLimits", sync_limits), ("SyncPricingRules", sync_pricing_rules)])
