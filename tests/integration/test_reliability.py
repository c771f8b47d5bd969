"""The whole onboarding playbook against a lab that misbehaves like a busy real cluster: a share of
admin API requests answered 503, a slow operator, a slow model. The run must still converge, with
no change to the playbook; the lab's own counters prove the faults really happened."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import requests

from conftest import REPO


def fault(lab_dir: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "maaslab", "fault", "--dir", lab_dir, *args], check=True,
                   capture_output=True)


def injected_errors(env: dict) -> int:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE in some environments would replace the lab CA
    return s.get(env["THREESCALE_ADMIN_URL"] + "/lab/stats.json", verify=env["THREESCALE_CA_BUNDLE"],
                 timeout=30).json()["faults"].get("errors", 0)


def test_onboarding_converges_under_injected_faults(lab, lab_env, tmp_path):
    name = "flaky" + uuid.uuid4().hex[:6]
    model = {"name": name, "display_name": "Flaky " + name, "endpoint": lab_env["LAB_MODEL_URL"],
             "model_id": "tinyllama/tinyllama-1.1b-chat-v1.0", "accounts": ["user3"]}
    report = tmp_path / "report.json"
    before = injected_errors(lab_env)
    # 3% of admin API calls answer 503 (modules retry 3 times: a request fails for good with p~1e-6; the
    # operator, like the real one, does not retry within a reconcile but requeues with backoff);
    # the operator takes 0.3 s per reconcile; the model answers 0.5 s late.
    fault(lab["dir"], "porta", "error_rate=0.03", "error_status=503", r"path_regex=^/admin/api/")
    fault(lab["dir"], "operator", "delay=0.3")
    fault(lab["dir"], "model", "delay=0.5")
    try:
        t0 = time.monotonic()
        run = subprocess.run(
            ["ansible-playbook", "-i", "inventories/lab", "playbooks/onboard_model.yml",
             "-e", json.dumps({"maas_models": [model], "maas_report_file": str(report)})],
            cwd=REPO, env=lab_env, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - t0
    finally:
        fault(lab["dir"], "clear")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    errors = injected_errors(lab_env) - before
    assert errors > 0, "no fault was injected: the test proved nothing"
    smoke = json.loads(report.read_text())["models"][0]["smoke_test"]
    assert smoke["status"] == 200 and smoke["usage"]["total_tokens"] > 0
    print(f"\nonboarding under faults: {elapsed:.1f}s, {errors} admin API requests answered 503")
