"""Shared pieces of the gateway tests: an in-process model + porta + APIcast stack, a thin porta
admin client, product builders, and an echo upstream/backend for hand-written configurations."""
from __future__ import annotations

import json
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from kube_fixtures import wait_for
from maaslab.apicast import APIcast, Service
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


def status(url, *args, **kw) -> int | None:
    """Status of `post`, None while the listener is not open yet."""
    try:
        return post(url, *args, **kw).status_code
    except requests.ConnectionError:
        return None


def try_open(fn):
    """(result,) once the listener accepts connections (a 404 Response is falsy itself)."""
    try:
        return (fn(),)
    except requests.ConnectionError:
        return None


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
