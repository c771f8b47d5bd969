"""APIcast stand-in end to end: products built through porta's REST API, called through the gateway.

Model server, porta (admin API + backend listener) and APIcast run in-process on one LabContext;
everything between them and the test is real HTTP(S): requests, curl, porta's proxy_configs
endpoint, the authrep wire protocol. Credentials and gateway errors: test_gateway_auth.py.
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
import uuid

import pytest
import requests

from gateway_fixtures import (  # noqa: F401  (fixtures: stack, admin, workshop)
    APICAST, CORS, GRANITE, REFRESH, REMOVE_BEARER, WORKSHOP_BODY, admin, make_product, post, promote_latest,
    served, stack, status, try_open, upstream, usage, workshop)
from kube_fixtures import wait_for
from maaslab.apicast import APIcast
from maaslab.model import ModelServer


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_workshop_curl_against_production(workshop, admin):
    before = usage(admin, workshop["app_id"], "completions")
    cmd = ["curl", "-sS", "-X", "POST", f"{workshop['production']}/v1/completions",
           "-H", "accept: application/json", "-H", "Content-Type: application/json",
           "-H", f"Authorization: Bearer {workshop['key']}",
           "-d", json.dumps(WORKSHOP_BODY, indent=4), "-w", "\n%{http_code}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True).stdout
    body, _, code = out.rpartition("\n")
    assert code == "200"
    doc = json.loads(body)
    assert doc["object"] == "text_completion" and doc["model"] == GRANITE
    assert doc["choices"][0]["text"].startswith(" city in California")
    assert doc["choices"][0]["finish_reason"] == "length"
    assert doc["usage"] == {"prompt_tokens": 4, "completion_tokens": 15, "total_tokens": 19}
    assert usage(admin, workshop["app_id"], "completions") == before + 1


def test_staging_serves_too(workshop):
    r = post(workshop["staging"], workshop["key"])
    assert r.status_code == 200 and r.json()["choices"][0]["text"]


def test_other_mapped_endpoints_counted(workshop, admin):
    before = usage(admin, workshop["app_id"], "models")
    r = requests.get(workshop["production"] + "/v1/models", headers={"Authorization": f"Bearer {workshop['key']}"},
                     timeout=5)
    assert r.status_code == 200 and r.json()["data"][0]["id"] == GRANITE
    h = requests.get(workshop["production"] + "/health", headers={"Authorization": f"Bearer {workshop['key']}"},
                     timeout=5)
    assert h.status_code == 200 and h.content == b""
    assert usage(admin, workshop["app_id"], "models") == before + 1


def test_plan_limit_429(stack, admin):
    p = make_product(admin, stack["ctx"].urls["model"], limits={"completions": 2})
    wait_for(lambda: served(p["production"], p["key"]), REFRESH + 3)  # that is call 1
    assert post(p["production"], p["key"]).status_code == 200
    r = post(p["production"], p["key"])
    assert r.status_code == 429 and r.text == "Usage limit exceeded"  # porta's default, not APIcast's
    assert r.headers["Content-Type"] == "text/plain; charset=us-ascii"
    # APIcast copies the backend's 3scale-limit-reset into Retry-After unchanged (proxy.lua limit_reset,
    # errors.lua limits_exceeded); apisonator reports -1 for an eternity limit, which never resets.
    assert r.headers["Retry-After"] == "-1"
    assert usage(admin, p["app_id"], "completions") == 2  # the rejected call is not counted
    # a per-minute limit on another metric: Retry-After = seconds left in the current minute
    plan = admin.call("GET", f"/services/{p['id']}/application_plans.json")["plans"][0]["application_plan"]
    admin.call("POST", f"/application_plans/{plan['id']}/metrics/{p['method_ids']['models']}/limits.json",
               period="minute", value=1)
    models = p["production"] + "/v1/models"
    assert requests.get(models, headers={"Authorization": f"Bearer {p['key']}"}, timeout=5).status_code == 200
    r = requests.get(models, headers={"Authorization": f"Bearer {p['key']}"}, timeout=5)
    assert r.status_code == 429 and 0 <= int(r.headers["Retry-After"]) <= 60, r.headers


def test_disabled_metric_is_refused_with_403(stack, admin):
    """A limit of 0 disables a method: apisonator answers 409 limits_exceeded with
    3scale-limit-max-value: 0, and APIcast turns that into the generic auth failure (403), not 429.
    Upstream: APIcast gateway/src/apicast/proxy.lua handle_backend_response."""
    p = make_product(admin, stack["ctx"].urls["model"])
    wait_for(lambda: served(p["production"], p["key"]), REFRESH + 3)
    plan = admin.call("GET", f"/services/{p['id']}/application_plans.json")["plans"][0]["application_plan"]
    admin.call("POST", f"/application_plans/{plan['id']}/metrics/{p['method_ids']['models']}/limits.json",
               period="minute", value=0)
    r = requests.get(p["production"] + "/v1/models", headers={"Authorization": f"Bearer {p['key']}"}, timeout=5)
    assert r.status_code == 403 and r.text == "Authentication failed", (r.status_code, r.text)
    assert "Retry-After" not in r.headers


def test_cors(workshop):
    pre = requests.options(workshop["production"] + "/v1/completions", timeout=5, headers={
        "Origin": "https://portal.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert pre.headers["Access-Control-Allow-Credentials"] == "true"
    assert pre.headers["Access-Control-Allow-Headers"].replace(" ", "") == "Authorization,Content-type,Accept"
    assert "Access-Control-Allow-Methods" not in pre.headers  # allow_methods: [] clears it, as in APIcast
    simple = post(workshop["production"], workshop["key"], headers={"Origin": "https://portal.example.com"})
    assert simple.status_code == 200 and simple.headers["Access-Control-Allow-Origin"] == "*"
    denied = post(workshop["production"], headers={"Origin": "https://portal.example.com"})
    assert denied.status_code == 403 and denied.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Origin" not in post(workshop["production"], workshop["key"]).headers


def test_upstream_timeout_504(stack, admin):
    p = make_product(admin, stack["ctx"].urls["model"], policies=[CORS, REMOVE_BEARER, APICAST, upstream(0.3)])
    wait_for(lambda: served(p["production"], p["key"]), REFRESH + 3)
    faults = stack["ctx"].faults.path
    faults.write_text(json.dumps({"model": {"delay": 2.0}}))
    try:
        t0 = time.monotonic()
        r = post(p["production"], p["key"])
        elapsed = time.monotonic() - t0
    finally:
        faults.unlink()
    assert r.status_code == 504 and "Gateway Time-out" in r.text
    assert 0.3 <= elapsed < 1.8  # the read timeout fired, not the model's answer


def test_upstream_down_502(stack, admin, workshop):
    faults = stack["ctx"].faults.path
    faults.write_text(json.dumps({"model": {"down": True}}))
    try:
        r = post(workshop["production"], workshop["key"])
    finally:
        faults.unlink()
    assert r.status_code == 502


def test_promotion_visible_only_after_refresh(stack, admin):
    gw: APIcast = stack["apicast"]
    p = make_product(admin, stack["ctx"].urls["model"], promote=False)
    # staging works at once (lazy loader, no cache); the production host is unknown: 404 empty
    wait_for(lambda: served(p["staging"], p["key"]), 3)
    unknown = wait_for(lambda: try_open(lambda: post(p["production"], p["key"])), 3)[0]
    assert unknown.status_code == 404 and unknown.content == b""

    loads = gw.production_loads
    promoted_at = time.monotonic()
    promote_latest(admin, p["id"])
    still_old = post(p["production"], p["key"])
    if gw.production_loads == loads:  # no refresh happened in between: must still be the old config
        assert still_old.status_code == 404 and still_old.content == b""
    first = wait_for(lambda: served(p["production"], p["key"]), REFRESH + 3, interval=0.02)
    seen_after = time.monotonic() - promoted_at
    assert first.json()["object"] == "text_completion"
    assert gw.production_loads > loads  # it took a refresh
    assert seen_after <= REFRESH + 1.0
    print(f"\npromotion visible after {seen_after:.3f}s (refresh {REFRESH}s)")


def test_sse_streams_through_gateway(stack, workshop):
    model: ModelServer = stack["model"]
    model.ctx.settings["model_token_delay"] = 0.05
    req = {"model": GRANITE, "messages": [{"role": "user", "content": "Tell me about Paris"}], "temperature": 0,
           "max_tokens": 20, "stream": True, "stream_options": {"include_usage": True}}
    try:
        t0 = time.monotonic()
        arrivals, events = [], []
        with post(workshop["production"], workshop["key"], path="/v1/chat/completions", body=req, stream=True) as r:
            assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line:
                    arrivals.append(time.monotonic() - t0)
                    events.append(line)
    finally:
        model.ctx.settings["model_token_delay"] = 0.0
    assert events[-1] == b"data: [DONE]"
    assert json.loads(events[-2][6:])["usage"]["completion_tokens"] == 20
    # chunk by chunk: events arrive spread over the generation time, not all at once at the end
    assert arrivals[-1] - arrivals[0] >= 19 * 0.05 * 0.8


def test_latency(workshop, stack):
    direct, via = [], []
    for _ in range(20):
        t0 = time.perf_counter()
        assert requests.post(stack["ctx"].urls["model"] + "/v1/completions", json=WORKSHOP_BODY, timeout=5).ok
        direct.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        assert post(workshop["production"], workshop["key"]).status_code == 200
        via.append(time.perf_counter() - t0)
    d, v = statistics.median(direct) * 1000, statistics.median(via) * 1000
    print(f"\nmedian latency: model direct {d:.1f} ms, through APIcast (authrep + proxy) {v:.1f} ms")
    assert v < 250


def test_all_matching_rules_add_up_until_last(stack, admin):
    """Through porta + gateway: two rules on / and /v1 both count, `last` stops evaluation."""
    p = make_product(admin, stack["ctx"].urls["model"])
    sid, hits = p["id"], p["method_ids"]
    admin.call("POST", f"/services/{sid}/proxy/mapping_rules.json", http_method="POST", pattern="/v1",
               delta=2, metric_id=hits["embeddings"])
    admin.call("POST", f"/services/{sid}/proxy/mapping_rules.json", http_method="POST", pattern="/v1/chat",
               delta=5, metric_id=hits["tokenize"], last="true")
    admin.call("POST", f"/services/{sid}/proxy/deploy.json")  # staging: lazy, visible at once
    wait_for(lambda: status(p["staging"]) == 403, 3)  # the staging listener is open (no authrep without a key)
    before = {m: usage(admin, p["app_id"], m) for m in ("completions", "embeddings", "tokenize", "hits")}
    assert post(p["staging"], p["key"]).status_code == 200
    after = {m: usage(admin, p["app_id"], m) for m in before}
    assert after["completions"] - before["completions"] == 1
    assert after["embeddings"] - before["embeddings"] == 2  # /v1 rule matched as well
    assert after["tokenize"] == before["tokenize"]  # /v1/chat did not match this path
    assert after["hits"] - before["hits"] == 3  # methods roll up into hits


def test_staging_is_lazy_production_is_cached(stack, admin, workshop):
    """A config change: staging shows it on the next request, production only after promote + refresh."""
    gw: APIcast = stack["apicast"]
    sid, url = workshop["id"], "/v1/nowhere"
    # PATCH proxy deploys to staging at once (porta), nothing else
    admin.call("PATCH", f"/services/{sid}/proxy.json", error_no_match="No route for this model")
    assert post(workshop["staging"], workshop["key"], path=url).text == "No route for this model"
    assert post(workshop["production"], workshop["key"], path=url).text == "No Mapping Rule matched"
    loads = gw.production_loads
    promote_latest(admin, sid)
    old = post(workshop["production"], workshop["key"], path=url).text
    if gw.production_loads == loads:
        assert old == "No Mapping Rule matched"
    wait_for(lambda: post(workshop["production"], workshop["key"], path=url).text == "No route for this model",
             REFRESH + 3, interval=0.02)
    assert gw.production_loads > loads


def test_backend_path_prefix_routing(stack, admin):
    """Backend used at /granite: porta prefixes its rules, the gateway strips the prefix upstream."""
    name = "r" + uuid.uuid4().hex[:8]
    backend = admin.call("POST", "/backend_apis.json", name=name, system_name=name,
                         private_endpoint=stack["ctx"].urls["model"])["backend_api"]
    bhits = next(m["metric"]["id"] for m in admin.call("GET", f"/backend_apis/{backend['id']}/metrics.json")["metrics"]
                 if m["metric"]["system_name"] == f"hits.{backend['id']}")  # porta's extended system names
    admin.call("POST", f"/backend_apis/{backend['id']}/mapping_rules.json", http_method="POST",
               pattern="/v1/completions", delta=1, metric_id=bhits)
    sid = admin.call("POST", "/services.json", name=name, system_name=name)["service"]["id"]
    admin.call("POST", f"/services/{sid}/backend_usages.json", backend_api_id=backend["id"], path="/granite")
    admin.call("PATCH", f"/services/{sid}/proxy.json", credentials_location="authorization")
    plan = admin.call("POST", f"/services/{sid}/application_plans.json", name="Plan", system_name="plan")
    acc = admin.call("POST", "/signup.json", org_name=name, username=name, email=f"{name}@example.com",
                     password="openshift")["account"]
    app = admin.call("POST", f"/accounts/{acc['id']}/applications.json", plan_id=plan["application_plan"]["id"],
                     name=name)["application"]
    admin.call("POST", f"/services/{sid}/proxy/deploy.json")
    staging = admin.call("GET", f"/services/{sid}/proxy.json")["proxy"]["sandbox_endpoint"]
    wait_for(lambda: status(staging) == 403, 3)
    r = post(staging, app["user_key"], path="/granite/v1/completions")
    assert r.status_code == 200 and r.json()["choices"][0]["text"].startswith(" city in California")
    assert post(staging, app["user_key"]).text == "No Mapping Rule matched"  # unprefixed path
    assert usage(admin, app["id"], "hits") == 1
