"""Least privilege (docs/rbac/maas-threescale.yaml), against the lab's real kube-apiserver (RBAC):
the onboarding, discovery, prune and offboarding run with a token of the ServiceAccount that
manifest defines (`kubectl create token`), reading the 3scale admin URL and token from the Secrets
(no THREESCALE_* in the environment), and that identity is refused what it does not need."""
from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO

MANIFEST = REPO / "docs" / "rbac" / "maas-threescale.yaml"


def run(cmd, env, **kw):
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=600, **kw)


@pytest.fixture(scope="module")
def sa_env(own_lab, tmp_path_factory):
    info, admin_env = own_lab
    applied = run(["kubectl", "apply", "-f", str(MANIFEST)], admin_env)
    assert applied.returncode == 0, applied.stderr
    token = run(["kubectl", "-n", "3scale", "create", "token", "maas-threescale", "--duration=1h"], admin_env)
    assert token.returncode == 0, token.stderr
    kubeconfig = Path(tmp_path_factory.mktemp("sa")) / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "lab", "cluster": {
            "server": info["urls"]["kube"],
            "certificate-authority-data": base64.b64encode(Path(info["tls"]["ca_cert"]).read_bytes()).decode()}}],
        "users": [{"name": "sa", "user": {"token": token.stdout.strip()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "lab", "user": "sa", "namespace": "3scale"}}]}))
    kubeconfig.chmod(0o600)
    env = {k: v for k, v in admin_env.items() if k not in ("THREESCALE_ADMIN_URL", "THREESCALE_ACCESS_TOKEN")}
    env.update(KUBECONFIG=str(kubeconfig), K8S_AUTH_KUBECONFIG=str(kubeconfig))
    return info, admin_env, env


def playbook(env, name, extra):
    proc = run(["ansible-playbook", "-i", "inventories/lab", f"playbooks/{name}", "-e", json.dumps(extra)], env)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc


def test_the_collection_runs_with_the_least_privilege_token(sa_env, tmp_path):
    info, admin_env, env = sa_env
    who = json.loads(run(["kubectl", "auth", "whoami", "-o", "json"], env).stdout)
    assert who["status"]["userInfo"]["username"] == "system:serviceaccount:3scale:maas-threescale"
    model = {"name": "rbac-one", "display_name": "RBAC one", "endpoint": info["urls"]["model"],
             "model_id": "tinyllama/tinyllama-1.1b-chat-v1.0", "accounts": ["user1"]}
    first = playbook(env, "onboard_model.yml", {"maas_models": [model]})
    assert '"smoke_test": "OK, ' in first.stdout, first.stdout[-3000:]   # the completion answered through the gateway
    again = playbook(env, "onboard_model.yml", {"maas_models": [model]})
    assert "changed=0" in again.stdout, again.stdout[-3000:]

    isvc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "rbac-disc", "namespace": "3scale", "labels": {"maas.threescale/publish": "true"}},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "vLLM"},
                                             "args": ["--served-model-name", "org/rbac-disc"]}}}}
    assert run(["kubectl", "apply", "-f", "-"], admin_env, input=yaml.safe_dump(isvc)).returncode == 0
    assert run(["kubectl", "-n", "3scale", "wait", "--for=condition=Ready", "--timeout=60s",
                "inferenceservices.serving.kserve.io/rbac-disc"], admin_env).returncode == 0
    report = tmp_path / "report.json"
    playbook(env, "onboard_model.yml", {"maas_models": [], "maas_discover": True, "maas_discover_namespaces": ["3scale"],
                                        "maas_discover_accounts": ["user1"],
                                        "maas_prune": True, "maas_report_file": str(report)})
    products = json.loads(run(["kubectl", "-n", "3scale", "get", "products", "-o", "json"], admin_env).stdout)["items"]
    names = {p["metadata"]["name"] for p in products}
    assert "rbac-disc" in names and "rbac-one" not in names        # discovered one published, the other pruned
    playbook(env, "offboard_model.yml", {"maas_models": [{"name": "rbac-disc"}]})
    products = json.loads(run(["kubectl", "-n", "3scale", "get", "products", "-o", "json"], admin_env).stdout)["items"]
    assert "rbac-disc" not in {p["metadata"]["name"] for p in products}


@pytest.mark.parametrize("what", [
    ["delete", "namespaces"],
    ["create", "customresourcedefinitions.apiextensions.k8s.io"],
    ["get", "secrets", "-n", "kube-system"],
    ["create", "backends.capabilities.3scale.net", "-n", "default"],
    ["update", "secrets/system-seed", "-n", "3scale"],
    ["patch", "secrets/system-seed", "-n", "3scale"],
    ["create", "rolebindings.rbac.authorization.k8s.io", "-n", "3scale"],
    ["create", "pods", "-n", "3scale"],
    ["list", "inferenceservices.serving.kserve.io", "-n", "default"],
    ["get", "apimanagers.apps.3scale.net", "-n", "3scale"],
])
def test_the_token_is_refused_what_it_does_not_need(sa_env, what):
    _info, _admin_env, env = sa_env
    p = run(["kubectl", "auth", "can-i", *what], env)
    assert p.stdout.strip() == "no", (what, p.stdout, p.stderr)


def test_the_token_is_granted_what_the_collection_uses(sa_env):
    _info, _admin_env, env = sa_env
    for what in (["patch", "products.capabilities.3scale.net"], ["watch", "backends.capabilities.3scale.net"],
                 ["get", "secrets/system-seed"], ["get", "secrets/threescale-provider-account"],
                 ["create", "leases.coordination.k8s.io"], ["list", "inferenceservices.serving.kserve.io"]):
        p = run(["kubectl", "auth", "can-i", *what, "-n", "3scale"], env)
        assert p.stdout.strip() == "yes", (what, p.stdout, p.stderr)
