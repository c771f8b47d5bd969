"""Product controller: porta services (with backend usages, proxy, methods, metrics, mapping rules,
application plans and the policy chain) from Product CRs.

Upstream: 3scale-operator controllers/capabilities/product_controller.go (reconcile, checkExternalRefs,
deletion), product_threescale_reconciler.go (reconcile3scaleProduct + the task list), product.go,
backend_usages.go, proxy.go, product_policies.go, product_status_reconciler.go,
apis/capabilities/v1beta1/product_types.go (SetDefaults, Validate, detectOverlappingPricingRuleRanges),
pkg/controller/helper/backend_list.go.
"""
from __future__ import annotations

import copy
import json
import re
from typing import Any

from .backend import HITS
from .errors import (CLIENT_ERRORS, ERR_REFERENCED_METHOD_IS_BEING_DELETED, GoStruct, Invalid, Orphan, PortaError,
                     ProviderLookupError, field_invalid, field_required)
from .plans import sync_plans
from .porta_client import unwrap
from .runtime import BACKENDS, PRODUCTS, REQUEUE, Provider, Runtime, camel_to_snake, cond_message, cond_true, run_tasks
from .threescale import SyncError, sync_methods, sync_metrics, sync_rules

FINALIZER = "product.capabilities.3scale.net/finalizer"
TYPES = ["Failed", "Invalid", "Orphan", "Synced"]
APICAST_POLICY = {"name": "apicast", "version": "builtin", "configuration": {}, "enabled": True}


def set_defaults(spec: dict) -> bool:
    before = copy.deepcopy(spec)
    if not spec.get("systemName"):
        spec["systemName"] = re.sub(r"[^a-zA-Z0-9]+", "", spec.get("name", ""))
    metrics = spec.get("metrics") or {}
    metrics.setdefault("hits", dict(HITS))
    spec["metrics"] = metrics
    policies = spec.get("policies") or []
    if not any(p.get("name") == "apicast" for p in policies):
        policies.append(copy.deepcopy(APICAST_POLICY))
    for p in policies:
        if p.get("configuration") is None:  # every policy, a configurationRef one included
            p["configuration"] = {}
    spec["policies"] = policies
    return spec != before


def _metric_struct(m: dict) -> GoStruct:
    return GoStruct("v1beta1.MetricSpec", [("Name", m.get("friendlyName", "")), ("Unit", m.get("unit", "")),
                                           ("Description", m.get("description", ""))])


def _method_struct(m: dict) -> GoStruct:
    return GoStruct("v1beta1.MethodSpec", [("Name", m.get("friendlyName", "")), ("Description", m.get("description", ""))])


def _ref_str(ref: dict) -> str:
    return (f"{ref['backend']}." if ref.get("backend") else "") + str(ref.get("systemName"))


def _rule_json(rule: dict) -> str:
    ref = {"systemName": (rule.get("metricMethodRef") or {}).get("systemName", "")}
    if (rule.get("metricMethodRef") or {}).get("backend"):
        ref["backend"] = rule["metricMethodRef"]["backend"]
    return json.dumps({"from": int(rule.get("from", 0)), "to": int(rule.get("to", 0)), "metricMethodRef": ref,
                       "pricePerUnit": str(rule.get("pricePerUnit", ""))}, separators=(",", ":"))


def validate(spec: dict) -> list[str]:
    """Product.Validate(), messages as upstream (field paths, values, details)."""
    errs = []
    metrics, methods = spec.get("metrics") or {}, spec.get("methods") or {}
    if not metrics:
        errs.append(field_required("spec.metrics", "Product spec does not allow empty metrics."))
    elif "hits" not in metrics:
        errs.append(field_invalid("spec.metrics", None, "metrics map not valid for Product. 'hits' metric must exist."))
    for sn, m in methods.items():
        if sn in metrics:
            errs.append(field_invalid(f"spec.methods[{sn}]", _method_struct(m or {}), "method system_name not unique."))
    seen: set[str] = set()  # keyed by system name, looked up by friendly name: upstream's bug, kept
    for path, items, what, struct in (("spec.metrics", metrics, "metric", _metric_struct),
                                      ("spec.methods", methods, "method", _method_struct)):
        for sn, m in items.items():
            if (m or {}).get("friendlyName", "") in seen:
                errs.append(field_invalid(f"{path}[{sn}]", struct(m or {}), f"{what} name not unique."))
            else:
                seen.add(sn)
    names = set(metrics) | set(methods)
    for i, r in enumerate(spec.get("mappingRules") or []):
        if r.get("metricMethodRef") not in names:
            errs.append(field_invalid(f"spec.mappingRules[{i}]", r.get("metricMethodRef"),
                                      "mappingrule does not have valid metric or method reference."))
    plans = spec.get("applicationPlans") or {}
    for key, plan in plans.items():
        for i, lim in enumerate(plan.get("limits") or []):
            ref = lim.get("metricMethodRef") or {}
            if not ref.get("backend") and ref.get("systemName") not in names:
                errs.append(field_invalid(f"spec.applicationPlans[{key}].limits[{i}].metricMethodRef", ref.get("systemName"),
                                          "limit does not have valid local metric or method reference."))
    for key, plan in plans.items():
        periods = set()
        for i, lim in enumerate(plan.get("limits") or []):
            k = f"{lim.get('period')}:{_ref_str(lim.get('metricMethodRef') or {})}"
            if k in periods:
                errs.append(field_invalid(f"spec.applicationPlans[{key}].limits[{i}]", k,
                                          "limit period is not unique for the same metric."))
            periods.add(k)
    for key, plan in plans.items():
        for i, pr in enumerate(plan.get("pricingRules") or []):
            ref = pr.get("metricMethodRef") or {}
            if not ref.get("backend") and ref.get("systemName") not in names:
                errs.append(field_invalid(f"spec.applicationPlans[{key}].pricingRules[{i}].metricMethodRef",
                                          ref.get("systemName"),
                                          "Pricing rule does not have valid local metric or method reference."))
    for key, plan in plans.items():
        for i, pr in enumerate(plan.get("pricingRules") or []):
            if int(pr.get("from", 0)) > int(pr.get("to", 0)):
                errs.append(field_invalid(f"spec.applicationPlans[{key}].pricingRules[{i}]", _rule_json(pr),
                                          "'To' value cannot be less than your 'From' value."))
    for key, plan in plans.items():
        idx = overlapping_rule(plan.get("pricingRules") or [])
        if idx >= 0:
            errs.append(field_invalid(f"spec.applicationPlans[{key}].pricingRules[{idx}]",
                                      _rule_json(plan["pricingRules"][idx]),
                                      "'From' value cannot be less than 'To' values of current rules for the same metric."))
    return errs


def overlapping_rule(rules: list[dict]) -> int:
    """detectOverlappingPricingRuleRanges: per metric, rule a overlaps an earlier b when
    a.from < b.to and a.to > b.from (so touching ranges 1-10, 10-20 are allowed)."""
    per_metric: dict[str, list[int]] = {}
    for i, r in enumerate(rules):
        per_metric.setdefault(_ref_str(r.get("metricMethodRef") or {}), []).append(i)
    for idxs in per_metric.values():
        for a in range(1, len(idxs)):
            ra = rules[idxs[a]]
            for b in range(a):
                rb = rules[idxs[b]]
                if int(ra.get("from", 0)) < int(rb.get("to", 0)) and int(ra.get("to", 0)) > int(rb.get("from", 0)):
                    return idxs[a]
    return -1


class ProductController:
    kind, res = "Product", PRODUCTS

    def __init__(self, rt: Runtime):
        self.rt = rt

    def reconcile(self, ns: str, name: str):
        rt = self.rt
        got = rt.prologue(PRODUCTS, ns, name, FINALIZER, set_defaults, self.finalize)
        if not isinstance(got, tuple):
            return got
        obj, provider = got
        spec, old = obj["spec"], obj.get("status") or {}
        fields = {"productId": old.get("productId"), "providerAccountHost": provider.admin_url}
        try:
            errs = validate(spec)
            if errs:
                raise Invalid(errs)
            backends = self.check_external_refs(obj, provider)
            rt.check_fault("Product", obj)
            fields["productId"] = self.sync(rt.porta(provider, obj), obj, backends)
        except Invalid as e:
            rt.write_status(PRODUCTS, obj, fields, TYPES, {"Invalid": str(e), "Failed": str(e)})
            return None
        except Orphan as e:
            rt.write_status(PRODUCTS, obj, fields, TYPES, {"Orphan": str(e), "Failed": str(e)})
            return REQUEUE
        except Exception as e:  # porta error, method in use (Synced=False, Failed=True), fault: retried
            rt.write_status(PRODUCTS, obj, fields, TYPES, {"Failed": str(e) or repr(e)})
            raise
        rt.write_status(PRODUCTS, obj, fields, TYPES, {"Synced": ""})
        return None

    # -- external references -------------------------------------------------------------------
    def backend_list(self, ns: str, admin_url: str) -> list[dict]:
        """helper.BackendList: Backend CRs that are Synced, or Failed only because a method is still
        used by the latest gateway configuration, of the same tenant (adminURL string equality)."""
        out = []
        for b in self.rt.kube.list(BACKENDS, ns)[0]:
            if cond_true(b, "Synced") or (cond_true(b, "Failed") and
                                          cond_message(b, "Failed") == ERR_REFERENCED_METHOD_IS_BEING_DELETED):
                try:
                    if self.rt.lookup_provider(b).admin_url == admin_url:
                        out.append(b)
                except ProviderLookupError as e:
                    raise RuntimeError(f"checking backend usage references: BackendList: {e}") from None
        return out

    def check_external_refs(self, obj: dict, provider: Provider) -> dict[str, dict]:
        spec = obj["spec"]
        listed = {(b.get("spec") or {}).get("systemName"): b for b in self.backend_list(obj["metadata"]["namespace"],
                                                                                          provider.admin_url)}
        usages = spec.get("backendUsages") or {}
        errs = [field_invalid(f"spec.backendUsages[{sn}]", GoStruct("v1beta1.BackendUsageSpec", [("Path", u.get("path", ""))]),
                              "backend usage does not have valid backend reference.")
                for sn, u in sorted(usages.items()) if sn not in listed]
        used = {sn: b for sn, b in listed.items() if sn in usages}
        for key, what in (("limits", "plan limit"), ("pricingRules", "plan pricing rule")):
            for pname, plan in (spec.get("applicationPlans") or {}).items():
                for i, x in enumerate(plan.get(key) or []):
                    ref = x.get("metricMethodRef") or {}
                    be = ref.get("backend")
                    if not be:
                        continue
                    path = f"spec.applicationPlans[{pname}].{key}[{i}].metricMethodRef"
                    if be not in used:
                        errs.append(field_invalid(f"{path}.backend", be, f"{what} has invalid backend reference."))
                        continue
                    bspec = used[be].get("spec") or {}
                    if ref.get("systemName") not in set(bspec.get("metrics") or {}) | set(bspec.get("methods") or {}):
                        errs.append(field_invalid(f"{path}.systemName", ref.get("systemName"),
                                                  f"{what} has invalid backend metric or method reference."))
        if errs:
            raise Orphan(errs)
        return used

    # -- 3scale ----------------------------------------------------------------------------------
    def sync(self, porta, obj: dict, backends: dict[str, dict]) -> int:
        spec = obj["spec"]
        sn = spec["systemName"]
        try:  # reconcile3scaleProduct: find by system_name (adopt) or create with system_name + name
            cur = next((s for s in porta.list("/admin/api/services.json", "services", "service")
                        if s.get("system_name") == sn), None)
            if cur is None:
                cur = porta.call("POST", "/admin/api/services.json", {"system_name": sn, "name": spec["name"]})["service"]
        except CLIENT_ERRORS as e:
            raise RuntimeError(f"reconcile3scaleProduct product [{sn}]: {e}") from None
        pid = cur["id"]
        svc = f"/admin/api/services/{pid}"
        deployment = spec.get("deployment") or {}
        dep_kind = next(iter(deployment), None)
        auth = ((deployment.get(dep_kind) or {}).get("authentication") or {}) if dep_kind else {}
        auth_kind = next(iter(auth), None)

        def sync_product():
            want = {"name": spec["name"], "description": spec.get("description") or ""}
            if dep_kind:
                want["deployment_option"] = "hosted" if dep_kind == "apicastHosted" else "self_managed"
            if auth_kind:
                want["backend_version"] = {"userkey": "1", "appKeyAppID": "2", "oidc": "oidc"}[auth_kind]
            changed = {k: v for k, v in want.items() if str(cur.get(k) or "") != v}
            if changed:
                try:
                    porta.call("PUT", f"{svc}.json", changed)
                except CLIENT_ERRORS as e:
                    raise SyncError(f"error sync product [{sn};{pid}]: {e}") from e

        def sync_backend_usages():
            desired = {(backends[b].get("status") or {}).get("backendId"): u.get("path", "/")
                       for b, u in (spec.get("backendUsages") or {}).items()}
            try:
                for u in unwrap(porta.call("GET", f"{svc}/backend_usages.json"), "backend_usages", "backend_usage"):
                    bid = u.get("backend_id", u.get("backend_api_id"))
                    if bid not in desired:
                        porta.call("DELETE", f"{svc}/backend_usages/{u['id']}.json")
                        continue
                    if u.get("path") != desired[bid]:
                        porta.call("PUT", f"{svc}/backend_usages/{u['id']}.json", {"path": desired.pop(bid)})
                    else:
                        desired.pop(bid)
                for bid, path in desired.items():
                    porta.call("POST", f"{svc}/backend_usages.json", {"backend_api_id": bid, "path": path})
            except CLIENT_ERRORS as e:
                raise SyncError(f"error sync product [{sn}] backendusages: {e}") from e

        def sync_proxy():
            want = proxy_fields(spec, dep_kind, auth_kind, (auth.get(auth_kind) or {}) if auth_kind else {})
            if not want:
                return
            try:
                proxy = porta.call("GET", f"{svc}/proxy.json")["proxy"]
            except CLIENT_ERRORS as e:
                raise SyncError(f"error sync product [{sn}] proxy: {e}") from e
            changed = {k: v for k, v in want.items() if str(proxy.get(k) if proxy.get(k) is not None else "") != str(v)}
            if changed:
                try:
                    porta.call("PATCH", f"{svc}/proxy.json", changed)
                except CLIENT_ERRORS as e:
                    raise SyncError(f"error updating product proxy: {e}") from e

        run_tasks([
            ("SyncProduct", sync_product),
            ("SyncBackendUsage", sync_backend_usages),
            ("SyncProxy", sync_proxy),
            ("SyncMethods", lambda: sync_methods(porta, svc, spec, f"error sync product methods [{sn}]")),
            ("SyncMetrics", lambda: sync_metrics(porta, svc, spec, f"error sync product metrics [{sn}]")),
            ("SyncMappingRules", lambda: sync_rules(porta, f"{svc}/proxy/mapping_rules.json",
                                                    svc + "/proxy/mapping_rules/{id}.json", spec.get("mappingRules") or [],
                                                    svc, f"error sync product [{sn}] mappingrules")),
            ("SyncApplicationPlans", lambda: sync_plans(porta, pid, spec, backends)),
            ("SyncPolicies", lambda: self.sync_policies(porta, svc, obj)),
        ])
        return pid

    def sync_policies(self, porta, svc: dict, obj: dict) -> None:
        """The whole chain is replaced when it differs (order matters). A non-`{}` inline configuration
        wins over configurationRef; a ref problem is a plain error (Failed, retried)."""
        spec, sn = obj["spec"], obj["spec"]["systemName"]
        try:
            cur_chain = (porta.call("GET", f"{svc}/proxy/policies.json") or {}).get("policies_config") or []
        except CLIENT_ERRORS as e:
            raise SyncError(f"error sync product [{sn}] policies: {e}") from e
        chain = [{"name": p["name"], "version": p["version"], "configuration": self.policy_configuration(obj, p),
                  "enabled": bool(p.get("enabled"))} for p in spec.get("policies") or []]
        if [{k: c.get(k) for k in ("name", "version", "configuration", "enabled")} for c in cur_chain] != chain:
            try:
                porta.call("PUT", f"{svc}/proxy/policies.json", {"policies_config": json.dumps(chain)})
            except CLIENT_ERRORS as e:
                raise SyncError(f"error sync product [{sn}] policies: {e}") from e

    def policy_configuration(self, obj: dict, policy: dict) -> dict:
        conf = policy.get("configuration")
        if conf is not None and conf != {}:
            return conf
        ref = policy.get("configurationRef") or {}
        if not ref.get("name"):
            return {}
        ns = ref.get("namespace") or obj["metadata"]["namespace"]
        data = self.rt.secret_data(ns, ref["name"])
        if data is None:
            raise RuntimeError(f'secrets "{ref["name"]}" not found')
        if "configuration" not in data:
            raise RuntimeError(f"not found configuration field in secret (ns: {ns}, name: {ref['name']}) field: configuration")
        try:
            value = json.loads(data["configuration"])
        except ValueError as e:
            raise RuntimeError(f"invalid character in configuration: {e}") from None
        if not isinstance(value, dict):
            raise RuntimeError(f"json: cannot unmarshal {type(value).__name__} into Go value of type map[string]interface {{}}")
        return value

    # -- deletion --------------------------------------------------------------------------------
    def finalize(self, obj: dict):
        """removeProductFrom3scale: DELETE the service when status.productId is set (404 ignored);
        a provider lookup failing with NotFound leaves it in 3scale; then drop the finalizer."""
        rt = self.rt
        pid = (obj.get("status") or {}).get("productId")
        if pid:
            provider = rt.provider_for_deletion(obj)
            if provider is not None:
                try:
                    rt.porta(provider, obj).call("DELETE", f"/admin/api/services/{pid}.json")
                except PortaError as e:
                    if e.status != 404:  # porta refuses (e.g. last product): stays Terminating, retried
                        raise RuntimeError(f"Failed to delete product: {e}") from None
        rt.drop_finalizer(PRODUCTS, obj, FINALIZER)
        return None


def proxy_fields(spec: dict, dep_kind: str | None, auth_kind: str | None, auth: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if dep_kind == "apicastSelfManaged":
        sm = spec["deployment"]["apicastSelfManaged"]
        if sm.get("productionPublicBaseURL"):
            out["endpoint"] = sm["productionPublicBaseURL"]
        if sm.get("stagingPublicBaseURL"):
            out["sandbox_endpoint"] = sm["stagingPublicBaseURL"]
    if not auth_kind:
        return out
    if auth.get("credentials"):
        out["credentials_location"] = auth["credentials"]
    if auth_kind == "userkey" and auth.get("authUserKey"):
        out["auth_user_key"] = auth["authUserKey"]
    if auth_kind == "appKeyAppID":
        if auth.get("appID"):
            out["auth_app_id"] = auth["appID"]
        if auth.get("appKey"):
            out["auth_app_key"] = auth["appKey"]
    if auth_kind == "oidc":
        out["oidc_issuer_type"] = auth.get("issuerType")
        if auth.get("issuerEndpoint"):
            out["oidc_issuer_endpoint"] = auth["issuerEndpoint"]
    sec = auth.get("security") or {}
    if sec.get("secretToken"):
        out["secret_token"] = sec["secretToken"]
    if sec.get("hostHeader"):
        out["hostname_rewrite"] = sec["hostHeader"]
    for k, v in (auth.get("gatewayResponse") or {}).items():
        out[camel_to_snake(k)] = v
    return out

