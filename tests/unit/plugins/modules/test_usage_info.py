"""threescale_usage_info: aggregation per application, account and method, the query it sends, and the number
of Analytics API requests (one metric per request; idle applications and methods cost one request each).

Upstream: porta app/controllers/stats/data/base_controller.rb (usage_params: metric_name required, granularity
and since required without period; skip_change), app/lib/stats/views/usage.rb (total, values, period,
application.account {id, name})."""
from __future__ import annotations

import pytest

from ansible_collections.maas.threescale.plugins.modules import threescale_usage_info as mod

TOKEN = "unit-token-usage-0123"
METHODS = [{"id": 11, "system_name": "models", "friendly_name": "Models"},
           {"id": 12, "system_name": "completions", "friendly_name": "Completions"},
           {"id": 13, "system_name": "embeddings", "friendly_name": "Embeddings"}]
PERIOD = {"name": "month", "since": "2026-11-01T00:00:00Z", "until": "2026-11-30T23:59:59Z",
          "granularity": "day", "timezone": "Etc/UTC"}


def answer(total, app=None, values=None):
    out = {"period": PERIOD, "total": total, "values": values if values is not None else [0, total]}
    if app:
        out["application"] = {"id": app[0], "name": "app%d" % app[0], "plan": {"id": 1, "name": "Basic"},
                              "account": {"id": app[1], "name": app[2]}}
    return out


def test_aggregate_sums_applications_into_accounts():
    """Two applications of one account add up; an account with no traffic still has every method at 0;
    a method not queried for an application (its product total was 0) counts 0."""
    apps = [{"id": 1, "name": "a1", "user_account_id": 100}, {"id": 2, "name": "a2", "user_account_id": 100},
            {"id": 3, "name": "a3", "user_account_id": 200}]
    service = {"models": answer(6), "completions": answer(2), "embeddings": answer(0)}
    hits = {1: answer(4, (1, 100, "Org A")), 2: answer(4, (2, 100, "Org A")), 3: answer(0, (3, 200, "Org B"))}
    per_app = {(1, "models"): answer(3), (1, "completions"): answer(1), (2, "models"): answer(3),
               (2, "completions"): answer(1, values=[None, 1])}
    out = mod.aggregate(METHODS, service, hits, per_app, apps)
    expected = [("models", 6), ("completions", 2), ("embeddings", 0)]
    assert [(m["system_name"], m["total"]) for m in out["methods"]] == expected
    assert out["applications"][1]["methods"]["completions"] == {"total": 1, "values": [0, 1]}  # null = 0
    assert [(a["id"], a["name"], a["total"], a["methods"]) for a in out["accounts"]] == [
        (100, "Org A", 8, {"models": 6, "completions": 2, "embeddings": 0}),
        (200, "Org B", 0, {"models": 0, "completions": 0, "embeddings": 0})]
    assert out["applications"][2] == {"id": 3, "name": "app3", "account_id": 200, "account_name": "Org B",
                                      "plan": "Basic", "total": 0,
                                      "methods": {m["system_name"]: {"total": 0, "values": []} for m in METHODS}}


@pytest.mark.parametrize("params, expected", [
    ({}, {"period": "month"}),
    ({"period": "week"}, {"period": "week"}),
    ({"since": "2026-11-01", "until": "2026-11-15", "granularity": "day", "timezone": "Europe/Madrid"},
     {"since": "2026-11-01", "until": "2026-11-15", "granularity": "day", "timezone": "Europe/Madrid"}),
])
def test_usage_query(params, expected):
    full = dict(dict.fromkeys(["period", "since", "until", "granularity", "timezone"]), **params)
    assert mod.usage_query(full, "hits") == dict(expected, metric_name="hits", skip_change="true")


class Analytics:
    """A scripted porta: one product (id 7) with hits and three methods, three applications, usage per
    (source, metric). Records the stats requests."""

    def __init__(self):
        self.app_usage = {(1, "models"): 3, (1, "completions"): 1, (2, "models"): 2}
        self.accounts = {1: (100, "Org A"), 2: (200, "Org B"), 3: (300, "Org C")}

    def __call__(self, method, path, query, form, headers):
        if path == "/admin/api/services/7.json":
            return 200, {"service": {"id": 7, "name": "Granite", "system_name": "granite"}}, None
        if path == "/admin/api/services/7/metrics.json":
            metrics = [{"metric": {"id": 10, "system_name": "hits", "friendly_name": "Hits"}}]
            metrics += [{"method": dict(m, parent_id=10)} for m in METHODS]
            return 200, {"metrics": metrics}, None
        if path == "/admin/api/applications.json":
            assert query["service_id"] == "7"
            return 200, {"applications": [{"application": {"id": i, "name": "app%d" % i, "service_id": 7,
                                                           "user_account_id": self.accounts[i][0]}}
                                          for i in (1, 2, 3)]}, None
        metric = query.get("metric_name")
        if path == "/stats/services/7/usage.json":
            total = sum(v for (_a, m), v in self.app_usage.items() if m == metric or metric == "hits")
            return 200, answer(total), None
        if path.startswith("/stats/applications/"):
            app = int(path.split("/")[3])
            total = sum(v for (a, m), v in self.app_usage.items() if a == app and (m == metric or metric == "hits"))
            return 200, answer(total, (app,) + self.accounts[app]), None
        return 404, {"status": "Not found"}, None


def test_module_requests_and_result(serve, run_module):
    """Product 7: 3 methods, 3 applications, traffic on 2 methods from 2 applications. Requests: product,
    metrics, applications (3) + hits and 3 methods for the product (4) + hits per application (3) + the
    2 busy methods for each of the 2 busy applications (4) = 14, not 3 + 4 * 4 = 19."""
    srv = serve(Analytics())
    res = run_module(mod, dict(admin_url=srv.url, access_token=TOKEN, retries=0, product="7", period="month",
                               _ansible_check_mode=True))
    assert res["exists"] and not res["changed"] and res["requests"] == len(srv.log) == 14
    stats = [(r["path"], r["query"]["metric_name"]) for r in srv.log if r["path"].startswith("/stats/")]
    assert ("/stats/applications/3/usage.json", "models") not in stats  # idle application: hits only
    assert ("/stats/applications/1/usage.json", "embeddings") not in stats  # idle method
    assert all(r["query"]["period"] == "month" for r in srv.log if r["path"].startswith("/stats/"))
    assert res["hits"]["total"] == 6 and res["period"] == PERIOD
    assert {m["system_name"]: m["total"] for m in res["methods"]} == {"models": 5, "completions": 1, "embeddings": 0}
    assert [(a["name"], a["total"], a["methods"]["models"]) for a in res["accounts"]] == [
        ("Org A", 4, 3), ("Org B", 2, 2), ("Org C", 0, 0)]
    assert TOKEN not in str(res)


def test_module_missing_product_and_bad_arguments(serve, run_module):
    srv = serve(Analytics())
    conn = dict(admin_url=srv.url, access_token=TOKEN, retries=0)
    res = run_module(mod, dict(conn, product="8"))
    assert res["exists"] is False and res["applications"] == [] and not res.get("failed")
    res = run_module(mod, dict(conn, product="7", since="2026-11-01"))
    assert res["failed"] and "granularity" in res["msg"]
    res = run_module(mod, dict(conn, product="7", methods=["nope"]))
    assert res["failed"] and "nope" in res["msg"] and "completions" in res["msg"]


def test_module_range_sends_since_until_granularity(serve, run_module):
    """A since/to range goes to porta as since, until and granularity, without a period."""
    srv = serve(Analytics())
    res = run_module(mod, dict(admin_url=srv.url, access_token=TOKEN, retries=0, product="7", since="2026-11-01",
                               to="2026-11-15", granularity="day", methods=["models"]))
    assert res["exists"] and [m["system_name"] for m in res["methods"]] == ["models"]
    queries = [r["query"] for r in srv.log if r["path"].startswith("/stats/")]
    assert queries and all(q["since"] == "2026-11-01" and q["until"] == "2026-11-15" and q["granularity"] == "day"
                           and "period" not in q for q in queries)
    assert sorted(set(q["metric_name"] for q in queries)) == ["hits", "models"]


def test_token_without_the_stats_scope_is_named(serve, run_module):
    """porta answers 403 "Your access token does not have the correct permissions" to a token whose scopes
    lack stats (porta app/lib/api_authentication/by_access_token.rb): the message names the missing scope."""
    base = Analytics()

    def app(method, path, query, form, headers):
        if path.startswith("/stats/"):
            return 403, {"error": "Your access token does not have the correct permissions"}, None
        return base(method, path, query, form, headers)

    srv = serve(app)
    res = run_module(mod, dict(admin_url=srv.url, access_token=TOKEN, retries=0, product="7"))
    assert res["failed"] and res["status"] == 403 and "Analytics API (stats) scope" in res["msg"], res
    assert TOKEN not in str(res)
