"""`--check --diff` on onboard, offboard and bootstrap (issue 10 item 7): finishes in seconds for a new,
a changed and an unchanged model, shows what would change, and changes nothing (porta write counts from
the lab's stats, every CR/Secret/Lease resourceVersion from kubectl).

Upstream: kubernetes.core plugins/module_utils/k8s/service.py (check mode = server-side dry run,
dryRun=All, whose result carries the diff), ansible-core lib/ansible/executor/task_executor.py
(check_mode, `until` retries)."""
from __future__ import annotations

import uuid

from dryrun_helpers import cluster_objects, playbook, porta_writes, recap, writes_between

MODEL_ID = "tinyllama/tinyllama-1.1b-chat-v1.0"
CHECK_LIMIT_S = 60  # ansible-playbook start-up included; the readiness timeout below is far longer


def task_changed(out, title):
    """Whether the task whose title contains `title` reported changed (its diff may come first)."""
    sections = [sec for sec in out.split("TASK [")[1:] if title in sec.split("]")[0]]
    assert sections, title
    return any("changed: [" in sec for sec in sections)


def dry(lab_env, name, extra):
    """One check-mode run: nothing may change; returns (process, wall seconds)."""
    writes0, objects0 = porta_writes(lab_env), cluster_objects(lab_env)
    proc, elapsed = playbook(lab_env, name, dict(extra, maas_wait_timeout=300), "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert writes_between(writes0, porta_writes(lab_env)) == {}
    assert cluster_objects(lab_env) == objects0
    assert elapsed < CHECK_LIMIT_S, elapsed
    return proc, elapsed


def test_check_mode_new_changed_unchanged_and_offboard(lab_env, tmp_path):
    name = "dry" + uuid.uuid4().hex[:6]
    model = {"name": name, "endpoint": lab_env["LAB_MODEL_URL"], "model_id": MODEL_ID, "accounts": ["user2"]}
    times = {}

    proc, times["new"] = dry(lab_env, "onboard_model", {"maas_models": [model]})
    out = proc.stdout
    assert recap(proc)["changed"] >= 4  # Backend, Product, Secret + ActiveDoc (one call), ProxyConfigPromote
    for kind in ("kind: Backend", "kind: Product", "kind: ActiveDoc", "kind: ProxyConfigPromote"):
        assert kind in out or f'"kind": "{kind.split()[1]}"' in out, kind
    assert f"product {name} does not exist yet; a real run would subscribe user2" in out
    assert "Wait for the CRs to be ready or rejected" not in out  # check mode never waits

    real, _seconds = playbook(lab_env, "onboard_model", {"maas_models": [model]})
    assert real.returncode == 0, real.stdout[-5000:]

    proc, times["unchanged"] = dry(lab_env, "onboard_model", {"maas_models": [model]})
    assert recap(proc)["changed"] == 0, proc.stdout[-5000:]

    changed = dict(model, accounts=["user2", "user3"], limits=[{"metric": "hits", "period": "minute", "value": 9}])
    proc, times["changed"] = dry(lab_env, "onboard_model", {"maas_models": [changed]})
    out = proc.stdout
    assert recap(proc)["changed"] >= 3, out[-5000:]
    assert "+        - metric: hits" in out or '"value": 9' in out or "value: 9" in out, out[-8000:]
    assert task_changed(out, "Promote with ProxyConfigPromotes")  # the promotion it would do
    assert task_changed(out, "Ensure one application per account on each product")  # user3's application

    proc, times["offboard"] = dry(lab_env, "offboard_model", {"maas_models": [{"name": name, "accounts": ["user2"]}]})
    assert recap(proc)["changed"] >= 4, proc.stdout[-5000:]  # application, subscription, CRs, Secret

    creds = tmp_path / "creds.csv"
    proc, times["bootstrap"] = dry(lab_env, "bootstrap_workshop", {
        "maas_models": [dict(model, name="dryws" + uuid.uuid4().hex[:6])], "maas_workshop_users": 7,
        "maas_workshop_credentials_file": str(creds)})
    assert recap(proc)["changed"] >= 5 and not creds.exists()
    print("\ncheck-mode wall time: " + ", ".join(f"{k} {v:.1f}s" for k, v in times.items())
          + " (readiness timeout 300 s; no porta write, no cluster change)")
