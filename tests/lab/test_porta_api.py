"""porta product side (issue 9 item 8): what the 3scale QE client `threescale_api` and a 3scale automation
user see: extended backend metric names, decimals as strings, proxy config versions, application keys,
product analytics, and the backend listener's answer for a disabled metric."""
from __future__ import annotations

import pytest
import requests
from test_porta import Lab, account_id, metric_id, new_plan, new_product
from threescale_api import ThreeScaleClient


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("porta-api"))
    yield lab
    lab.stop()


def latest(lab: Lab, sid: int, env: str = "sandbox") -> dict:
    return lab.ok("GET", f"/admin/api/services/{sid}/proxy/configs/{env}/latest.json")["proxy_config"]


def authrep(content: dict, **params) -> requests.Response:
    return requests.get(content["backend"]["endpoint"] + "/transactions/authrep.xml", timeout=10,
                        headers={"3scale-options": "rejection_reason_header=1&limit_headers=1"},
                        params={"service_token": content["backend_authentication_value"],
                                "service_id": content["id"], **params})


def test_backend_metrics_extended_system_names_and_annotations(lab):
    """A backend API's metrics and methods are `<name>.<backend id>` (a given suffix is not doubled),
    backend metric JSON has no `name`; backend JSON carries annotations; proxy rules and authrep use
    the extended names and a backend's hits roll up to the product's hits.
    Upstream: porta app/lib/backend_api_logic/metric_extension.rb, app/representers/metric_representer.rb,
    app/representers/backend_api_representer.rb."""
    client = ThreeScaleClient(lab.url, lab.token, ssl_verify=lab.ca)
    backend = client.backends.create(params={"name": "Ext BE", "private_endpoint": "https://ext.example.com"})
    bid = backend.entity_id
    assert backend["annotations"] == {}
    hits = backend.metrics.list()[0]
    assert hits["system_name"] == f"hits.{bid}" and "name" not in hits.entity
    meth = lab.ok("POST", f"/admin/api/backend_apis/{bid}/metrics/{hits['id']}/methods.json", 201,
                  data={"friendly_name": "Chat", "system_name": "chat"})["method"]
    assert meth["system_name"] == f"chat.{bid}"
    tokens = lab.ok("POST", f"/admin/api/backend_apis/{bid}/metrics.json", 201,
                    data={"friendly_name": "Tokens", "system_name": f"tokens.{bid}", "unit": "token"})["metric"]
    assert tokens["system_name"] == f"tokens.{bid}"
    r = lab.post(f"/admin/api/backend_apis/{bid}/metrics.json",
                 data={"friendly_name": "Tokens 2", "system_name": "tokens", "unit": "token"})
    assert r.status_code == 422 and r.json()["errors"]["system_name"] == ["has already been taken"]
    lab.ok("POST", f"/admin/api/backend_apis/{bid}/mapping_rules.json", 201,
           data={"http_method": "POST", "pattern": "/v1/chat", "delta": 1, "metric_id": meth["id"]})
    sid = new_product(lab, "Ext Product")["id"]
    lab.ok("POST", f"/admin/api/services/{sid}/backend_usages.json", 201, data={"backend_api_id": bid, "path": "/"})
    plan = new_plan(lab, sid)
    app = lab.ok("POST", f"/admin/api/accounts/{account_id(lab, 'user1')}/applications.json", 201,
                 data={"plan_id": plan["id"], "name": "ext"})["application"]
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/deploy.json", 201)
    content = latest(lab, sid)["content"]
    assert (("/v1/chat", f"chat.{bid}") in
            [(x["pattern"], x["metric_system_name"]) for x in content["proxy"]["proxy_rules"]])
    r = authrep(content, user_key=app["user_key"], **{f"usage[chat.{bid}]": 2})
    assert r.status_code == 200, r.text
    assert authrep(content, user_key=app["user_key"], **{"usage[chat]": 1}).status_code == 404
    usage = lab.ok("GET", f"/stats/applications/{app['id']}/usage.json", params={"metric_name": "hits",
                                                                                 "period": "day"})
    assert usage["total"] == 2  # chat.N → hits.N → the product's hits


def test_decimals_are_strings(lab):
    """Plan fees and pricing rule costs are Rails decimals: JSON strings.
    Upstream: porta app/representers/application_plan_representer.rb, pricing_rule_representer.rb
    (BigDecimal#as_json is a string)."""
    client = ThreeScaleClient(lab.url, lab.token, ssl_verify=lab.ca)
    sid = new_product(lab, "Priced")["id"]
    service = client.services[sid]
    plan = service.app_plans.create(params={"name": "Paid", "setup_fee": "12.5", "cost_per_month": "20"})
    # porta app/representers/plan_representer.rb: setup_fee.to_f, cost_per_month.to_f (JSON numbers;
    # porta-go-client ApplicationPlanItem reads float64), a subscription's setup_fee stays a decimal string
    assert (plan["setup_fee"], plan["cost_per_month"]) == (12.5, 20.0)
    hits = metric_id(lab, sid)
    rule = lab.ok("POST", f"/admin/api/application_plans/{plan['id']}/metrics/{hits}/pricing_rules.json", 201,
                  data={"min": 1, "max": 10, "cost_per_unit": "20"})["pricing_rule"]
    assert rule["cost_per_unit"] == "20.0"
    small = lab.ok("POST", f"/admin/api/application_plans/{plan['id']}/metrics/{hits}/pricing_rules.json", 201,
                   data={"min": 11, "cost_per_unit": "0.0001"})["pricing_rule"]
    assert small["cost_per_unit"] == "0.0001"
    aid = account_id(lab, "user2")
    sub = lab.ok("GET", f"/admin/api/accounts/{aid}/service_subscriptions.json")["service_subscriptions"][0]
    assert sub["service_subscription"]["setup_fee"] == "0.0"


def test_every_proxy_change_saves_a_new_sandbox_version(lab):
    """A PUT proxy.json that changes anything in the proxy row (even a field APIcast does not read, like
    api_test_path) saves a new sandbox configuration; an identical PUT saves nothing.
    Upstream: porta app/services/apicast_v2_deployment_service.rb, app/lib/apicast/provider_source.rb
    (SERVICE_SERIALIZE_OPTIONS), app/models/proxy_config.rb (differs_from?)."""
    client = ThreeScaleClient(lab.url, lab.token, ssl_verify=lab.ca)
    sid = new_product(lab, "Versions")["id"]
    proxy = client.services[sid].proxy
    proxy.update(params={"credentials_location": "headers"})
    v1 = latest(lab, sid)["version"]
    proxy.update(params={"api_test_path": "/health"})
    v2 = latest(lab, sid)
    assert v2["version"] == v1 + 1 and v2["content"]["proxy"]["api_test_path"] == "/health"
    proxy.update(params={"api_test_path": "/health"})
    assert latest(lab, sid)["version"] == v2["version"]
    lab.ok("PUT", f"/admin/api/services/{sid}/proxy.json", data={"error_auth_missing": "Who are you?"})
    assert latest(lab, sid)["version"] == v2["version"] + 1
    versions = [c["proxy_config"]["version"] for c in
                lab.ok("GET", f"/admin/api/services/{sid}/proxy/configs/sandbox.json")["proxy_configs"]]
    assert versions == list(range(1, v2["version"] + 2))


def test_application_keys_and_app_id_app_key_authrep(lab):
    """Application keys of an app_id/app_key product: the first key is generated, keys are listed,
    created (201 with the application) and deleted with threescale_api; the backend listener checks
    app_id and app_key. Upstream: porta app/controllers/admin/api/buyer_application_keys_controller.rb,
    app/models/application_key.rb, app/models/cinstance.rb (create_first_key); apisonator
    lib/3scale/backend/validators/key.rb."""
    client = ThreeScaleClient(lab.url, lab.token, ssl_verify=lab.ca)
    sid = new_product(lab, "Keyed", backend_version="2")["id"]
    plan = new_plan(lab, sid)
    account = client.accounts.read_by_name("user3")
    app = account.applications.create(params={"plan_id": plan["id"], "name": "keyed"})
    assert "user_key" not in app.entity and len(app["application_id"]) == 8
    first = app.keys.list()
    assert len(first) == 1 and len(first[0]["value"]) == 32
    added = app.keys.create(params={"key": "my-secret-key"})
    assert added["value"] == "my-secret-key"
    assert [k["value"] for k in app.keys.list()] == [first[0]["value"], "my-secret-key"]
    base = f"/admin/api/accounts/{account.entity_id}/applications/{app.entity_id}/keys"
    r = lab.post(base + ".json", data={"key": "my-secret-key"})
    assert (r.status_code, r.json()) == (422, {"errors": {"value": ["has already been taken"]}})
    assert lab.post(base + ".json", data={"key": "abc"}).json()["errors"]["value"] == [
        "is too short (minimum is 5 characters)"]
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/deploy.json", 201)
    content = latest(lab, sid)["content"]
    ok = authrep(content, app_id=app["application_id"], app_key="my-secret-key", **{"usage[hits]": 1})
    assert ok.status_code == 200, ok.text
    bad = authrep(content, app_id=app["application_id"], app_key="wrong-key", **{"usage[hits]": 1})
    assert bad.status_code == 403 and 'code="application_key_invalid"' in bad.text
    assert authrep(content, app_id="nope", **{"usage[hits]": 1}).status_code == 404
    lab.ok("DELETE", f"{base}/my-secret-key.json")
    assert [k["value"] for k in app.keys.list()] == [first[0]["value"]]
    assert lab.delete(f"{base}/my-secret-key.json").status_code == 404
    for i in range(4):
        lab.ok("POST", base + ".json", 201, data={"key": f"extra-key-{i}"})
    assert lab.post(base + ".json", data={"key": "one-too-many"}).json()["errors"]["base"] == ["Limit reached"]


def test_service_usage_stats(lab):
    """GET /stats/services/{id}/usage.json sums the product's applications.
    Upstream: porta app/controllers/stats/data/services_controller.rb, stats/data/base_controller.rb
    (usage_params: params.require), app/controllers/application_controller.rb (ParameterMissing → 400)."""
    sid = new_product(lab, "Counted")["id"]
    plan = new_plan(lab, sid)
    apps = [lab.ok("POST", f"/admin/api/accounts/{account_id(lab, u)}/applications.json", 201,
                   data={"plan_id": plan["id"], "name": "counted"})["application"] for u in ("user1", "user2")]
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/deploy.json", 201)
    content = latest(lab, sid)["content"]
    for app, n in zip(apps, (2, 3)):
        assert authrep(content, user_key=app["user_key"], **{"usage[hits]": n}).status_code == 200
    stats = lab.ok("GET", f"/stats/services/{sid}/usage.json", params={"metric_name": "hits", "period": "day"})
    assert (stats["total"], sum(stats["values"]), stats["service"]["id"]) == (5, 5, sid)
    assert lab.get(f"/stats/services/{sid}/usage.json", params={"metric_name": "nope",
                                                                "period": "day"}).status_code == 400
    r = lab.get(f"/stats/services/{sid}/usage.json", params={"period": "day"})
    assert (r.status_code, r.text) == (400, "Required parameter missing: metric_name")
    r = lab.get(f"/stats/services/{sid}/usage.json", params={"metric_name": "hits"})
    assert (r.status_code, r.text) == (400, "Required parameter missing: granularity")
    assert lab.get("/stats/services/999999/usage.json", params={"metric_name": "hits"}).status_code == 404


def test_disabled_metric_answer_tells_apicast_it_is_not_a_limit(lab):
    """A method whose limit is 0 (disabled): the backend listener answers 409 limits_exceeded like
    apisonator, and with `3scale-options: limit_headers=1` its `3scale-limit-max-value: 0`, which APIcast
    turns into the generic 403 instead of 429; a real limit shows its max value.
    Upstream: apisonator lib/3scale/backend/listener.rb (optionally_set_headers),
    lib/3scale/backend/transactor/limit_headers.rb; APIcast gateway/src/apicast/proxy.lua
    (handle_backend_response: limit_max == 0)."""
    sid = new_product(lab, "Disabled")["id"]
    hits = metric_id(lab, sid)
    off = lab.ok("POST", f"/admin/api/services/{sid}/metrics/{hits}/methods.json", 201,
                 data={"friendly_name": "Off", "system_name": "off"})["method"]
    plan = new_plan(lab, sid)
    lab.ok("POST", f"/admin/api/application_plans/{plan['id']}/metrics/{off['id']}/limits.json", 201,
           data={"period": "eternity", "value": 0})
    lab.ok("POST", f"/admin/api/application_plans/{plan['id']}/metrics/{hits}/limits.json", 201,
           data={"period": "minute", "value": 1})
    app = lab.ok("POST", f"/admin/api/accounts/{account_id(lab, 'user1')}/applications.json", 201,
                 data={"plan_id": plan["id"], "name": "disabled"})["application"]
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/deploy.json", 201)
    content = latest(lab, sid)["content"]
    r = authrep(content, user_key=app["user_key"], **{"usage[off]": 1})
    assert r.status_code == 409 and "<reason>usage limits are exceeded</reason>" in r.text
    assert (r.headers["3scale-rejection-reason"], r.headers["3scale-limit-max-value"]) == ("limits_exceeded", "0")
    ok = authrep(content, user_key=app["user_key"], **{"usage[hits]": 1})
    assert ok.status_code == 200 and ok.headers["3scale-limit-remaining"] == "0"
    assert ok.headers["3scale-limit-max-value"] == "1" and 0 <= int(ok.headers["3scale-limit-reset"]) <= 60
    over = authrep(content, user_key=app["user_key"], **{"usage[hits]": 1})
    assert over.status_code == 409 and over.headers["3scale-limit-max-value"] == "1"
    # without 3scale-options: no extension headers (apisonator's default)
    plain = requests.get(content["backend"]["endpoint"] + "/transactions/authrep.xml", timeout=10, params={
        "service_token": content["backend_authentication_value"], "service_id": sid,
        "user_key": app["user_key"], "usage[off]": 1})
    assert plain.status_code == 409 and "3scale-rejection-reason" not in plain.headers


def test_method_used_by_latest_gateway_configuration_cannot_be_deleted(lab):
    """A method (product or backend) whose mapping rule is in the latest sandbox or production config
    cannot be deleted: 403 with the error on `base`; once a new config without it is deployed and
    promoted, the delete goes through. The Hits metric is never deletable.
    Upstream: porta app/models/metric.rb (destroyable?, belongs_to_latest_config?),
    app/models/proxy.rb (metric_in_latest_configs?), app/lib/three_scale/api/responder.rb (DELETE → 403),
    config/locales/en.yml (cannot_delete_in_use, cannot_delete_hits)."""
    sid = new_product(lab, "Guarded Methods")["id"]
    hits = metric_id(lab, sid)
    method = lab.ok("POST", f"/admin/api/services/{sid}/metrics/{hits}/methods.json", 201,
                    data={"friendly_name": "Guarded", "system_name": "guarded"})["method"]
    rule = lab.ok("POST", f"/admin/api/services/{sid}/proxy/mapping_rules.json", 201,
                  data={"http_method": "POST", "pattern": "/guarded", "delta": 1,
                        "metric_id": method["id"]})["mapping_rule"]
    path = f"/admin/api/services/{sid}/metrics/{hits}/methods/{method['id']}.json"
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/deploy.json", 201)
    v = lab.ok("GET", f"/admin/api/services/{sid}/proxy/configs/sandbox/latest.json")["proxy_config"]
    assert method["id"] in [r["metric_id"] for r in v["content"]["proxy"]["proxy_rules"]]
    r = lab.delete(path)
    assert (r.status_code, r.json()) == (403, {"errors": {"base": [
        "Method is used by the latest gateway configuration and cannot be deleted"]}})
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/configs/sandbox/{v['version']}/promote.json", 201,
           data={"to": "production"})
    # rule removed and deployed to staging: production still uses it
    lab.ok("DELETE", f"/admin/api/services/{sid}/proxy/mapping_rules/{rule['id']}.json")
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/deploy.json", 201)
    assert lab.delete(path).status_code == 403
    v2 = lab.ok("GET", f"/admin/api/services/{sid}/proxy/configs/sandbox/latest.json")["proxy_config"]
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/configs/sandbox/{v2['version']}/promote.json", 201,
           data={"to": "production"})
    lab.ok("DELETE", path)
    assert lab.get(path).status_code == 404
    r = lab.delete(f"/admin/api/services/{sid}/metrics/{hits}.json")
    assert r.status_code == 403 and "The Hits metric cannot be deleted" in r.json()["errors"]["base"]
    # a backend method used through a product's latest config
    b = lab.ok("POST", "/admin/api/backend_apis.json", 201,
               data={"name": "Guarded BE", "private_endpoint": "https://guarded.example.com"})["backend_api"]
    bhits = lab.ok("GET", f"/admin/api/backend_apis/{b['id']}/metrics.json")["metrics"][0]["metric"]["id"]
    bm = lab.ok("POST", f"/admin/api/backend_apis/{b['id']}/metrics/{bhits}/methods.json", 201,
                data={"friendly_name": "BE Guarded"})["method"]
    lab.ok("POST", f"/admin/api/backend_apis/{b['id']}/mapping_rules.json", 201,
           data={"http_method": "GET", "pattern": "/be", "delta": 1, "metric_id": bm["id"]})
    bpath = f"/admin/api/backend_apis/{b['id']}/metrics/{bhits}/methods/{bm['id']}.json"
    lab.ok("POST", f"/admin/api/services/{sid}/backend_usages.json", 201,
           data={"backend_api_id": b["id"], "path": "/b"})
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/deploy.json", 201)
    r = lab.delete(bpath)
    assert (r.status_code, r.json()["errors"]["base"]) == (
        403, ["Method is used by the latest gateway configuration and cannot be deleted"])


def test_proxy_column_defaults(lab):
    """A new product's proxy row carries porta's column defaults, shown by proxy.json and copied into
    the deployed config (APIcast answers with them). Upstream: porta db/schema.rb (create_table "proxies")."""
    sid = new_product(lab, "Defaults Product")["id"]
    proxy = lab.ok("GET", f"/admin/api/services/{sid}/proxy.json")["proxy"]
    expected = {
        "credentials_location": "query", "auth_user_key": "user_key", "auth_app_id": "app_id",
        "auth_app_key": "app_key", "error_auth_failed": "Authentication failed", "error_status_auth_failed": 403,
        "error_auth_missing": "Authentication parameters missing", "error_status_auth_missing": 403,
        "error_no_match": "No Mapping Rule matched", "error_status_no_match": 404,
        "error_limits_exceeded": "Usage limit exceeded", "error_status_limits_exceeded": 429}
    for kind in ("auth_failed", "auth_missing", "no_match", "limits_exceeded"):
        expected[f"error_headers_{kind}"] = "text/plain; charset=us-ascii"
    assert {k: proxy.get(k) for k in expected} == expected
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/deploy.json", 201)
    content = lab.ok("GET", f"/admin/api/services/{sid}/proxy/configs/sandbox/latest.json")["proxy_config"]["content"]
    assert {k: content["proxy"].get(k) for k in expected} == expected
