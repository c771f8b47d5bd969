"""The real 3scale operator (capabilities controllers of github.com/3scale/3scale-operator v0.11.0,
built by hack/build-operator.sh) end to end: kubectl against the lab's Kubernetes API, porta checked
over its REST API. One row of the contract's readiness table per test where possible
(/work/shared/reference/threescale-operator/CONTRACT.md §1-§5); where v0.11.0 (3scale 2.14) differs
from the contract's master, the test names the upstream file it follows. Upstream paths below are
relative to the module (go list -m -f '{{.Dir}}' github.com/3scale/3scale-operator in lab/operator).
"""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from conftest import start_lab, stop_lab

DATA = Path(__file__).parent / "data"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
NS = "3scale"
API = "capabilities.3scale.net/v1beta1"
# controllers/capabilities/proxyconfigpromote_controller.go (v0.11.0): the text of a refused promotion
NO_CHANGES = ("can't promote to production as no product changes detected, delete the proxyConfigPromote CR or "
              "introduce changes to stage env first to proceed")


class Lab:
    """kubectl + porta REST helpers bound to one lab directory."""

    def __init__(self, info: dict):
        self.info = info  # replaced on restart; everything below is read from it

    env = property(lambda self: {**os.environ, "KUBECONFIG": self.info["env"]["KUBECONFIG"]})
    porta_url = property(lambda self: self.info["urls"]["porta"])
    token = property(lambda self: self.info["credentials"]["porta_token"])
    ca = property(lambda self: self.info["tls"]["ca_cert"])

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([KUBECTL, "-n", NS, "--cache-dir", str(Path(self.info["dir"]) / "kcache"), *args],
                           input=stdin, env=self.env, capture_output=True, text=True, timeout=90)
        if check and p.returncode:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {p.stderr}")
        return p

    def apply(self, obj_or_yaml) -> subprocess.CompletedProcess:
        text = obj_or_yaml if isinstance(obj_or_yaml, str) else yaml.safe_dump(obj_or_yaml)
        return self.kubectl("apply", "-f", "-", stdin=text)

    def wait(self, ref: str, cond: str, timeout: int = 30) -> dict:
        self.kubectl("wait", f"--for=condition={cond}", f"--timeout={timeout}s", ref)
        return self.get(ref)

    def get(self, ref: str) -> dict:
        return json.loads(self.kubectl("get", ref, "-o", "json").stdout)

    def porta(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, self.porta_url + path, auth=("", self.token), verify=self.ca, timeout=30, **kw)

    def porta_list(self, path: str, plural: str, singular: str) -> list[dict]:
        r = self.porta("GET", path)
        r.raise_for_status()
        body = r.json()
        items = body.get(plural, []) if isinstance(body, dict) else body
        return [i.get(singular, i) for i in items]

    def service(self, system_name: str) -> dict | None:
        return next((s for s in self.porta_list("/admin/api/services.json", "services", "service")
                     if s["system_name"] == system_name), None)


def cond(obj: dict, ctype: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == ctype)


def synced_current(obj: dict, ready: str = "Synced") -> bool:
    return cond(obj, ready)["status"] == "True" and obj["status"]["observedGeneration"] == obj["metadata"]["generation"]


def poll(predicate, timeout: float = 30.0):
    """Poll a condition with a deadline (for states kubectl wait cannot express)."""
    deadline, delay = time.monotonic() + timeout, 0.02
    while not (result := predicate()):
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    return result


def backend(name: str, url: str = "https://model.example.com", **spec) -> dict:
    return {"apiVersion": API, "kind": "Backend", "metadata": {"name": name, "namespace": NS},
            "spec": {"name": name, "privateBaseURL": url, **spec}}


def product(name: str, backend_name: str | None = None, **spec) -> dict:
    body = {"name": name, **spec}
    if backend_name:
        body["backendUsages"] = {backend_name: {"path": "/"}}
    return {"apiVersion": API, "kind": "Product", "metadata": {"name": name, "namespace": NS}, "spec": body}


def pcp(name: str, product_cr: str, **spec) -> dict:
    return {"apiVersion": API, "kind": "ProxyConfigPromote", "metadata": {"name": name, "namespace": NS},
            "spec": {"productCRName": product_cr, **spec}}


def secret(name: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def activedoc(crname: str, ref: dict, **spec) -> dict:
    return {"apiVersion": API, "kind": "ActiveDoc", "metadata": {"name": crname, "namespace": NS},
            "spec": {"name": crname, "activeDocOpenAPIRef": ref, **spec}}


OAS30 = {"openapi": "3.0.3", "info": {"title": "tiny", "version": "1"},
         "paths": {"/v1/models": {"get": {"responses": {"200": {"description": "ok"}}}}}}
OAS31 = {"openapi": "3.1.0", "info": {"title": "vllm", "version": "1"},
         "paths": {}, "components": {"schemas": {"X": {"type": ["string", "null"]}}}}
SWAGGER2 = {"swagger": "2.0", "info": {"title": "old", "version": "1"}, "paths": {}}


@pytest.fixture(scope="module")
def oplab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("oplab")
    lab = Lab(start_lab(directory))
    yield lab
    stop_lab(directory)


# ----------------------------------------------------------------------------------- Backend
def test_workshop_backend_synced_with_defaults(oplab):
    oplab.kubectl("apply", "-f", str(DATA / "tinyllama-backend.yaml"))
    obj = oplab.wait("backend/tinyllama", "Synced")
    assert synced_current(obj)
    assert obj["metadata"]["generation"] == 2  # SetDefaults added metrics.hits
    assert obj["spec"]["metrics"]["hits"]["friendlyName"] == "Hits"
    assert "backend.capabilities.3scale.net/finalizer" in obj["metadata"]["finalizers"]
    assert [c["type"] for c in obj["status"]["conditions"]] == ["Failed", "Invalid", "Synced"]
    assert cond(obj, "Failed")["status"] == "False" and "message" not in cond(obj, "Synced")
    remote = oplab.porta("GET", f"/admin/api/backend_apis/{obj['status']['backendId']}.json").json()["backend_api"]
    assert remote["system_name"] == "tinyllama"
    assert remote["private_endpoint"].startswith("https://tinyllama-llm-hosting.apps.cluster-guid")


def test_backend_invalid_spec(oplab):
    oplab.apply(backend("be-invalid", mappingRules=[
        {"httpMethod": "GET", "pattern": "/x", "metricMethodRef": "nope", "increment": 1}]))
    obj = oplab.wait("backend/be-invalid", "Invalid")
    assert cond(obj, "Synced")["status"] == "False" and cond(obj, "Failed")["status"] == "True"
    assert "nope" in cond(obj, "Invalid")["message"]
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert "backendId" not in obj["status"]


def test_backend_localhost_url_fails_in_porta_and_retries(oplab):
    oplab.apply(backend("be-local", url="http://localhost:8000"))
    obj = oplab.wait("backend/be-local", "Failed")
    msg = cond(obj, "Failed")["message"]
    # pkg/helper/task_runner.go "Task failed %s: %w" and backend_threescale_reconciler.go "Error sync backend
    # [%s]: %w" (v0.11.0 capitalises both); the reason is porta's `errors` map re-marshalled by porta-go-client
    assert msg.startswith('Task failed SyncBackend: Error sync backend [belocal]: error calling 3scale system - '
                          'reason: {"private_endpoint":["')
    assert msg.endswith("]} - code: 422")
    assert cond(obj, "Invalid")["status"] == "False" and cond(obj, "Synced")["status"] == "False"
    # transient: fixing the URL lets the retry loop (backoff) reach Synced
    oplab.kubectl("patch", "backend/be-local", "--type=merge", "-p", '{"spec":{"privateBaseURL":"https://ok.example.com"}}')
    obj = oplab.wait("backend/be-local", "Synced")
    assert synced_current(obj)


def test_api_server_rejects_bad_private_base_url(oplab):
    p = oplab.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(backend("be-ftp", url="ftp://x")), check=False)
    assert p.returncode != 0
    assert "privateBaseURL" in p.stderr


def test_provider_account_ref_lookup_error_writes_no_status(oplab):
    oplab.apply(backend("be-ref", providerAccountRef={"name": "tenant-b"}))
    # the finalizer is added before the lookup; a failing lookup then leaves status empty
    obj = poll(lambda: "finalizers" in (o := oplab.get("backend/be-ref"))["metadata"] and o)
    assert "status" not in obj or not obj["status"]
    # a trailing slash makes it "another tenant" for the operator (plain string comparison)
    oplab.apply(secret("tenant-b", {"adminURL": oplab.porta_url + "/", "token": oplab.token}))
    obj = oplab.wait("backend/be-ref", "Synced")
    # providerAccountHost is the whole adminURL string (CONTRACT §10.8)
    assert synced_current(obj) and obj["status"]["providerAccountHost"] == oplab.porta_url + "/"
    oplab.apply(product("pr-other-tenant", "beref"))
    obj = oplab.wait("product/pr-other-tenant", "Orphan")
    assert "beref" in cond(obj, "Orphan")["message"]


# ----------------------------------------------------------------------------------- Product
def test_product_orphan_until_backend_synced(oplab):
    oplab.apply(backend("later-be", systemName="laterbe"))
    # a Product that uses a Backend that does not exist yet → Orphan, then Synced by backoff
    oplab.apply(product("orphan-pr", "laterbe2"))
    obj = oplab.wait("product/orphan-pr", "Orphan")
    assert cond(obj, "Failed")["status"] == "True" and cond(obj, "Synced")["status"] == "False"
    assert "laterbe2" in cond(obj, "Orphan")["message"]
    oplab.apply(backend("later-be2", systemName="laterbe2"))
    obj = oplab.wait("product/orphan-pr", "Synced")
    assert synced_current(obj) and cond(obj, "Orphan")["status"] == "False"


def test_workshop_product_synced_into_porta(oplab):
    oplab.kubectl("apply", "-f", str(DATA / "tinyllama-product.yaml"))
    obj = oplab.wait("product/tinyllama", "Synced")
    assert synced_current(obj)
    assert [c["type"] for c in obj["status"]["conditions"]] == ["Failed", "Invalid", "Orphan", "Synced"]
    pid = obj["status"]["productId"]
    svc = oplab.porta("GET", f"/admin/api/services/{pid}.json").json()["service"]
    assert svc["system_name"] == "tinyllama" and svc["backend_version"] == "1"
    assert svc["deployment_option"] == "hosted"
    proxy = oplab.porta("GET", f"/admin/api/services/{pid}/proxy.json").json()["proxy"]
    assert proxy["credentials_location"] == "headers" and proxy["auth_user_key"] == "Authorization"
    rules = oplab.porta_list(f"/admin/api/services/{pid}/proxy/mapping_rules.json", "mapping_rules", "mapping_rule")
    assert sorted((r["http_method"], r["pattern"]) for r in rules) == sorted(
        (r["httpMethod"], r["pattern"]) for r in obj["spec"]["mappingRules"])  # porta's default "GET /" is gone
    chain = oplab.porta("GET", f"/admin/api/services/{pid}/proxy/policies.json").json()["policies_config"]
    assert [(p["name"], p["version"]) for p in chain] == [
        ("cors", "builtin"), ("remove-bearer", "0.1"), ("apicast", "builtin"), ("upstream_connection", "builtin")]
    assert chain[3]["configuration"]["read_timeout"] == 180
    plans = oplab.porta_list(f"/admin/api/services/{pid}/application_plans.json", "plans", "application_plan")
    assert [(p["system_name"], p["name"], p["state"]) for p in plans] == [("standard", "Standard Plan", "published")]
    be = oplab.get("backend/tinyllama")
    usages = oplab.porta_list(f"/admin/api/services/{pid}/backend_usages.json", "backend_usages", "backend_usage")
    assert [(u["backend_id"], u["path"]) for u in usages] == [(be["status"]["backendId"], "/")]


def test_plans_limits_pricing_and_backend_items_are_authoritative(oplab):
    oplab.apply(backend("be-full", metrics={"tokens": {"friendlyName": "Tokens", "unit": "token"}},
                        methods={"chat": {"friendlyName": "Chat"}},
                        mappingRules=[{"httpMethod": "POST", "pattern": "/v1/chat/completions",
                                       "metricMethodRef": "chat", "increment": 1}]))
    be = oplab.wait("backend/be-full", "Synced")
    bid = be["status"]["backendId"]
    plans = {"basic": {"name": "Basic", "published": True, "costMonth": "10.00", "setupFee": "1.50", "trialPeriod": 3,
                       "limits": [{"period": "day", "value": 100, "metricMethodRef": {"systemName": "hits"}},
                                  {"period": "hour", "value": 5,
                                   "metricMethodRef": {"systemName": "tokens", "backend": "befull"}}],
                       "pricingRules": [{"from": 1, "to": 100, "pricePerUnit": "0.01",
                                         "metricMethodRef": {"systemName": "hits"}}]}}
    oplab.apply(product("pr-full", "befull", applicationPlans=plans))
    pid = oplab.wait("product/pr-full", "Synced")["status"]["productId"]
    plan = oplab.porta_list(f"/admin/api/services/{pid}/application_plans.json", "plans", "application_plan")[0]
    assert (plan["system_name"], plan["state"], float(plan["cost_per_month"]), float(plan["setup_fee"]),
            plan["trial_period_days"]) == ("basic", "published", 10.0, 1.5, 3)
    limits = oplab.porta_list(f"/admin/api/application_plans/{plan['id']}/limits.json", "limits", "limit")
    assert sorted((lim["period"], lim["value"]) for lim in limits) == [("day", 100), ("hour", 5)]
    rules = oplab.porta_list(f"/admin/api/application_plans/{plan['id']}/pricing_rules.json", "pricing_rules",
                             "pricing_rule")
    assert [(r["min"], r["max"], float(r["cost_per_unit"])) for r in rules] == [(1, 100, 0.01)]
    backend_rules = oplab.porta_list(f"/admin/api/backend_apis/{bid}/mapping_rules.json", "mapping_rules", "mapping_rule")
    assert [(r["http_method"], r["pattern"]) for r in backend_rules] == [("POST", "/v1/chat/completions")]
    # the CR is authoritative: dropping a limit and a backend method removes them in porta
    plans["basic"]["limits"] = plans["basic"]["limits"][:1]
    oplab.kubectl("patch", "product/pr-full", "--type=merge", "-p", json.dumps({"spec": {"applicationPlans": plans}}))
    poll(lambda: len(oplab.porta_list(f"/admin/api/application_plans/{plan['id']}/limits.json", "limits", "limit")) == 1)
    oplab.kubectl("patch", "backend/be-full", "--type=merge", "-p",
                  '{"spec":{"methods":null,"mappingRules":null}}')
    poll(lambda: synced_current(oplab.get("backend/be-full")))
    names = {m["system_name"].split(".")[0] for m in oplab.porta_list(
        f"/admin/api/backend_apis/{bid}/metrics.json", "metrics", "metric")}
    assert names == {"hits", "tokens"}
    assert oplab.porta_list(f"/admin/api/backend_apis/{bid}/mapping_rules.json", "mapping_rules", "mapping_rule") == []


def test_product_invalid_spec(oplab):
    oplab.apply(product("pr-invalid", mappingRules=[
        {"httpMethod": "GET", "pattern": "/x", "metricMethodRef": "missing", "increment": 1}]))
    obj = oplab.wait("product/pr-invalid", "Invalid")
    assert cond(obj, "Failed")["status"] == "True" and cond(obj, "Orphan")["status"] == "False"
    assert obj["metadata"]["generation"] == 2  # defaults (hits, apicast policy) were written first
    assert any(p["name"] == "apicast" for p in obj["spec"]["policies"])


# ----------------------------------------------------------------------------------- ActiveDoc
def test_workshop_activedoc_unreachable_url_is_invalid(oplab):
    oplab.kubectl("apply", "-f", str(DATA / "tinyllama-activedoc.yaml"))
    obj = oplab.wait("activedoc/tinyllama", "Invalid")
    assert cond(obj, "Ready")["status"] == "False" and cond(obj, "Failed")["status"] == "True"
    url = obj["spec"]["activeDocOpenAPIRef"]["url"]
    assert cond(obj, "Invalid")["message"].startswith(f'spec.activeDocOpenAPIRef.url: Invalid value: "{url}": Get "{url}": ')
    assert [c["type"] for c in obj["status"]["conditions"]] == ["Failed", "Invalid", "Orphan", "Ready"]


@pytest.mark.parametrize("name,doc,expect", [
    ("ad-oas31", OAS31, "cannot unmarshal array"),
    ("ad-swagger", SWAGGER2, "value of openapi must be a non-empty string"),
    ("ad-garbage", None, "error converting YAML to JSON: yaml: line 1: "),
])
def test_activedoc_non_openapi30_is_invalid(oplab, name, doc, expect):
    oplab.apply(secret(name, {"doc.json": json.dumps(doc) if doc else "{not: [json, yaml"}))
    oplab.apply(activedoc(name, {"secretRef": {"name": name}}))
    obj = oplab.wait(f"activedoc/{name}", "Invalid")
    assert expect in cond(obj, "Invalid")["message"]


def test_activedoc_url_is_fetched_by_the_operator(oplab):
    # the model server's own /openapi.json is OpenAPI 3.1 (FastAPI): rejected like kin-openapi does
    oplab.apply(activedoc("ad-vllm", {"url": oplab.info["urls"]["model"] + "/openapi.json"}))
    msg = cond(oplab.wait("activedoc/ad-vllm", "Invalid"), "Invalid")["message"]
    url = oplab.info["urls"]["model"] + "/openapi.json"
    # kin-openapi v0.94 decodes into 3.0 Go types: the numeric exclusiveMinimum of 2020-12 does not fit a bool
    assert msg.startswith(f'spec.activeDocOpenAPIRef.url: Invalid value: "{url}": error unmarshaling JSON: '
                          'failed to unmarshal property "components" (*openapi3.Components): ')
    assert msg.endswith('failed to unmarshal property "exclusiveMinimum" (*bool): '
                        "json: cannot unmarshal number into Go value of type bool")
    # nothing listens there: the fetch error is reported, no retry loop needed to see it
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    oplab.apply(activedoc("ad-refused", {"url": f"http://127.0.0.1:{port}/openapi.json"}))
    msg = cond(oplab.wait("activedoc/ad-refused", "Invalid"), "Invalid")["message"]
    url = f"http://127.0.0.1:{port}/openapi.json"
    assert msg == f'spec.activeDocOpenAPIRef.url: Invalid value: "{url}": Get "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'


def test_activedoc_secret_with_two_keys_is_invalid(oplab):
    oplab.apply(secret("ad-two", {"a.json": json.dumps(OAS30), "b.json": json.dumps(OAS30)}))
    oplab.apply(activedoc("ad-two", {"secretRef": {"name": "ad-two"}}))
    assert cond(oplab.wait("activedoc/ad-two", "Invalid"), "Invalid")["message"] == (
        'spec.activeDocOpenAPIRef.secretRef: Invalid value: v1.ObjectReference{Kind:"", Namespace:"3scale", '
        'Name:"ad-two", UID:"", APIVersion:"", ResourceVersion:"", FieldPath:""}: '
        "Secret was empty or contains too many fields. Only one is required.")


def test_activedoc_orphan_without_product(oplab):
    oplab.apply(secret("ad-orphan", {"doc.json": json.dumps(OAS30)}))
    oplab.apply(activedoc("ad-orphan", {"secretRef": {"name": "ad-orphan"}}, productSystemName="nosuchproduct"))
    obj = oplab.wait("activedoc/ad-orphan", "Orphan")
    assert cond(obj, "Failed")["status"] == "True" and "nosuchproduct" in cond(obj, "Orphan")["message"]


def test_activedoc_ready_bound_to_product_and_kept_on_delete(oplab):
    oplab.wait("product/tinyllama", "Synced")
    oplab.apply(secret("ad-ok", {"openapi.yaml": yaml.safe_dump(OAS30)}))
    oplab.apply(activedoc("ad-ok", {"secretRef": {"name": "ad-ok"}}, name="Tiny Llama Doc",
                          productSystemName="tinyllama", published=True))
    obj = oplab.wait("activedoc/ad-ok", "Ready")
    assert synced_current(obj, "Ready")
    assert obj["spec"]["systemName"] == "tinyllamadoc"
    assert obj["status"]["productResourceName"] == {"name": "tinyllama"}
    doc_id = obj["status"]["activeDocId"]
    remote = {d["id"]: d for d in oplab.porta_list("/admin/api/active_docs.json", "api_docs", "api_doc")}[doc_id]
    # the body is the document as kin-openapi re-marshals it (activedoc_threescale_reconciler.go,
    # desiredOpenapiObj.MarshalJSON()): an empty `components` object appears
    assert remote["system_name"] == "tinyllamadoc" and json.loads(remote["body"]) == {**OAS30, "components": {}}
    assert str(remote["service_id"]) == str(oplab.get("product/tinyllama")["status"]["productId"])
    oplab.kubectl("delete", "activedoc/ad-ok", "--timeout=30s")
    assert doc_id in {d["id"] for d in oplab.porta_list("/admin/api/active_docs.json", "api_docs", "api_doc")}


def test_existing_3scale_objects_are_adopted_by_system_name(oplab):
    r = oplab.porta("POST", "/admin/api/backend_apis.json",
                    data={"name": "Made by hand", "system_name": "handmade", "private_endpoint": "https://h.example.com"})
    assert r.status_code == 201, r.text
    bid = r.json()["backend_api"]["id"]
    r = oplab.porta("POST", "/admin/api/active_docs.json",
                    data={"name": "hand doc", "system_name": "handdoc", "body": json.dumps(OAS30)})
    assert r.status_code == 201, r.text
    doc_id = r.json()["api_doc"]["id"]
    oplab.apply(backend("handmade", url="https://h2.example.com", description="now managed"))
    obj = oplab.wait("backend/handmade", "Synced")
    assert obj["status"]["backendId"] == bid
    remote = oplab.porta("GET", f"/admin/api/backend_apis/{bid}.json").json()["backend_api"]
    assert remote["name"] == "handmade" and remote["private_endpoint"].startswith("https://h2.example.com")
    oplab.apply(secret("handdoc", {"doc.json": json.dumps({**OAS30, "info": {"title": "v2", "version": "2"}})}))
    oplab.apply(activedoc("handdoc", {"secretRef": {"name": "handdoc"}}))
    assert oplab.wait("activedoc/handdoc", "Ready")["status"]["activeDocId"] == doc_id
    remote = oplab.porta("GET", f"/admin/api/active_docs/{doc_id}.json").json()["api_doc"]
    assert json.loads(remote["body"])["info"]["title"] == "v2"


# ----------------------------------------------------------------------------------- ProxyConfigPromote
def test_workshop_pcp_promotes_to_production(oplab):
    oplab.wait("product/tinyllama", "Synced")
    oplab.kubectl("apply", "-f", str(DATA / "tinyllama-pcp.yaml"))
    obj = oplab.wait("proxyconfigpromote/tinyllama", "Ready")
    st = obj["status"]
    pid = oplab.get("product/tinyllama")["status"]["productId"]
    assert st["productId"] == str(pid) and "observedGeneration" not in st
    assert st["latestProductionVersion"] == st["latestStagingVersion"] > 0
    assert cond(obj, "Ready")["message"].startswith("3scale product has been successfully promoted")
    prod = oplab.porta("GET", f"/admin/api/services/{pid}/proxy/configs/production/latest.json").json()
    assert prod["proxy_config"]["version"] == st["latestProductionVersion"]


def test_pcp_without_changes_fails_then_promotes_later_changes(oplab):
    """v0.11.0 (proxyconfigpromote_controller.go): a promotion porta refuses is reported as Failed with the
    operator's own text and returned as an error, so the PCP is retried with backoff; once the Product
    brings changes, the same PCP promotes them. (Master makes it terminal; the collection replaces a
    Failed PCP either way.)"""
    oplab.wait("proxyconfigpromote/tinyllama", "Ready")
    oplab.kubectl("delete", "proxyconfigpromote/tinyllama", "--timeout=30s")
    oplab.kubectl("apply", "-f", str(DATA / "tinyllama-pcp.yaml"))
    obj = oplab.wait("proxyconfigpromote/tinyllama", "Failed")
    assert cond(obj, "Failed")["message"] == NO_CHANGES
    assert cond(obj, "Ready")["status"] == "False"
    # The PCP's retries keep running: one between the Product's mapping-rule calls would deploy and promote a
    # half-synced Product. So its staging deploys fail (porta 503, the operator's calls included) until the
    # Product reports the new generation synced; then its next retry promotes the whole change.
    fault = [sys.executable, "-m", "maaslab", "fault", "--dir", oplab.info["dir"]]
    subprocess.run(fault + ["porta", "error_rate=1", "error_status=503", "exclude_operator=false",
                            r"path_regex=/proxy/deploy\.json$"], check=True, capture_output=True, timeout=60)
    try:
        patched = json.loads(oplab.kubectl("patch", "product/tinyllama", "--type=merge", "-o", "json", "-p", json.dumps(
            {"spec": {"mappingRules": [{"httpMethod": "POST", "pattern": "/v1/completions", "metricMethodRef": "completions",
                                        "increment": 1}]}})).stdout)
        oplab.kubectl("wait", "--timeout=60s", "product/tinyllama",
                      "--for=jsonpath={.status.observedGeneration}=%d" % patched["metadata"]["generation"])
        oplab.wait("product/tinyllama", "Synced")
    finally:
        subprocess.run(fault + ["clear"], check=True, capture_output=True, timeout=60)
    obj = oplab.wait("proxyconfigpromote/tinyllama", "Ready", timeout=120)
    st = obj["status"]
    assert st["latestProductionVersion"] == st["latestStagingVersion"]
    pid = oplab.get("product/tinyllama")["status"]["productId"]
    prod = oplab.porta("GET", f"/admin/api/services/{pid}/proxy/configs/production/latest.json").json()
    assert prod["proxy_config"]["version"] == st["latestProductionVersion"]
    rules = prod["proxy_config"]["content"]["proxy"]["proxy_rules"]
    assert [(r["http_method"], r["pattern"]) for r in rules] == [("POST", "/v1/completions")]


def test_pcp_staging_then_delete_cr(oplab):
    # a product change → a new staging version; production stays where it was
    oplab.kubectl("patch", "product/tinyllama", "--type=merge", "-p", json.dumps({"spec": {"mappingRules": [
        {"httpMethod": "POST", "pattern": "/v1/embeddings", "metricMethodRef": "embeddings",
         "increment": 1}]}}))
    # Synced stays True while the new generation syncs: wait for observedGeneration too
    obj = poll(lambda: synced_current(o := oplab.get("product/tinyllama")) and o)
    pid = obj["status"]["productId"]
    prod_before = oplab.porta("GET", f"/admin/api/services/{pid}/proxy/configs/production/latest.json").json()
    oplab.apply(pcp("tiny-stage", "tinyllama"))
    st = oplab.wait("proxyconfigpromote/tiny-stage", "Ready")["status"]
    assert st["latestStagingVersion"] > st["latestProductionVersion"] == prod_before["proxy_config"]["version"]
    # deleteCR: promoted and deleted in the same reconcile
    oplab.apply(pcp("tiny-del", "tinyllama", production=True, deleteCR=True))
    oplab.kubectl("wait", "--for=delete", "--timeout=30s", "proxyconfigpromote/tiny-del")
    prod = oplab.porta("GET", f"/admin/api/services/{pid}/proxy/configs/production/latest.json").json()
    assert prod["proxy_config"]["version"] == st["latestStagingVersion"]


def test_pcp_before_product_exists_then_ready(oplab):
    oplab.apply(pcp("early", "early-pr", production=True))
    obj = oplab.wait("proxyconfigpromote/early", "Failed")
    assert obj["status"]["productId"] == "product not found"
    assert "not found" in cond(obj, "Failed")["message"]
    oplab.apply(backend("early-be"))
    oplab.apply(product("early-pr", "earlybe"))
    obj = oplab.wait("proxyconfigpromote/early", "Ready")
    assert obj["status"]["productId"] == str(oplab.get("product/early-pr")["status"]["productId"])


# ----------------------------------------------------------------------------------- deletion
def test_product_cr_delete_removes_porta_service_and_backend_delete_cleans_up(oplab):
    obj = oplab.wait("product/orphan-pr", "Synced")
    pid = obj["status"]["productId"]
    oplab.kubectl("delete", "product/orphan-pr", "--timeout=30s")
    assert oplab.service("orphanpr") is None
    assert oplab.porta("GET", f"/admin/api/services/{pid}.json").status_code == 404
    # Backend deletion: its references are removed from Product CRs first, then the backend_api goes
    bid = oplab.get("backend/later-be2")["status"]["backendId"]
    oplab.apply(product("uses-later", "laterbe"))
    oplab.wait("product/uses-later", "Synced")
    be = oplab.get("backend/later-be")
    oplab.kubectl("delete", "backend/later-be", "--timeout=30s")
    assert "backendUsages" not in oplab.get("product/uses-later")["spec"] or \
        "laterbe" not in oplab.get("product/uses-later")["spec"]["backendUsages"]
    assert oplab.porta("GET", f"/admin/api/backend_apis/{be['status']['backendId']}.json").status_code == 404
    oplab.kubectl("delete", "backend/later-be2", "--timeout=30s")
    assert oplab.porta("GET", f"/admin/api/backend_apis/{bid}.json").status_code == 404


# ----------------------------------------------------------------------------------- restart
def test_restart_keeps_objects_and_status(oplab):
    before = {r: oplab.get(r) for r in ("backend/tinyllama", "product/tinyllama")}
    urls = dict(oplab.info["urls"])
    d = Path(oplab.info["dir"])
    stop_lab(d)
    oplab.info = start_lab(d)
    assert oplab.info["urls"] == urls  # same ports: the provider Secret's adminURL stays valid
    for ref, old in before.items():
        new = oplab.wait(ref, "Synced")
        assert new["metadata"]["uid"] == old["metadata"]["uid"]
        assert new["metadata"]["generation"] == old["metadata"]["generation"]
        assert synced_current(new)
    assert oplab.get("product/tinyllama")["status"]["productId"] == before["product/tinyllama"]["status"]["productId"]
    assert oplab.service("tinyllama")["id"] == before["product/tinyllama"]["status"]["productId"]
    # the restarted operator still syncs: a spec change reaches porta
    oplab.kubectl("patch", "backend/tinyllama", "--type=merge", "-p", '{"spec":{"description":"after restart"}}')
    bid = before["backend/tinyllama"]["status"]["backendId"]
    poll(lambda: synced_current(oplab.get("backend/tinyllama")) and oplab.porta(
        "GET", f"/admin/api/backend_apis/{bid}.json").json()["backend_api"].get("description") == "after restart")
