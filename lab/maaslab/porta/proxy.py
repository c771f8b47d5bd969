"""Proxy, policies, deploy and proxy configs (porta admin/api/services/proxies_controller,
proxy/policies_controller, proxy_configs_controller)."""
from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from ..context import now_iso
from .server import (
    A, CREDENTIALS_LOCATIONS, ENVS, PROXY_FIELDS_INT, PROXY_FIELDS_STR, created, invalid, not_found, paginate,
    Reply, Req, route, to_int, truthy, with_port)


class ProxyMixin:
    def api_backend(self, s: dict) -> str | None:
        if s["proxy"].get("api_backend"):
            return s["proxy"]["api_backend"]
        for u in self.store.all("backend_usage", service_id=s["id"]):
            if u["path"] == "/":
                b = self.store.get("backend_api", u["backend_id"])
                return b["private_endpoint"] if b else None
        return None

    def build_content(self, s: dict) -> dict:
        """The APIcast configuration snapshot that deploy/promote store (see ARCHITECTURE.md)."""
        st = self.store
        p = s["proxy"]
        metrics = {m["id"]: m for m in st.all("metric")}
        rules = []
        own = sorted(st.all("mapping_rule", owner="service", owner_id=s["id"]), key=lambda r: (r["position"], r["id"]))
        for r in own:
            rules.append((r, r["pattern"]))
        backends = []
        for u in st.all("backend_usage", service_id=s["id"]):
            b = st.get("backend_api", u["backend_id"])
            if not b:
                continue
            backends.append({"path": u["path"], "backend_api": {"system_name": b["system_name"],
                                                                "private_endpoint": b["private_endpoint"]}})
            brules = sorted(st.all("mapping_rule", owner="backend_api", owner_id=b["id"]),
                            key=lambda r: (r["position"], r["id"]))
            prefix = u["path"].rstrip("/")
            for r in brules:
                rules.append((r, prefix + r["pattern"] if prefix else r["pattern"]))
        proxy_rules = [{"id": r["id"], "http_method": r["http_method"], "pattern": pattern,
                        "metric_id": r["metric_id"],
                        "metric_system_name": metrics.get(r["metric_id"], {}).get("system_name", "hits"),
                        "delta": r["delta"], "last": r["last"], "parameters": re.findall(r"\{(\w+)\}", pattern),
                        "querystring_parameters": dict(kv.split("=", 1) if "=" in kv else (kv, "")
                                                       for kv in pattern.partition("?")[2].split("&") if kv)}
                       for r, pattern in rules]
        # porta serializes the whole proxy row (Apicast::ProviderSource SERVICE_SERIALIZE_OPTIONS): any
        # saved change (lock_version, updated_at, api_test_path...) makes the content differ
        proxy = dict(p)
        proxy.update(api_backend=self.api_backend(s), service_id=s["id"],
                     policy_chain=[{"name": x["name"], "version": x["version"],
                                    "configuration": x.get("configuration") or {}}
                                   for x in s["policies"] if x.get("enabled", True)],
                     proxy_rules=proxy_rules)
        return {"id": s["id"], "system_name": s["system_name"], "name": s["name"],
                "description": s.get("description"), "created_at": s["created_at"], "updated_at": s["updated_at"],
                "backend_version": s["backend_version"], "deployment_option": s["deployment_option"],
                "backend_authentication_type": "service_token", "backend_authentication_value": s["service_token"],
                "backend": {"endpoint": self.ctx.urls["backend"],
                            "host": urlsplit(self.ctx.urls["backend"]).netloc},
                "proxy": proxy, "backend_api_configs": backends}

    def latest_config(self, sid: int, env: str) -> dict | None:
        configs = self.store.all("proxy_config", service_id=sid, environment=env)
        return max(configs, key=lambda c: c["version"]) if configs else None

    def deploy(self, s: dict) -> dict | None:
        """New sandbox version only if the generated content differs from the latest one."""
        content = self.build_content(s)
        latest = self.latest_config(s["id"], "sandbox")
        if latest and latest["content"] == content:
            return None
        if s["state"] == "incomplete":
            s["state"] = "published"
            self.store.save("service", s)
        return self.store.insert("proxy_config", {
            "service_id": s["id"], "environment": "sandbox", "version": (latest["version"] + 1) if latest else 1,
            "content": content, "created_at": now_iso()})


# ---- policies, proxy, deploy, configs
@route("GET", A + "/services/(?P<sid>\\d+)/proxy/policies")
def policies_show(api, req: Req, sid):
    return {"policies_config": api.need_service(sid)["policies"]}


@route("PUT", A + "/services/(?P<sid>\\d+)/proxy/policies")
def policies_update(api, req: Req, sid):
    s = api.need_service(sid)
    raw = req.get("policies_config")
    if raw is None:
        raise Reply(400, "Required parameter missing: policies_config", "text/plain; charset=utf-8")
    try:
        chain = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise invalid("policies_config", "is invalid") from None
    if not isinstance(chain, list) or not all(isinstance(x, dict) and x.get("name") and x.get("version")
                                              for x in chain):
        raise invalid("policies_config", "is invalid")
    if not any(x["name"] == "apicast" for x in chain):
        raise invalid("policies_config", "apicast policy is required")
    policies = [{"name": str(x["name"]), "version": str(x["version"]),
                 "configuration": x.get("configuration") if isinstance(x.get("configuration"), dict) else {},
                 "enabled": truthy(x.get("enabled", True))} for x in chain]
    if policies != s["policies"]:  # policies_config is a column of the proxy row
        s["policies"] = policies
        s["proxy"]["lock_version"] += 1
        s["proxy"]["updated_at"] = now_iso()
        api.store.save("service", s)
    return {"policies_config": s["policies"]}


@route("GET", A + "/services/(?P<sid>\\d+)/proxy")
def proxy_show(api, req: Req, sid):
    return api.proxy_json(api.need_service(sid))


@route("PUT", A + "/services/(?P<sid>\\d+)/proxy")
def proxy_patch(api, req: Req, sid):
    s = api.need_service(sid)
    p = s["proxy"]
    before = dict(p)
    for k in ("endpoint", "sandbox_endpoint"):
        if req.get(k):
            try:
                u = urlsplit(str(req.get(k)))
                ok = u.scheme in ("http", "https") and u.hostname and not u.query and not u.fragment
                p[k] = with_port(str(req.get(k))) if ok else None
            except ValueError:
                ok = False
            if not ok:
                raise invalid(k, "is invalid")
    if req.has("credentials_location"):
        if req.get("credentials_location") not in CREDENTIALS_LOCATIONS:
            raise invalid("credentials_location", "is not included in the list")
        p["credentials_location"] = req.get("credentials_location")
    for k in PROXY_FIELDS_STR:
        if req.has(k):
            p[k] = None if req.get(k) in (None, "") and k in ("api_backend", "hostname_rewrite") else str(req.get(k))
    for k in PROXY_FIELDS_INT:
        if req.has(k):
            v = to_int(req.get(k))
            if v is None:
                raise invalid(k, "is not a number")
            p[k] = v
    if p != before:  # ActiveRecord saves (lock_version + 1, updated_at) only a changed row
        p["lock_version"] += 1
        p["updated_at"] = now_iso()
        api.store.save("service", s)
    api.deploy(s)  # porta's ProxiesController#update deploys to staging right away
    return api.proxy_json(s)


@route("POST", A + "/services/(?P<sid>\\d+)/proxy/deploy")
def proxy_deploy(api, req: Req, sid):
    s = api.need_service(sid)
    api.deploy(s)
    return created(api.proxy_json(s))


def need_env(env: str) -> str:
    if env not in ENVS:
        raise Reply(400, {"error": "invalid environment"})
    return ENVS[env]


CFG = A + "/services/(?P<sid>\\d+)/proxy/configs/(?P<env>[^/]+)"


@route("GET", CFG)
def configs_list(api, req: Req, sid, env):
    env = need_env(env)
    s = api.need_service(sid)
    cfgs = sorted(api.store.all("proxy_config", service_id=s["id"], environment=env), key=lambda c: c["version"])
    return {"proxy_configs": [api.config_json(c) for c in cfgs]}


@route("GET", CFG + "/latest")
def config_latest(api, req: Req, sid, env):
    env = need_env(env)
    c = api.latest_config(api.need_service(sid)["id"], env)
    if c is None:
        raise not_found()
    return api.config_json(c)


@route("GET", CFG + "/(?P<version>\\d+)")
def config_show(api, req: Req, sid, env, version):
    env = need_env(env)
    c = api.store.first("proxy_config", service_id=api.need_service(sid)["id"], environment=env, version=int(version))
    if c is None:
        raise not_found()
    return api.config_json(c)


@route("POST", CFG + "/(?P<version>\\d+)/promote")
def config_promote(api, req: Req, sid, env, version):
    env = need_env(env)
    s = api.need_service(sid)
    c = api.store.first("proxy_config", service_id=s["id"], environment=env, version=int(version))
    if c is None:
        raise not_found()
    if not req.has("to"):
        raise Reply(400, "Required parameter missing: to", "text/plain; charset=utf-8")
    to = ENVS.get(str(req.get("to")))
    if to is None or to == env:
        raise invalid("environment", "is not included in the list")
    if api.store.first("proxy_config", service_id=s["id"], environment=to, version=c["version"]):
        raise invalid("version", "has already been taken")
    copy = api.store.insert("proxy_config", {"service_id": s["id"], "environment": to, "version": c["version"],
                                             "content": c["content"], "created_at": now_iso()})
    return created(api.config_json(copy))


@route("GET", A + "/account/proxy_configs/(?P<env>[^/]+)")
def account_configs(api, req: Req, env):
    env = need_env(env)
    latest: dict[int, dict] = {}
    for c in api.store.all("proxy_config", environment=env):  # one scan: APIcast staging asks per request
        if c["version"] >= latest.get(c["service_id"], {"version": 0})["version"]:
            latest[c["service_id"]] = c
    out = []
    for s in api.services():
        c = latest.get(s["id"])
        if c is None:
            continue
        if req.get("version") not in (None, "", "latest") and str(c["version"]) != str(req.get("version")):
            continue
        if req.get("host"):
            key = "endpoint" if env == "production" else "sandbox_endpoint"
            if urlsplit(c["content"]["proxy"].get(key) or "").hostname != req.get("host"):
                continue
        out.append(api.config_json(c))
    page, meta = paginate(out, req)
    res: dict = {"proxy_configs": page}
    if meta:
        res["metadata"] = meta
    return res
