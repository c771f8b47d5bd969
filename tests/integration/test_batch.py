"""Several models in one pass (issue 11, item 2): `onboard_model.yml` applies every model's CRs with one
Kubernetes call per kind, waits for all of them with one cr_wait run and promotes them together. A model the
operator rejects is set aside with the operator's message while the others are finished; the play then fails
naming it, and the report lists it under `failed`. Read back independently: porta's products, applications
and proxy versions (requests), the CRs (kubectl), the keys through the production gateway (requests).

Upstream: 3scale-operator controllers/capabilities/backend_controller.go (a porta 422 on the Backend is
Failed=True with "error calling 3scale system - reason: ... - code: 422"), porta
app/models/backend_api.rb (private endpoints on protected hosts are refused).
"""
from __future__ import annotations

import json
import subprocess
import uuid

import requests

from dryrun_helpers import playbook, recap
from test_modules import Porta

MODEL_ID = "tinyllama/tinyllama-1.1b-chat-v1.0"


def kubectl_json(env, *args):
    out = subprocess.run(["kubectl", "-n", "3scale", *args, "-o", "json"], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def test_models_in_one_pass_one_rejected_the_others_finished(lab_env, tmp_path):
    tag = uuid.uuid4().hex[:5]
    good = [f"bat{tag}{i}" for i in range(3)]
    bad = f"bat{tag}bad"
    models = [{"name": n, "endpoint": lab_env["LAB_MODEL_URL"], "model_id": MODEL_ID, "accounts": ["user1", "user2"]} for n in good]
    models.insert(1, {"name": bad, "endpoint": "http://localhost:9/v1", "model_id": MODEL_ID, "accounts": ["user1"]})
    report = tmp_path / "report.json"
    proc, seconds = playbook(lab_env, "onboard_model", {"maas_models": models, "maas_report_file": str(report)})
    out = proc.stdout

    # The play fails, naming the rejected model with the operator's message, and only that one.
    assert proc.returncode != 0, out[-4000:]
    flat = " ".join(out.split())
    assert f"1 of 4 model(s) could not be onboarded (the others were): {bad}: The 3scale operator rejected Backend 3scale/{bad}" in flat
    assert "Sorry, this domain is protected" in flat and "code: 422" in flat
    # One Kubernetes call per kind for all models, one wait for all of them.
    for task in ("Apply the CRs in one call Backend", "Apply the CRs in one call Product",
                 "Wait for the CRs to be ready or rejected Backend", "Wait for the CRs to be ready or rejected ActiveDoc"):
        assert out.count(f"TASK [maas.threescale.maas_product : {task}]") == 1, task
    data = json.loads(report.read_text())
    assert [m["name"] for m in data["models"]] == good
    assert [f["name"] for f in data["failed"]] == [bad] and data["failed"][0]["phase"] == "Backend"
    assert all(m["smoke_test"]["status"] == 200 for m in data["models"]), data["models"]

    # Read back: each good model is a promoted product with one application per account whose key answers.
    porta = Porta(lab_env)
    s = requests.Session()
    s.trust_env = False
    for name in good:
        product = porta.product(name)
        versions = {env: porta.req("GET", f"/services/{product['id']}/proxy/configs/{env}/latest.json")[1]["proxy_config"]["version"]
                    for env in ("sandbox", "production")}
        assert versions["sandbox"] == versions["production"], (name, versions)
        for account in ("user1", "user2"):
            apps = [a for a in porta.apps(porta.find(account)["id"]) if a["service_id"] == product["id"]]
            assert len(apps) == 1, (name, account, apps)
        endpoint = next(m["production_endpoint"] for m in data["models"] if m["name"] == name)
        key = [a for a in porta.apps(porta.find("user2")["id"]) if a["service_id"] == product["id"]][0]["user_key"]
        answer = s.post(endpoint.rstrip("/") + "/v1/completions", headers={"Authorization": "Bearer " + key},
                        json={"model": MODEL_ID, "prompt": "Hello", "max_tokens": 3}, timeout=30)
        assert answer.status_code == 200 and answer.json()["model"] == MODEL_ID, (name, answer.status_code, answer.text[:200])
    # The rejected model got no product (its Backend was refused, so its Product was never applied).
    assert bad not in [sv["service"]["system_name"] for sv in porta.req("GET", "/services.json")[1]["services"]]
    backend = kubectl_json(lab_env, "get", f"backends.capabilities.3scale.net/{bad}")
    assert any(c["type"] == "Failed" and c["status"] == "True" for c in backend["status"]["conditions"])
    # Every Lease was released, the rejected model's too.
    assert not [lease for lease in kubectl_json(lab_env, "get", "leases.coordination.k8s.io")["items"]
                if lease["metadata"]["name"].startswith(f"maas-onboard-bat{tag}")]

    # Fixed (the bad model dropped): the others are unchanged, and a second run reports changed=0.
    rerun, rerun_s = playbook(lab_env, "onboard_model", {"maas_models": [m for m in models if m["name"] != bad]})
    assert rerun.returncode == 0 and recap(rerun)["changed"] == 0, rerun.stdout[-4000:]
    print(f"\n4 models in one pass (1 rejected): {seconds:.1f}s; the 3 others re-run changed=0 in {rerun_s:.1f}s")
    subprocess.run(["kubectl", "-n", "3scale", "delete", f"backends.capabilities.3scale.net/{bad}", "--wait=false"],
                   env=lab_env, check=True, capture_output=True)


def test_display_name_with_an_emoji_onboards(lab_env, tmp_path):
    """A display name outside the Basic Multilingual Plane (an emoji: a surrogate pair in JSON escapes) once
    failed with "invalid Unicode character escape code", naming no field, because the CRs were YAML text
    parsed back. Built as data, it reaches the CRs, porta, the application name and the report as given,
    and a second run changes nothing."""
    name = "emo" + uuid.uuid4().hex[:5]
    display = "Tiny 🦙 Llama \u201cchat\u201d ünïcode"
    report = tmp_path / "report.json"
    models = [{"name": name, "display_name": display, "endpoint": lab_env["LAB_MODEL_URL"], "model_id": MODEL_ID,
               "accounts": ["user1"]}]
    proc, seconds = playbook(lab_env, "onboard_model", {"maas_models": models, "maas_report_file": str(report)})
    assert proc.returncode == 0, proc.stdout[-4000:]
    data = json.loads(report.read_text(encoding="utf-8"))
    assert [(m["name"], m["product"]) for m in data["models"]] == [(name, display)]
    assert data["models"][0]["smoke_test"]["status"] == 200, data["models"]
    assert kubectl_json(lab_env, "get", f"products.capabilities.3scale.net/{name}")["spec"]["name"] == display
    assert kubectl_json(lab_env, "get", f"activedocs.capabilities.3scale.net/{name}")["spec"]["name"] == display + " API"
    porta = Porta(lab_env)
    product = porta.product(name)
    assert product["name"] == display
    apps = [a for a in porta.apps(porta.find("user1")["id"]) if a["service_id"] == product["id"]]
    assert [a["name"] for a in apps] == [display + " application"]

    rerun, rerun_s = playbook(lab_env, "onboard_model", {"maas_models": models})
    assert rerun.returncode == 0 and recap(rerun)["changed"] == 0, rerun.stdout[-4000:]
    print(f"\nemoji display name: onboarded in {seconds:.1f}s, re-run changed=0 in {rerun_s:.1f}s")
