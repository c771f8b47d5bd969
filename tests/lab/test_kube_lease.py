"""coordination.k8s.io/v1 Lease on the lab Kubernetes API server, with kubectl 1.37, requests and
ansible-playbook + kubernetes.core (the lock the collection takes per model and cluster)."""
from __future__ import annotations

import subprocess

import pytest
import yaml

try:
    from kube_fixtures import VENV, KubeLab
except ImportError:  # tests/lab turned into a package
    from .kube_fixtures import VENV, KubeLab

LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


def lease(name: str, holder: str = "run-a", **spec) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name, "namespace": "default"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 60,
                     "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": "2026-01-01T00:00:00.000000Z",
                     "leaseTransitions": 0, **spec}}


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    lab = KubeLab(tmp_path_factory.mktemp("kube-lease"))
    yield lab
    lab.stop()


def test_lease_discovery_and_kubectl(kube):
    """Discovery lists coordination.k8s.io/v1 leases (namespaced); kubectl creates, reads, refuses a
    second create (AlreadyExists) and deletes. Upstream: kubernetes pkg/registry/coordination/lease/strategy.go."""
    group = kube.req("GET", "/apis/coordination.k8s.io").json()
    assert group["preferredVersion"] == {"groupVersion": "coordination.k8s.io/v1", "version": "v1"}
    res = {r["name"]: r for r in kube.req("GET", "/apis/coordination.k8s.io/v1").json()["resources"]}
    assert res["leases"]["kind"] == "Lease" and res["leases"]["namespaced"] is True
    assert "leases" in kube.kubectl("api-resources", "--api-group=coordination.k8s.io", "-o", "name").stdout
    doc = yaml.safe_dump(lease("kc"))
    kube.kubectl("create", "-f", "-", input=doc)
    got = yaml.safe_load(kube.kubectl("get", "lease", "kc", "-o", "yaml").stdout)
    assert got["spec"]["holderIdentity"] == "run-a" and got["spec"]["leaseDurationSeconds"] == 60
    again = kube.kubectl("create", "-f", "-", input=doc, check=False)
    assert again.returncode == 1 and 'leases.coordination.k8s.io "kc" already exists' in again.stderr
    kube.kubectl("patch", "lease", "kc", "--type=merge", "-p", '{"spec":{"holderIdentity":"run-b"}}')
    assert kube.kubectl("get", "lease", "kc", "-o", "jsonpath={.spec.holderIdentity}").stdout == "run-b"
    kube.kubectl("delete", "lease", "kc", "--wait=true")
    assert kube.req("GET", f"{LEASES}/kc").status_code == 404
    # client-side apply validates against /openapi/v3 (io.k8s.api.coordination.v1.Lease), strict fields
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(lease("ka")))
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(lease("ka", "run-z")))
    assert kube.kubectl("get", "lease", "ka", "-o", "jsonpath={.spec.holderIdentity}").stdout == "run-z"
    typo = lease("ka")
    typo["spec"]["holderIdentiy"] = "x"
    bad = kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(typo), check=False)
    assert bad.returncode == 1 and "holderIdentiy" in bad.stderr


def test_lease_optimistic_concurrency(kube):
    """A replace or patch carrying a stale resourceVersion gets 409 Conflict; a PUT with no
    resourceVersion is refused (AllowUnconditionalUpdate=false), or creates the Lease when it does not
    exist (AllowCreateOnUpdate=true). Upstream: kubernetes pkg/registry/coordination/lease/strategy.go,
    apiserver pkg/registry/generic/registry/store.go (Update)."""
    created = kube.req("POST", LEASES, json=lease("occ"))
    assert created.status_code == 201, created.text
    rv = created.json()["metadata"]["resourceVersion"]
    assert kube.req("POST", LEASES, json=lease("occ")).json()["reason"] == "AlreadyExists"
    taken = lease("occ", "run-b", leaseTransitions=1)
    taken["metadata"]["resourceVersion"] = rv
    r = kube.req("PUT", f"{LEASES}/occ", json=taken)
    assert r.status_code == 200 and r.json()["spec"]["holderIdentity"] == "run-b"
    assert r.json()["metadata"]["resourceVersion"] != rv
    stale = kube.req("PUT", f"{LEASES}/occ", json={**lease("occ", "run-c"), "metadata": {"name": "occ", "resourceVersion": rv}})
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    patch = kube.req("PATCH", f"{LEASES}/occ", headers={"Content-Type": "application/merge-patch+json"},
                     json={"metadata": {"resourceVersion": rv}, "spec": {"holderIdentity": "run-c"}})
    assert patch.status_code == 409 and patch.json()["reason"] == "Conflict"
    blind = kube.req("PUT", f"{LEASES}/occ", json=lease("occ", "run-c"))
    assert blind.status_code == 422
    assert blind.json()["details"]["causes"][0]["field"] == "metadata.resourceVersion"
    assert kube.req("GET", f"{LEASES}/occ").json()["spec"]["holderIdentity"] == "run-b"
    put_new = kube.req("PUT", f"{LEASES}/fresh", json=lease("fresh"))
    assert put_new.status_code == 201, put_new.text
    # a PUT carrying a resourceVersion for a Lease that does not exist creates it too (the real
    # API server: store.go Update with AllowCreateOnUpdate; the version is not checked on create)
    ghost = lease("ghost")
    ghost["metadata"]["resourceVersion"] = "5"
    assert kube.req("PUT", f"{LEASES}/ghost", json=ghost).status_code == 201
    gone = kube.req("DELETE", f"{LEASES}/occ")
    assert gone.status_code == 200 and kube.req("GET", f"{LEASES}/occ").status_code == 404


def test_lease_validation(kube):
    """leaseDurationSeconds > 0 and leaseTransitions >= 0 (422); acquireTime/renewTime are MicroTime:
    anything but RFC3339 with exactly six fractional digits is a 400 decoding error; offsets come back
    in UTC. Upstream: kubernetes pkg/apis/coordination/validation/validation.go; apimachinery
    pkg/apis/meta/v1/micro_time.go (RFC3339Micro)."""
    r = kube.req("POST", LEASES, json=lease("bad", leaseDurationSeconds=0, leaseTransitions=-1))
    assert r.status_code == 422
    assert {c["field"] for c in r.json()["details"]["causes"]} == {"spec.leaseDurationSeconds", "spec.leaseTransitions"}
    r = kube.req("POST", LEASES, json=lease("bad", acquireTime="2026-01-01T00:00:00Z"))
    assert r.status_code == 400 and 'as "2006-01-02T15:04:05.000000Z07:00"' in r.json()["message"]
    r = kube.req("POST", LEASES, json=lease("tz", renewTime="2026-01-01T02:00:00.123456+02:00"))
    assert r.status_code == 201 and r.json()["spec"]["renewTime"] == "2026-01-01T00:00:00.123456Z"


def test_lease_with_kubernetes_core(kube, tmp_path):
    """kubernetes.core.k8s (kind Lease, api_version coordination.k8s.io/v1): create, unchanged re-apply,
    a write with a stale resourceVersion fails with 409, a replace with the current one works, delete."""
    base = {"api_version": "coordination.k8s.io/v1", "kind": "Lease", "namespace": "default", "name": "ans-lock"}
    spec = lease("ans-lock")["spec"]
    play = [{"hosts": "localhost", "gather_facts": False,
             "module_defaults": {"group/kubernetes.core.k8s": {"kubeconfig": str(kube.kubeconfig)}},
             "tasks": [
                 {"name": "take", "register": "take", "kubernetes.core.k8s": {**base, "state": "present",
                                                                             "definition": {"spec": spec}}},
                 {"name": "again", "register": "again", "kubernetes.core.k8s": {**base, "state": "present",
                                                                               "definition": {"spec": spec}}},
                 {"name": "replace", "register": "rep", "kubernetes.core.k8s": {
                     **base, "state": "present", "force": True, "definition": {
                         "metadata": {"resourceVersion": "{{ take.result.metadata.resourceVersion }}"},
                         "spec": {**spec, "holderIdentity": "run-b", "leaseTransitions": 1}}}},
                 # the version read at "take" is stale after "replace" (a string, as the API gives it: a
                 # number in metadata.resourceVersion is a decoding error, 422, on a real API server)
                 {"name": "stale", "register": "stale", "ignore_errors": True, "kubernetes.core.k8s": {
                     **base, "state": "present", "definition": {
                         "metadata": {"resourceVersion": "{{ take.result.metadata.resourceVersion }}"},
                         "spec": {"holderIdentity": "run-c"}}}},
                 {"name": "read", "register": "info", "kubernetes.core.k8s_info": base},
                 {"ansible.builtin.assert": {"that": [
                     "take is changed", "again is not changed", "stale is failed", "stale.msg is search('\"reason\": ?\"Conflict\"')",
                     "rep is changed", "info.resources[0].spec.holderIdentity == 'run-b'",
                     "info.resources[0].spec.leaseTransitions == 1"]}},
                 {"name": "release", "register": "gone", "kubernetes.core.k8s": {**base, "state": "absent",
                                                                                "wait": True, "wait_sleep": 1}},
                 {"ansible.builtin.assert": {"that": ["gone is changed"]}}]}]
    pb = tmp_path / "lease.yml"
    pb.write_text(yaml.safe_dump(play))
    env = {**kube.env(), "ANSIBLE_COLLECTIONS_PATH": str(VENV / "collections"), "ANSIBLE_LOCALHOST_WARNING": "False",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False", "ANSIBLE_NOCOLOR": "1"}
    p = subprocess.run([str(VENV / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                        "-e", f"ansible_python_interpreter={VENV / 'bin' / 'python'}", str(pb)],
                       env=env, capture_output=True, text=True, timeout=180, check=False)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert kube.req("GET", f"{LEASES}/ans-lock").status_code == 404
