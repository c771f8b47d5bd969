"""The lab's porta (3scale admin API) and backend listener, over real HTTPS/HTTP with real clients."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
from threescale_api import ThreeScaleClient

from maaslab.context import LabContext
from maaslab.porta import Porta


class Lab:
    """A started Porta plus a requests session that trusts the lab CA (env CA bundles ignored)."""

    def __init__(self, directory: Path, users: int = 3, ports: dict | None = None, settings: dict | None = None):
        self.ctx = LabContext.create(directory, settings or {"users": users}, ports)
        self.ctx.urls["model"] = "http://127.0.0.1:1"
        self.porta = Porta(self.ctx)
        self.porta.start()
        self.url = self.ctx.urls["porta"]
        self.token = self.ctx.secret("porta_token")
        self.ca = str(self.ctx.tls.ca_cert)
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = self.ca
        self.http.auth = ("", self.token)  # porta-go-client style: Basic ":" + token

    def call(self, method: str, path: str, **kw) -> requests.Response:
        return self.http.request(method, self.url + path, timeout=10, **kw)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, **kw):
        return self.call("POST", path, **kw)

    def put(self, path, **kw):
        return self.call("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.call("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)

    def ok(self, method: str, path: str, status: int = 200, **kw) -> dict:
        r = self.call(method, path, **kw)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        return r.json() if r.content else {}

    def stop(self):
        self.http.close()
        self.porta.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("porta"))
    yield lab
    lab.stop()


def new_product(lab: Lab, name: str, **extra) -> dict:
    return lab.ok("POST", "/admin/api/services.json", 201, data={"name": name, **extra})["service"]


def new_plan(lab: Lab, sid: int, name: str = "Standard Plan", **extra) -> dict:
    return lab.ok("POST", f"/admin/api/services/{sid}/application_plans.json", 201,
                  data={"name": name, **extra})["application_plan"]


def account_id(lab: Lab, username: str) -> int:
    return lab.ok("GET", "/admin/api/accounts/find.json", params={"username": username})["account"]["id"]


def metric_id(lab: Lab, sid: int, system_name: str = "hits") -> int:
    metrics = lab.ok("GET", f"/admin/api/services/{sid}/metrics.json")["metrics"]
    return next(m["metric"]["id"] for m in metrics if "metric" in m and m["metric"]["system_name"] == system_name)


# ---------------------------------------------------------------- transport, auth, errors
def test_auth_variants_and_errors(lab):
    plain = requests.Session()
    plain.trust_env = False
    url = lab.url + "/admin/api/accounts.json"
    for kw in ({}, {"params": {"access_token": "wrong"}}, {"auth": ("wrong", "")}):
        r = plain.get(url, verify=lab.ca, **kw)
        assert (r.status_code, r.json()) == (403, {"error": "Access denied"})
    assert plain.get(url, verify=lab.ca, params={"access_token": lab.token}).status_code == 200
    assert plain.get(url, verify=lab.ca, auth=(lab.token, "")).status_code == 200
    assert plain.get(url, verify=lab.ca, auth=(lab.token, "ignored")).status_code == 200  # first non-blank
    bearer = plain.get(url, verify=lab.ca, headers={"Authorization": f"Bearer {lab.token}"})
    assert bearer.status_code == 403
    # token in a form body works for writes
    r = plain.put(lab.url + "/admin/api/provider.json", verify=lab.ca,
                  data={"access_token": lab.token, "support_email": "ops@example.com"})
    assert r.status_code == 200 and r.json()["account"]["support_email"] == "ops@example.com"
    assert lab.get("/admin/api/services.xml").status_code == 406  # XML: only accounts.xml (test_porta_accounts_xml)
    r = lab.get("/admin/api/nothing-here.json")
    assert (r.status_code, r.json()) == (404, {"status": "Not found"})
    r = lab.get("/admin/api/accounts/999999.json")
    assert (r.status_code, r.json()) == (404, {"status": "Not found"})


def test_seeded_accounts_find_signup_delete(lab):
    accounts = lab.ok("GET", "/admin/api/accounts.json")
    assert "metadata" not in accounts  # only when more than one page
    names = [a["account"]["org_name"] for a in accounts["accounts"]]
    assert names[:3] == ["user1", "user2", "user3"]
    acc = accounts["accounts"][0]["account"]
    assert isinstance(acc["id"], int) and acc["state"] == "approved"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", acc["created_at"])
    assert lab.ok("GET", "/admin/api/accounts.json", params={"state": "pending"})["accounts"] == []
    users = lab.ok("GET", f"/admin/api/accounts/{acc['id']}/users.json")["users"]
    assert [(u["user"]["username"], u["user"]["email"], u["user"]["role"], u["user"]["state"]) for u in users] == [
        ("user1", "user1@example.com", "admin", "active")]
    uid = users[0]["user"]["id"]
    # precedence username > user_id > email
    found = lab.ok("GET", "/admin/api/accounts/find.json",
                   params={"username": "user2", "email": "user1@example.com"})["account"]
    assert found["org_name"] == "user2"
    assert lab.ok("GET", "/admin/api/accounts/find.json", params={"user_id": uid})["account"]["id"] == acc["id"]
    assert lab.ok("GET", "/admin/api/accounts/find.json",
                  params={"email": "user3@example.com"})["account"]["org_name"] == "user3"
    # email lookups are case-sensitive (utf8mb3_bin; porta/CONTRACT.md §11.5)
    assert lab.get("/admin/api/accounts/find.json", params={"email": "USER3@example.com"}).status_code == 404
    assert lab.get("/admin/api/accounts/find.json", params={"username": "nobody"}).status_code == 404
    assert lab.get("/admin/api/accounts/find.json").status_code == 404
    # signup (wrapped form params) and duplicates
    created = lab.ok("POST", "/admin/api/signup.json", 201,
                     data={"account[org_name]": "Acme", "account[username]": "acme", "account[email]": "a@acme.io",
                           "account[password]": "pw"})["account"]
    assert created["org_name"] == "Acme" and created["state"] == "approved"
    r = lab.post("/admin/api/signup.json", json={"org_name": "Acme2", "username": "acme", "email": "a@acme.io",
                                                  "password": "x"})
    assert r.status_code == 422
    assert r.json()["errors"] == {"username": ["has already been taken"], "email": ["has already been taken"]}
    r = lab.post("/admin/api/signup.json", data={"username": "x1", "email": "x1@x.io"})
    assert r.status_code == 422 and r.json()["errors"]["org_name"] == ["can't be blank"]
    r = lab.delete(f"/admin/api/accounts/{created['id']}.json")
    assert r.status_code == 200 and r.content == b""
    assert lab.get(f"/admin/api/accounts/{created['id']}.json").status_code == 404


def test_account_users(lab):
    aid = account_id(lab, "user1")
    base = f"/admin/api/accounts/{aid}/users"
    user = lab.ok("POST", base + ".json", 201, data={"username": "dev1", "email": "dev1@example.com",
                                                     "password": "pw"})["user"]
    assert (user["state"], user["role"]) == ("pending", "member")
    assert lab.post(base + ".json", data={"username": "dev1", "email": "x@example.com"}).status_code == 422
    assert lab.ok("PUT", f"{base}/{user['id']}/activate.json")["user"]["state"] == "active"
    assert lab.ok("PUT", f"{base}/{user['id']}/admin.json")["user"]["role"] == "admin"
    assert lab.ok("PUT", f"{base}/{user['id']}.json", data={"email": "dev1b@example.com"})["user"]["email"] == \
        "dev1b@example.com"
    assert [u["user"]["username"] for u in lab.ok("GET", base + ".json", params={"role": "admin"})["users"]] == [
        "user1", "dev1"]
    assert lab.ok("GET", "/admin/api/accounts/find.json", params={"username": "dev1"})["account"]["id"] == aid
    lab.ok("DELETE", f"{base}/{user['id']}.json")
    assert lab.get(f"{base}/{user['id']}.json").status_code == 404


def test_provider_site_access_code(lab):
    code = lab.ok("GET", "/admin/api/provider.json")["account"]["site_access_code"]
    assert re.fullmatch(r"[0-9a-f]{10}", code)
    assert lab.ok("PUT", "/admin/api/provider.json",
                  data={"account[site_access_code]": "open-sesame"})["account"]["site_access_code"] == "open-sesame"
    cleared = lab.ok("PUT", "/admin/api/provider.json", data={"site_access_code": ""})["account"]
    assert cleared["site_access_code"] == ""
    assert lab.ok("GET", "/admin/api/provider.json")["account"]["site_access_code"] == ""


# ---------------------------------------------------------------- products, metrics, rules, backends
def test_services_crud_and_defaults(lab):
    default = lab.ok("GET", "/admin/api/services.json")["services"][0]["service"]
    assert (default["name"], default["system_name"]) == ("API", "api")
    r = lab.delete(f"/admin/api/services/{default['id']}.json")
    assert r.status_code == 403 and "errors" in r.json()
    svc = new_product(lab, "My LLM-1", description="d")
    assert svc["system_name"] == "my_llm_1" and svc["backend_version"] == "1"
    assert svc["deployment_option"] == "hosted" and "links" in svc
    r = lab.post("/admin/api/services.json", data={"name": "Other", "system_name": "my_llm_1"})
    assert (r.status_code, r.json()) == (422, {"errors": {"system_name": ["has already been taken"]}})
    assert lab.post("/admin/api/services.json", data={"name": ""}).status_code == 422
    plans = lab.ok("GET", f"/admin/api/services/{svc['id']}/service_plans.json")["plans"]
    assert [(p["service_plan"]["name"], p["service_plan"]["default"]) for p in plans] == [("Default", False)]
    assert "system_name" not in plans[0]["service_plan"]
    hits = metric_id(lab, svc["id"])
    rules = lab.ok("GET", f"/admin/api/services/{svc['id']}/proxy/mapping_rules.json")["mapping_rules"]
    assert [(r["mapping_rule"]["http_method"], r["mapping_rule"]["pattern"], r["mapping_rule"]["metric_id"])
            for r in rules] == [("GET", "/", hits)]
    upd = lab.ok("PUT", f"/admin/api/services/{svc['id']}.json",
                 data={"service[name]": "Renamed", "system_name": "ignored"})["service"]
    assert (upd["name"], upd["system_name"]) == ("Renamed", "my_llm_1")
    assert lab.delete(f"/admin/api/services/{svc['id']}.json").status_code == 200
    assert lab.get(f"/admin/api/services/{svc['id']}.json").status_code == 404
    listed = [s["service"]["id"] for s in lab.ok("GET", "/admin/api/services.json")["services"]]
    assert svc["id"] not in listed


def test_metrics_methods_mapping_rules(lab):
    sid = new_product(lab, "Rules Product")["id"]
    hits = metric_id(lab, sid)
    method = lab.ok("POST", f"/admin/api/services/{sid}/metrics/{hits}/methods.json", 201,
                    data={"friendly_name": "Chat Completions", "system_name": "chat/completions"})["method"]
    assert method["parent_id"] == hits and method["system_name"] == "chat/completions"
    r = lab.post(f"/admin/api/services/{sid}/metrics/{hits}/methods.json",
                 data={"friendly_name": "Other", "system_name": "chat/completions"})
    assert r.status_code == 422 and r.json()["errors"]["system_name"] == ["has already been taken"]
    metric = lab.ok("POST", f"/admin/api/services/{sid}/metrics.json", 201,
                    data={"friendly_name": "Tokens", "system_name": "tokens", "unit": "token"})["metric"]
    assert metric["unit"] == "token"
    assert lab.post(f"/admin/api/services/{sid}/metrics.json", data={"friendly_name": "NoUnit"}).status_code == 422
    # metrics list includes methods, each wrapped as `metric` with its parent_id (porta
    # app/representers/metric_representer.rb; porta-go-client subtracts the methods list)
    listed = lab.ok("GET", f"/admin/api/services/{sid}/metrics.json")["metrics"]
    assert all(list(m) == ["metric"] for m in listed)
    assert {"hits", "tokens", "chat/completions"} <= {m["metric"]["system_name"] for m in listed}
    assert [m["metric"]["parent_id"] for m in listed if m["metric"].get("parent_id")] == [hits]
    methods = lab.ok("GET", f"/admin/api/services/{sid}/metrics/{hits}/methods.json")["methods"]
    assert [m["method"]["id"] for m in methods] == [method["id"]]
    rule = lab.ok("POST", f"/admin/api/services/{sid}/proxy/mapping_rules.json", 201,
                  data={"http_method": "POST", "pattern": "/v1/chat/completions$", "delta": 1,
                        "metric_id": method["id"]})["mapping_rule"]
    assert rule["last"] is False and rule["position"] == 2
    for bad, field in (({"http_method": "TRACE"}, "http_method"), ({"delta": 0}, "delta"),
                       ({"pattern": "v1/x"}, "pattern"), ({"metric_id": 999999}, "metric_id")):
        body = {"http_method": "GET", "pattern": "/ok", "delta": 1, "metric_id": hits, **bad}
        r = lab.post(f"/admin/api/services/{sid}/proxy/mapping_rules.json", data=body)
        assert r.status_code == 422 and field in r.json()["errors"], (bad, r.text)
    upd = lab.ok("PATCH", f"/admin/api/services/{sid}/proxy/mapping_rules/{rule['id']}.json",
                 data={"delta": 3, "last": "true"})["mapping_rule"]
    assert (upd["delta"], upd["last"]) == (3, True)
    assert lab.delete(f"/admin/api/services/{sid}/proxy/mapping_rules/{rule['id']}.json").status_code == 200
    assert lab.delete(f"/admin/api/services/{sid}/metrics/{hits}/methods/{method['id']}.json").status_code == 200
    assert lab.get(f"/admin/api/services/{sid}/metrics/{hits}/methods/{method['id']}.json").status_code == 404


def test_backend_apis_private_endpoint_and_usages(lab):
    cases = {"http://localhost:8000": "Sorry, this domain is protected",
             "https://127.0.0.5": "Sorry, this domain is protected",
             "https://user:pw@model.example.com": "is invalid",
             "https://model.example.com/?a=b": "is invalid",
             "https://model.example.com/#frag": "is invalid",
             "not a url": "is invalid"}
    for url, msg in cases.items():
        r = lab.post("/admin/api/backend_apis.json", data={"name": "Bad", "private_endpoint": url})
        assert (r.status_code, r.json()) == (422, {"errors": {"private_endpoint": [msg]}}), url
    b = lab.ok("POST", "/admin/api/backend_apis.json", 201,
               data={"name": "TinyLlama", "system_name": "tinyllama",
                     "private_endpoint": "https://tinyllama.apps.example.com"})["backend_api"]
    assert b["private_endpoint"] == "https://tinyllama.apps.example.com:443"
    # the lab's model server is the one loopback URL accepted (documented deviation)
    model = lab.ok("POST", "/admin/api/backend_apis.json", 201,
                   data={"name": "Local", "private_endpoint": "http://127.0.0.1:1/v1"})["backend_api"]
    assert model["private_endpoint"] == "http://127.0.0.1:1/v1"
    r = lab.post("/admin/api/backend_apis.json", data={"name": "Dup", "system_name": "tinyllama",
                                                       "private_endpoint": "https://x.example.com"})
    assert r.status_code == 422 and r.json()["errors"]["system_name"] == ["has already been taken"]
    upd = lab.ok("PUT", f"/admin/api/backend_apis/{b['id']}.json",
                 data={"private_endpoint": "http://tinyllama.svc"})["backend_api"]
    assert upd["private_endpoint"] == "http://tinyllama.svc:80"
    bmetrics = lab.ok("GET", f"/admin/api/backend_apis/{b['id']}/metrics.json")["metrics"]
    bhits = bmetrics[0]["metric"]["id"]
    assert bmetrics[0]["metric"]["system_name"] == f"hits.{b['id']}"  # porta's extended backend system name
    meth = lab.ok("POST", f"/admin/api/backend_apis/{b['id']}/metrics/{bhits}/methods.json", 201,
                  data={"friendly_name": "Completions", "system_name": "completions"})["method"]
    lab.ok("POST", f"/admin/api/backend_apis/{b['id']}/mapping_rules.json", 201,
           data={"http_method": "POST", "pattern": "/v1/completions", "delta": 1, "metric_id": meth["id"]})
    sid = new_product(lab, "Backend User")["id"]
    usage = lab.ok("POST", f"/admin/api/services/{sid}/backend_usages.json", 201,
                   data={"backend_api_id": b["id"], "path": "/llm"})["backend_usage"]
    assert (usage["path"], usage["backend_id"], usage["service_id"]) == ("/llm", b["id"], sid)
    listed = lab.ok("GET", f"/admin/api/services/{sid}/backend_usages.json")
    assert isinstance(listed, list) and listed[0]["backend_usage"]["id"] == usage["id"]
    r = lab.post(f"/admin/api/services/{sid}/backend_usages.json", data={"backend_api_id": model["id"],
                                                                         "path": "/LLM"})
    assert r.status_code == 422 and r.json()["errors"]["path"] == ["has already been taken"]
    r = lab.delete(f"/admin/api/backend_apis/{b['id']}.json")
    assert r.status_code == 403 and "errors" in r.json()
    lab.ok("DELETE", f"/admin/api/services/{sid}/backend_usages/{usage['id']}.json")
    lab.ok("DELETE", f"/admin/api/backend_apis/{b['id']}.json")
    assert lab.get(f"/admin/api/backend_apis/{b['id']}.json").status_code == 404


def test_application_plans_limits_pricing_policies(lab):
    sid = new_product(lab, "Plans Product")["id"]
    plan = new_plan(lab, sid, "Standard Plan", state_event="publish")
    assert (plan["system_name"], plan["state"], plan["default"], plan["custom"]) == (
        "standard_plan", "published", False, False)
    r = lab.post(f"/admin/api/services/{sid}/application_plans.json",
                 data={"name": "x", "system_name": "standard_plan"})
    assert r.status_code == 422
    upd = lab.ok("PUT", f"/admin/api/services/{sid}/application_plans/{plan['id']}.json",
                 data={"approval_required": "true", "cost_per_month": "10.00"})["application_plan"]
    # porta plan_representer.rb: cost_per_month.to_f, a JSON number
    assert upd["approval_required"] is True and upd["cost_per_month"] == 10.0
    hits = metric_id(lab, sid)
    base = f"/admin/api/application_plans/{plan['id']}/metrics/{hits}"
    lim = lab.ok("POST", base + "/limits.json", 201, data={"period": "minute", "value": 5})["limit"]
    assert (lim["period"], lim["value"], lim["metric_id"], lim["plan_id"]) == ("minute", 5, hits, plan["id"])
    assert lab.post(base + "/limits.json", data={"period": "minute", "value": 1}).status_code == 422
    assert lab.post(base + "/limits.json", data={"period": "fortnight", "value": 1}).status_code == 422
    assert lab.ok("PUT", f"{base}/limits/{lim['id']}.json", data={"value": 7})["limit"]["value"] == 7
    assert [x["limit"]["id"] for x in lab.ok("GET", base + "/limits.json")["limits"]] == [lim["id"]]
    assert lab.get(f"/admin/api/application_plans/{plan['id']}/metrics/999999/limits.json").status_code == 404
    rule = lab.ok("POST", base + "/pricing_rules.json", 201,
                  data={"min": 1, "max": 100, "cost_per_unit": "0.5"})["pricing_rule"]
    assert (rule["min"], rule["max"], rule["cost_per_unit"]) == (1, 100, "0.5")
    assert lab.post(base + "/pricing_rules.json", data={"min": 50, "max": 60, "cost_per_unit": 1}).status_code == 422
    assert len(lab.ok("GET", f"/admin/api/application_plans/{plan['id']}/pricing_rules.json")["pricing_rules"]) == 1
    lab.ok("DELETE", f"{base}/pricing_rules/{rule['id']}.json")
    lab.ok("DELETE", f"{base}/limits/{lim['id']}.json")
    # policies: JSON string (form) and JSON array (porta-go-client) both accepted; apicast required
    chain = [{"name": "cors", "version": "builtin", "configuration": {"allow_origin": "*"}, "enabled": True},
             {"name": "apicast", "version": "builtin", "configuration": {}, "enabled": True}]
    got = lab.ok("PUT", f"/admin/api/services/{sid}/proxy/policies.json",
                  data={"policies_config": json.dumps(chain)})["policies_config"]
    assert got == chain
    assert lab.ok("PUT", f"/admin/api/services/{sid}/proxy/policies.json",
                  json={"policies_config": chain[::-1]})["policies_config"] == chain[::-1]
    r = lab.put(f"/admin/api/services/{sid}/proxy/policies.json", json={"policies_config": chain[:1]})
    assert r.status_code == 422
    assert lab.ok("GET", f"/admin/api/services/{sid}/proxy/policies.json")["policies_config"] == chain[::-1]
    lab.ok("DELETE", f"/admin/api/services/{sid}/application_plans/{plan['id']}.json")


# ---------------------------------------------------------------- proxy, deploy, promote, configs
def test_proxy_deploy_promote_configs(lab):
    svc = new_product(lab, "Promo")
    sid = svc["id"]
    proxy = lab.ok("GET", f"/admin/api/services/{sid}/proxy.json")["proxy"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", proxy["endpoint"])
    assert proxy["endpoint"] != proxy["sandbox_endpoint"]
    assert proxy["api_backend"] is None  # render_nil
    assert lab.get(f"/admin/api/services/{sid}/proxy/configs/sandbox/latest.json").status_code == 404
    b = lab.ok("POST", "/admin/api/backend_apis.json", 201,
               data={"name": "Promo BE", "private_endpoint": "https://promo.example.com"})["backend_api"]
    bm = lab.ok("GET", f"/admin/api/backend_apis/{b['id']}/metrics.json")["metrics"][0]["metric"]["id"]
    lab.ok("POST", f"/admin/api/backend_apis/{b['id']}/mapping_rules.json", 201,
           data={"http_method": "POST", "pattern": "/v1/completions", "delta": 1, "metric_id": bm})
    lab.ok("POST", f"/admin/api/services/{sid}/backend_usages.json", 201,
           data={"backend_api_id": b["id"], "path": "/m"})
    patched = lab.ok("PATCH", f"/admin/api/services/{sid}/proxy.json",
                     data={"proxy[credentials_location]": "authorization", "auth_user_key": "Authorization"})["proxy"]
    assert patched["credentials_location"] == "authorization"
    assert lab.patch(f"/admin/api/services/{sid}/proxy.json",
                     data={"credentials_location": "cookie"}).status_code == 422
    # PATCH deployed to staging: version 1
    v1 = lab.ok("GET", f"/admin/api/services/{sid}/proxy/configs/staging/latest.json")["proxy_config"]
    assert (v1["version"], v1["environment"]) == (1, "sandbox")
    content = v1["content"]
    assert content["backend"]["endpoint"] == lab.ctx.urls["backend"]
    assert content["backend_authentication_type"] == "service_token"
    assert content["proxy"]["endpoint"] == proxy["endpoint"]
    assert content["proxy"]["credentials_location"] == "authorization"
    assert {(r["http_method"], r["pattern"]) for r in content["proxy"]["proxy_rules"]} == {
        ("GET", "/"), ("POST", "/m/v1/completions")}
    assert content["backend_api_configs"] == [{"path": "/m", "backend_api": {
        "system_name": "promo_be", "private_endpoint": "https://promo.example.com:443"}}]
    # deploy without change: 201, no new version; with a change: version 2
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/deploy.json", 201)
    assert len(lab.ok("GET", f"/admin/api/services/{sid}/proxy/configs/sandbox.json")["proxy_configs"]) == 1
    lab.ok("PUT", f"/admin/api/services/{sid}/proxy/policies.json", json={"policies_config": [
        {"name": "apicast", "version": "builtin", "configuration": {}, "enabled": True},
        {"name": "upstream_connection", "version": "builtin", "configuration": {"read_timeout": 180},
         "enabled": True}]})
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/deploy.json", 201)
    v2 = lab.ok("GET", f"/admin/api/services/{sid}/proxy/configs/sandbox/latest.json")["proxy_config"]
    assert v2["version"] == 2 and [p["name"] for p in v2["content"]["proxy"]["policy_chain"]] == [
        "apicast", "upstream_connection"]
    assert lab.ok("GET", f"/admin/api/services/{sid}/proxy/configs/sandbox/1.json")["proxy_config"]["version"] == 1
    r = lab.get(f"/admin/api/services/{sid}/proxy/configs/preprod/latest.json")
    assert (r.status_code, r.json()) == (400, {"error": "invalid environment"})
    assert lab.get(f"/admin/api/services/{sid}/proxy/configs/production/latest.json").status_code == 404
    # promote keeps the version; twice → 422; missing `to` → 400 plain text
    promoted = lab.ok("POST", f"/admin/api/services/{sid}/proxy/configs/sandbox/2/promote.json", 201,
                      data={"to": "production"})["proxy_config"]
    assert (promoted["version"], promoted["environment"]) == (2, "production")
    assert promoted["content"] == v2["content"]
    r = lab.post(f"/admin/api/services/{sid}/proxy/configs/sandbox/2/promote.json", data={"to": "production"})
    assert (r.status_code, r.json()) == (422, {"errors": {"version": ["has already been taken"]}})
    r = lab.post(f"/admin/api/services/{sid}/proxy/configs/sandbox/2/promote.json", data={"x": "y"})
    assert r.status_code == 400 and r.text == "Required parameter missing: to"
    assert lab.post(f"/admin/api/services/{sid}/proxy/configs/sandbox/1/promote.json",
                    data={"to": "nowhere"}).status_code == 422
    assert lab.post(f"/admin/api/services/{sid}/proxy/configs/sandbox/9/promote.json",
                    data={"to": "production"}).status_code == 404
    # APIcast's discovery endpoint: latest config per product
    prod = lab.ok("GET", "/admin/api/account/proxy_configs/production.json")["proxy_configs"]
    mine = [c["proxy_config"] for c in prod if c["proxy_config"]["content"]["id"] == sid]
    assert [c["version"] for c in mine] == [2]
    staging = lab.ok("GET", "/admin/api/account/proxy_configs/staging.json")["proxy_configs"]
    assert [c["proxy_config"]["version"] for c in staging if c["proxy_config"]["content"]["id"] == sid] == [2]


# ---------------------------------------------------------------- subscriptions and applications
def test_service_plans_subscriptions_contracts_buy(lab):
    sid = new_product(lab, "Subs")["id"]
    aid = account_id(lab, "user2")
    sp = lab.ok("GET", f"/admin/api/services/{sid}/service_plans.json")["plans"][0]["service_plan"]
    assert lab.ok("PUT", f"/admin/api/services/{sid}/service_plans/{sp['id']}/default.json")[
        "service_plan"]["default"] is True
    all_sp = lab.ok("GET", "/admin/api/service_plans.json")["plans"]
    assert sp["id"] in [p["service_plan"]["id"] for p in all_sp]
    base = f"/admin/api/accounts/{aid}/service_subscriptions"
    r = lab.post(base + ".json")
    assert r.status_code == 400 and r.text == "Required parameter missing: service_subscription"
    assert lab.post(base + ".json", data={"plan_id": 999999}).status_code == 404
    sub = lab.ok("POST", base + ".json", 201, data={"service_subscription[plan_id]": sp["id"]})["service_subscription"]
    assert (sub["plan_id"], sub["user_account_id"], sub["service_id"], sub["state"], sub["type"]) == (
        sp["id"], aid, sid, "live", "ServiceContract")
    assert sub["paid_until"] == sub["accepted_at"] and "trial_period_expires_at" in sub  # CONTRACT §11.7
    r = lab.post(base + ".json", data={"plan_id": sp["id"]})
    assert (r.status_code, r.json()) == (422, {"errors": {"base": ["already subscribed to this service"]}})
    assert lab.ok("GET", f"{base}/{sub['id']}.json")["service_subscription"]["id"] == sub["id"]
    other_sp = lab.ok("GET", "/admin/api/services/" + str(new_product(lab, "Subs2")["id"]) +
                      "/service_plans.json")["plans"][0]["service_plan"]
    r = lab.put(f"{base}/{sub['id']}/change_plan.json", data={"plan_id": other_sp["id"]})
    assert (r.status_code, r.json()) == (422, {"errors": {"plan": ["must belong to the same product"]}})
    assert lab.ok("PUT", f"{base}/{sub['id']}/change_plan.json", data={"plan_id": sp["id"]})[
        "service_plan"]["id"] == sp["id"]
    assert lab.put(f"{base}/{sub['id']}/approve.json").status_code == 422
    contracts = lab.ok("GET", f"/admin/api/accounts/{aid}/service_contracts.json")["service_contracts"]
    assert sub["id"] in [c["service_contract"]["id"] for c in contracts]
    # unsubscribe refused while an application is not suspended
    plan = new_plan(lab, sid)
    app = lab.ok("POST", f"/admin/api/accounts/{aid}/applications.json", 201,
                 data={"plan_id": plan["id"], "name": "a"})["application"]
    r = lab.delete(f"{base}/{sub['id']}.json")
    assert (r.status_code, r.json()) == (
        403, {"errors": {"base": ["There is 1 unsuspended application subscribed to the service"]}})
    lab.ok("PUT", f"/admin/api/accounts/{aid}/applications/{app['id']}/suspend.json")
    assert lab.delete(f"{base}/{sub['id']}.json").status_code == 200
    assert lab.get(f"/admin/api/accounts/{aid}/applications/{app['id']}.json").status_code == 404
    # pre-2.16 explicit subscribe
    bought = lab.ok("POST", f"/admin/api/accounts/{aid}/service_plans/{other_sp['id']}/buy.json", 201)
    assert bought["service_plan"]["id"] == other_sp["id"]
    assert lab.post(f"/admin/api/accounts/{aid}/service_plans/{other_sp['id']}/buy.json").status_code == 422
    mine = lab.ok("GET", f"/admin/api/accounts/{aid}/service_plans.json")["plans"]
    assert other_sp["id"] in [p["service_plan"]["id"] for p in mine]
    # a service plan that requires approval gives a pending subscription until approved
    sid3 = new_product(lab, "Subs3")["id"]
    gated = lab.ok("POST", f"/admin/api/services/{sid3}/service_plans.json", 201,
                   data={"name": "Gated", "approval_required": "true"})["service_plan"]
    pending = lab.ok("POST", base + ".json", 201, data={"plan_id": gated["id"]})["service_subscription"]
    assert pending["state"] == "pending" and "accepted_at" not in pending
    approved = lab.ok("PUT", f"{base}/{pending['id']}/approve.json")["service_subscription"]
    assert approved["state"] == "live" and "accepted_at" in approved
    contract = next(c["service_contract"] for c in lab.ok(
        "GET", f"/admin/api/accounts/{aid}/service_contracts.json")["service_contracts"]
        if c["service_contract"]["service_id"] == sid3)
    assert lab.delete(f"/admin/api/accounts/{aid}/service_contracts/{contract['id']}.json").status_code == 200


def test_applications_lifecycle(lab):
    sid = new_product(lab, "Apps")["id"]
    plan = new_plan(lab, sid, "Gold")
    plan2 = new_plan(lab, sid, "Silver", approval_required="true")
    aid = account_id(lab, "user3")
    base = f"/admin/api/accounts/{aid}/applications"
    assert lab.post(base + ".json", data={"name": "x"}).status_code == 404  # no plan_id
    app = lab.ok("POST", base + ".json", 201, data={"plan_id": plan["id"], "name": "mine",
                                                    "description": "d"})["application"]
    assert re.fullmatch(r"[0-9a-f]{32}", app["user_key"]) and "keys" not in app
    assert (app["state"], app["enabled"], app["service_id"], app["plan_id"], app["account_id"]) == (
        "live", True, sid, plan["id"], aid)
    assert app["first_traffic_at"] is None and "provider_verification_key" in app
    # implicit subscription with the first service plan
    subs = lab.ok("GET", f"/admin/api/accounts/{aid}/service_subscriptions.json")["service_subscriptions"]
    assert sid in [s["service_subscription"]["service_id"] for s in subs]
    for key, msg in (("bad key!", "is invalid"), (app["user_key"], "has already been taken"), ("", "is invalid")):
        r = lab.post(base + ".json", data={"plan_id": plan["id"], "user_key": key})
        assert (r.status_code, r.json()) == (422, {"errors": {"user_key": [msg]}}), key
    custom = lab.ok("POST", base + ".json", 201, json={"application": {"plan_id": plan2["id"], "name": "c",
                                                                       "user_key": "my-key.1"}})["application"]
    assert (custom["user_key"], custom["state"]) == ("my-key.1", "pending")
    assert lab.ok("PUT", f"{base}/{custom['id']}/accept.json")["application"]["state"] == "live"
    r = lab.put(f"{base}/{custom['id']}/accept.json")
    assert (r.status_code, r.json()) == (422, {"errors": {"state": ['cannot transition via "accept"']}})
    assert [a["application"]["id"] for a in lab.ok("GET", base + ".json")["applications"]
            if a["application"]["service_id"] == sid] == [app["id"], custom["id"]]
    every = lab.ok("GET", "/admin/api/applications.json", params={"service_id": sid, "plan_id": plan["id"]})
    assert [a["application"]["id"] for a in every["applications"]] == [app["id"]]
    paged = lab.ok("GET", "/admin/api/applications.json", params={"service_id": sid, "per_page": 1, "page": 2})
    assert paged["metadata"] == {"per_page": 1, "total_entries": 2, "total_pages": 2, "current_page": 2}
    assert [a["application"]["id"] for a in paged["applications"]] == [custom["id"]]
    upd = lab.ok("PUT", f"{base}/{app['id']}.json", data={"name": "renamed", "user_key": "rotated-key"})["application"]
    assert (upd["name"], upd["user_key"]) == ("renamed", "rotated-key")
    found = lab.ok("GET", "/admin/api/applications/find.json", params={"user_key": "rotated-key"})["application"]
    assert found["id"] == app["id"]
    assert lab.ok("GET", "/admin/api/applications/find.json", params={"application_id": app["id"]})[
        "application"]["user_key"] == "rotated-key"
    assert lab.ok("GET", base + "/find.json", params={"user_key": "my-key.1"})["application"]["id"] == custom["id"]
    assert lab.get("/admin/api/applications/find.json", params={"user_key": "nope"}).status_code == 404
    assert lab.ok("PUT", f"{base}/{app['id']}/suspend.json")["application"]["state"] == "suspended"
    assert lab.put(f"{base}/{app['id']}/suspend.json").status_code == 422
    assert lab.ok("PUT", f"{base}/{app['id']}/resume.json")["application"]["state"] == "live"
    changed = lab.ok("PUT", f"{base}/{app['id']}/change_plan.json", data={"plan_id": plan2["id"]})
    assert changed["application_plan"]["id"] == plan2["id"]
    r = lab.delete(f"{base}/{app['id']}.json")
    assert r.status_code == 200 and r.content == b""
    assert lab.get(f"{base}/{app['id']}.json").status_code == 404
    # a product with no service plan at all cannot be subscribed to
    bare = new_product(lab, "Bare")["id"]
    sp = lab.ok("GET", f"/admin/api/services/{bare}/service_plans.json")["plans"][0]["service_plan"]
    lab.ok("DELETE", f"/admin/api/services/{bare}/service_plans/{sp['id']}.json")
    bare_plan = new_plan(lab, bare)
    r = lab.post(base + ".json", data={"plan_id": bare_plan["id"]})
    assert (r.status_code, r.json()) == (422, {"error": "You cannot subscribe to that service."})


def test_threescale_api_client(lab):
    client = ThreeScaleClient(lab.url, lab.token, ssl_verify=lab.ca)
    names = [a["org_name"] for a in client.accounts.list()]
    assert {"user1", "user2", "user3"} <= set(names)
    service = client.services.read_by_name("api")
    plan = service.app_plans.list()[0]
    account = client.accounts.read_by_name("user1")
    app = account.applications.create(params={"plan_id": plan["id"], "name": "via 3scale-api"})
    assert re.fullmatch(r"[0-9a-f]{32}", app["user_key"])
    proxy = service.proxy.fetch()
    assert proxy["endpoint"].startswith("http://127.0.0.1:")
    assert client.provider_accounts.fetch()["org_name"] == "3scale"
    # find sends its parameters as a JSON body on GET
    assert client.accounts.find({"username": "user2"})["org_name"] == "user2"
    acc = client.accounts.create(params={"org_name": "QE", "username": "qe-user", "email": "qe@example.com",
                                         "password": "pw"})
    assert acc["org_name"] == "QE" and acc.users.list()[0]["username"] == "qe-user"


def test_active_docs(lab):
    sid = new_product(lab, "Docs")["id"]
    spec = json.dumps({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {}})
    doc = lab.ok("POST", "/admin/api/active_docs.json", 201,
                 data={"name": "TinyLlama", "system_name": "tinyllama", "body": spec, "service_id": sid,
                       "published": "true", "skip_swagger_validations": "false"})["api_doc"]
    assert (doc["system_name"], doc["published"], doc["service_id"], doc["body"]) == ("tinyllama", True, sid, spec)
    assert lab.post("/admin/api/active_docs.json", data={"name": "x", "body": "{not json"}).status_code == 422
    assert lab.post("/admin/api/active_docs.json", data={"name": "x", "body": "{}"}).status_code == 422
    assert lab.post("/admin/api/active_docs.json", data={"name": "x", "body": "{}",
                                                         "skip_swagger_validations": "true"}).status_code == 201
    upd = lab.ok("PUT", f"/admin/api/active_docs/{doc['id']}.json", data={"published": "false", "service_id": ""})
    assert upd["api_doc"]["published"] is False and "service_id" not in upd["api_doc"]
    assert doc["id"] in [d["api_doc"]["id"] for d in lab.ok("GET", "/admin/api/active_docs.json")["api_docs"]]
    lab.ok("DELETE", f"/admin/api/active_docs/{doc['id']}.json")
    assert lab.get(f"/admin/api/active_docs/{doc['id']}.json").status_code == 404
