"""Faults that real systems produce, switched live with `python -m maaslab fault` (the real CLI) and
observed with real clients: requests, kubectl 1.37, the real 3scale operator; the counters of
`/lab/stats.json` (porta and kube) prove that each fault happened."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests
from test_porta import Lab

try:
    from kube_fixtures import KubeLab, wait_for
except ImportError:  # tests/lab turned into a package
    from .kube_fixtures import KubeLab, wait_for


def fault(directory, component: str, *settings: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "maaslab", "fault", "--dir", str(directory), "--reset", component,
                        *settings], capture_output=True, text=True, timeout=30, check=False)
    if check:
        assert p.returncode == 0, p.stderr
    return p


# ---------------------------------------------------------------------------------------- CLI
def test_cli_refuses_unknown_switches_and_components(tmp_path):
    """One table of switches (maaslab.context.FAULT_SWITCHES) checks what the CLI writes: a typo is
    refused with exit 2 and the valid names, and faults.json is left as it was."""
    ok = fault(tmp_path, "kube", "error_rate=0.1", "error_status=429", 'verbs=["POST","PATCH"]')
    assert json.loads(ok.stdout)["kube"] == {"error_rate": 0.1, "error_status": 429, "verbs": ["POST", "PATCH"]}
    before = (tmp_path / "faults.json").read_text()
    typo = fault(tmp_path, "porta", "eror_rate=0.5", check=False)
    assert typo.returncode == 2
    assert "unknown porta switch 'eror_rate'" in typo.stderr and "lost_response_rate" in typo.stderr
    comp = fault(tmp_path, "kubernetes", "error_rate=0.5", check=False)
    assert comp.returncode == 2 and "unknown component 'kubernetes'" in comp.stderr and "kube" in comp.stderr
    bad = fault(tmp_path, "porta", "lost_response_rate=1.5", check=False)
    assert bad.returncode == 2 and "not a valid rate" in bad.stderr
    bad_verbs = fault(tmp_path, "kube", "verbs=POST", check=False)
    assert bad_verbs.returncode == 2 and "not a valid list" in bad_verbs.stderr
    assert (tmp_path / "faults.json").read_text() == before


# ---------------------------------------------------------------------------------------- porta
@pytest.fixture()
def porta(tmp_path):
    lab = Lab(tmp_path, users=1)
    yield lab
    lab.stop()


def porta_faults(lab) -> dict:
    return requests.get(lab.url + "/lab/stats.json", verify=lab.ca, timeout=10).json()["faults"]


def signup(lab, name: str, **kw) -> requests.Response:
    return lab.post("/admin/api/signup.json", data={"org_name": name, "username": name, "email": f"{name}@example.com",
                                                    "password": "openshift-openshift"}, **kw)


def accounts_named(lab, name: str) -> list:
    return [a for a in lab.ok("GET", "/admin/api/accounts.json")["accounts"] if a["account"]["org_name"] == name]


def test_porta_lost_response_commits_then_hangs_up(porta):
    """lost_response_rate: the signup is processed and committed, then the connection closes with no
    answer; path_regex narrows it to the signup and max_count=1 makes only the first one lose its answer.
    Upstream: porta app/controllers/admin/api/signups_controller.rb (one account per signup)."""
    fault(porta.ctx.dir, "porta", "lost_response_rate=1", "path_regex=^/admin/api/signup", "max_count=1")
    assert porta.get("/admin/api/accounts.json").status_code == 200        # not matching: answered
    with pytest.raises(requests.ConnectionError):
        signup(porta, "lostone")
    assert len(accounts_named(porta, "lostone")) == 1                       # durable despite the lost answer
    assert signup(porta, "secondone").status_code == 201                    # budget spent: answered again
    assert porta_faults(porta) == {"lost_responses": 1}


def test_porta_exclude_operator_spares_the_operator_user_agent(porta):
    """exclude_operator (porta, default false): requests with Go's default User-Agent, which the real
    operator's porta-go-client sends, are not faulted; everyone else is.
    Upstream: 3scale-porta-go-client client/client.go (http.Client without a User-Agent header), Go
    net/http request.go (defaultUserAgent "Go-http-client/1.1")."""
    go = {"User-Agent": "Go-http-client/1.1"}
    fault(porta.ctx.dir, "porta", "error_rate=1", "path_regex=^/admin/api/accounts")
    assert porta.get("/admin/api/accounts.json", headers=go).status_code == 503
    fault(porta.ctx.dir, "porta", "error_rate=1", "path_regex=^/admin/api/accounts", "exclude_operator=true")
    assert porta.get("/admin/api/accounts.json", headers=go).json()["accounts"]
    assert porta.get("/admin/api/accounts.json").status_code == 503          # the collection's calls still fail
    assert porta_faults(porta) == {"errors": 2}


# ---------------------------------------------------------------------------------------- kube
@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    lab = KubeLab(tmp_path_factory.mktemp("kube-faults"))
    yield lab
    lab.stop()


@pytest.fixture()
def kfault(kube):
    def set_(*settings):
        fault(kube.dir, "kube", *settings)
        assert kube.req("POST", "/lab/stats/reset").status_code == 200
    yield set_
    fault(kube.dir, "kube")


def kube_faults(kube) -> dict:
    r = kube.req("GET", "/lab/stats.json")
    assert r.status_code == 200, r.text
    return r.json()["faults"]


def as_operator(kube, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, kube.url + path, verify=kube.ca, timeout=10,
                            headers={"Authorization": f"Bearer {kube.ctx.secret('kube_operator_token')}"}, **kw)


def test_kube_lab_stats_need_a_token(kube):
    """`/lab/stats.json` of the kube API server sits behind the same bearer-token check as the API."""
    r = requests.get(kube.url + "/lab/stats.json", verify=kube.ca, timeout=10)
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"
    assert set(kube.req("GET", "/lab/stats.json").json()) == {"requests", "by_method_path", "faults"}


def test_kube_errors_are_status_bodies_like_the_api_server(kube, kfault):
    """429 TooManyRequests with Retry-After and details.retryAfterSeconds, 503 ServiceUnavailable with
    Retry-After, 500 InternalError with a cause: the bodies a real API server writes.
    Upstream: kubernetes/apiserver pkg/storage/cacher/cacher.go (NewTooManyRequests),
    pkg/endpoints/handlers/responsewriters/writers.go (ErrorNegotiated sets Retry-After),
    pkg/server/filters/waitgroup.go (503 "apiserver is shutting down", Retry-After: 1)."""
    kfault("error_rate=1", "error_status=429", "retry_after=2")
    r = kube.req("GET", "/api/v1/namespaces")
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "storage is (re)initializing", "reason": "TooManyRequests",
                        "details": {"retryAfterSeconds": 2}, "code": 429}
    kfault("error_rate=1")                                                 # default status: 503
    r = kube.req("GET", "/api/v1/namespaces")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert (r.json()["reason"], r.json()["message"]) == ("ServiceUnavailable", "apiserver is shutting down")
    kfault("error_rate=1", "error_status=500")
    body = kube.req("GET", "/api/v1/namespaces").json()
    assert body["code"] == 500 and body["reason"] == "InternalError"
    assert body["message"] == "Internal error occurred: etcdserver: leader changed"
    assert body["details"] == {"causes": [{"message": "etcdserver: leader changed"}]}
    assert kube_faults(kube) == {"errors": 1}
    assert kube.req("GET", "/healthz").status_code == 200                  # health checks are never faulted


def test_kubectl_waits_out_429_with_retry_after(kube, kfault):
    """client-go retries a 429 carrying Retry-After (up to 10 times): with max_count=2 kubectl still
    succeeds, and the counters show the two refusals it went through.
    Upstream: client-go rest/request.go (checkWait, retryAfterSeconds)."""
    kfault("error_rate=1", "error_status=429", "max_count=2", "path_regex=/namespaces$")
    p = kube.kubectl("get", "namespaces", "-o", "name", timeout=60)
    assert "namespace/default" in p.stdout
    assert kube_faults(kube) == {"errors": 2}


def test_kube_drop_verbs_path_regex_and_max_count(kube, kfault):
    """drop_rate closes the connection unanswered; verbs and path_regex select what is hit; max_count
    caps the faults until the switches change. Upstream: kubernetes/apiserver pkg/server/filters
    (a request either reaches the handler or is refused before it)."""
    kfault("drop_rate=1", 'verbs=["POST"]', "path_regex=/configmaps", "max_count=1")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dropped"}}
    assert kube.req("GET", "/api/v1/namespaces/default/configmaps").status_code == 200     # GET: spared
    assert kube.req("POST", "/api/v1/namespaces/default/secrets",
                    json={"metadata": {"name": "spared"}}).status_code == 201                # path: spared
    with pytest.raises(requests.ConnectionError):
        kube.req("POST", "/api/v1/namespaces/default/configmaps", json=cm)
    assert kube.req("GET", "/api/v1/namespaces/default/configmaps/dropped").status_code == 404  # nothing processed
    assert kube.req("POST", "/api/v1/namespaces/default/configmaps", json=cm).status_code == 201  # budget spent
    assert kube_faults(kube) == {"drops": 1}


def test_kube_exclude_operator(kube, kfault):
    """exclude_operator (kube, default true) spares requests bearing the operator's service-account
    token, so "10 % 503 on the Kubernetes API" hits only the clients under test; false hits it too."""
    kfault("error_rate=1")
    # Secrets: what the operator's identity may read (RBAC with the real control plane)
    assert as_operator(kube, "GET", "/api/v1/namespaces/default/secrets").status_code == 200
    assert kube.req("GET", "/api/v1/namespaces").status_code == 503
    kfault("error_rate=1", "exclude_operator=false")
    assert as_operator(kube, "GET", "/api/v1/namespaces/default/secrets").status_code == 503
    assert kube_faults(kube) == {"errors": 1}


def test_kube_watch_closed_early_ends_the_stream_cleanly(kube, kfault):
    """watch_close_after: the server ends the chunked stream (terminating chunk, no error) long before
    the client's timeoutSeconds, as a real API server does when a watch times out.
    Upstream: kubernetes/apiserver pkg/endpoints/handlers/watch.go (ServeHTTP returns on timeout)."""
    kfault("watch_close_after=0.5")
    t0 = time.monotonic()
    with kube.http.get(kube.url + "/api/v1/namespaces?watch=true&timeoutSeconds=60", stream=True,
                       verify=kube.ca, timeout=30) as r:
        assert r.status_code == 200
        events = [json.loads(line) for line in r.iter_lines() if line]   # returns only at a clean end
    elapsed = time.monotonic() - t0
    assert 0.4 < elapsed < 10, elapsed
    assert {e["type"] for e in events} == {"ADDED"}
    assert kube_faults(kube) == {"watch_closes": 1}
    # the operator's watches are spared by default
    with requests.get(kube.url + "/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=2", stream=True, verify=kube.ca,
                      timeout=30, headers={"Authorization": f"Bearer {kube.ctx.secret('kube_operator_token')}"}) as r:
        t0 = time.monotonic()
        list(r.iter_lines())
        assert time.monotonic() - t0 > 1.5
    assert wait_for(lambda: kube_faults(kube) == {"watch_closes": 1}, what="no operator watch closed")


# ---------------------------------------------------------------------------------------- whole lab
def test_whole_lab_faults_spare_the_operator(lab):
    """In a whole lab (the `lab` fixture: `python -m maaslab up`), kube faults (exclude_operator
    defaults to true) and porta faults with exclude_operator=true hit only the clients under test: a
    Backend created with kubectl is still reconciled into porta by the operator while every read of
    the test's own clients fails. Upstream: 3scale-operator controllers/capabilities/backend_controller.go."""
    directory, name = lab["dir"], "faults-e2e"
    env = {**lab["env"], "PATH": str(sys.executable).rsplit("/", 1)[0]}
    kubectl = [str(sys.executable).rsplit("/", 1)[0] + "/kubectl", "-n", "3scale", "--cache-dir", directory + "/kc-faults"]
    porta_url, token, ca = lab["urls"]["porta"], lab["credentials"]["porta_token"], lab["tls"]["ca_cert"]
    kube_url, admin = lab["urls"]["kube"], lab["credentials"]["kube_admin_token"]
    operator_token = lab["credentials"]["kube_operator_token"]
    path = f"/apis/capabilities.3scale.net/v1beta1/namespaces/3scale/backends/{name}"
    try:
        fault(directory, "kube", "error_rate=1", "error_status=503", 'verbs=["GET"]', f"path_regex=/backends/{name}$")
        fault(directory, "porta", "error_rate=1", "exclude_operator=true", "path_regex=^/admin/api/backend_apis")
        manifest = {"apiVersion": "capabilities.3scale.net/v1beta1", "kind": "Backend",
                    "metadata": {"name": name, "namespace": "3scale"},
                    "spec": {"name": name, "systemName": name, "privateBaseURL": "https://model.example.com"}}
        p = subprocess.run([*kubectl, "create", "-f", "-"], input=json.dumps(manifest), env=env,
                           capture_output=True, text=True, timeout=60, check=False)
        assert p.returncode == 0, p.stderr
        mine = requests.get(kube_url + path, headers={"Authorization": f"Bearer {admin}"}, verify=ca, timeout=10)
        assert mine.status_code == 503 and mine.json()["reason"] == "ServiceUnavailable"

        def synced():
            r = requests.get(kube_url + path, headers={"Authorization": f"Bearer {operator_token}"}, verify=ca, timeout=10)
            conds = {c["type"]: c["status"] for c in (r.json().get("status") or {}).get("conditions", [])}
            return r.json() if conds.get("Synced") == "True" else None
        obj = wait_for(synced, timeout=30, what="Backend synced by the operator")
        assert obj["status"]["backendId"]
        r = requests.get(f"{porta_url}/admin/api/backend_apis/{obj['status']['backendId']}.json",
                         auth=("", token), verify=ca, timeout=10)
        assert r.status_code == 503                                   # the test's own porta call is faulted
        stats = requests.get(porta_url + "/lab/stats.json", verify=ca, timeout=10).json()
        assert stats["faults"].get("errors", 0) >= 1
        kstats = requests.get(kube_url + "/lab/stats.json", headers={"Authorization": f"Bearer {admin}"},
                              verify=ca, timeout=10).json()
        assert kstats["faults"].get("errors", 0) >= 1
    finally:
        fault(directory, "kube")
        fault(directory, "porta")
        subprocess.run([*kubectl, "delete", "backend", name, "--wait=false"], env=env, capture_output=True,
                       timeout=60, check=False)
