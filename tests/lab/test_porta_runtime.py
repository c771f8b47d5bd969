"""porta at runtime: the backend listener and analytics, pagination, restart, fault injection,
request counters, purge of deleted products (over real HTTPS/HTTP with real clients)."""
from __future__ import annotations

import json
import os
import time

import pytest
import requests
from test_porta import Lab, account_id, metric_id, new_plan, new_product
from threescale_api import ThreeScaleClient


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("porta-runtime"))
    yield lab
    lab.stop()


@pytest.fixture()
def fresh(tmp_path):
    labs = []

    def make(**kw):
        labs.append(Lab(tmp_path, **kw))
        return labs[-1]
    yield make
    for lab in labs:
        lab.stop()


# ---------------------------------------------------------------- backend listener and analytics
def test_backend_authrep_limits_and_usage(lab):
    sid = new_product(lab, "Metered")["id"]
    hits = metric_id(lab, sid)
    meth = lab.ok("POST", f"/admin/api/services/{sid}/metrics/{hits}/methods.json", 201,
                  data={"friendly_name": "Completions", "system_name": "completions"})["method"]
    plan = new_plan(lab, sid, "Tiny")
    lab.ok("POST", f"/admin/api/application_plans/{plan['id']}/metrics/{meth['id']}/limits.json", 201,
           data={"period": "minute", "value": 2})
    aid = account_id(lab, "user1")
    app = lab.ok("POST", f"/admin/api/accounts/{aid}/applications.json", 201,
                 data={"plan_id": plan["id"], "name": "metered"})["application"]
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/deploy.json", 201)
    content = lab.ok("GET", f"/admin/api/services/{sid}/proxy/configs/sandbox/latest.json")["proxy_config"]["content"]
    backend = content["backend"]["endpoint"]
    params = {"service_token": content["backend_authentication_value"], "service_id": sid,
              "user_key": app["user_key"], "usage[completions]": 1}

    def authrep(**over):
        return requests.get(backend + "/transactions/authrep.xml", params={**params, **over}, timeout=10)
    for n in (1, 2):
        r = authrep()
        assert r.status_code == 200 and "<authorized>true</authorized>" in r.text, r.text
        assert f"<current_value>{n}</current_value>" in r.text and "<plan>Tiny</plan>" in r.text
    r = authrep()
    assert r.status_code == 409 and "<reason>usage limits are exceeded</reason>" in r.text
    r = authrep(**{"usage[completions]": None, "usage[hits]": 1})  # hits alone is not limited
    assert r.status_code == 200
    r = authrep(user_key="0" * 32)
    assert r.status_code == 403 and 'code="user_key_invalid"' in r.text
    assert authrep(service_token="nope").status_code == 403
    assert 'code="metric_invalid"' in authrep(**{"usage[nope]": 1}).text
    lab.ok("PUT", f"/admin/api/accounts/{aid}/applications/{app['id']}/suspend.json")
    r = authrep()
    assert r.status_code == 403 and 'code="application_not_active"' in r.text
    lab.ok("PUT", f"/admin/api/accounts/{aid}/applications/{app['id']}/resume.json")
    # analytics: hits got 2 (methods roll up) + 1 direct; the refused calls were not counted
    stats = lab.ok("GET", f"/stats/applications/{app['id']}/usage.json", params={"metric_name": "hits",
                                                                                 "period": "day"})
    # a rolling day, cut by the hour: 25 hourly values, 24 in an hour's first second (porta stats/views/usage.rb)
    assert stats["total"] == 3 and sum(stats["values"]) == 3 and len(stats["values"]) in (24, 25)
    assert stats["period"]["granularity"] == "hour"
    comp = lab.ok("GET", f"/stats/applications/{app['id']}/usage.json",
                  params={"metric_name": "completions", "period": "month"})
    assert comp["total"] == 2
    assert lab.get(f"/stats/applications/{app['id']}/usage.json",
                   params={"metric_name": "nope", "period": "day"}).status_code == 400
    assert requests.get(lab.url + f"/stats/applications/{app['id']}/usage.json", verify=lab.ca,
                        params={"metric_name": "hits"}, timeout=10).status_code == 403
    app_now = lab.ok("GET", f"/admin/api/accounts/{aid}/applications/{app['id']}.json")["application"]
    assert app_now["first_traffic_at"] is not None


# ---------------------------------------------------------------- pagination, restart, faults, counters
def test_pagination_past_500_accounts(fresh):
    lab = fresh(users=2)
    store = lab.porta.store
    with store.lock:  # direct DB seeding keeps this fast; the API reads it like any account
        store.begin()
        store.bulk_insert("account", ({"org_name": f"bulk{i:04d}", "state": "approved",
                                       "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
                                      for i in range(520)))
        store.commit()
    first = lab.ok("GET", "/admin/api/accounts.json")
    assert len(first["accounts"]) == 500
    assert first["metadata"] == {"per_page": 500, "total_entries": 522, "total_pages": 2, "current_page": 1}
    second = lab.ok("GET", "/admin/api/accounts.json", params={"page": 2})
    assert len(second["accounts"]) == 22 and second["metadata"]["current_page"] == 2
    ids = [a["account"]["id"] for a in first["accounts"] + second["accounts"]]
    assert len(set(ids)) == 522
    # bad values fall back to the defaults silently
    bad = lab.ok("GET", "/admin/api/accounts.json", params={"page": "x", "per_page": "9999"})
    assert bad["metadata"]["current_page"] == 1 and len(bad["accounts"]) == 500
    assert lab.ok("GET", "/admin/api/accounts.json", params={"page": 3})["accounts"] == []
    client = ThreeScaleClient(lab.url, lab.token, ssl_verify=lab.ca)
    assert len(client.accounts.list()) == 522


def test_restart_keeps_everything(tmp_path):
    lab = Lab(tmp_path, users=2)
    try:
        sid = new_product(lab, "Persist")["id"]
        plan = new_plan(lab, sid)
        aid = account_id(lab, "user2")
        app = lab.ok("POST", f"/admin/api/accounts/{aid}/applications.json", 201,
                     data={"plan_id": plan["id"]})["application"]
        lab.ok("PATCH", f"/admin/api/services/{sid}/proxy.json", data={"credentials_location": "headers"})
        lab.ok("POST", f"/admin/api/services/{sid}/proxy/configs/sandbox/1/promote.json", 201,
               data={"to": "production"})
        before = {p: lab.ok("GET", p) for p in (
            "/admin/api/accounts.json", "/admin/api/provider.json", f"/admin/api/services/{sid}/proxy.json",
            f"/admin/api/services/{sid}/proxy/configs/production/latest.json",
            f"/admin/api/accounts/{aid}/applications/{app['id']}.json")}
        settings, ports = lab.ctx.settings, lab.ctx.ports
    finally:
        lab.stop()
    again = Lab(tmp_path, ports=ports, settings=settings)
    try:
        # links carry the admin URL; its port is reused only when still free (ctx.port), so compare without it
        after = {p: again.ok("GET", p) for p in before}
        assert json.dumps(after).replace(again.url, "URL") == json.dumps(before).replace(lab.url, "URL")
        new_app = again.ok("POST", f"/admin/api/accounts/{aid}/applications.json", 201,
                           data={"plan_id": plan["id"]})["application"]
        assert new_app["id"] > app["id"]
    finally:
        again.stop()


def test_fault_injection_and_request_counters(fresh):
    lab = fresh(users=1)
    stats_url = lab.url + "/lab/stats.json"

    def stats():
        return requests.get(stats_url, verify=lab.ca, timeout=10).json()
    assert requests.post(lab.url + "/lab/stats/reset", verify=lab.ca, timeout=10).status_code == 200
    lab.ok("GET", "/admin/api/accounts.json")
    lab.ok("GET", "/admin/api/accounts.json")
    lab.ok("GET", "/admin/api/services.json", headers={"User-Agent": "Go-http-client/1.1"})
    s = stats()
    assert s["requests"] == 3
    assert s["by_method_path"] == {"GET /admin/api/accounts.json": 2, "GET /admin/api/services.json": 1}
    # per client, by the User-Agent's product token: the operator's porta-go-client apart from the rest
    assert s["by_agent"] == {"python-requests": {"GET /admin/api/accounts.json": 2},
                             "Go-http-client": {"GET /admin/api/services.json": 1}}
    path = lab.ctx.dir / "faults.json"
    stamp = [time.time_ns()]

    def set_faults(obj: dict) -> None:
        # Faults reloads on a new mtime; force a distinct one even on coarse-timestamp filesystems
        path.write_text(json.dumps(obj))
        stamp[0] += 10_000_000
        os.utime(path, ns=(stamp[0], stamp[0]))
    set_faults({"porta": {"error_rate": 1.0, "path_regex": "^/admin/api/accounts"}})
    r = lab.get("/admin/api/accounts.json")
    assert r.status_code == 503 and b"503 Service Unavailable" in r.content
    assert lab.get("/admin/api/services.json").status_code == 200
    set_faults({"porta": {"error_rate": 1.0, "error_status": 500}})
    assert lab.get("/admin/api/services.json").status_code == 500
    set_faults({"porta": {"drop_rate": 1.0}})
    with pytest.raises(requests.ConnectionError):
        requests.get(lab.url + "/admin/api/services.json", verify=lab.ca, auth=("", lab.token), timeout=10)
    set_faults({"porta": {"delay": 0.3}})
    t0 = time.monotonic()
    lab.ok("GET", "/admin/api/services.json")
    assert time.monotonic() - t0 >= 0.3
    set_faults({})
    lab.ok("GET", "/admin/api/services.json")
    s = stats()
    assert s["faults"] == {"errors": 2, "drops": 1, "delays": 1}
    assert s["requests"] == 3 + 6
    # max_count: exactly the first N matching calls fail; new switches start a new budget
    set_faults({"porta": {"error_rate": 1.0, "max_count": 2, "path_regex": "^/admin/api/services"}})
    assert [lab.get("/admin/api/services.json").status_code for _ in range(4)] == [503, 503, 200, 200]
    set_faults({"porta": {"error_rate": 1.0, "max_count": 1}})
    assert [lab.get("/admin/api/services.json").status_code for _ in range(2)] == [503, 200]
    assert stats()["faults"]["errors"] == 2 + 3
    # verbs: only the matching methods are hit (a module's GET before its POST stays untouched)
    set_faults({"porta": {"error_rate": 1.0, "verbs": ["POST"], "path_regex": "^/admin/api/services"}})
    assert lab.get("/admin/api/services.json").status_code == 200
    assert lab.post("/admin/api/services.json", data={"name": "Verb fault"}).status_code == 503


def test_deleted_product_name_is_freed_after_purge(tmp_path):
    """Porta purges a deleted product in the background; until then its system name is taken."""
    lab = Lab(tmp_path, settings={"users": 1, "porta_purge_delay": 0.3})
    try:
        create = {"name": "Purge me", "system_name": "purgeme"}
        sid = lab.post("/admin/api/services.json", data=create).json()["service"]["id"]
        assert lab.call("DELETE", f"/admin/api/services/{sid}.json").status_code == 200
        taken = lab.post("/admin/api/services.json", data=create)
        assert taken.status_code == 422 and taken.json()["errors"]["system_name"] == ["has already been taken"]
        deadline = time.monotonic() + 5
        while (again := lab.post("/admin/api/services.json", data=create)).status_code == 422:
            assert time.monotonic() < deadline, again.text
            time.sleep(0.1)  # waiting out the configured purge delay
        assert again.status_code == 201 and again.json()["service"]["id"] != sid
    finally:
        lab.stop()

