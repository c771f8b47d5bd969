"""Measure the onboarding against a fresh lab: wall time of a first run and an idempotent re-run,
and for each readiness wait how long after the CR became ready the playbook noticed.

    .venv/bin/python hack/measure_waits.py [--model NAME]

The ready moments come from a Kubernetes watch on the lab (millisecond clock, independent of the
playbook); the noticing moments from a callback that records when each wait task finished.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from maaslab.kube.client import KubeClient, Resource

ROOT = Path(__file__).resolve().parent.parent
KINDS = {"Backend": ("backends", "Synced"), "Product": ("products", "Synced"),
         "ActiveDoc": ("activedocs", "Ready"), "ProxyConfigPromote": ("proxyconfigpromotes", "Ready")}


def is_ready(obj: dict, ctype: str, kind: str) -> bool:
    status = obj.get("status") or {}
    current = kind == "ProxyConfigPromote" or status.get("observedGeneration") == obj["metadata"].get("generation")
    return current and any(c.get("type") == ctype and c.get("status") == "True" for c in status.get("conditions") or [])


def watch_ready(kube: KubeClient, kind: str, ns: str, ready: dict, stop: threading.Event) -> None:
    plural, ctype = KINDS[kind]
    res = Resource("capabilities.3scale.net/v1beta1", plural)
    _items, rv = kube.list(res, ns)
    while not stop.is_set():
        for etype, obj in kube.watch(res, ns, resource_version=rv, timeout_seconds=5):
            rv = obj["metadata"].get("resourceVersion", rv)
            name = obj["metadata"].get("name")
            gone = etype == "DELETED" and kind == "ProxyConfigPromote"  # deleteCR: true
            if etype != "BOOKMARK" and (gone or is_ready(obj, ctype, kind)):
                ready.setdefault((kind, name), time.time())


def run_playbook(env: dict, model: str, times_file: Path) -> tuple[float, str]:
    t0 = time.time()
    out = subprocess.run(
        ["ansible-playbook", "-i", "inventories/lab", "playbooks/onboard_model.yml",
         "-e", json.dumps({"maas_models": [{"name": model, "display_name": model.title(), "endpoint": env["LAB_MODEL_URL"],
                                            "model_id": "tinyllama/tinyllama-1.1b-chat-v1.0", "accounts": ["user1", "user2"]}]})],
        cwd=ROOT, env={**env, "TASK_TIMES_FILE": str(times_file)}, capture_output=True, text=True, check=False)
    if out.returncode:
        sys.exit(out.stdout[-3000:] + out.stderr[-2000:])
    recap = re.search(r"ok=(\d+)\s+changed=(\d+)", out.stdout)
    return time.time() - t0, f"ok={recap.group(1)} changed={recap.group(2)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="benchmodel")
    args = ap.parse_args()
    lab_dir = Path(tempfile.mkdtemp(prefix="measure-lab-"))
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "maaslab", "up", "--dir", str(lab_dir)], check=True, capture_output=True)
    lab_up = time.time() - t0
    try:
        info = json.loads((lab_dir / "lab.json").read_text())
        env = dict(os.environ, **info["env"])
        env["PATH"] = f"{ROOT / '.venv/bin'}:{env['PATH']}"
        env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / ".venv/collections")
        env["ANSIBLE_CALLBACK_PLUGINS"] = str(ROOT / "hack/callbacks")
        env["ANSIBLE_CALLBACKS_ENABLED"] = "task_times"
        kube = KubeClient(info["urls"]["kube"], info["credentials"]["kube_admin_token"], ca_file=info["tls"]["ca_cert"])
        ready: dict = {}
        stop = threading.Event()
        threads = [threading.Thread(target=watch_ready, args=(kube, k, "3scale", ready, stop), daemon=True) for k in KINDS]
        for t in threads:
            t.start()
        times_file = lab_dir / "task-times.jsonl"
        first, recap1 = run_playbook(env, args.model, times_file)
        tasks = [json.loads(line) for line in times_file.read_text().splitlines()]
        times_file.unlink()
        second, recap2 = run_playbook(env, args.model, times_file)
        stop.set()
        print(f"lab up: {lab_up:.2f}s")
        print(f"first onboarding run: {first:.1f}s ({recap1}); idempotent re-run: {second:.1f}s ({recap2})")
        print("readiness waits (time from the CR becoming ready to the wait task finishing):")
        for (kind, name), t_ready in sorted(ready.items(), key=lambda kv: kv[1]):
            ends = [t["end"] for t in tasks if t["task"].startswith("Poll until ready or failed")
                    and t["task"].endswith(f"{kind}/{name}") and t["end"] >= t_ready - 0.001]
            if ends:
                print(f"  {kind:19} {name:28} +{min(ends) - t_ready:.2f}s")
    finally:
        subprocess.run([sys.executable, "-m", "maaslab", "down", "--dir", str(lab_dir)], capture_output=True, check=False)


if __name__ == "__main__":
    main()
