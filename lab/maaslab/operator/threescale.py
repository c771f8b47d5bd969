"""Sync steps shared by Backend (backend_apis/{id}) and Product (services/{id}): methods, metrics and
mapping rules, each one task of the task runner, the CR authoritative (extra remote items deleted).

Upstream: 3scale-operator controllers/capabilities/methods.go, metrics.go, mapping_rules.go and their
backend counterparts in backend_threescale_reconciler.go (error prefixes "error sync <kind> methods
[sn]: ", "error sync <kind> metrics [sn]: ", "error sync <kind> [sn] mappingrules: ").
"""
from __future__ import annotations

from collections.abc import Callable

from .errors import CLIENT_ERRORS
from .porta_client import PortaClient, strip_suffix


class SyncError(Exception):
    """A porta error wrapped with upstream's per-step prefix."""


def _metrics(porta: PortaClient, base: str) -> list[dict]:
    return porta.list(f"{base}/metrics.json", "metrics", "metric")


def _hits_id(metrics: list[dict]) -> int:
    return next(m["id"] for m in metrics if not m.get("parent_id") and strip_suffix(m["system_name"]) == "hits")


def sync_methods(porta: PortaClient, base: str, spec: dict, prefix: str,
                 removed: Callable[[list[str]], None] | None = None) -> None:
    """Update matched, create missing, delete the remote methods the CR does not name. porta refuses
    the delete of a method used by the latest gateway configuration: the task stops there. `removed`
    gets the deleted system names (the Backend cleans the Product CRs that reference them)."""
    desired = spec.get("methods") or {}
    try:
        hits = _hits_id(_metrics(porta, base))
        coll = f"{base}/metrics/{hits}/methods"
        existing = {strip_suffix(m["system_name"]): m for m in porta.list(f"{coll}.json", "methods", "method")}
        for sn, d in desired.items():
            want = {"friendly_name": d.get("friendlyName"), "description": d.get("description") or ""}
            cur = existing.get(sn)
            if cur is None:
                porta.call("POST", f"{coll}.json", {"system_name": sn, **want})
            elif any((cur.get(k) or "") != (v or "") for k, v in want.items()):
                porta.call("PUT", f"{coll}/{cur['id']}.json", want)
        gone = [sn for sn in existing if sn not in desired]
        for sn in gone:
            porta.call("DELETE", f"{coll}/{existing[sn]['id']}.json")
    except CLIENT_ERRORS as e:
        raise SyncError(f"{prefix}: {e}") from e
    if removed is not None:
        removed(gone)


def sync_metrics(porta: PortaClient, base: str, spec: dict, prefix: str,
                 removed: Callable[[list[str]], None] | None = None) -> None:
    desired = spec.get("metrics") or {}
    try:
        existing = {strip_suffix(m["system_name"]): m for m in _metrics(porta, base) if not m.get("parent_id")}
        for sn, d in desired.items():
            want = {"friendly_name": d.get("friendlyName"), "unit": d.get("unit"), "description": d.get("description") or ""}
            cur = existing.get(sn)
            if cur is None:
                porta.call("POST", f"{base}/metrics.json", {"system_name": sn, **want})
            elif any((cur.get(k) or "") != (v or "") for k, v in want.items()):
                porta.call("PUT", f"{base}/metrics/{cur['id']}.json", want)
        gone = [sn for sn in existing if sn not in desired and sn != "hits"]
        for sn in gone:
            porta.call("DELETE", f"{base}/metrics/{existing[sn]['id']}.json")
    except CLIENT_ERRORS as e:
        raise SyncError(f"{prefix}: {e}") from e
    if removed is not None:
        removed(gone)


def metric_ids(porta: PortaClient, base: str) -> dict[str, int]:
    """system name → id of every metric and method of a backend_api or service."""
    ms = _metrics(porta, base)
    ids = {strip_suffix(m["system_name"]): m["id"] for m in ms}
    hits = _hits_id(ms)
    for m in porta.list(f"{base}/metrics/{hits}/methods.json", "methods", "method"):
        ids[strip_suffix(m["system_name"])] = m["id"]
    return ids


def sync_rules(porta: PortaClient, coll: str, item: str, rules: list[dict], ids_base: str, prefix: str) -> None:
    """Mapping rules: keep exact matches, delete the rest (porta's default "GET /" rule included when
    the CR does not have it), create the missing ones at their position."""
    try:
        ids = metric_ids(porta, ids_base)
        existing = porta.list(coll, "mapping_rules", "mapping_rule")
        desired = [(r["httpMethod"], r["pattern"], ids.get(r["metricMethodRef"]), int(r.get("increment", 1)),
                    bool(r.get("last"))) for r in rules]
        missing = list(desired)
        for r in existing:
            key = (r.get("http_method"), r.get("pattern"), r.get("metric_id"), int(r.get("delta") or 0), bool(r.get("last")))
            if key in missing:
                missing.remove(key)
            else:
                porta.call("DELETE", item.format(id=r["id"]))
        for pos, key in enumerate(desired, start=1):
            if key in missing:
                missing.remove(key)
                m, pattern, mid, delta, last = key
                porta.call("POST", coll, {"http_method": m, "pattern": pattern, "metric_id": mid, "delta": delta,
                                          "last": str(last).lower(), "position": pos})
    except CLIENT_ERRORS as e:
        raise SyncError(f"{prefix}: {e}") from e
