"""Backend controller: backend_apis in porta from Backend CRs.

Upstream: 3scale-operator controllers/capabilities/backend_controller.go (reconcile, deletion),
backend_threescale_reconciler.go (tasks SyncBackend, SyncMethods, SyncMetrics, SyncMappingRules),
backend_status_reconciler.go, apis/capabilities/v1beta1/backend_types.go (SetDefaults, Validate).
"""
from __future__ import annotations

import copy
import re

from .errors import CLIENT_ERRORS, Invalid, PortaError, ProviderLookupError, field_invalid, field_required
from .runtime import BACKENDS, PRODUCTS, REQUEUE, Runtime, cond_true, run_tasks
from .threescale import SyncError, sync_methods, sync_metrics, sync_rules

FINALIZER = "backend.capabilities.3scale.net/finalizer"
TYPES = ["Failed", "Invalid", "Synced"]
HITS = {"friendlyName": "Hits", "unit": "hit", "description": "Number of API hits"}


def set_defaults(spec: dict) -> bool:
    """systemName = name without non-alphanumerics; metrics.hits if absent."""
    before = copy.deepcopy(spec)
    if not spec.get("systemName"):
        spec["systemName"] = re.sub(r"[^a-zA-Z0-9]+", "", spec.get("name", ""))
    metrics = spec.get("metrics") or {}
    metrics.setdefault("hits", dict(HITS))
    spec["metrics"] = metrics
    return spec != before


def validate(spec: dict) -> list[str]:
    """Backend.Validate(). The friendly-name check keys its map by system name but looks up friendly
    names (upstream bug, kept): a real duplicate friendly name passes and reaches porta (422)."""
    errs = []
    metrics, methods = spec.get("metrics") or {}, spec.get("methods") or {}
    if not metrics:
        errs.append(field_required("spec.metrics", "empty metrics is not valid for Backend."))
    elif "hits" not in metrics:
        errs.append(field_invalid("spec.metrics", None, "metrics map not valid for Backend. 'hits' metric must exist."))
    for sn in methods:
        if sn in metrics:
            errs.append(field_invalid(f"spec.methods[{sn}]", sn, "method system_name not unique."))
    seen: set[str] = set()
    for path, items, what in (("spec.metrics", metrics, "metric"), ("spec.methods", methods, "method")):
        for sn, m in items.items():
            fn = (m or {}).get("friendlyName", "")
            if fn in seen:
                errs.append(field_invalid(f"{path}[{sn}]", fn, f"{what} name not unique."))
            else:
                seen.add(sn)
    names = set(metrics) | set(methods)
    for i, r in enumerate(spec.get("mappingRules") or []):
        if r.get("metricMethodRef") not in names:
            errs.append(field_invalid(f"spec.mappingRules[{i}]", r.get("metricMethodRef"),
                                      "mappingrule does not have valid metric or method reference."))
    return errs


class BackendController:
    kind, res = "Backend", BACKENDS

    def __init__(self, rt: Runtime):
        self.rt = rt

    def reconcile(self, ns: str, name: str):
        rt = self.rt
        got = rt.prologue(BACKENDS, ns, name, FINALIZER, set_defaults, self.finalize)
        if not isinstance(got, tuple):
            return got
        obj, provider = got
        spec, old = obj["spec"], obj.get("status") or {}
        fields = {"backendId": old.get("backendId"), "providerAccountHost": provider.admin_url}
        try:
            errs = validate(spec)
            if errs:
                raise Invalid(errs)
            rt.check_fault("Backend", obj)
            fields["backendId"] = self.sync(rt.porta(provider, obj), obj, provider)
        except Invalid as e:
            rt.write_status(BACKENDS, obj, fields, TYPES, {"Invalid": str(e), "Failed": str(e)})
            return None
        except Exception as e:  # porta/transport error, method in use, injected fault: Failed, retried
            rt.write_status(BACKENDS, obj, fields, TYPES, {"Failed": str(e) or repr(e)})
            raise
        rt.write_status(BACKENDS, obj, fields, TYPES, {"Synced": ""})
        return None

    def sync(self, porta, obj: dict, provider) -> int:
        spec = obj["spec"]
        sn = spec["systemName"]
        remote = porta.list("/admin/api/backend_apis.json", "backend_apis", "backend_api")  # the remote index
        state: dict = {}

        def sync_backend():
            try:
                cur = next((b for b in remote if b.get("system_name") == sn), None)
                if cur is None:  # (an existing backend with this system name is adopted)
                    cur = porta.call("POST", "/admin/api/backend_apis.json", {
                        "system_name": sn, "name": spec["name"], "private_endpoint": spec["privateBaseURL"]})["backend_api"]
                want = {"name": spec["name"], "description": spec.get("description") or "",
                        "private_endpoint": spec["privateBaseURL"]}
                changed = {k: v for k, v in want.items() if (cur.get(k) or "") != v}
                if changed:  # private_endpoint differs on every pass (porta adds the port): harmless, as upstream
                    porta.call("PUT", f"/admin/api/backend_apis/{cur['id']}.json", changed)
                state["id"] = cur["id"]
            except CLIENT_ERRORS as e:
                raise SyncError(f"error sync backend [{sn}]: {e}") from e

        base = lambda: f"/admin/api/backend_apis/{state['id']}"  # noqa: E731 - known after SyncBackend
        cleanup = lambda names: self.delete_external_metric_references(obj, provider, names)  # noqa: E731
        run_tasks([
            ("SyncBackend", sync_backend),
            ("SyncMethods", lambda: sync_methods(porta, base(), spec, f"error sync backend methods [{sn}]", cleanup)),
            ("SyncMetrics", lambda: sync_metrics(porta, base(), spec, f"error sync backend metrics [{sn}]", cleanup)),
            ("SyncMappingRules", lambda: sync_rules(porta, f"{base()}/mapping_rules.json", base() + "/mapping_rules/{id}.json",
                                                    spec.get("mappingRules") or [], base(),
                                                    f"error sync backend [{sn}] mappingrules")),
        ])
        return state["id"]

    def delete_external_metric_references(self, obj: dict, provider, names: list[str]) -> None:
        """deleteExternalMetricReferences: plan limits and pricing rules of the Synced Product CRs (same
        tenant) that use this backend and point at a metric/method just deleted are removed from those CRs."""
        if not names:
            return
        rt, sn = self.rt, obj["spec"]["systemName"]
        for p in rt.kube.list(PRODUCTS, obj["metadata"]["namespace"])[0]:
            if not cond_true(p, "Synced"):
                continue
            try:
                if rt.lookup_provider(p).admin_url != provider.admin_url:
                    continue
            except ProviderLookupError as e:
                raise RuntimeError(f"deleteExternalMetricReferences: ProductList: {e}") from None
            pspec = p.get("spec") or {}
            if sn not in (pspec.get("backendUsages") or {}):
                continue
            changed = False
            for plan in (pspec.get("applicationPlans") or {}).values():
                for key in ("limits", "pricingRules"):
                    kept = [x for x in plan.get(key) or [] if (x.get("metricMethodRef") or {}).get("backend") != sn
                            or (x.get("metricMethodRef") or {}).get("systemName") not in names]
                    if len(kept) != len(plan.get(key) or []):
                        plan[key], changed = kept, True
            if changed:
                rt.kube.update(PRODUCTS, p)

    def finalize(self, obj: dict):
        """First remove references to this backend from the Product CRs of the same tenant (requeue),
        then DELETE the backend_api (404 ignored), then drop the finalizer. A provider lookup failing
        with NotFound skips both remote steps (the backend is left in 3scale)."""
        rt, md, spec = self.rt, obj["metadata"], obj.get("spec") or {}
        provider = rt.provider_for_deletion(obj)
        if provider is not None:
            edited = False
            for p in rt.kube.list(PRODUCTS, md["namespace"])[0]:
                try:
                    if rt.lookup_provider(p).admin_url != provider.admin_url:
                        continue
                except ProviderLookupError:
                    continue
                if remove_backend_references(p.get("spec") or {}, spec.get("systemName")):
                    rt.kube.update(PRODUCTS, p)
                    edited = True
            if edited:
                return REQUEUE
            bid = (obj.get("status") or {}).get("backendId")
            if bid:
                try:
                    rt.porta(provider, obj).call("DELETE", f"/admin/api/backend_apis/{bid}.json")
                except PortaError as e:
                    if e.status != 404:
                        raise  # e.g. still used by a product whose CR has not been re-synced yet
        rt.drop_finalizer(BACKENDS, obj, FINALIZER)
        return None


def remove_backend_references(pspec: dict, sn: str) -> bool:
    """Product.RemoveBackendReferences: backend usage, plan limits and pricing rules of that backend."""
    before = copy.deepcopy(pspec)
    (pspec.get("backendUsages") or {}).pop(sn, None)
    for plan in (pspec.get("applicationPlans") or {}).values():
        for key in ("limits", "pricingRules"):
            if plan.get(key):
                plan[key] = [x for x in plan[key] if (x.get("metricMethodRef") or {}).get("backend") != sn]
    return pspec != before

