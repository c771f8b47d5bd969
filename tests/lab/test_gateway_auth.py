"""APIcast stand-in: credentials extraction, gateway error responses, mapping rules, policies
(apicast/CONTRACT.md §2-§4 and §7 Corrections; porta/CONTRACT.md §11.1 for the error defaults).
"""
from __future__ import annotations

import base64
import json
import shutil
import subprocess

import pytest
import requests

from gateway_fixtures import (  # noqa: F401  (fixtures: stack, admin, workshop, echo_gateway)
    APICAST, CORS, REFRESH, WORKSHOP_BODY, admin, echo_gateway, make_product, post, served, stack, status,
    upstream, usage, workshop)
from kube_fixtures import wait_for
from maaslab.apicast import APIcast, MappingRule, Service
from maaslab.context import LabContext, free_port


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
    # Basic: the user part ends at the last ':'; base64 padding is optional (ngx.decode_base64)
    for raw, key in ((b"k1:", "k1"), (b"a:b:secret", "a:b"), (b"k2", None)):
        r = requests.post(authz + "/v1", timeout=5,
                          headers={"Authorization": "Basic " + base64.b64encode(raw).decode().rstrip("=")})
        if key is None:  # no ':' at all: no credentials
            assert r.status_code == 401 and r.text == "Authentication parameters missing"
        else:
            assert r.status_code == 200 and echo.authreps.pop()["user_key"] == [key]
    # absent credentials never reach the backend
    for url, headers in ((header, {}), (query, {}), (authz, {"Authorization": "Token abc"}),
                         (authz, {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()})):
        r = requests.post(url + "/v1", headers=headers, timeout=5)
        assert r.status_code == 401 and r.text == "Authentication parameters missing"
    assert echo.authreps == []


def test_app_id_app_key_credentials(echo_gateway, tmp_path):
    """backend_version 2: app_id and app_key are read under the names auth_app_id / auth_app_key
    (query, then a form body; headers) or from `Authorization: Basic app_id:app_key`, and both go to
    authrep; a tuple with either one absent is no credentials at all.

    Upstream: APIcast gateway/src/apicast/configuration/service.lua (`backend_version_credentials.version_2`),
    gateway/src/apicast/proxy.lua (`_M:rewrite`: every credential of the tuple must be non-nil),
    gateway/src/resty/http_authorization.lua (Basic userid/password, Bearer token).
    """
    echo = echo_gateway.echo
    rules = [{"http_method": "POST", "pattern": "/", "metric_system_name": "hits", "delta": 1}]
    gw = APIcast(LabContext(dir=tmp_path))

    def gateway(location, **names):  # a backend_version 2 configuration, installed by hand
        port = free_port()
        gw.production = {**gw.production, port: Service({
            "id": 43, "backend_version": "2", "backend_authentication_type": "service_token",
            "backend_authentication_value": "stoken", "backend": {"endpoint": echo.url},
            "proxy": {"endpoint": f"http://127.0.0.1:{port}", "credentials_location": location,
                      "proxy_rules": rules, **names},
            "backend_api_configs": [{"path": "/", "backend_api": {"private_endpoint": echo.url}}]}, 1)}
        gw._listen(port, "production")
        return f"http://127.0.0.1:{port}"

    try:
        _app_id_app_key_cases(echo, gateway)
    finally:
        gw.stop()


def _app_id_app_key_cases(echo, gateway):
    query = gateway("query", auth_app_id="aid", auth_app_key="akey")
    header = gateway("headers", auth_app_id="X-App-Id", auth_app_key="X-App-Key")
    authz = gateway("authorization")
    basic = base64.b64encode(b"id1:key1").decode()
    cases = [(query, "/v1?aid=id1&akey=key1", {}, None),
             (query, "/v1?aid=id1", {"Content-Type": "application/x-www-form-urlencoded"}, "akey=key1"),
             (header, "/v1", {"X-App-Id": "id1", "X-App-Key": "key1"}, None),
             (authz, "/v1", {"Authorization": f"Basic {basic}"}, None)]
    for url, path, headers, body in cases:
        r = requests.post(url + path, headers=headers, data=body, timeout=5)
        assert r.status_code == 200, (path, headers)
        sent = echo.authreps.pop()
        assert (sent["app_id"], sent["app_key"]) == (["id1"], ["key1"]) and "user_key" not in sent, (path, sent)
    # the default names are app_id / app_key, not the user_key name
    r = requests.post(query + "/v1?app_id=id1&app_key=key1", timeout=5)
    assert r.status_code == 401 and echo.authreps == []
    for url, path, headers in ((query, "/v1?aid=id1", {}), (query, "/v1?akey=key1", {}),
                               (header, "/v1", {"X-App-Id": "id1"}),
                               (authz, "/v1", {"Authorization": "Bearer id1"})):  # a token has no password
        r = requests.post(url + path, headers=headers, timeout=5)
        assert r.status_code == 401 and r.text == "Authentication parameters missing", (path, headers)
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
              post(wait_for(lambda: status(query["staging"]) and query["staging"], 3),
                   path="/v1/completions?user_key=")):
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
