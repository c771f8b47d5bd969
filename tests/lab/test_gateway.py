"""APIcast stand-in end to end: products built through porta's REST API, called through the gateway.

Model server, porta (admin API + backend listener) and APIcast run in-process on one LabContext;
everything between them and the test is real HTTP(S): requests, curl, porta's proxy_configs
endpoint, the authrep wire protocol.
"""
from __future__ import annotations

import base64
import json
import shutil
import statistics
import subprocess
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from kube_fixtures import wait_for
from maaslab.apicast import APIcast, MappingRule, Service
from maaslab.context import LabContext, free_port
from maaslab.httpbase import JSONHandler, LabHTTPServer
from maaslab.model import ModelServer
from maaslab.porta import Porta

GRANITE = "ibm-granite/granite-3.2-8b-instruct"
REFRESH = 0.5  # apicast_refresh for this module (production config cache)
WORKSHOP_BODY = {"model": GRANITE, "prompt": "San Francisco is a", "max_tokens": 15, "temperature": 0}
RULES = [("GET", "/health", "health"), ("POST", "/tokenize", "tokenize"), ("POST", "/detokenize", "detokenize"),
         ("GET", "/v1/models", "models"), ("GET", "/version", "version"),
         ("POST", "/v1/chat/completions", "chat/completions"), ("POST", "/v1/completions", "completions"),
         ("POST", "/v1/embeddings", "embeddings")]
CORS = {"name": "cors", "version": "builtin", "enabled": True, "configuration": {
    "allow_credentials": True, "allow_headers": ["Authorization", "Content-type", "Accept"],
    "allow_methods": [], "allow_origin": "*"}}
REMOVE_BEARER = {"name": "remove-bearer", "version": "0.1", "enabled": True, "configuration": {}}
APICAST = {"name": "apicast", "version": "builtin", "enabled": True, "configuration": {}}


def upstream(seconds: float) -> dict:
    return {"name": "upstream_connection", "version": "builtin", "enabled": True, "configuration": {
        "connect_timeout": seconds, "read_timeout": seconds, "send_timeout": seconds}}


WORKSHOP_POLICIES = [CORS, REMOVE_BEARER, APICAST, upstream(180)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("gateway")
    ctx = LabContext.create(d, {"apicast_refresh": REFRESH, "users": 1, "tenant": "3scale"})
    started = []
    try:
        for cls in (ModelServer, Porta, APIcast):
            comp = cls(ctx)
            comp.start()
            started.append(comp)
        yield {"ctx": ctx, "model": started[0], "porta": started[1], "apicast": started[2]}
    finally:
        for comp in reversed(started):
            comp.stop()


class Admin:
    """A thin client of porta's Account Management API (JSON, token as Basic user)."""

    def __init__(self, ctx: LabContext):
        self.base = ctx.urls["porta"]
        self.s = requests.Session()
        self.s.auth = (ctx.secret("porta_token"), "")
        self.ca = str(ctx.tls.ca_cert)  # per request: REQUESTS_CA_BUNDLE would override Session.verify

    def call(self, method: str, endpoint: str, **data):
        url = self.base + ("" if endpoint.startswith("/stats/") else "/admin/api") + endpoint
        r = self.s.request(method, url, data=data if method != "GET" else None,
                           params=data if method == "GET" else None, timeout=10, verify=self.ca)
        assert r.status_code < 300, f"{method} {endpoint}: {r.status_code} {r.text[:300]}"
        return r.json() if r.content else None


@pytest.fixture(scope="module")
def admin(stack):
    return Admin(stack["ctx"])


def make_product(admin: Admin, model_url: str, *, credentials="headers", auth_user_key="Authorization",
                 policies=WORKSHOP_POLICIES, limits=None, promote=True) -> dict:
    """Backend + product + methods + mapping rules + plan + application, deployed (and promoted)."""
    name = "p" + uuid.uuid4().hex[:8]
    backend = admin.call("POST", "/backend_apis.json", name=name, system_name=name,
                         private_endpoint=model_url)["backend_api"]
    svc = admin.call("POST", "/services.json", name=name, system_name=name)["service"]
    sid = svc["id"]
    admin.call("POST", f"/services/{sid}/backend_usages.json", backend_api_id=backend["id"], path="/")
    metrics = admin.call("GET", f"/services/{sid}/metrics.json")["metrics"]
    hits = next(m["metric"]["id"] for m in metrics if m["metric"]["system_name"] == "hits")
    method_ids = {}
    for verb, pattern, ref in RULES:
        m = admin.call("POST", f"/services/{sid}/metrics/{hits}/methods.json", friendly_name=ref,
                       system_name=ref)["method"]
        method_ids[ref] = m["id"]
        admin.call("POST", f"/services/{sid}/proxy/mapping_rules.json", http_method=verb, pattern=pattern,
                   delta=1, metric_id=m["id"])
    admin.call("PATCH", f"/services/{sid}/proxy.json", credentials_location=credentials,
               auth_user_key=auth_user_key)
    admin.call("PUT", f"/services/{sid}/proxy/policies.json", policies_config=json.dumps(policies))
    plan = admin.call("POST", f"/services/{sid}/application_plans.json", name="Standard Plan",
                      system_name="standard")["application_plan"]
    for ref, value in (limits or {}).items():
        admin.call("POST", f"/application_plans/{plan['id']}/metrics/{method_ids[ref]}/limits.json",
                   period="eternity", value=value)  # no period boundary can reset it mid-test
    account = admin.call("POST", "/signup.json", org_name=name, username=name, email=f"{name}@example.com",
                         password="openshift")["account"]
    app = admin.call("POST", f"/accounts/{account['id']}/applications.json", plan_id=plan["id"],
                     name=f"{name} application")["application"]
    admin.call("POST", f"/services/{sid}/proxy/deploy.json")
    if promote:
        promote_latest(admin, sid)
    proxy = admin.call("GET", f"/services/{sid}/proxy.json")["proxy"]
    return {"id": sid, "app_id": app["id"], "key": app["user_key"], "production": proxy["endpoint"],
            "staging": proxy["sandbox_endpoint"], "method_ids": method_ids}


def promote_latest(admin: Admin, sid: int) -> None:
    latest = admin.call("GET", f"/services/{sid}/proxy/configs/sandbox/latest.json")["proxy_config"]
    admin.call("POST", f"/services/{sid}/proxy/configs/sandbox/{latest['version']}/promote.json", to="production")


def served(url: str, key: str, path="/v1/completions"):
    """The gateway answered with the model (used to wait for a config to be live)."""
    try:
        r = requests.post(url + path, json=WORKSHOP_BODY, headers={"Authorization": f"Bearer {key}"}, timeout=5)
    except requests.ConnectionError:  # listener not open yet
        return None
    return r if r.status_code == 200 else None


@pytest.fixture(scope="module")
def workshop(stack, admin):
    """The workshop's product: Authorization header credentials + remove-bearer, promoted."""
    p = make_product(admin, stack["ctx"].urls["model"])
    wait_for(lambda: served(p["production"], p["key"]), REFRESH + 3)
    return p


def usage(admin: Admin, app_id: int, metric: str) -> int:
    return admin.call("GET", f"/stats/applications/{app_id}/usage.json", metric_name=metric,
                      period="day")["total"]


def post(url, key=None, path="/v1/completions", body=WORKSHOP_BODY, headers=None, **kw):
    h = {"Authorization": f"Bearer {key}"} if key else {}
    h.update(headers or {})
    return requests.post(url + path, json=body, headers=h, timeout=10, **kw)


# --------------------------------------------------------------------------------------------

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


def test_missing_credentials_403_even_unmapped(workshop):
    """Porta's proxy defaults (403, us-ascii) are what the gateway answers; credentials are checked
    before mapping rules. Upstream: APIcast gateway/src/apicast/errors.lua (`no_credentials`),
    gateway/src/apicast/proxy.lua (`_M:rewrite`); porta db/schema.rb (proxies defaults)."""
    for path in ("/v1/completions", "/not/mapped"):
        r = post(workshop["production"], path=path)
        assert r.status_code == 403
        assert r.text == "Authentication parameters missing"
        assert r.headers["Content-Type"] == "text/plain; charset=us-ascii"


def test_wrong_key_403(workshop, admin):
    before = usage(admin, workshop["app_id"], "completions")
    r = post(workshop["production"], "0123456789abcdef0123456789abcdef")
    assert r.status_code == 403 and r.text == "Authentication failed"
    assert usage(admin, workshop["app_id"], "completions") == before


def test_no_mapping_rule_404(workshop):
    r = post(workshop["production"], workshop["key"], path="/v1/unknown")
    assert r.status_code == 404 and r.text == "No Mapping Rule matched"
    r = requests.delete(workshop["production"] + "/v1/completions",
                        headers={"Authorization": f"Bearer {workshop['key']}"}, timeout=5)
    assert r.status_code == 404  # method is part of the rule


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
    assert "Retry-After" not in r.headers  # an eternity limit never resets
    assert usage(admin, p["app_id"], "completions") == 2  # the rejected call is not counted
    # a per-minute limit on another metric: Retry-After = seconds left in the current minute
    plan = admin.call("GET", f"/services/{p['id']}/application_plans.json")["plans"][0]["application_plan"]
    admin.call("POST", f"/application_plans/{plan['id']}/metrics/{p['method_ids']['models']}/limits.json",
               period="minute", value=0)
    r = requests.get(p["production"] + "/v1/models", headers={"Authorization": f"Bearer {p['key']}"}, timeout=5)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60


def test_headers_mode_without_remove_bearer(stack, admin):
    p = make_product(admin, stack["ctx"].urls["model"], policies=[CORS, APICAST, upstream(180)])
    wait_for(lambda: status(p["production"], headers={"Authorization": p["key"]}) == 200, REFRESH + 3)
    # without the policy the literal "Bearer <key>" is the user_key: the backend rejects it
    r = post(p["production"], p["key"])
    assert r.status_code == 403 and r.text == "Authentication failed"


def test_remove_bearer_accepts_both_forms(workshop):
    assert post(workshop["production"], headers={"Authorization": workshop["key"]}).status_code == 200
    assert post(workshop["production"], workshop["key"]).status_code == 200


def test_authorization_mode(stack, admin):
    p = make_product(admin, stack["ctx"].urls["model"], credentials="authorization",
                     policies=[CORS, APICAST, upstream(180)])
    wait_for(lambda: served(p["production"], p["key"]), REFRESH + 3)  # Bearer <key>
    basic = base64.b64encode(f"{p['key']}:".encode()).decode()
    assert post(p["production"], headers={"Authorization": f"Basic {basic}"}).status_code == 200
    # schemes are case-sensitive and a bare key is no credential in this mode
    for value in (f"bearer {p['key']}", p["key"]):
        r = post(p["production"], headers={"Authorization": value})
        assert r.status_code == 403 and r.text == "Authentication parameters missing"


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
    unknown = wait_for(lambda: _try(lambda: post(p["production"], p["key"])), 3)[0]
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


def status(url, *args, **kw) -> int | None:
    """Status of `post`, None while the listener is not open yet."""
    try:
        return post(url, *args, **kw).status_code
    except requests.ConnectionError:
        return None


def _try(fn):
    """(result,) once the listener accepts connections (a 404 Response is falsy itself)."""
    try:
        return (fn(),)
    except requests.ConnectionError:
        return None


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


# ---- mapping rules (the matcher itself, no HTTP) ----------------------------------------------

def rule(pattern, method="POST", metric="hits", delta=1, last=False):
    return MappingRule({"http_method": method, "pattern": pattern, "metric_system_name": metric, "delta": delta,
                        "last": last})


@pytest.mark.parametrize("pattern,verb,method,path,args,expected", [
    ("/v1/completions", "POST", "POST", "/v1/completions", {}, True),
    ("/v1/completions", "POST", "POST", "/v1/completionsX", {}, True),  # prefix match
    ("/v1/completions", "POST", "POST", "/v1/completions/foo", {}, True),
    ("/v1/completions$", "POST", "POST", "/v1/completions/foo", {}, False),  # $ anchors
    ("/v1/completions$", "POST", "POST", "/v1/completions", {}, True),
    ("/v1/completions", "POST", "GET", "/v1/completions", {}, False),  # method must match
    ("/v1/completions", "POST", "POST", "/V1/completions", {}, False),  # case-sensitive
    ("/v1/completions", "POST", "POST", "//v1//completions", {}, True),  # duplicate slashes collapse
    ("/models/{id}/info", "GET", "GET", "/models/granite-3.2/info", {}, True),
    ("/models/{id}/info", "GET", "GET", "/models/a/b/info", {}, False),  # {var} is one segment
    ("/v1.0/x", "GET", "GET", "/v1x0/x", {}, False),  # '.' is literal
    ("/search?q={term}", "GET", "GET", "/search", {"q": "llm"}, True),
    ("/search?q={term}", "GET", "GET", "/search", {}, False),
    ("/search?kind=model", "GET", "GET", "/search", {"kind": "model"}, True),
    ("/search?kind=model", "GET", "GET", "/search", {"kind": "data"}, False),
])
def test_mapping_rule_matching(pattern, verb, method, path, args, expected):
    assert rule(pattern, method=verb).matches(method, path, args) is expected


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


def test_query_credentials_and_unknown_policy_skipped(stack, admin, caplog):
    """A policy the gateway cannot load is logged and skipped, the rest of the chain runs.
    Upstream: APIcast gateway/src/apicast/configuration.lua (`build_policy_chain`: WARN "failed to load
    policy"), gateway/src/apicast/configuration/service.lua (query / form-body user_key)."""
    caplog.set_level("WARNING", logger="maaslab.apicast")
    llm_metrics = {"name": "llm_metrics", "version": "0.1", "enabled": True, "configuration": {}}
    p = make_product(admin, stack["ctx"].urls["model"], credentials="query", auth_user_key="api_key",
                     policies=[CORS, llm_metrics, APICAST, upstream(180)])
    wait_for(lambda: status(p["production"], path=f"/v1/completions?api_key={p['key']}") == 200, REFRESH + 3)
    # the Authorization header is not where it looks
    assert post(p["production"], p["key"]).text == "Authentication parameters missing"
    # a form-encoded body carries the key too (the model then rejects the non-JSON body: 400, not 403)
    r = requests.post(p["production"] + "/v1/completions", data={"api_key": p["key"], "prompt": "x"}, timeout=5)
    assert r.status_code == 400 and r.json()["type"] == "BadRequestError"
    assert any("failed to load policy: llm_metrics version: 0.1" in rec.getMessage() for rec in caplog.records)


def test_backend_path_prefix_routing(stack, admin):
    """Backend used at /granite: porta prefixes its rules, the gateway strips the prefix upstream."""
    name = "r" + uuid.uuid4().hex[:8]
    backend = admin.call("POST", "/backend_apis.json", name=name, system_name=name,
                         private_endpoint=stack["ctx"].urls["model"])["backend_api"]
    bhits = next(m["metric"]["id"] for m in admin.call("GET", f"/backend_apis/{backend['id']}/metrics.json")["metrics"]
                 if m["metric"]["system_name"] == "hits")
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


# ---- the proxy leg in isolation: a hand-written config, an echo upstream ----------------------

class Echo(JSONHandler):
    """Upstream that echoes the request; also answers authrep (recording it) as the backend listener."""

    def _any(self):
        if self.path.startswith("/transactions/authrep.xml"):
            self.server.authreps.append(parse_qs(urlsplit(self.path).query, keep_blank_values=True))
            return self.send_bytes(200, b"<status><authorized>true</authorized></status>",
                                   "application/vnd.3scale-v2.0+xml")
        self.send_json(200, {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                             "body": self.read_body().decode()}, headers={"X-Upstream": "echo"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any


@pytest.fixture
def echo_gateway(tmp_path):
    """An echo upstream + backend listener and an APIcast (not started: no porta here) whose
    production config is installed by hand; yields install(proxy) -> gateway URL."""
    echo = LabHTTPServer(("127.0.0.1", 0), Echo)
    echo.authreps = []
    echo.start_background("echo")
    echo.url = f"http://127.0.0.1:{echo.server_address[1]}"
    gw = APIcast(LabContext(dir=tmp_path))

    def install(proxy: dict, routes=None) -> str:
        port = free_port()
        gw.production = {**gw.production, port: Service({
            "id": 42, "backend_authentication_type": "service_token", "backend_authentication_value": "stoken",
            "backend": {"endpoint": echo.url}, "proxy": {"endpoint": f"http://127.0.0.1:{port}", **proxy},
            "backend_api_configs": routes or [{"path": "/", "backend_api": {"private_endpoint": echo.url}}]}, 1)}
        gw._listen(port, "production")
        return f"http://127.0.0.1:{port}"

    install.echo = echo
    try:
        yield install
    finally:
        gw.stop()
        echo.shutdown()
        echo.server_close()


def test_request_forwarded_as_received(echo_gateway):
    echo = echo_gateway.echo
    url = echo_gateway({"credentials_location": "headers", "auth_user_key": "Authorization",
                        "secret_token": "shared-secret",
                        "proxy_rules": [{"http_method": "PUT", "pattern": "/api/v1/{id}",
                                         "metric_system_name": "writes", "delta": 3}]},
                       routes=[{"path": "/", "backend_api": {"private_endpoint": "https://unused.example.com:443"}},
                               {"path": "/api", "backend_api": {"private_endpoint": echo.url + "/base"}}])
    r = requests.put(f"{url}/api/v1/x?a=1&b=two", data=b"payload", timeout=5,
                     headers={"Authorization": "Bearer k1", "X-Custom": "yes", "Connection": "keep-alive"})
    assert r.status_code == 200 and r.headers["X-Upstream"] == "echo"
    seen = r.json()
    assert seen["method"] == "PUT" and seen["path"] == "/base/v1/x?a=1&b=two" and seen["body"] == "payload"
    h = seen["headers"]
    assert h["Authorization"] == "Bearer k1" and h["X-Custom"] == "yes"  # forwarded unchanged
    assert h["Host"] == f"127.0.0.1:{echo.server_address[1]}" and h["X-Real-IP"] == "127.0.0.1"
    assert h["X-3scale-proxy-secret-token"] == "shared-secret"
    assert echo.authreps == [{"service_token": ["stoken"], "service_id": ["42"], "user_key": ["Bearer k1"],
                              "usage[writes]": ["3"]}]


# ---- credentials and gateway errors (apicast/CONTRACT.md §7) ----------------------------------

def test_empty_credentials_go_to_the_backend(echo_gateway):
    """An empty string is a present credential: it is sent to authrep as user_key="".

    Upstream: APIcast gateway/src/apicast/proxy.lua (`if not val` → only nil is missing),
    gateway/src/apicast/configuration/service.lua (`backend_version_credentials.version_1`),
    gateway/src/resty/http_authorization.lua (Basic `^(.*):(.*)$`, Bearer token = the rest).
    """
    echo = echo_gateway.echo
    rules = [{"http_method": "POST", "pattern": "/", "metric_system_name": "hits", "delta": 1}]
    header = echo_gateway({"credentials_location": "headers", "auth_user_key": "X-Key", "proxy_rules": rules})
    query = echo_gateway({"credentials_location": "query", "auth_user_key": "user_key", "proxy_rules": rules})
    authz = echo_gateway({"credentials_location": "authorization", "proxy_rules": rules})
    colon_key = base64.b64encode(b":KEY").decode()
    cases = [(query, "/v1?user_key=", {}),
             (query, "/v1?USER_KEY=", {}),  # nginx $arg_ names are case-insensitive
             (authz, "/v1", {"Authorization": "Bearer "}),
             (authz, "/v1", {"Authorization": f"Basic {colon_key}"})]  # the user part "", not the password
    if shutil.which("curl"):  # requests cannot send an empty header; curl's "-H 'X-Key;'" does
        out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                              "-H", "X-Key;", header + "/v1"], capture_output=True, text=True, timeout=10, check=True)
        assert out.stdout == "200"
        assert echo.authreps.pop()["user_key"] == [""]
    for url, path, headers in cases:
        r = requests.post(url + path, headers=headers, timeout=5)
        assert r.status_code == 200, (path, headers)  # the echo backend authorises everything
        assert echo.authreps.pop()["user_key"] == [""], (path, headers)
    # absent credentials never reach the backend
    for url, headers in ((header, {}), (query, {}), (authz, {"Authorization": "Token abc"}),
                         (authz, {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()})):
        r = requests.post(url + "/v1", headers=headers, timeout=5)
        assert r.status_code == 401 and r.text == "Authentication parameters missing"
    assert echo.authreps == []


def test_empty_credentials_refused_by_backend_403(stack, admin):
    """Through porta's backend listener: an empty credential is `user_key_invalid` → 403 auth failed,
    never the auth-missing answer and never 200.

    Upstream: APIcast gateway/src/apicast/proxy.lua (`_M:rewrite`, `_M:authorize`),
    gateway/src/apicast/errors.lua (`authorization_failed`).
    """
    model = stack["ctx"].urls["model"]
    auth = make_product(admin, model, credentials="authorization", policies=[APICAST], promote=False)
    query = make_product(admin, model, credentials="query", auth_user_key="user_key", policies=[APICAST],
                         promote=False)
    header = make_product(admin, model, credentials="headers", auth_user_key="X-Key", policies=[APICAST],
                          promote=False)
    wait_for(lambda: served(auth["staging"], auth["key"]), 3)  # counts 1 hit
    colon_key = base64.b64encode(f":{auth['key']}".encode()).decode()
    for r in (post(auth["staging"], headers={"Authorization": "Bearer "}),
              post(auth["staging"], headers={"Authorization": f"Basic {colon_key}"}),
              post(wait_for(lambda: status(query["staging"]) and query["staging"], 3), path="/v1/completions?user_key=")):
        assert r.status_code == 403 and r.text == "Authentication failed", r.request.headers
    wait_for(lambda: status(header["staging"]), 3)
    if shutil.which("curl"):
        out = subprocess.run(["curl", "-sS", "-X", "POST", "-H", "X-Key;", "-H", "Content-Type: application/json",
                              "-d", json.dumps(WORKSHOP_BODY), "-w", "\n%{http_code}",
                              header["staging"] + "/v1/completions"],
                             capture_output=True, text=True, timeout=10, check=True)
        assert out.stdout == "Authentication failed\n403"
    assert [usage(admin, p["app_id"], "hits") for p in (auth, query, header)] == [1, 0, 0]


def test_error_defaults_only_without_config_values(echo_gateway):
    """Each error_* value of the configuration is used as is; APIcast's own default (401, utf-8) only
    where the configuration has none (null / absent).

    Upstream: APIcast gateway/src/apicast/configuration.lua (`error_auth_missing = proxy.error_auth_missing or
    'Authentication parameters missing'`, `auth_missing_status = proxy.error_status_auth_missing or 401`).
    """
    rules = [{"http_method": "POST", "pattern": "/v1", "metric_system_name": "hits", "delta": 1}]
    bare = echo_gateway({"credentials_location": "query", "proxy_rules": rules, "error_status_auth_missing": None})
    r = requests.post(bare + "/v1", timeout=5)
    assert (r.status_code, r.text, r.headers["Content-Type"]) == (401, "Authentication parameters missing",
                                                                  "text/plain; charset=utf-8")
    r = requests.post(bare + "/other?user_key=k", timeout=5)
    assert (r.status_code, r.text, r.headers["Content-Type"]) == (404, "No Mapping Rule matched",
                                                                  "text/plain; charset=utf-8")
    custom = echo_gateway({"credentials_location": "query", "proxy_rules": rules, "error_status_auth_missing": 403,
                           "error_auth_missing": "", "error_headers_auth_missing": "text/plain; charset=us-ascii",
                           "error_status_no_match": 400, "error_no_match": "nope"})
    r = requests.post(custom + "/v1", timeout=5)
    assert (r.status_code, r.content, r.headers["Content-Type"]) == (403, b"", "text/plain; charset=us-ascii")
    assert requests.post(custom + "/x?user_key=k", timeout=5).text == "nope"
    limits = Service({"proxy": {}}, 1).error("limits_exceeded")
    assert (limits.status, limits.body) == (429, b"Limits exceeded")  # APIcast's wording, not porta's
