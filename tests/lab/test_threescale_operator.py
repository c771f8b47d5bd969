"""The real 3scale operator in the lab (`maaslab.threescale_operator`): upstream's capabilities
controllers built from the Go module github.com/3scale/3scale-operator (lab/operator,
hack/build-operator.sh), talking to the lab's kube-apiserver with its own identity and to the lab's
porta with porta-go-client. Whatever the operator does here is upstream's code; where a test checks
the lab's porta against porta-go-client, porta's source file is named."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from conftest import start_lab, stop_lab, wait_for  # noqa: E402

OPERATOR_BIN = REPO / ".venv/operator-bin"
OPERATOR_VERSION = next(line.split()[1] for line in (REPO / "lab/operator/go.mod").read_text().splitlines()
                        if line.strip().startswith("github.com/3scale/3scale-operator "))
API = "/apis/capabilities.3scale.net/v1beta1/namespaces/3scale"

pytestmark = pytest.mark.skipif(not (OPERATOR_BIN / "threescale-operator").exists(),
                                reason="the 3scale operator is not built: make setup")


@pytest.fixture(scope="module")
def oplab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("oplab")
    info = start_lab(directory)
    info["path"] = directory
    yield info
    stop_lab(directory)


def kube(info, method, path, **kw) -> requests.Response:
    return requests.request(method, info["urls"]["kube"] + path, verify=info["tls"]["ca_cert"], timeout=30,
                            headers={"Authorization": f"Bearer {info['credentials']['kube_admin_token']}",
                                     **kw.pop("headers", {})}, **kw)


def porta(info, method, path, **kw) -> requests.Response:
    params = dict(kw.pop("params", {}), access_token=info["env"]["THREESCALE_ACCESS_TOKEN"])
    return requests.request(method, info["urls"]["porta"] + path, params=params, verify=info["tls"]["ca_cert"],
                            timeout=30, **kw)


def condition(obj, ctype):
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {})


def operator_pid(info) -> int:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except (FileNotFoundError, ProcessLookupError):
                continue
            if cmd and cmd[0].endswith(b"/threescale-operator") and \
                    (proc / "environ").read_bytes().find(str(info["path"]).encode()) >= 0:
                return int(proc.name)
    raise AssertionError("no threescale-operator process for this lab")


def test_the_release_built_runs_with_its_own_identity_and_the_lab_ca(oplab):
    log = (oplab["path"] / "operator/operator.log").read_text()
    assert f'"operatorVersion": "{OPERATOR_VERSION.lstrip("v")}"' in log
    pid = operator_pid(oplab)
    env = dict(e.split("=", 1) for e in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in e)
    assert env["WATCH_NAMESPACE"] == "3scale"
    assert env["SSL_CERT_FILE"] == oplab["tls"]["ca_cert"]  # porta's certificate is verified, not skipped
    kubeconfig = json.loads(Path(env["KUBECONFIG"]).read_text())
    assert kubeconfig["users"][0]["user"]["token"] == oplab["credentials"]["kube_operator_token"]
    assert kubeconfig["clusters"][0]["cluster"]["server"] == oplab["urls"]["kube_direct"]
    assert oct(Path(env["KUBECONFIG"]).stat().st_mode & 0o777) == "0o600"


def test_crds_are_the_modules_own(oplab):
    """The CRDs come from the module's config/crd/bases, every capabilities kind of the release."""
    names = {c["metadata"]["name"] for c in kube(oplab, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
             .json()["items"]}
    shipped = {p.name.split("_", 1)[1].removesuffix(".yaml") + ".capabilities.3scale.net"
               for p in (OPERATOR_BIN / "crds").glob("capabilities.3scale.net_*.yaml")}
    assert {"applications.capabilities.3scale.net", "tenants.capabilities.3scale.net",
            "proxyconfigpromotes.capabilities.3scale.net"} <= shipped <= names
    pcp = kube(oplab, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                             "proxyconfigpromotes.capabilities.3scale.net").json()
    schema = pcp["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["description"].startswith("ProxyConfigPromote is the Schema for the proxyconfigpromotes API")


def test_the_workshop_product_is_seeded_through_the_real_operator(oplab):
    product = kube(oplab, "GET", f"{API}/products/granite-3dot2-8b-instruct").json()
    assert condition(product, "Synced")["status"] == "True"
    assert product["status"]["providerAccountHost"] == oplab["urls"]["porta"]
    assert "product.capabilities.3scale.net/finalizer" in product["metadata"]["finalizers"]
    pcp = kube(oplab, "GET", f"{API}/proxyconfigpromotes/granite-3dot2-8b-instruct-seed").json()
    assert condition(pcp, "Ready")["status"] == "True"
    sid = product["status"]["productId"]
    assert pcp["status"]["productId"] == str(sid)
    prod = porta(oplab, "GET", f"/admin/api/services/{sid}/proxy/configs/production/latest.json").json()
    content = prod["proxy_config"]["content"]
    rules = {(r["http_method"], r["pattern"]) for r in content["proxy"]["proxy_rules"]}
    assert ("POST", "/v1/completions") in rules and len(rules) == 8
    assert prod["proxy_config"]["version"] == pcp["status"]["latestProductionVersion"]


def test_metrics_list_wraps_methods_as_metrics(oplab):
    """porta app/representers/metrics_representer.rb + metric_representer.rb: every item of
    /metrics.json is wrapped as `metric` (methods too, with `parent_id`); porta-go-client's
    ListProductMetrics decodes `{"metrics": [{"metric": ...}]}` and the operator tells methods apart
    by listing them (pkg/controller/helper/product_entity.go getMetrics). Wrapping methods as
    `method` there made the operator delete a metric of id 0 (porta: 404) on every Product sync."""
    sid = kube(oplab, "GET", f"{API}/products/granite-3dot2-8b-instruct").json()["status"]["productId"]
    items = porta(oplab, "GET", f"/admin/api/services/{sid}/metrics.json").json()["metrics"]
    assert all(list(i) == ["metric"] for i in items)
    hits = next(i["metric"] for i in items if i["metric"]["system_name"] == "hits")
    methods = [i["metric"] for i in items if i["metric"].get("parent_id")]
    assert len(methods) == 8 and all(m["parent_id"] == hits["id"] for m in methods)
    listed = porta(oplab, "GET", f"/admin/api/services/{sid}/metrics/{hits['id']}/methods.json").json()["methods"]
    assert all(list(i) == ["method"] for i in listed)  # method_representer.rb: `wraps_resource :method`
    assert sorted(m["method"]["id"] for m in listed) == sorted(m["id"] for m in methods)


def apply_backend(info, name: str, **spec) -> None:
    body = {"apiVersion": "capabilities.3scale.net/v1beta1", "kind": "Backend",
            "metadata": {"name": name, "namespace": "3scale"},
            "spec": {"name": name, "systemName": name, "privateBaseURL": info["urls"]["model"], **spec}}
    kube(info, "POST", f"{API}/backends", json=body).raise_for_status()


def backend_synced(info, name: str) -> dict:
    def synced():
        b = kube(info, "GET", f"{API}/backends/{name}").json()
        return b if condition(b, "Synced").get("status") == "True" else None
    return wait_for(synced, timeout=30, what=f"Backend {name} synced")


def test_backend_metrics_list_includes_its_methods(oplab):
    """porta app/controllers/admin/api/backend_apis/metrics_controller.rb lists backend_api.metrics,
    every metric the backend owns, methods included (app/models/backend_api.rb `has_many :metrics`).
    The operator finds a backend mapping rule's method in that list
    (pkg/controller/helper/backendapi_entity.go FindMethodMetricIDBySystemName); the lab's porta listed
    top-level metrics only, and every Backend with a method-bound rule stayed Failed ("backend metric
    method ref for mapping rule not found")."""
    apply_backend(oplab, "withmethod", methods={"chat": {"friendlyName": "Chat"}},
                  mappingRules=[{"httpMethod": "POST", "pattern": "/v1/chat/completions", "metricMethodRef": "chat",
                                 "increment": 1}])
    bid = backend_synced(oplab, "withmethod")["status"]["backendId"]
    items = [i["metric"] for i in porta(oplab, "GET", f"/admin/api/backend_apis/{bid}/metrics.json").json()["metrics"]]
    hits = next(m for m in items if m["system_name"] == f"hits.{bid}")
    chat = next(m for m in items if m["system_name"] == f"chat.{bid}")  # extended: metric_extension.rb
    assert chat["parent_id"] == hits["id"]
    rules = porta(oplab, "GET", f"/admin/api/backend_apis/{bid}/mapping_rules.json").json()["mapping_rules"]
    assert [(r["mapping_rule"]["pattern"], r["mapping_rule"]["metric_id"]) for r in rules] == [
        ("/v1/chat/completions", chat["id"])]


def test_a_lost_answer_to_a_create_leaves_one_object(oplab):
    """porta commits a backend_api, the answer is lost (`lost_response_rate`, the operator's calls
    included): the operator's retry finds it by system name and adopts it instead of creating another
    (controllers/capabilities/backend_threescale_reconciler.go syncBackend looks the backend up by
    system name first; Go's net/http does not resend a POST)."""
    subprocess.run([sys.executable, "-m", "maaslab", "fault", "--dir", str(oplab["path"]), "--reset", "porta",
                    "lost_response_rate=1", "exclude_operator=false", "max_count=1", "verbs=[\"POST\"]",
                    "path_regex=^/admin/api/backend_apis.json"], check=True, capture_output=True, timeout=30)
    try:
        apply_backend(oplab, "lostanswer")
        bid = backend_synced(oplab, "lostanswer")["status"]["backendId"]
    finally:
        subprocess.run([sys.executable, "-m", "maaslab", "fault", "--dir", str(oplab["path"]), "clear"],
                       check=True, capture_output=True, timeout=30)
    stats = requests.get(oplab["urls"]["porta"] + "/lab/stats.json", verify=oplab["tls"]["ca_cert"], timeout=30,
                         params={"access_token": oplab["env"]["THREESCALE_ACCESS_TOKEN"]}).json()
    assert stats["faults"].get("lost_responses") == 1
    listed = porta(oplab, "GET", "/admin/api/backend_apis.json", params={"per_page": 500}).json()["backend_apis"]
    assert [b["backend_api"]["id"] for b in listed if b["backend_api"]["system_name"] == "lostanswer"] == [bid]


def test_plan_costs_are_json_numbers(oplab):
    """porta app/representers/plan_representer.rb: setup_fee.to_f, cost_per_month.to_f,
    trial_period_days.to_i. porta-go-client's ApplicationPlanItem has float64 fields: a string here
    failed every Product with application plans ("cannot unmarshal string into ... setup_fee")."""
    sid = kube(oplab, "GET", f"{API}/products/granite-3dot2-8b-instruct").json()["status"]["productId"]
    plans = porta(oplab, "GET", f"/admin/api/services/{sid}/application_plans.json").json()["plans"]
    plan = plans[0]["application_plan"]
    assert (plan["setup_fee"], plan["cost_per_month"], plan["trial_period_days"]) == (0.0, 0.0, 0)
    assert plan["system_name"] == "standard" and plan["state"] == "published"


def test_a_product_change_reaches_porta(oplab):
    """The Product controller updates 3scale from the spec (and only the Product's own methods)."""
    path = f"{API}/products/granite-3dot2-8b-instruct"
    product = kube(oplab, "GET", path).json()
    generation = product["metadata"]["generation"]
    patch = {"spec": {"description": "changed by the lab test"}}
    kube(oplab, "PATCH", path, data=json.dumps(patch),
         headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()

    def synced():
        p = kube(oplab, "GET", path).json()
        return p if p["status"].get("observedGeneration") == generation + 1 and \
            condition(p, "Synced").get("status") == "True" else None
    product = wait_for(synced, timeout=30, what="Product re-synced")
    svc = porta(oplab, "GET", f"/admin/api/services/{product['status']['productId']}.json").json()["service"]
    assert svc["description"] == "changed by the lab test"


def maaslab(info, *args) -> dict:
    p = subprocess.run([sys.executable, "-m", "maaslab", *args, "--dir", str(info["path"])],
                       capture_output=True, text=True, timeout=90, check=True)
    return json.loads(p.stdout)


def test_operator_stop_and_start_as_a_rescheduled_pod(oplab):
    """`maaslab operator stop|start`: a CR applied while the operator is down is reconciled once
    it is back (controller-runtime lists every object when its caches start)."""
    pid = operator_pid(oplab)
    state = maaslab(oplab, "operator", "stop")
    assert state["running"] is False and not Path(f"/proc/{pid}").exists()
    name = "while-down"
    backend = {"apiVersion": "capabilities.3scale.net/v1beta1", "kind": "Backend",
               "metadata": {"name": name, "namespace": "3scale"},
               "spec": {"name": name, "systemName": name, "privateBaseURL": oplab["urls"]["model"]}}
    kube(oplab, "POST", f"{API}/backends", json=backend).raise_for_status()
    assert "status" not in kube(oplab, "GET", f"{API}/backends/{name}").json()  # nobody reconciled it
    state = maaslab(oplab, "operator", "start")
    assert state["running"] is True and state["pid"] != pid
    synced = wait_for(lambda: condition(kube(oplab, "GET", f"{API}/backends/{name}").json(), "Synced")
                      .get("status") == "True", timeout=30, what="Backend synced after the restart")
    assert synced
    assert maaslab(oplab, "operator", "status")["pid"] == state["pid"]
