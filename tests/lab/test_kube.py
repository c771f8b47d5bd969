"""The lab Kubernetes API server, exercised with real clients: kubectl 1.37, requests, the Python
DynamicClient and ansible-playbook with kubernetes.core."""
from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest
import requests
import yaml

try:
    from kube_fixtures import CAP, K8S_VERSION, UPSTREAM_CRDS, VENV, KubeLab, wait_for
except ImportError:  # tests/lab turned into a package
    from .kube_fixtures import CAP, K8S_VERSION, UPSTREAM_CRDS, VENV, KubeLab, wait_for

NS = "3scale"
BACKENDS = f"{CAP}/namespaces/{NS}/backends"


def backend(name: str, url: str = "https://model.example.com", **spec) -> dict:
    return {"apiVersion": "capabilities.3scale.net/v1beta1", "kind": "Backend",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"name": name.upper(), "privateBaseURL": url, **spec}}


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    lab = KubeLab(tmp_path_factory.mktemp("kube"))
    lab.kubectl("apply", "-f", str(UPSTREAM_CRDS))
    lab.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    namespace(lab, NS)
    yield lab
    lab.stop()


def apply_yaml(kube, obj: dict, *args):
    return kube.kubectl("apply", "-f", "-", *args, input=yaml.safe_dump(obj))


def namespace(kube, name: str):
    return kube.kubectl("create", "namespace", name)     # typed: kubectl posts it as protobuf


# ------------------------------------------------------------------------------------- protocol

def test_auth_version_discovery_openapi(kube):
    # anonymous requests are authenticated as system:anonymous and refused by RBAC (403)
    anon = requests.get(kube.url + "/api/v1/namespaces", verify=kube.ca, timeout=5)
    assert anon.status_code == 403 and 'User "system:anonymous"' in anon.json()["message"]
    bad = requests.get(kube.url + "/apis", verify=kube.ca, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert bad.status_code == 401 and bad.json()["reason"] == "Unauthorized" and bad.json()["kind"] == "Status"
    op = kube.req("GET", "/api", headers={"Authorization": f"Bearer {kube.ctx.secret('kube_operator_token')}"})
    assert op.status_code == 200 and op.json()["versions"] == ["v1"]
    assert kube.req("GET", "/version").json()["gitVersion"] == K8S_VERSION

    groups = {g["name"]: g for g in kube.req("GET", "/apis").json()["groups"]}
    assert groups["capabilities.3scale.net"]["preferredVersion"]["version"] == "v1beta1"
    assert "v1alpha1" in [v["version"] for v in groups["capabilities.3scale.net"]["versions"]]   # Tenant
    res = {r["name"]: r for r in kube.req("GET", CAP).json()["resources"]}
    assert res["backends"]["kind"] == "Backend" and res["backends"]["namespaced"] is True
    assert "watch" in res["backends"]["verbs"] and res["backends/status"]["verbs"] == ["get", "patch", "update"]
    core = {r["name"]: r for r in kube.req("GET", "/api/v1").json()["resources"]}
    assert core["namespaces"]["namespaced"] is False and core["secrets"]["namespaced"] is True

    index = kube.req("GET", "/openapi/v3").json()["paths"]
    doc = kube.req("GET", index["apis/capabilities.3scale.net/v1beta1"]["serverRelativeURL"]).json()
    schema = doc["components"]["schemas"]["net.3scale.capabilities.v1beta1.Backend"]
    assert schema["x-kubernetes-group-version-kind"] == [{"group": "capabilities.3scale.net", "version": "v1beta1", "kind": "Backend"}]
    patch_op = doc["paths"]["/apis/capabilities.3scale.net/v1beta1/namespaces/{namespace}/backends/{name}"]["patch"]
    assert "fieldValidation" in [p["name"] for p in patch_op["parameters"]]
    assert "api/v1" in index


def test_kubectl_apply_get_patch(kube):
    b = backend("kb1", mappingRules=[{"httpMethod": "POST", "pattern": "/v1/completions", "metricMethodRef": "hits", "increment": 1}])
    assert "created" in apply_yaml(kube, b).stdout
    assert "unchanged" in apply_yaml(kube, b).stdout
    got = yaml.safe_load(kube.kubectl("get", "backend", "kb1", "-n", NS, "-o", "yaml").stdout)
    md = got["metadata"]
    assert md["generation"] == 1 and md["uid"] and md["creationTimestamp"] and int(md["resourceVersion"]) > 0
    assert got["spec"]["mappingRules"][0]["increment"] == 1
    rv1 = md["resourceVersion"]

    b["spec"]["description"] = "changed"
    assert "configured" in apply_yaml(kube, b).stdout
    out = kube.kubectl("get", "backend", "kb1", "-n", NS, "-o", "jsonpath={.metadata.generation} {.spec.description}").stdout
    assert out == "2 changed"
    kube.kubectl("patch", "backend", "kb1", "-n", NS, "--type=merge", "-p", '{"metadata":{"labels":{"tier":"gold"}}}')
    out = kube.kubectl("get", "backend", "kb1", "-n", NS, "-o",
                       "template={{.metadata.generation}}/{{.metadata.labels.tier}}/{{.metadata.resourceVersion}}").stdout
    gen, tier, rv3 = out.split("/")
    assert (gen, tier) == ("2", "gold") and int(rv3) > int(rv1)   # metadata-only change: no generation bump

    assert "serverside-applied" in kube.kubectl("apply", "--server-side", "-f", "-",
                                                input=yaml.safe_dump(backend("kb2"))).stdout
    b2 = backend("kb2")
    b2["spec"]["description"] = "ssa"
    kube.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(b2))
    assert kube.req("GET", f"{BACKENDS}/kb2").json()["spec"]["description"] == "ssa"

    table = kube.kubectl("get", "backends", "-n", NS).stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE"] and {"kb1", "kb2"} <= {line.split()[0] for line in table[1:]}
    assert kube.kubectl("get", "backends", "-A", "-l", "tier=gold", "-o", "name").stdout.split() == [
        "backend.capabilities.3scale.net/kb1"]
    assert "kb2" in kube.kubectl("get", "backends", "-n", NS, "-l", "tier notin (gold)", "-o", "name").stdout


def test_invalid_pattern_is_422(kube):
    p = kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(backend("bad1", "ftp://a")), check=False)
    assert p.returncode != 0
    assert ("spec.privateBaseURL: Invalid value: \"ftp://a\": spec.privateBaseURL in body should match "
            "'^(https?|wss?):\\/\\/.*$'") in p.stderr
    r = kube.req("POST", BACKENDS, json=backend("bad1", "ftp://a"))
    assert r.status_code == 422
    st = r.json()
    assert st["reason"] == "Invalid" and st["details"]["kind"] == "Backend" and st["details"]["name"] == "bad1"
    assert st["message"].startswith('Backend.capabilities.3scale.net "bad1" is invalid: spec.privateBaseURL')
    assert st["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.privateBaseURL",
                                        "message": "Invalid value: \"ftp://a\": spec.privateBaseURL in body should "
                                                   "match '^(https?|wss?):\\/\\/.*$'"}]
    bad = backend("bad2", mappingRules=[{"httpMethod": "FETCH", "pattern": "/", "metricMethodRef": "hits", "increment": "x"}])
    del bad["spec"]["name"]
    causes = {c["field"]: c for c in kube.req("POST", BACKENDS, json=bad).json()["details"]["causes"]}
    assert causes["spec.name"]["reason"] == "FieldValueRequired"
    assert causes["spec.mappingRules[0].httpMethod"]["reason"] == "FieldValueNotSupported"
    assert causes["spec.mappingRules[0].increment"]["reason"] == "FieldValueTypeInvalid"
    assert kube.req("GET", f"{BACKENDS}/bad1").status_code == 404


def test_unknown_fields_strict_warn_ignore(kube):
    obj = backend("unk1")
    obj["spec"]["bogus"] = 1
    p = kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj), check=False)
    assert p.returncode != 0 and 'strict decoding error: unknown field "spec.bogus"' in p.stderr
    r = kube.req("POST", BACKENDS + "?fieldValidation=Strict", json=obj)
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
    r = kube.req("POST", BACKENDS + "?fieldValidation=Warn", json=obj)
    assert r.status_code == 201 and "bogus" not in r.json()["spec"]
    assert r.headers["Warning"] == '299 - "unknown field \\"spec.bogus\\""'
    obj["metadata"]["name"] = "unk2"
    r = kube.req("POST", BACKENDS + "?fieldValidation=Ignore", json=obj)
    assert r.status_code == 201 and "Warning" not in r.headers and "bogus" not in r.json()["spec"]


def test_schema_features_with_custom_crd(kube):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.lab.example.com"},
           "spec": {"group": "lab.example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                    "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                                      "type": "object", "required": ["size"], "properties": {
                                          "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                          "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                                          "tag": {"type": "string", "minLength": 2, "maxLength": 4},
                                          "note": {"type": "string", "nullable": True},
                                          "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                          "limits": {"type": "object", "additionalProperties": {"type": "integer"}},
                                          "items": {"type": "array", "items": {"type": "object", "properties": {
                                              "count": {"type": "integer", "default": 7}}}}}}}}}}]}}
    apply_yaml(kube, crd)
    # Established is set asynchronously (apiextensions-apiserver establishing_controller.go)
    kube.kubectl("wait", "--for=condition=Established", "crd/widgets.lab.example.com", "--timeout=30s")
    got = kube.req("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.lab.example.com").json()
    assert {c["type"]: c["status"] for c in got["status"]["conditions"]} == {"NamesAccepted": "True", "Established": "True"}
    assert got["status"]["acceptedNames"]["listKind"] == "WidgetList"
    base = "/apis/lab.example.com/v1/namespaces/default/widgets"
    w = {"apiVersion": "lab.example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
         "spec": {"size": 3, "note": None, "extra": {"free": {"x": 1}}, "limits": {"a": 1}, "items": [{}],
                  "status_ignored": 1}, "status": {"phase": "ignored-on-create"}}
    r = kube.req("POST", base, json=w)
    assert r.status_code == 201, r.text
    spec = r.json()["spec"]
    assert spec == {"size": 3, "mode": "a", "note": None, "extra": {"free": {"x": 1}}, "limits": {"a": 1}, "items": [{"count": 7}]}
    assert "status" not in r.json()
    bad = {**w, "metadata": {"name": "w2"}, "spec": {"size": 11, "mode": "c", "tag": "x", "limits": {"a": "s"}}}
    causes = {c["field"]: c["reason"] for c in kube.req("POST", base, json=bad).json()["details"]["causes"]}
    assert causes == {"spec.size": "FieldValueInvalid", "spec.mode": "FieldValueNotSupported",
                      "spec.tag": "FieldValueInvalid", "spec.limits.a": "FieldValueTypeInvalid"}
    assert "wd" in kube.kubectl("api-resources", "--api-group=lab.example.com").stdout
    # deleting the CRD removes the kind and its objects
    kube.kubectl("delete", "crd", "widgets.lab.example.com")
    assert kube.req("GET", base).status_code == 404
    assert "lab.example.com" not in [g["name"] for g in kube.req("GET", "/apis").json()["groups"]]


def test_core_kinds_secret_configmap_namespace(kube):
    sec = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1", "namespace": NS},
           "stringData": {"token": "t0p"}, "data": {"adminURL": "aHR0cHM6Ly94"}}
    apply_yaml(kube, sec)
    got = kube.req("GET", f"/api/v1/namespaces/{NS}/secrets/s1").json()
    assert got["data"] == {"adminURL": "aHR0cHM6Ly94", "token": "dDBw"} and got["type"] == "Opaque"
    assert "stringData" not in got and "generation" not in got["metadata"]
    sec["stringData"]["token"] = "n3w"
    apply_yaml(kube, sec)   # client-side apply of a core kind sends a strategic merge patch
    assert kube.req("GET", f"/api/v1/namespaces/{NS}/secrets/s1").json()["data"]["token"] == "bjN3"
    cm = kube.req("POST", f"/api/v1/namespaces/{NS}/configmaps", json={"metadata": {"name": "c1"}, "data": {"k": "v"}})
    assert cm.status_code == 201 and cm.json()["kind"] == "ConfigMap"
    assert "c1" in kube.kubectl("get", "cm", "-n", NS, "-o", "name").stdout
    r = kube.req("POST", "/api/v1/namespaces/nope/configmaps", json={"metadata": {"name": "c1"}})
    assert r.status_code == 404 and r.json()["details"] == {"name": "nope", "kind": "namespaces"}   # no empty group
    r = kube.req("POST", f"/api/v1/namespaces/{NS}/configmaps", json={"metadata": {"name": "c1"}})
    assert r.status_code == 409 and r.json()["reason"] == "AlreadyExists"
    # deleting a namespace deletes its content
    namespace(kube, "tmp-ns")
    kube.req("POST", "/api/v1/namespaces/tmp-ns/configmaps", json={"metadata": {"name": "x"}})
    kube.kubectl("delete", "namespace", "tmp-ns")
    assert kube.req("GET", "/api/v1/namespaces/tmp-ns/configmaps/x").status_code == 404
    assert kube.req("GET", "/api/v1/namespaces/tmp-ns").status_code == 404


def test_patch_types_dry_run_conflicts(kube):
    assert kube.req("POST", BACKENDS, json=backend("pt1")).status_code == 201
    url = f"{BACKENDS}/pt1"
    smp = kube.req("PATCH", url, data="{}", headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert smp.status_code == 415 and smp.json()["reason"] == "UnsupportedMediaType"
    jp = kube.req("PATCH", url, json=[{"op": "add", "path": "/spec/description", "value": "jp"}],
                  headers={"Content-Type": "application/json-patch+json"})
    assert jp.status_code == 200 and jp.json()["spec"]["description"] == "jp" and jp.json()["metadata"]["generation"] == 2
    ssa = kube.req("PATCH", url, data=yaml.safe_dump(backend("pt1")), headers={"Content-Type": "application/apply-patch+yaml"})
    assert ssa.status_code == 422 and "fieldManager" in ssa.json()["message"]
    created = kube.req("PATCH", f"{BACKENDS}/pt2?fieldManager=t", data=yaml.safe_dump(backend("pt2")),
                       headers={"Content-Type": "application/apply-patch+yaml"})
    assert created.status_code == 201
    cur = kube.req("GET", url).json()
    dry = kube.req("PUT", url + "?dryRun=All", json={**cur, "spec": {**cur["spec"], "description": "dry"}})
    assert dry.status_code == 200 and dry.json()["spec"]["description"] == "dry"
    assert kube.req("GET", url).json()["spec"]["description"] == "jp"
    assert kube.req("POST", BACKENDS + "?dryRun=All", json=backend("pt3")).status_code == 201
    assert kube.req("GET", f"{BACKENDS}/pt3").status_code == 404
    cur["spec"]["description"] = "v2"
    assert kube.req("PUT", url, json=cur).status_code == 200
    stale = kube.req("PUT", url, json=cur)       # same (now stale) resourceVersion
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    no_rv = {**cur, "metadata": {k: v for k, v in cur["metadata"].items() if k != "resourceVersion"}}
    assert kube.req("PUT", url, json=no_rv).status_code == 422    # CRs have no unconditional update
    # a namespaced kind has no cluster-scoped collection to create in: 404 (not 405)
    assert kube.req("POST", f"{CAP}/backends", json=backend("pt9")).status_code == 404
    # /status changes only .status; main endpoint ignores .status
    fresh = kube.req("GET", url).json()
    st = kube.req("PUT", url + "/status", json={**fresh, "spec": {"name": "X", "privateBaseURL": "https://y"},
                                                "status": {"backendId": 5}}).json()
    assert st["status"] == {"backendId": 5} and st["spec"]["name"] == "PT1"
    main = kube.req("PATCH", url, json={"status": {"backendId": 9}}, headers={"Content-Type": "application/merge-patch+json"})
    assert main.json()["status"] == {"backendId": 5}
    nf = kube.req("GET", f"{BACKENDS}/nope").json()
    assert nf["code"] == 404 and nf["details"] == {"name": "nope", "group": "capabilities.3scale.net", "kind": "backends"}
    fs = kube.req("GET", f"{CAP}/backends?fieldSelector=metadata.name=pt2").json()
    assert fs["kind"] == "BackendList" and [i["metadata"]["name"] for i in fs["items"]] == ["pt2"]
    assert fs["items"][0]["apiVersion"] == "capabilities.3scale.net/v1beta1" and fs["metadata"]["resourceVersion"]
    page = kube.req("GET", f"{BACKENDS}?limit=1").json()
    rest = kube.req("GET", f"{BACKENDS}?limit=100&continue={page['metadata']['continue']}").json()
    assert len(page["items"]) == 1 and len(rest["items"]) >= 1 and not rest["metadata"].get("continue")   # "" on the last page


def test_watch_resume_and_expiry(kube):
    rv = kube.req("GET", BACKENDS).json()["metadata"]["resourceVersion"]
    kube.req("POST", BACKENDS, json=backend("w1"))
    kube.req("DELETE", f"{BACKENDS}/w1", json={"kind": "DeleteOptions", "apiVersion": "v1"})
    with kube.req("GET", f"{BACKENDS}?watch=true&resourceVersion={rv}&timeoutSeconds=1", stream=True) as r:
        events = [json.loads(line) for line in r.iter_lines() if line]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "w1"), ("DELETED", "w1")]
    # legacy /watch/ path; resourceVersion 1 is older than the watch cache holds: one ERROR event,
    # 410 Expired "too old resource version", and the client relists (apiserver cacher/watch_cache.go)
    with kube.req("GET", f"{CAP}/watch/namespaces/{NS}/backends?resourceVersion=1&timeoutSeconds=1", stream=True) as r:
        ev = [json.loads(line) for line in r.iter_lines() if line]
    assert [e["type"] for e in ev] == ["ERROR"] and ev[0]["object"]["code"] == 410
    assert "too old resource version" in ev[0]["object"]["message"]
    with kube.req("GET", f"{BACKENDS}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
                         f"&resourceVersionMatch=NotOlderThan&timeoutSeconds=1", stream=True) as r:
        ev = [json.loads(line) for line in r.iter_lines() if line]
    assert ev[-1]["type"] == "BOOKMARK" and ev[-1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert {e["type"] for e in ev[:-1]} == {"ADDED"}


def test_kubectl_wait_for_condition(kube):
    kube.req("POST", BACKENDS, json=backend("wt1"))
    proc = subprocess.Popen(kube.kubectl_cmd("wait", "-n", NS, "--for=condition=Synced", "backend/wt1", "--timeout=20s"),
                            env=kube.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any("metadata.name=wt1" in w for w in kube.server.watches()), what="kubectl wait to watch")
        kube.set_status(f"{BACKENDS}/wt1", {"conditions": [{"type": "Synced", "status": "True"}], "observedGeneration": 1})
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "condition met" in out


def test_kubectl_delete_with_finalizer(kube):
    b = backend("fin1")
    b["metadata"]["finalizers"] = ["backend.capabilities.3scale.net/finalizer"]
    apply_yaml(kube, b)
    out = kube.kubectl("delete", "backend", "fin1", "-n", NS, "--wait=false").stdout
    assert "deleted" in out
    got = kube.req("GET", f"{BACKENDS}/fin1").json()
    assert got["metadata"]["deletionTimestamp"] and got["metadata"]["deletionGracePeriodSeconds"] == 0
    proc = subprocess.Popen(kube.kubectl_cmd("wait", "-n", NS, "--for=delete", "backend/fin1", "--timeout=20s"),
                            env=kube.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any("metadata.name=fin1" in w for w in kube.server.watches()), what="kubectl wait --for=delete")
        r = kube.req("PATCH", f"{BACKENDS}/fin1", json={"metadata": {"finalizers": None}},
                     headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert kube.req("GET", f"{BACKENDS}/fin1").status_code == 404


def test_dynamic_client(kube):
    from kubernetes.client.rest import ApiException
    dyn = kube.dynamic()
    api = dyn.resources.get(api_version="capabilities.3scale.net/v1beta1", kind="Backend")
    created = api.create(body=backend("dc1"), namespace=NS)
    assert created.metadata.generation == 1
    with pytest.raises(ApiException) as e:
        api.create(body=backend("dc1"), namespace=NS)
    assert e.value.status == 409
    got = api.get(name="dc1", namespace=NS)
    patched = api.patch(name="dc1", namespace=NS, body={"spec": {"description": "p"}}, content_type="application/merge-patch+json")
    assert patched.spec.description == "p" and patched.metadata.generation == 2
    body = got.to_dict()
    body["spec"]["description"] = "r"
    with pytest.raises(ApiException) as e:          # got carries a stale resourceVersion
        api.replace(body=body, namespace=NS)
    assert e.value.status == 409
    body["metadata"]["resourceVersion"] = patched.metadata.resourceVersion
    assert api.replace(body=body, namespace=NS).spec.description == "r"
    st = api.status.patch(name="dc1", namespace=NS, body={"status": {"backendId": 1}}, content_type="application/merge-patch+json")
    assert st.status.backendId == 1
    ssa = api.server_side_apply(body=backend("dc2"), namespace=NS, field_manager="pytest")
    assert ssa.metadata.name == "dc2"

    seen = []
    for ev in api.watch(namespace=NS, field_selector="metadata.name=dc1", timeout=5):
        seen.append(ev["type"])
        if ev["type"] == "ADDED":
            api.delete(name="dc1", namespace=NS)
        if ev["type"] == "DELETED":
            break
    assert seen == ["ADDED", "DELETED"]
    with pytest.raises(ApiException) as e:
        api.get(name="dc1", namespace=NS)
    assert e.value.status == 404
    secrets = dyn.resources.get(api_version="v1", kind="Secret")
    secrets.create(body={"metadata": {"name": "dyn"}, "stringData": {"a": "b"}}, namespace=NS)
    assert secrets.get(name="dyn", namespace=NS).data.a == "Yg=="


def _fake_operator(kube, stop: threading.Event):
    """Marks every Backend Synced when it appears (what the real operator eventually does). Like any
    client of a real API server it waits out a 429 (a watch cache still initialising after the CRD was
    created: Retry-After) and watches again when the stream ends."""
    auth = {"Authorization": f"Bearer {kube.ctx.secret('kube_operator_token')}"}
    while not stop.is_set():
        with requests.get(f"{kube.url}{BACKENDS}?watch=true&timeoutSeconds=30", stream=True, verify=kube.ca,
                          timeout=35, headers=auth) as r:
            if r.status_code == 429:
                stop.wait(float(r.headers.get("Retry-After") or 1))
                continue
            assert r.status_code == 200, r.text
            for line in r.iter_lines():
                if stop.is_set():
                    return
                if not line:
                    continue
                ev = json.loads(line)
                obj = ev["object"]
                if ev["type"] in ("ADDED", "MODIFIED") and not obj.get("status"):
                    st = requests.patch(f"{kube.url}{BACKENDS}/{obj['metadata']['name']}/status", verify=kube.ca,
                                        timeout=10, headers={**auth, "Content-Type": "application/merge-patch+json"},
                                        json={"status": {"conditions": [{"type": "Synced", "status": "True"}],
                                                         "observedGeneration": obj["metadata"]["generation"]}})
                    assert st.status_code == 200, st.text


def test_ansible_kubernetes_core(kube, tmp_path):
    play = [{"hosts": "localhost", "gather_facts": False,
             "module_defaults": {"group/kubernetes.core.k8s": {"kubeconfig": str(kube.kubeconfig)}},
             "tasks": [
                 {"name": "secret", "kubernetes.core.k8s": {"state": "present", "definition": {
                     "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ans-sec", "namespace": NS},
                     "stringData": {"token": "abc"}}}},
                 {"name": "backend", "register": "b", "kubernetes.core.k8s": {
                     "apply": True, "wait": True, "wait_sleep": 1, "wait_timeout": 30,
                     "wait_condition": {"type": "Synced", "status": "True"}, "definition": backend("ans1")}},
                 {"name": "info", "register": "info", "kubernetes.core.k8s_info": {
                     "api_version": "capabilities.3scale.net/v1beta1", "kind": "Backend", "namespace": NS, "name": "ans1"}},
                 {"name": "again", "register": "again", "kubernetes.core.k8s": {"apply": True, "definition": backend("ans1")}},
                 {"name": "present (strategic merge -> 415 -> merge)", "register": "present",
                  "kubernetes.core.k8s": {"state": "present", "definition": backend("ans1", description="d")}},
                 {"name": "check mode is a server dry run", "register": "dry", "check_mode": True,
                  "kubernetes.core.k8s": {"state": "present", "definition": {
                      "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ans-dry", "namespace": NS}}}},
                 {"name": "check mode and diff on an update", "register": "drydiff", "check_mode": True, "diff": True,
                  "kubernetes.core.k8s": {"state": "present", "definition": backend("ans1", description="e")}},
                 {"name": "unchanged by the dry run", "register": "after_dry", "kubernetes.core.k8s_info": {
                     "api_version": "capabilities.3scale.net/v1beta1", "kind": "Backend", "namespace": NS, "name": "ans1"}},
                 {"ansible.builtin.set_fact": {"sec": "{{ lookup('kubernetes.core.k8s', kind='Secret', namespace='" + NS
                                               + "', resource_name='ans-sec', kubeconfig='" + str(kube.kubeconfig) + "') }}"}},
                 {"ansible.builtin.assert": {"that": [
                     "b is changed", "again is not changed", "present is changed",
                     "present.result.spec.description == 'd'", "present.result.metadata.generation == 2",
                     "dry is changed",
                     "drydiff is changed", "drydiff.diff.before.spec.description == 'd'",
                     "drydiff.diff.after.spec.description == 'e'", "after_dry.resources[0].spec.description == 'd'",
                     "info.resources[0].status.conditions[0].type == 'Synced'",
                     "sec.data.token | b64decode == 'abc'"]}},
                 {"name": "absent", "register": "gone", "kubernetes.core.k8s": {
                     "state": "absent", "wait": True, "wait_sleep": 1, "api_version": "capabilities.3scale.net/v1beta1",
                     "kind": "Backend", "namespace": NS, "name": "ans1"}},
                 {"ansible.builtin.assert": {"that": ["gone is changed"]}}]}]
    pb = tmp_path / "play.yml"
    pb.write_text(yaml.safe_dump(play))
    stop = threading.Event()
    op = threading.Thread(target=_fake_operator, args=(kube, stop), daemon=True)
    op.start()
    env = {**kube.env(), "ANSIBLE_COLLECTIONS_PATH": str(VENV / "collections"), "ANSIBLE_LOCALHOST_WARNING": "False",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False", "ANSIBLE_NOCOLOR": "1"}
    try:
        p = subprocess.run([str(VENV / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                            "-e", f"ansible_python_interpreter={VENV / 'bin' / 'python'}", str(pb)],
                           env=env, capture_output=True, text=True, timeout=120, check=False)
    finally:
        stop.set()
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert kube.req("GET", f"{BACKENDS}/ans1").status_code == 404
    assert kube.req("GET", f"/api/v1/namespaces/{NS}/configmaps/ans-dry").status_code == 404   # check mode stored nothing


def test_restart_persistence(tmp_path):
    """etcd keeps its data in the lab directory: a stop and start keeps every object, its uid and
    resourceVersion, and the API server's URL (same port when free: kubeconfigs stay valid)."""
    lab = KubeLab(tmp_path / "p")
    try:
        lab.kubectl("apply", "-f", str(UPSTREAM_CRDS / "capabilities.3scale.net_backends.yaml"))
        lab.kubectl("wait", "--for=condition=Established", "crd/backends.capabilities.3scale.net", "--timeout=30s")
        namespace(lab, NS)
        b = lab.req("POST", BACKENDS, json=backend("keep")).json()
        rv_before = int(lab.req("GET", BACKENDS).json()["metadata"]["resourceVersion"])
    finally:
        lab.stop()
    assert oct(os.stat(tmp_path / "p" / "k8s").st_mode & 0o777) == "0o700"
    lab2 = KubeLab(tmp_path / "p")
    try:
        assert lab2.url == lab.url
        again = lab2.req("GET", f"{BACKENDS}/keep").json()
        assert again["metadata"]["uid"] == b["metadata"]["uid"]
        assert again["metadata"]["resourceVersion"] == b["metadata"]["resourceVersion"]
        new = lab2.req("POST", BACKENDS, json=backend("next")).json()
        assert int(new["metadata"]["resourceVersion"]) > rv_before      # etcd's revision goes on
        assert "keep" in lab2.kubectl("get", "backends", "-n", NS, "-o", "name").stdout
    finally:
        lab2.stop()


def test_a_closed_watch_is_noticed(kube):
    """A watch whose client goes away ends through the fault proxy too (its watchdog closes the
    upstream stream), so an abandoned watch holds nothing open in the API server."""
    kube.req("POST", BACKENDS, json=backend("am1"))
    resp = kube.req("GET", f"{BACKENDS}?watch=true&fieldSelector=metadata.name=am1", stream=True)
    # keep the line iterator: a dropped one is collected at once and urllib3 closes the stream with it,
    # which the proxy then (rightly) sees as a client gone, racing the assertion below
    lines = resp.iter_lines()
    assert json.loads(next(lines))["type"] == "ADDED"
    assert [w for w in kube.server.watches() if "metadata.name=am1" in w]
    resp.close()
    wait_for(lambda: not [w for w in kube.server.watches() if "metadata.name=am1" in w], timeout=5,
             what="the proxy to notice the closed watch")
