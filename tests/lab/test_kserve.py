"""The lab's KServe stand-in, end to end: InferenceServices applied, labelled, annotated and
deleted with kubectl; their status.url answered by a vLLM-compatible server over HTTP; the
`kserve` fault switches set with the real CLI; a restart keeps objects and URLs.

Upstream: kserve config/crd/full/serving.kserve.io_inferenceservices.yaml,
pkg/apis/serving/v1beta1/{predictor,inference_service_status}.go, pkg/constants/constants.go
(serving.kserve.io/stop), pkg/controller/v1beta1/inferenceservice/controller.go.
One private lab for this module (it is restarted by the last test).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from conftest import start_lab, stop_lab
from kube_fixtures import wait_for

KUBECTL = str(Path(sys.executable).parent / "kubectl")
NS = "models"
PUBLISH = "maas.threescale/publish"


class KLab:
    def __init__(self, info: dict):
        self.info = info

    @property
    def dir(self) -> Path:
        return Path(self.info["dir"])

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True,
                ns: str = NS) -> subprocess.CompletedProcess:
        env = {**os.environ, "KUBECONFIG": self.info["env"]["KUBECONFIG"]}
        p = subprocess.run([KUBECTL, "-n", ns, "--cache-dir", str(self.dir / "kcache"), *args], input=stdin,
                           env=env, capture_output=True, text=True, timeout=90)
        if check and p.returncode:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {p.stderr}")
        return p

    def apply_isvc(self, name: str, labels: dict | None = None, annotations: dict | None = None,
                   args: list[str] | None = None, containers: list[dict] | None = None) -> None:
        predictor: dict = {"minReplicas": 1}
        if containers is not None:
            predictor["containers"] = containers
        else:
            predictor["model"] = {"modelFormat": {"name": "vLLM"}, "runtime": "vllm-runtime",
                                  "storageUri": f"oci://quay.io/models/{name}:latest", "args": args or []}
        obj = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
               "metadata": {"name": name, "namespace": NS, "labels": labels or {}, "annotations": annotations or {}},
               "spec": {"predictor": predictor}}
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))

    def get(self, name: str) -> dict:
        return json.loads(self.kubectl("get", "inferenceservice", name, "-o", "json").stdout)

    def jsonpath(self, name: str, path: str) -> str:
        return self.kubectl("get", "isvc", name, "-o", f"jsonpath={{{path}}}").stdout

    def wait_ready(self, name: str, status: str = "True") -> dict:
        def check():
            obj = self.get(name)
            st = obj.get("status") or {}
            ready = [c for c in st.get("conditions") or [] if c["type"] == "Ready"]
            fresh = st.get("observedGeneration") == obj["metadata"]["generation"]
            return obj if ready and ready[0]["status"] == status and fresh else None
        return wait_for(check, timeout=20, what=f"{name} Ready={status}")

    def fault(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "maaslab", "fault", "--dir", str(self.dir), *args],
                              capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def klab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("kserve")
    lab = KLab(start_lab(directory))
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    lab.kubectl("apply", "-f", "-", stdin=json.dumps(namespace))
    yield lab
    stop_lab(Path(lab.info["dir"]))


def models_of(url: str) -> list[str]:
    return [m["id"] for m in requests.get(url + "/v1/models", timeout=10).json()["data"]]


def refused(url: str) -> bool:
    try:
        requests.get(url + "/health", timeout=5)
    except requests.ConnectionError:
        return True
    return False


def test_crd_is_served_like_kserves(klab):
    """Upstream: kserve config/crd/full/serving.kserve.io_inferenceservices.yaml (names, short name, scope)."""
    out = klab.kubectl("api-resources", "--api-group=serving.kserve.io", "--no-headers").stdout.split()
    assert out[:5] == ["inferenceservices", "isvc", "serving.kserve.io/v1beta1", "true", "InferenceService"]
    crd = json.loads(klab.kubectl("get", "crd", "inferenceservices.serving.kserve.io", "-o", "json").stdout)
    assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
    # a typed field is validated: minReplicas is an integer
    bad = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
           "metadata": {"name": "bad", "namespace": NS}, "spec": {"predictor": {"minReplicas": "one"}}}
    p = klab.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(bad), check=False)
    assert p.returncode != 0 and "minReplicas" in p.stderr


def test_ready_isvc_serves_its_served_model_name(klab):
    """Upstream: kserve pkg/apis/serving/v1beta1/inference_service_status.go (url, address, conditions,
    observedGeneration, modelStatus); vLLM --served-model-name=NAME in predictor.model.args."""
    klab.apply_isvc("granite-a", labels={PUBLISH: "true"},
                    args=["--max-model-len=4096", "--served-model-name=acme/granite-a-8b"])
    obj = klab.wait_ready("granite-a")
    st = obj["status"]
    url = klab.jsonpath("granite-a", ".status.url")
    assert url.startswith("http://127.0.0.1:") and st["address"]["url"] == url
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "IngressReady": "True", "PredictorReady": "True", "Ready": "True", "Stopped": "False"}
    assert all(c["lastTransitionTime"] for c in st["conditions"])
    assert st["modelStatus"]["transitionStatus"] == "UpToDate"
    assert st["modelStatus"]["states"] == {"activeModelState": "Loaded", "targetModelState": "Loaded"}
    assert models_of(url) == ["acme/granite-a-8b"]
    r = requests.post(url + "/v1/completions", json={"model": "acme/granite-a-8b", "prompt": "San Francisco is a",
                                                     "max_tokens": 5, "temperature": 0}, timeout=10)
    assert r.status_code == 200 and r.json()["model"] == "acme/granite-a-8b" and r.json()["choices"][0]["text"]
    r = requests.post(url + "/v1/completions", json={"model": "ibm-granite/granite-3.2-8b-instruct",
                                                     "prompt": "x", "max_tokens": 1}, timeout=10)
    assert r.status_code == 404
    assert r.json() == {"object": "error", "message": "The model `ibm-granite/granite-3.2-8b-instruct` does not exist.",
                        "type": "NotFoundError", "param": None, "code": 404}
    # a new served name (spec change: generation 2) is served on the same URL
    klab.kubectl("patch", "isvc", "granite-a", "--type=merge", "-p",
                 json.dumps({"spec": {"predictor": {"model": {"args": ["--served-model-name", "acme/granite-a-v2"]}}}}))
    obj = klab.wait_ready("granite-a")
    assert obj["metadata"]["generation"] == 2 and obj["status"]["url"] == url
    assert models_of(url) == ["acme/granite-a-v2"]


def test_served_name_from_containers_or_object_name(klab):
    """Upstream: kserve pkg/apis/serving/v1beta1/predictor.go (custom containers[].args); without
    --served-model-name the model id is the InferenceService name."""
    klab.apply_isvc("custom", containers=[{"name": "kserve-container", "image": "quay.io/vllm/vllm:0.8.5",
                                           "args": ["--port=8080", "--served-model-name", "team/custom-1b"]}])
    klab.apply_isvc("plain-name", args=["--dtype=half"])
    a, b = klab.wait_ready("custom"), klab.wait_ready("plain-name")
    assert models_of(a["status"]["url"]) == ["team/custom-1b"]
    assert models_of(b["status"]["url"]) == ["plain-name"]
    assert a["status"]["url"] != b["status"]["url"]  # one listener per InferenceService


def test_label_relabel_and_delete(klab):
    """Discovery's view with kubectl: a label selector lists the published ones and their URLs; a
    deleted InferenceService's server stops. Upstream: kserve controller.go (deletion)."""
    for n in ("cat-1", "cat-2", "cat-3"):
        klab.apply_isvc(n, labels={PUBLISH: "true"})
    urls = {n: klab.wait_ready(n)["status"]["url"] for n in ("cat-1", "cat-2", "cat-3")}

    def published():
        out = klab.kubectl("get", "isvc", "-l", f"{PUBLISH}=true", "-o",
                           "jsonpath={range .items[*]}{.metadata.name}={.status.url}{'\\n'}{end}").stdout
        return dict(line.split("=", 1) for line in out.split())
    assert {n: u for n, u in published().items() if n.startswith("cat-")} == urls
    klab.kubectl("label", "isvc", "cat-2", f"{PUBLISH}=false", "--overwrite")
    assert sorted(n for n in published() if n.startswith("cat-")) == ["cat-1", "cat-3"]
    klab.kubectl("label", "isvc", "cat-3", f"{PUBLISH}-")
    assert sorted(n for n in published() if n.startswith("cat-")) == ["cat-1"]
    assert models_of(urls["cat-2"]) == ["cat-2"]  # labels do not change what is served
    klab.kubectl("delete", "isvc", "cat-1")
    wait_for(lambda: refused(urls["cat-1"]), timeout=10, what="cat-1 server stopped")
    assert models_of(urls["cat-3"]) == ["cat-3"]
    # re-created under the same name: same URL (the port stays reserved)
    klab.apply_isvc("cat-1", labels={PUBLISH: "true"})
    assert klab.wait_ready("cat-1")["status"]["url"] == urls["cat-1"]
    assert models_of(urls["cat-1"]) == ["cat-1"]


def test_down_switch_stops_one_model_only(klab):
    """`kserve: {down: ["ns/name"]}` through the real CLI: that server drops every connection (like
    a dead pod), the others answer; an unknown switch is refused (exit 2)."""
    for n in ("up-1", "down-1"):
        klab.apply_isvc(n, args=[f"--served-model-name=acme/{n}"])
    up, down = (klab.wait_ready(n)["status"]["url"] for n in ("up-1", "down-1"))
    p = klab.fault("kserve", f'down=["{NS}/down-1"]', 'delay={"%s/up-1": 0.2}' % NS)
    assert p.returncode == 0, p.stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(down + "/v1/models", timeout=5)
    r = requests.get(up + "/v1/models", timeout=5)
    assert r.status_code == 200 and r.elapsed.total_seconds() >= 0.2
    # the status still says Ready, as right after a pod crashed
    assert klab.jsonpath("down-1", ".status.conditions[?(@.type=='Ready')].status") == "True"
    assert klab.fault("kserve", "gone=true").returncode == 2
    assert klab.fault("kserve", "down=true").returncode == 2  # must be a list
    assert klab.fault("clear").returncode == 0
    assert models_of(down) == ["acme/down-1"]


def test_stop_annotation_and_failed_load_are_not_ready(klab):
    """Upstream: kserve pkg/constants/constants.go StopAnnotationKey (serving.kserve.io/stop):
    Stopped=True, Ready=False reason Stopped; inference_service_status.go FailureInfo ModelLoadFailed
    (reached here with the lab-only annotation lab.maas/ready: "false")."""
    klab.apply_isvc("stoppable", labels={PUBLISH: "true"})
    url = klab.wait_ready("stoppable")["status"]["url"]
    klab.kubectl("annotate", "isvc", "stoppable", "serving.kserve.io/stop=true")
    st = klab.wait_ready("stoppable", "False")["status"]
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Stopped"]["status"] == "True" and conds["Ready"]["reason"] == "Stopped"
    assert "url" not in st and refused(url)
    klab.kubectl("annotate", "isvc", "stoppable", "serving.kserve.io/stop-")
    assert klab.wait_ready("stoppable")["status"]["url"] == url and models_of(url) == ["stoppable"]

    klab.apply_isvc("broken", labels={PUBLISH: "true"},
                    annotations={"lab.maas/ready": "false", "lab.maas/message": "weights not found in storageUri"})
    st = klab.wait_ready("broken", "False")["status"]
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert (ready["reason"], ready["message"]) == ("ModelLoadFailed", "weights not found in storageUri")
    assert st["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad"
    assert st["modelStatus"]["lastFailureInfo"]["reason"] == "ModelLoadFailed"
    assert refused(st["url"])
    klab.kubectl("annotate", "isvc", "broken", "lab.maas/ready-")
    assert models_of(klab.wait_ready("broken")["status"]["url"]) == ["broken"]


def test_porta_accepts_isvc_urls_as_private_endpoints(klab):
    """Porta refuses loopback private endpoints (porta app/models/backend_api.rb, 'Sorry, this domain
    is protected'); the lab's exception covers the KServe stand-in's servers and nothing else."""
    klab.apply_isvc("porta-ok")
    url = klab.wait_ready("porta-ok")["status"]["url"]
    porta, token = klab.info["urls"]["porta"], klab.info["credentials"]["porta_token"]
    ca = klab.info["tls"]["ca_cert"]
    r = requests.post(porta + "/admin/api/backend_apis.json", verify=ca, timeout=10,
                      data={"access_token": token, "name": "porta-ok", "private_endpoint": url})
    assert r.status_code == 201, r.text
    assert r.json()["backend_api"]["private_endpoint"] == url
    taken = set(json.loads((klab.dir / "kserve.json").read_text())["ports"].values())
    other = next(p for p in range(20000, 20100) if p not in taken)
    r = requests.post(porta + "/admin/api/backend_apis.json", verify=ca, timeout=10,
                      data={"access_token": token, "name": "nope", "private_endpoint": f"http://127.0.0.1:{other}"})
    assert (r.status_code, r.json()) == (422, {"errors": {"private_endpoint": ["Sorry, this domain is protected"]}})


def test_gateway_reaches_isvc_and_reports_it_down(klab):
    """The health check's path: a 3scale Backend CR whose privateBaseURL is the InferenceService's
    status.url, promoted by the operator, answered through APIcast; the `down` switch (and the stop
    annotation) make APIcast answer 502 for that model. Upstream: APIcast (refused/reset upstream
    → 502), 3scale-operator controllers/capabilities/backend_controller.go."""
    klab.apply_isvc("gw-model", labels={PUBLISH: "true"}, args=["--served-model-name=acme/gw-model-3b"])
    url = klab.wait_ready("gw-model")["status"]["url"]
    api, meta = "capabilities.3scale.net/v1beta1", {"namespace": "3scale", "name": "gw-model"}
    docs = [
        {"apiVersion": api, "kind": "Backend", "metadata": meta,
         "spec": {"name": "gw-model", "systemName": "gw-model", "privateBaseURL": url}},
        {"apiVersion": api, "kind": "Product", "metadata": meta, "spec": {
            "name": "gw-model", "systemName": "gw-model", "backendUsages": {"gw-model": {"path": "/"}},
            "deployment": {"apicastHosted": {"authentication": {"userkey": {"authUserKey": "user_key",
                                                                            "credentials": "query"}}}},
            "mappingRules": [{"httpMethod": "GET", "pattern": "/v1/models", "metricMethodRef": "hits", "increment": 1},
                             {"httpMethod": "POST", "pattern": "/v1/completions", "metricMethodRef": "hits",
                              "increment": 1}],
            "applicationPlans": {"standard": {"name": "Standard", "published": True}}}},
        {"apiVersion": api, "kind": "ProxyConfigPromote", "metadata": meta,
         "spec": {"productCRName": "gw-model", "production": True}}]
    klab.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs), ns="3scale")
    wait_for(lambda: klab.kubectl("get", "proxyconfigpromote", "gw-model", "-o",
                                  "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                                  ns="3scale").stdout == "True", timeout=30, what="promoted")
    porta, token, ca = klab.info["urls"]["porta"], klab.info["credentials"]["porta_token"], klab.info["tls"]["ca_cert"]

    def call(method, path, **data):
        r = requests.request(method, porta + "/admin/api" + path, verify=ca, timeout=10,
                             params={"access_token": token, **data} if method == "GET" else {"access_token": token},
                             data=None if method == "GET" else data)
        assert r.status_code < 300, r.text
        return r.json()
    sid = next(s["service"]["id"] for s in call("GET", "/services.json")["services"]
               if s["service"]["system_name"] == "gw-model")
    plan = call("GET", f"/services/{sid}/application_plans.json")["plans"][0]["application_plan"]
    acc = call("GET", "/accounts/find.json", username="user1")["account"]
    key = call("POST", f"/accounts/{acc['id']}/applications.json", plan_id=plan["id"],
               name="gw monitor")["application"]["user_key"]
    gateway = call("GET", f"/services/{sid}/proxy.json")["proxy"]["endpoint"]

    def through(expected: int):
        try:
            r = requests.get(gateway + "/v1/models", params={"user_key": key}, timeout=10)
        except requests.ConnectionError:  # production listener not open yet
            return None
        return r if r.status_code == expected else None
    r = wait_for(lambda: through(200), timeout=15, what="gateway serving the InferenceService")
    assert [m["id"] for m in r.json()["data"]] == ["acme/gw-model-3b"]
    assert klab.fault("kserve", f'down=["{NS}/gw-model"]').returncode == 0
    assert through(502) is not None
    assert klab.fault("clear").returncode == 0
    assert through(200) is not None
    klab.kubectl("annotate", "isvc", "gw-model", "serving.kserve.io/stop=true")
    klab.wait_ready("gw-model", "False")
    assert through(502) is not None


def test_restart_keeps_inferenceservices_and_urls(klab):
    """A lab restart (down, up) keeps every InferenceService and brings its server back on the same URL."""
    before = {n: klab.get(n)["status"]["url"] for n in ("granite-a", "custom", "cat-2")}
    stop_lab(klab.dir)
    for url in before.values():
        assert refused(url)
    klab.info = start_lab(klab.dir)
    # servers are back when `up` returns (no wait)
    assert models_of(before["granite-a"]) == ["acme/granite-a-v2"]
    assert models_of(before["custom"]) == ["team/custom-1b"]
    assert {n: klab.get(n)["status"]["url"] for n in before} == before
    assert klab.jsonpath("cat-2", ".metadata.labels.maas\\.threescale/publish") == "false"
    assert klab.get("stoppable")["status"]["url"] and klab.wait_ready("stoppable")


def test_served_names_parsing():
    """vLLM's --served-model-name (vllm/entrypoints/openai/cli_args.py: nargs="+", `=` form or
    separate tokens), model.args before containers[].args; the object's name otherwise."""
    from maaslab.kserve.predictor import served_names

    def isvc(model_args=None, containers=None):
        pred = {"model": {"args": model_args}} if model_args is not None else {"containers": containers}
        return {"metadata": {"name": "obj"}, "spec": {"predictor": pred}}
    assert served_names(isvc(["--served-model-name", "a", "b", "--port", "8080"])) == ["a", "b"]
    assert served_names(isvc(["--served-model-name=x/y"])) == ["x/y"]
    assert served_names(isvc(["--served-model-name="])) == ["obj"]  # empty value: the default
    assert served_names(isvc(["--served-model-name"])) == ["obj"]
    assert served_names(isvc(containers=[{"name": "c", "args": ["--dtype=half"]},
                                         {"name": "d", "args": ["--served-model-name", "z"]}])) == ["z"]
    assert served_names(isvc([])) == ["obj"]
