"""Metrics, methods and mapping rules of products and backend APIs (porta admin/api/metrics_controller,
metric_methods_controller, mapping_rules_controller, backend_apis/*)."""
from __future__ import annotations

import re

from ..context import now_iso
from .server import (
    A, HTTP_METHODS, ID, PATTERN_RE, created, invalid, not_found, paginate, parameterize, Reply, Req, route,
    to_int, truthy)


def extended_system_name(system_name: str, backend_id: int) -> str:
    """porta app/lib/backend_api_logic/metric_extension.rb: a backend API metric's system name is
    suffixed with `.<backend id>`; a name given with the suffix already is not suffixed twice."""
    base = re.sub(rf"\.{backend_id}$", "", system_name)
    return f"{base}.{backend_id}"


class MetricsMixin:
    def _create_metric(self, p: dict, owner: str, owner_id: int, parent_id: int | None = None) -> dict:
        friendly = str(p.get("friendly_name") or p.get("name") or "").strip()
        errors: dict[str, list[str]] = {}
        if not friendly:
            errors["friendly_name"] = ["can't be blank"]
        system_name = str(p.get("system_name") or parameterize(friendly))
        if owner == "backend_api":  # BackendApiLogic::MetricExtension: stored as "<name>.<backend id>"
            system_name = extended_system_name(system_name, owner_id)
        if friendly and not re.fullmatch(r"[\w\-/.]+", system_name):
            errors["system_name"] = ["invalid. Only ASCII letters, numbers, dashes and underscores are allowed."]
        if parent_id is None and not str(p.get("unit") or "").strip():
            errors["unit"] = ["can't be blank"]
        siblings = self.store.all("metric", owner=owner, owner_id=owner_id)
        if friendly and any(m["system_name"] == system_name for m in siblings):
            errors.setdefault("system_name", []).append("has already been taken")
        if friendly and any(m["friendly_name"] == friendly for m in siblings):
            errors["friendly_name"] = ["has already been taken"]
        if errors:
            raise Reply(422, {"errors": errors})
        now = now_iso()
        return self.store.insert("metric", {
            "owner": owner, "owner_id": owner_id, "parent_id": parent_id, "system_name": system_name,
            "friendly_name": friendly, "unit": None if parent_id else str(p["unit"]),
            "description": p.get("description"), "created_at": now, "updated_at": now})

    def metric_in_latest_configs(self, m: dict) -> bool:
        """porta Metric#belongs_to_latest_config?: the latest sandbox or production config of a product
        owning the metric (or using its backend) has a proxy rule with its id."""
        st = self.store
        if m["owner"] == "service":
            sids = [m["owner_id"]]
        else:
            sids = [u["service_id"] for u in st.all("backend_usage", backend_id=m["owner_id"])]
        for sid in sids:
            for env in ("sandbox", "production"):
                c = self.latest_config(sid, env)
                if c and any(r.get("metric_id") == m["id"] for r in c["content"]["proxy"].get("proxy_rules") or []):
                    return True
        return False

    def destroy_metric(self, m: dict) -> None:
        """DELETE of a metric or method: porta's Metric#destroyable? refusals answer 403 with the errors."""
        errors = []
        if self.metric_in_latest_configs(m):
            kind = "Method" if m.get("parent_id") else "Metric"
            errors.append(f"{kind} is used by the latest gateway configuration and cannot be deleted")
        if m["system_name"] == "hits":
            errors.append("The Hits metric cannot be deleted")
        if errors:
            raise Reply(403, {"errors": {"base": errors}})
        self._delete_metric(m)

    def _delete_metric(self, m: dict) -> None:
        st = self.store
        for child in st.all("metric", parent_id=m["id"]):
            self._delete_metric(child)
        for kind in ("mapping_rule", "limit", "pricing_rule"):
            for obj in st.all(kind, metric_id=m["id"]):
                st.delete(kind, obj["id"])
        st.delete("metric", m["id"])


# ---- metrics and methods (products and backend APIs)
OWNERS = {"services": "service", "backend_apis": "backend_api"}
OWN = r"/(?P<owners>services|backend_apis)/(?P<oid>\d+)"


def need_owner(api, owners: str, oid: str) -> tuple[str, int]:
    owner = OWNERS[owners]
    if owner == "service":
        api.need_service(oid)
    else:
        api.need("backend_api", oid)
    return owner, int(oid)


def maybe_paginated(api, req: Req, owner: str, key: str, items: list) -> dict:
    if owner == "backend_api":
        items, meta = paginate(items, req)
    else:
        meta = None
    out: dict = {key: items}
    if meta:
        out["metadata"] = meta
    return out


@route("GET", A + OWN + "/metrics")
def metrics_list(api, req: Req, owners, oid):
    owner, oid = need_owner(api, owners, oid)
    # every metric the owner has, methods included (porta: Admin::Api::BackendApis::MetricsController
    # #index lists backend_api.metrics, `has_many :metrics, as: :owner`, app/models/backend_api.rb)
    ms = api.store.all("metric", owner=owner, owner_id=oid)
    return maybe_paginated(api, req, owner, "metrics", [api.metric_json(m) for m in ms])


@route("POST", A + OWN + "/metrics")
def metric_create(api, req: Req, owners, oid):
    owner, oid = need_owner(api, owners, oid)
    return created(api.metric_json(api._create_metric(req.params, owner, oid)))


def need_metric(api, owners, oid, mid, parent=None) -> tuple[str, dict]:
    owner, oid = need_owner(api, owners, oid)
    m = api.need("metric", mid, owner=owner, owner_id=oid)
    if (parent is None and m.get("parent_id")) or (parent is not None and m.get("parent_id") != int(parent)):
        raise not_found()
    return owner, m


def update_metric(api, req: Req, m: dict) -> None:
    if req.has("friendly_name"):
        if not str(req.get("friendly_name") or "").strip():
            raise invalid("friendly_name", "can't be blank")
        if any(x["friendly_name"] == req.get("friendly_name") and x["id"] != m["id"]
               for x in api.store.all("metric", owner=m["owner"], owner_id=m["owner_id"])):
            raise invalid("friendly_name", "has already been taken")
        m["friendly_name"] = str(req.get("friendly_name"))
    if req.has("description"):
        m["description"] = req.get("description")
    if req.has("unit") and not m.get("parent_id"):
        m["unit"] = str(req.get("unit"))
    m["updated_at"] = now_iso()
    api.store.save("metric", m)


@route("GET", A + OWN + "/metrics/" + ID)
def metric_show(api, req: Req, owners, oid, id):
    return api.metric_json(need_metric(api, owners, oid, id)[1])


@route("PUT", A + OWN + "/metrics/" + ID)
def metric_update(api, req: Req, owners, oid, id):
    m = need_metric(api, owners, oid, id)[1]
    update_metric(api, req, m)
    return api.metric_json(m)


@route("DELETE", A + OWN + "/metrics/" + ID)
def metric_delete(api, req: Req, owners, oid, id):
    api.destroy_metric(need_metric(api, owners, oid, id)[1])
    return Reply(200, None)


MET = r"/metrics/(?P<mid>\d+)/methods"


@route("GET", A + OWN + MET)
def methods_list(api, req: Req, owners, oid, mid):
    owner, m = need_metric(api, owners, oid, mid)
    return maybe_paginated(api, req, owner, "methods",
                           [api.metric_json(x, as_method=True) for x in api.store.all("metric", parent_id=m["id"])])


@route("POST", A + OWN + MET)
def method_create(api, req: Req, owners, oid, mid):
    owner, m = need_metric(api, owners, oid, mid)
    return created(api.metric_json(api._create_metric(req.params, owner, m["owner_id"], parent_id=m["id"]), as_method=True))


@route("GET", A + OWN + MET + "/" + ID)
def method_show(api, req: Req, owners, oid, mid, id):
    return api.metric_json(need_metric(api, owners, oid, id, parent=mid)[1], as_method=True)


@route("PUT", A + OWN + MET + "/" + ID)
def method_update(api, req: Req, owners, oid, mid, id):
    m = need_metric(api, owners, oid, id, parent=mid)[1]
    update_metric(api, req, m)
    return api.metric_json(m, as_method=True)


@route("DELETE", A + OWN + MET + "/" + ID)
def method_delete(api, req: Req, owners, oid, mid, id):
    api.destroy_metric(need_metric(api, owners, oid, id, parent=mid)[1])
    return Reply(200, None)


# ---- mapping rules
RULES = r"/(?P<owners>services|backend_apis)/(?P<oid>\d+)(?:/proxy)?/mapping_rules"


def rule_fields(api, req: Req, owner: str, oid: int, rule: dict) -> dict:
    errors: dict[str, list[str]] = {}
    if req.has("http_method") or "http_method" not in rule:
        method = str(req.get("http_method") or "").upper()
        if method not in HTTP_METHODS:
            errors["http_method"] = ["is not included in the list"]
        rule["http_method"] = method
    if req.has("pattern") or "pattern" not in rule:
        pattern = str(req.get("pattern") or "")
        if not pattern:
            errors["pattern"] = ["can't be blank"]
        elif not PATTERN_RE.match(pattern) or len(pattern) > 255:
            errors["pattern"] = ["is invalid"]
        else:
            names = re.findall(r"\{(\w+)\}", pattern)
            if len(names) != len(set(names)):
                errors["pattern"] = ["is invalid"]
        rule["pattern"] = pattern
    if req.has("delta") or "delta" not in rule:
        delta = to_int(req.get("delta"))
        if delta is None:
            errors["delta"] = ["is not a number"]
        elif delta <= 0:
            errors["delta"] = ["must be greater than 0"]
        rule["delta"] = delta
    if req.has("metric_id") or "metric_id" not in rule:
        allowed = {m["id"] for m in api.store.all("metric", owner=owner, owner_id=oid)}
        if owner == "service":
            for u in api.store.all("backend_usage", service_id=oid):
                allowed |= {m["id"] for m in api.store.all("metric", owner="backend_api", owner_id=u["backend_id"])}
        mid = to_int(req.get("metric_id"))
        if mid not in allowed:
            errors["metric_id"] = ["can't be blank"] if mid is None else ["is invalid"]
        rule["metric_id"] = mid
    if req.has("last") or "last" not in rule:
        rule["last"] = truthy(req.get("last", False))
    if errors:
        raise Reply(422, {"errors": errors})
    siblings = [r for r in api.store.all("mapping_rule", owner=owner, owner_id=oid) if r["id"] != rule.get("id")]
    if req.has("position") and to_int(req.get("position")):
        rule["position"] = to_int(req.get("position"))
    elif "position" not in rule:
        rule["position"] = max((r["position"] for r in siblings), default=0) + 1
    rule["updated_at"] = now_iso()
    return rule


@route("GET", A + RULES)
def rules_list(api, req: Req, owners, oid):
    owner, oid = need_owner(api, owners, oid)
    rules = sorted(api.store.all("mapping_rule", owner=owner, owner_id=oid), key=lambda r: (r["position"], r["id"]))
    return maybe_paginated(api, req, owner, "mapping_rules", [api.rule_json(r) for r in rules])


@route("POST", A + RULES)
def rule_create(api, req: Req, owners, oid):
    owner, oid = need_owner(api, owners, oid)
    rule = rule_fields(api, req, owner, oid, {"owner": owner, "owner_id": oid, "created_at": now_iso()})
    return created(api.rule_json(api.store.insert("mapping_rule", rule)))


@route("GET", A + RULES + "/" + ID)
def rule_show(api, req: Req, owners, oid, id):
    owner, oid = need_owner(api, owners, oid)
    return api.rule_json(api.need("mapping_rule", id, owner=owner, owner_id=oid))


@route("PUT", A + RULES + "/" + ID)  # PATCH for products, PUT for backends: both accepted
def rule_update(api, req: Req, owners, oid, id):
    owner, oid = need_owner(api, owners, oid)
    rule = rule_fields(api, req, owner, oid, api.need("mapping_rule", id, owner=owner, owner_id=oid))
    return api.rule_json(api.store.save("mapping_rule", rule))


@route("DELETE", A + RULES + "/" + ID)
def rule_delete(api, req: Req, owners, oid, id):
    owner, oid = need_owner(api, owners, oid)
    api.store.delete("mapping_rule", api.need("mapping_rule", id, owner=owner, owner_id=oid)["id"])
    return Reply(200, None)
