"""Discovery (issue 12, item 1): `maas_discover: true` onboards the Ready, labelled KServe InferenceServices
(lab KServe stand-in, upstream kserve pkg/apis/serving/v1beta1), names/endpoints/model ids from the object and
its annotations; an unlabelled one is ignored and a not-Ready one is reported and skipped."""
from __future__ import annotations

import json
import subprocess
import time
import uuid

import requests
import yaml

from conftest import REPO


def isvc(name, labels=None, annotations=None, args=None):
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": "3scale", "labels": labels or {}, "annotations": annotations or {}},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "vLLM"}, "args": args or []}}}}


def onboard(env, extra, check=False):
    t0 = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", "inventories/lab", "playbooks/onboard_model.yml", "-e",
                           json.dumps(extra), *(["--check", "--diff"] if check else [])],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc, time.monotonic() - t0


def porta_get(env, path, **params):
    s = requests.Session()
    s.trust_env = False
    r = s.get(env["THREESCALE_ADMIN_URL"] + "/admin/api" + path, verify=env["THREESCALE_CA_BUNDLE"],
              params=dict(params, access_token=env["THREESCALE_ACCESS_TOKEN"]), timeout=30)
    return r.status_code, r.json() if r.content.strip() else None


def test_discovery_onboards_the_ready_labelled_inferenceservices(own_lab, tmp_path):
    _info, env = own_lab
    publish = {"maas.threescale/publish": "true"}
    ghost = "ghost-" + uuid.uuid4().hex[:6]
    objs = [
        isvc("disc-a", publish, args=["--served-model-name", "org/model-a"]),
        isvc("disc-b", publish, annotations={"maas.threescale/model-id": "custom-b", "maas.threescale/display-name": "Model B",
                                             "maas.threescale/accounts": "user2,user3",
                                             "maas.threescale/operations": "models,embeddings"},
             args=["--served-model-name=custom-b"]),
        isvc("disc-c", publish),
        isvc("disc-hidden", {}),  # not labelled: never published
        isvc("disc-broken", publish, annotations={"lab.maas/ready": "false", "lab.maas/message": "weights missing"}),
        # Issue 19 item 4, the trust model: an InferenceService may not choose the Backend URL (without
        # maas_discover_allow_endpoint_annotation) nor give an application to an account that does not exist.
        isvc("disc-redirect", publish, annotations={"maas.threescale/endpoint": "http://attacker.example:8000"}),
        isvc("disc-ghost", publish, annotations={"maas.threescale/accounts": "user1," + ghost}),
    ]
    manifest = tmp_path / "isvcs.yaml"
    manifest.write_text(yaml.safe_dump_all(objs))
    subprocess.run(["kubectl", "apply", "-f", str(manifest)], env=env, check=True, capture_output=True)
    subprocess.run(["kubectl", "wait", "--for=condition=Ready", "--timeout=60s", "-n", "3scale",
                    "inferenceservices.serving.kserve.io/disc-a", "inferenceservices.serving.kserve.io/disc-b",
                    "inferenceservices.serving.kserve.io/disc-c", "inferenceservices.serving.kserve.io/disc-redirect",
                    "inferenceservices.serving.kserve.io/disc-ghost"], env=env, check=True, capture_output=True)
    report = tmp_path / "report.json"
    # Discovery names the namespaces it trusts: none given, nothing is done.
    refused = subprocess.run(["ansible-playbook", "-i", "inventories/lab", "playbooks/onboard_model.yml", "-e",
                              json.dumps({"maas_models": [], "maas_discover": True})],
                             cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert refused.returncode != 0 and "maas_discover_namespaces is empty, nothing was changed" in " ".join(
        refused.stdout.split()), refused.stdout[-3000:]
    # maas_create_accounts does not let an annotation create an account.
    catalog = {"maas_models": [], "maas_discover": True, "maas_discover_namespaces": ["3scale"],
               "maas_discover_accounts": ["user1"], "maas_report_file": str(report),
               "maas_create_accounts": True, "maas_account_password": "Pw-" + uuid.uuid4().hex}
    proc, seconds = onboard(env, catalog)
    out = " ".join(proc.stdout.split())
    assert "Skipped, not Ready: InferenceService 3scale/disc-broken: weights missing" in out, out[-3000:]
    assert ("Skipped, untrusted annotations: InferenceService 3scale/disc-redirect: annotation maas.threescale/endpoint "
            "is not trusted") in out, out[-3000:]
    assert ("the maas.threescale/accounts annotation names accounts that do not exist in 3scale (an annotation never "
            "creates an account): InferenceService 3scale/disc-ghost: %s" % ghost) in out, out[-3000:]
    status, found = porta_get(env, "/accounts/find.json", username=ghost)
    assert status == 404, found
    models = {m["name"]: m for m in json.loads(report.read_text())["models"]}
    assert set(models) == {"disc-a", "disc-b", "disc-c"}
    assert models["disc-a"]["model_id"] == "org/model-a" and models["disc-c"]["model_id"] == "disc-c"
    assert models["disc-b"]["model_id"] == "custom-b" and models["disc-b"]["product"] == "Model B"
    assert sorted(a["account"] for a in models["disc-b"]["applications"]) == ["user2", "user3"]
    assert [a["account"] for a in models["disc-a"]["applications"]] == ["user1"]
    # Every published model answered its smoke test through the gateway, with its own model id.
    assert all(m["smoke_test"]["status"] == 200 for m in models.values())
    # 3scale holds exactly those products (the workshop's granite and the tenant's sample API besides).
    names = {x["service"]["system_name"] for x in porta_get(env, "/services.json")[1]["services"]}
    assert {"disc-a", "disc-b", "disc-c"} <= names and not {"disc-hidden", "disc-broken", "disc-redirect", "disc-ghost"} & names
    print(f"\ndiscovery: 3 of 7 InferenceServices published (1 unlabelled, 1 not Ready, 2 untrusted) in {seconds:.1f}s")

    # disc-c loses its label: a dry run lists exactly it, then the prune run removes exactly it.
    c_apps = [a["application_id"] for a in models["disc-c"]["applications"]]
    subprocess.run(["kubectl", "label", "-n", "3scale", "inferenceservices.serving.kserve.io/disc-c",
                    "maas.threescale/publish-"], env=env, check=True, capture_output=True)
    dry, _dry_seconds = onboard(env, dict(catalog, maas_prune=True), check=True)
    dry_out = " ".join(dry.stdout.split())
    assert "Remove the model from 3scale disc-c" in dry_out, dry_out[-3000:]
    assert "Remove the model from 3scale disc-a" not in dry_out and "Remove the model from 3scale disc-b" not in dry_out
    # Issue 20 item 6: the summary says what a prune run would remove, and then what it removed.
    assert "Would offboard (check mode) 1 model(s) that left the catalog: disc-c" in dry_out, dry_out[-3000:]
    assert "disc-c" in {x["service"]["system_name"] for x in porta_get(env, "/services.json")[1]["services"]}
    proc, prune_seconds = onboard(env, dict(catalog, maas_prune=True))
    assert json.loads(report.read_text())["pruned"] == ["disc-c"], dry.stdout[-2000:]
    assert "Offboarded 1 model(s) that left the catalog: disc-c" in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    after = {x["service"]["system_name"] for x in porta_get(env, "/services.json")[1]["services"]}
    assert "disc-c" not in after and {"disc-a", "disc-b", "granite-3dot2-8b-instruct"} <= after
    crs = subprocess.run(["kubectl", "get", "products.capabilities.3scale.net,backends.capabilities.3scale.net,"
                          "activedocs.capabilities.3scale.net,secrets", "-n", "3scale", "-o", "name"],
                         env=env, check=True, capture_output=True, text=True).stdout.split()
    assert not [c for c in crs if c.split("/")[1].startswith("disc-c")], crs
    assert [c for c in crs if c == "product.capabilities.3scale.net/disc-a"]
    account = porta_get(env, "/accounts/find.json", username="user1")[1]["account"]
    left = {a["application"]["id"] for a in porta_get(env, f"/accounts/{account['id']}/applications.json")[1]["applications"]}
    assert not set(c_apps) & left
    again, _again_seconds = onboard(env, dict(catalog, maas_prune=True))
    assert json.loads(report.read_text())["pruned"] == []
    assert "model(s) that left the catalog" not in again.stdout
    print(f"prune: disc-c removed in {prune_seconds:.1f}s (dry run listed it); re-run prunes nothing")
