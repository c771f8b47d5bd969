"""JSON representers of porta objects (what porta's representers render)."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from .server import clean


def decimal(v: Any) -> str:
    """A Rails decimal column in JSON: a string, BigDecimal#to_s style ("20.0", "0.0001")."""
    try:
        d = Decimal(str(v if v not in (None, "") else 0))
    except InvalidOperation:
        d = Decimal(0)
    s = format(d.normalize(), "f")
    return s if "." in s else s + ".0"


class RepresentersMixin:
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
             # AccountRepresenter: no self link for the provider (porta/CONTRACT.md §11.7)
             "links": self.links(("users", f"/admin/api/accounts/{p['id']}/users"))}
        return clean(d)

    def user_json(self, u: dict) -> dict:
        base = "/admin/api" if u.get("provider") else f"/admin/api/accounts/{u['account_id']}"
        return clean({"id": u["id"], "state": u["state"], "role": u["role"], "created_at": u["created_at"],
                      "updated_at": u["updated_at"], "username": u["username"], "email": u.get("email") or None,
                      "links": self.links(("self", f"{base}/users/{u['id']}"),
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
        # porta PlanRepresenter: setup_fee.to_f, cost_per_month.to_f, trial_period_days.to_i (JSON
        # numbers; porta-go-client reads them as float64), unlike the decimals elsewhere (strings)
        d = {"id": p["id"], "name": p["name"], "state": p["state"], "setup_fee": float(decimal(p["setup_fee"])),
             "cost_per_month": float(decimal(p["cost_per_month"])),
             "trial_period_days": int(p.get("trial_period_days") or 0),
             "cancellation_period": 0, "approval_required": p["approval_required"], "default": p["default"],
             "created_at": p["created_at"], "updated_at": p["updated_at"]}
        if p["type"] == "AccountPlan":
            d.update(system_name=p["system_name"],
                     links=self.links(("self", f"/admin/api/account_plans/{p['id']}")))
            return clean(d, keep=("trial_period_days",))
        if p["type"] == "ApplicationPlan":
            d.update(custom=False, system_name=p["system_name"],
                     links=self.links(("service", f"/admin/api/services/{sid}"),
                                      ("self", f"/admin/api/services/{sid}/application_plans/{p['id']}")))
        else:
            d["links"] = self.links(("service", f"/admin/api/services/{sid}"),
                                    ("self", f"/admin/api/services/{sid}/service_plans/{p['id']}"))
        return clean(d, keep=("trial_period_days",))

    def wrap_plan(self, p: dict) -> dict:
        key = {"ApplicationPlan": "application_plan", "ServicePlan": "service_plan"}.get(p["type"], "account_plan")
        return {key: self.plan_json(p)}

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
                      "updated_at": c["updated_at"], "setup_fee": decimal(0), "type": "ServiceContract",
                      "tenant_id": self.provider()["id"], "accepted_at": c.get("accepted_at"),
                      # Contract#paid_until falls back to accepted_at, trial end, created_at
                      "paid_until": c.get("accepted_at") or c.get("trial_period_expires_at") or c["created_at"],
                      "trial_period_expires_at": c.get("trial_period_expires_at")})

    def owner_path(self, owner: str, oid: int) -> str:
        return f"/admin/api/services/{oid}" if owner == "service" else f"/admin/api/backend_apis/{oid}"

    def metric_json(self, m: dict, as_method: bool = False) -> dict:
        """porta MetricRepresenter (metrics endpoints: every item, methods included, wrapped as
        `metric`, with `unit` and, for a method, `parent_id`) or MethodRepresenter (methods endpoints:
        `method`, no unit, a `parent` link). Backend metrics have no `name` and show their extended
        system name (`hits.<backend id>`). porta app/representers/{metric,method}_representer.rb;
        porta-go-client's ListProductMetrics reads every item of metrics.json as `metric`."""
        parent = self.owner_path(m["owner"], m["owner_id"])
        d = {"id": m["id"], "name": m["system_name"] if m["owner"] == "service" else None,
             "system_name": m["system_name"], "friendly_name": m["friendly_name"], "description": m.get("description"),
             "created_at": m["created_at"], "updated_at": m["updated_at"]}
        if m.get("parent_id"):
            d["parent_id"] = m["parent_id"]
        if as_method:
            d["links"] = self.links(("parent", f"{parent}/metrics/{m['parent_id']}"),
                                    ("self", f"{parent}/metrics/{m['parent_id']}/methods/{m['id']}"))
            return {"method": clean(d)}
        d["unit"] = m.get("unit")
        d["links"] = self.links(("service" if m["owner"] == "service" else "backend_api", parent),
                                ("self", f"{parent}/metrics/{m['id']}"))
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
            "annotations": b.get("annotations") or {}, "created_at": b["created_at"], "updated_at": b["updated_at"],
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
        return {"pricing_rule": {"id": r["id"], "metric_id": r["metric_id"], "cost_per_unit": decimal(r["cost_per_unit"]),
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
