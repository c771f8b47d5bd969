"""The lab's real Kubernetes control plane (`maaslab.controlplane`): kube-apiserver, etcd and
kube-controller-manager built from their Go modules (lab/k8s, hack/build-k8s.sh), checked with the
clients a user types: kubectl, the Python kubernetes client, requests. Upstream behaviour is the
running code itself; where a test leans on a specific upstream rule, the file is named."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from conftest import VENV_BIN, start_lab, stop_lab, wait_for  # noqa: E402

KUBECTL = str(VENV_BIN / "kubectl")
K8S_VERSION = next(line.split()[1] for line in (REPO / "lab/k8s/go.mod").read_text().splitlines()
                   if line.strip().startswith("k8s.io/kubernetes "))

pytestmark = pytest.mark.skipif(not (REPO / ".venv/k8s-bin/kube-apiserver").exists(),
                                reason="the control plane is not built: make setup")


def lab_processes(directory: Path) -> list[int]:
    """Pids of every process whose command line names the lab directory (etcd, apiserver, ...)."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
                state = (proc / "stat").read_text().split(") ", 1)[1][0]
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if str(directory).encode() in cmd and state != "Z":
                out.append(int(proc.name))
    return out


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    directory = tmp_path_factory.mktemp("real")
    info = start_lab(directory)
    info["path"] = directory
    yield info
    stop_lab(directory)


def kubectl(info, *args, token: str | None = None, check: bool = True, input: str | None = None, timeout=60):
    env = {**os.environ, "KUBECONFIG": info["env"]["KUBECONFIG"], "HOME": str(info["path"])}
    cmd = [KUBECTL, "--cache-dir", str(info["path"] / "kcache"), *args]
    if token:
        cmd += ["--token", token]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, input=input, timeout=timeout, check=False)
    if check and p.returncode:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def api(info, method, path, token=None, **kw) -> requests.Response:
    token = token or info["credentials"]["kube_admin_token"]
    return requests.request(method, info["urls"]["kube"] + path, verify=info["tls"]["ca_cert"], timeout=30,
                            headers={"Authorization": f"Bearer {token}", **kw.pop("headers", {})}, **kw)


def test_kubectl_version_is_the_release_built(real):
    v = json.loads(kubectl(real, "version", "-o", "json").stdout)["serverVersion"]
    assert v["gitVersion"] == K8S_VERSION and re.fullmatch(r"v1\.3\d\.\d+", v["gitVersion"])
    assert (v["major"], v["minor"]) == ("1", K8S_VERSION.split(".")[1])


def test_typed_kubectl_create_namespace_secret_configmap(real):
    """kubectl sends built-in kinds as protobuf (application/vnd.kubernetes.protobuf)."""
    kubectl(real, "create", "namespace", "typed")
    kubectl(real, "-n", "typed", "create", "secret", "generic", "s1", "--from-literal=password=p@ss")
    kubectl(real, "-n", "typed", "create", "configmap", "c1", "--from-literal=k=v")
    secret = json.loads(kubectl(real, "-n", "typed", "get", "secret", "s1", "-o", "json").stdout)
    assert secret["type"] == "Opaque" and secret["data"] == {"password": "cEBzcw=="}
    assert json.loads(kubectl(real, "-n", "typed", "get", "cm", "c1", "-o", "json").stdout)["data"] == {"k": "v"}


def test_seeded_namespace_secrets_and_crds(real):
    for name in ("system-seed", "threescale-provider-account"):
        kubectl(real, "-n", "3scale", "get", "secret", name)
    crds = kubectl(real, "get", "crd", "-o", "name").stdout.split()
    for plural in ("backends", "products", "activedocs", "proxyconfigpromotes"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{plural}.capabilities.3scale.net" in crds
    assert "customresourcedefinition.apiextensions.k8s.io/inferenceservices.serving.kserve.io" in crds
    explain = kubectl(real, "explain", "products.spec.mappingRules").stdout
    assert "FIELD: mappingRules <[]Object>" in explain and "httpMethod" in explain


def test_rbac_each_lab_identity_gets_only_its_own(real):
    """--authorization-mode=Node,RBAC: the operator and the KServe stand-in are users bound to
    ClusterRoles of their own (maaslab.controlplane.CLUSTER_ROLES); the admin is in system:masters."""
    creds = real["credentials"]

    def can(token, *what):
        p = kubectl(real, "auth", "can-i", *what, token=token, check=False)
        return p.stdout.strip() == "yes"

    assert can(creds["kube_admin_token"], "delete", "namespaces")
    op = creds["kube_operator_token"]
    assert can(op, "update", "products.capabilities.3scale.net", "--subresource=status", "-n", "3scale")
    assert can(op, "get", "secrets", "-n", "3scale")
    assert not can(op, "create", "secrets", "-n", "3scale")
    assert not can(op, "delete", "namespaces")
    ks = creds["kube_kserve_token"]
    assert can(ks, "update", "inferenceservices.serving.kserve.io", "--subresource=status", "-A")
    assert not can(ks, "get", "secrets", "-n", "3scale")
    whoami = json.loads(kubectl(real, "auth", "whoami", "-o", "json", token=op).stdout)
    assert whoami["status"]["userInfo"]["username"] == "maaslab:3scale-operator"
    anonymous = requests.get(real["urls"]["kube"] + "/api/v1/namespaces", verify=real["tls"]["ca_cert"], timeout=10)
    assert anonymous.status_code == 403 and 'User "system:anonymous"' in anonymous.json()["message"]
    bad = api(real, "GET", "/api/v1/namespaces", token="not-a-token")
    assert bad.status_code == 401 and bad.json()["reason"] == "Unauthorized"


def test_create_token_is_a_working_identity(real):
    """Service-account issuer and signing key: `kubectl create token` (TokenRequest) works."""
    kubectl(real, "-n", "3scale", "create", "serviceaccount", "probe")
    token = kubectl(real, "-n", "3scale", "create", "token", "probe", "--duration=10m").stdout.strip()
    who = json.loads(kubectl(real, "auth", "whoami", "-o", "json", token=token).stdout)
    assert who["status"]["userInfo"]["username"] == "system:serviceaccount:3scale:probe"
    assert kubectl(real, "-n", "3scale", "get", "secrets", token=token, check=False).returncode != 0  # no role


def test_namespace_deletion_and_garbage_collection(real):
    """kube-controller-manager's namespace and garbage-collector controllers do their work."""
    kubectl(real, "create", "namespace", "gone")
    owner = json.loads(kubectl(real, "-n", "gone", "create", "configmap", "owner", "-o", "json").stdout)
    child = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "child", "namespace": "gone",
             "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                  "uid": owner["metadata"]["uid"]}]}}
    kubectl(real, "apply", "-f", "-", input=yaml.safe_dump(child))
    kubectl(real, "-n", "gone", "delete", "configmap", "owner")
    kubectl(real, "-n", "gone", "wait", "--for=delete", "configmap/child", "--timeout=60s")
    kubectl(real, "delete", "namespace", "gone", "--wait=true", "--timeout=90s")
    assert kubectl(real, "get", "namespace", "gone", check=False).returncode != 0


def test_server_side_apply_owns_fields_and_reports_conflicts(real):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": "3scale"},
          "data": {"owner": "first"}}
    kubectl(real, "apply", "--server-side", "--field-manager=first", "-f", "-", input=yaml.safe_dump(cm))
    cm["data"]["owner"] = "second"
    clash = kubectl(real, "apply", "--server-side", "--field-manager=second", "-f", "-",
                    input=yaml.safe_dump(cm), check=False)
    assert clash.returncode != 0 and "conflict" in clash.stderr.lower() and "first" in clash.stderr
    got = json.loads(kubectl(real, "-n", "3scale", "get", "cm", "ssa", "--show-managed-fields", "-o", "json").stdout)
    assert [m["manager"] for m in got["metadata"]["managedFields"]] == ["first"]
    diff = kubectl(real, "diff", "--server-side", "--field-manager=first", "-f", "-", input=yaml.safe_dump(cm),
                   check=False)
    assert diff.returncode == 1 and "+  owner: second" in diff.stdout


def test_python_client_watch_sees_the_operator_status(real, tmp_path):
    """The Python kubernetes client's watch on a CR the lab's operator reconciles through the real
    API server (its own identity, direct connection)."""
    from kubernetes import client, config, watch
    api_client = config.new_client_from_config(config_file=real["env"]["KUBECONFIG"])
    crs = client.CustomObjectsApi(api_client)
    crs.create_namespaced_custom_object("capabilities.3scale.net", "v1beta1", "3scale", "backends", {
        "apiVersion": "capabilities.3scale.net/v1beta1", "kind": "Backend",
        "metadata": {"name": "watched"},
        "spec": {"name": "Watched", "systemName": "watched", "privateBaseURL": real["urls"]["model"]}})
    synced = None
    for event in watch.Watch().stream(crs.list_namespaced_custom_object, "capabilities.3scale.net", "v1beta1",
                                      "3scale", "backends", field_selector="metadata.name=watched",
                                      timeout_seconds=60):
        conds = {c["type"]: c["status"] for c in (event["object"].get("status") or {}).get("conditions") or []}
        if conds.get("Synced") == "True":
            synced = event["object"]
            break
    assert synced and synced["status"]["backendId"] > 0
    kubectl(real, "-n", "3scale", "wait", "--for=condition=Synced", "backend/watched", "--timeout=30s")


# ------------------------------------------------------------------------------- fault proxy

def fault(info, *settings):
    subprocess.run([sys.executable, "-m", "maaslab", "fault", "--dir", str(info["path"]), "--reset", "kube",
                    *settings], check=True, capture_output=True)
    assert api(info, "POST", "/lab/stats/reset").status_code == 200


def test_fault_proxy_errors_drops_and_exclude_operator(real):
    fault(real, "error_rate=1", "error_status=429", "retry_after=2", "max_count=1", 'verbs=["GET"]')
    try:
        r = api(real, "GET", "/api/v1/namespaces")
        assert r.status_code == 429 and r.headers["Retry-After"] == "2" and r.json()["reason"] == "TooManyRequests"
        assert api(real, "GET", "/api/v1/namespaces").status_code == 200         # max_count spent
        fault(real, "error_rate=1")
        op = api(real, "GET", "/api/v1/namespaces/3scale/secrets", token=real["credentials"]["kube_operator_token"])
        assert op.status_code == 200                                              # exclude_operator (default)
        assert api(real, "GET", "/api/v1/namespaces").status_code == 503
        fault(real, "drop_rate=1", 'path_regex="/configmaps"', 'verbs=["POST"]')
        with pytest.raises(requests.ConnectionError):
            api(real, "POST", "/api/v1/namespaces/3scale/configmaps",
                json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dropped"}})
        assert api(real, "GET", "/api/v1/namespaces/3scale/configmaps/dropped").status_code == 404  # not forwarded
        assert api(real, "GET", "/lab/stats.json").json()["faults"] == {"drops": 1}
    finally:
        fault(real)


def test_fault_proxy_watch_close_after_ends_the_watch_cleanly(real):
    fault(real, "watch_close_after=1")
    try:
        t0 = time.monotonic()
        with api(real, "GET", "/api/v1/namespaces?watch=true&timeoutSeconds=60", stream=True) as r:
            events = [json.loads(line) for line in r.iter_lines() if line]
        assert 0.9 < time.monotonic() - t0 < 20
        assert events and {e["type"] for e in events} == {"ADDED"}
    finally:
        fault(real)


# ------------------------------------------------------------------------------- lifecycle

def test_restart_keeps_state_and_kill_leaves_nothing(tmp_path):
    directory = tmp_path / "life"
    info = start_lab(directory)
    info["path"] = directory
    try:
        assert len(lab_processes(directory)) == 4      # maaslab serve, etcd, kube-apiserver, kube-controller-manager
        kubectl(info, "create", "namespace", "kept")
        stop_lab(directory)
        wait_for(lambda: not lab_processes(directory), timeout=30, what="every lab process to exit after down")
        info = start_lab(directory)
        info["path"] = directory
        kubectl(info, "get", "namespace", "kept")
        kubectl(info, "-n", "3scale", "wait", "--for=condition=Ready",
                "proxyconfigpromote/granite-3dot2-8b-instruct-seed", "--timeout=30s")
        lab_pid = int((directory / "lab.pid").read_text())
        os.kill(lab_pid, signal.SIGKILL)               # children die with it (PR_SET_PDEATHSIG)
        wait_for(lambda: not lab_processes(directory), timeout=30, what="the control plane to die with the lab")
    finally:
        for pid in lab_processes(directory):
            os.kill(pid, signal.SIGKILL)


def test_concurrent_clients_through_the_proxy(real):
    """Many keep-alive clients at once (the collection's bulk paths do this) all get their answers."""
    errors = []

    def worker(i):
        try:
            s = requests.Session()
            for j in range(10):
                r = s.get(real["urls"]["kube"] + "/api/v1/namespaces/3scale/secrets", verify=real["tls"]["ca_cert"],
                          headers={"Authorization": "Bearer " + real["credentials"]["kube_admin_token"]}, timeout=30)
                if r.status_code != 200:
                    errors.append((i, j, r.status_code))
        except requests.RequestException as e:
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
