"""Measure how late readiness waits end: for each CR, the moment an independent watch saw it ready
(the operator's status write) against the moment the wait noticed it and the moment the wait task ended.

    .venv/bin/python hack/measure_waits.py [--models 10] [--onboarding] [--json FILE]

Starts its own lab. Cases:
  one model    the 4 CRs of one model (Backend, Product, ActiveDoc, ProxyConfigPromote) applied with
               kubectl while ONE maas.threescale.cr_wait task already watches them
  batch        the same for --models models (default 10: forty CRs), ONE cr_wait task over all of them
  onboarding   (with --onboarding) the onboarding playbook, whose role waits for one CR at a time
The ready moments come from a Kubernetes watch on the lab (millisecond clock, independent of the
playbook); the task end from the task_times callback (hack/callbacks). `run()` returns the figures
as a dict (for `make bench`).
"""
from __future__ import annotations

import argparse
import base64
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
API = "capabilities.3scale.net/v1beta1"
KINDS = {"Backend": ("backends", "Synced"), "Product": ("products", "Synced"),
         "ActiveDoc": ("activedocs", "Ready"), "ProxyConfigPromote": ("proxyconfigpromotes", "Ready")}


def is_ready(obj: dict, ctype: str, kind: str) -> bool:
    status = obj.get("status") or {}
    current = kind == "ProxyConfigPromote" or status.get("observedGeneration") == obj["metadata"].get("generation")
    return current and any(c.get("type") == ctype and c.get("status") == "True" for c in status.get("conditions") or [])


class LabHandle:
    """What the measurements need from a running lab: its lab.json (+ the parsed lab.env as 'env')."""

    def __init__(self, info: dict):
        self.info = info
        self.dir = info["dir"]
        self.ns = info.get("settings", {}).get("namespace", "3scale")
        self.kube = KubeClient(info["urls"]["kube"], info["credentials"]["kube_admin_token"], ca_file=info["tls"]["ca_cert"])
        env = dict(os.environ, **info["env"])
        env["PATH"] = f"{ROOT / '.venv/bin'}:{env['PATH']}"
        env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / ".venv/collections")
        env["ANSIBLE_CALLBACK_PLUGINS"] = str(ROOT / "hack/callbacks")
        env["ANSIBLE_CALLBACKS_ENABLED"] = "task_times"
        env["ANSIBLE_NOCOLOR"] = "1"
        self.env = env

    def collection_gets(self) -> dict:
        """GETs served per CR collection path (lists and watches), as the lab's kube counts them."""
        by = self.kube.request("GET", "/lab/stats.json")["by_method_path"]
        return {kind: by.get(f"GET /apis/{API}/namespaces/{self.ns}/{plural}", 0) for kind, (plural, _c) in KINDS.items()}


class ReadyWatch:
    """Independent watch of the four kinds: first moment each CR was ready (or deleted, for a PCP)."""

    def __init__(self, lab: LabHandle):
        self.lab = lab
        self.ready: dict = {}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._follow, args=(k,), daemon=True) for k in KINDS]
        self.started = threading.Barrier(len(KINDS) + 1)

    def __enter__(self):
        for t in self.threads:
            t.start()
        self.started.wait(30)
        return self

    def __exit__(self, *exc):
        self.stop.set()

    def _follow(self, kind: str) -> None:
        plural, ctype = KINDS[kind]
        res = Resource(API, plural)
        _items, rv = self.lab.kube.list(res, self.lab.ns)
        first = True
        while not self.stop.is_set():
            stream = self.lab.kube.watch(res, self.lab.ns, resource_version=rv, timeout_seconds=5)
            if first:
                self.started.wait(30)
                first = False
            for etype, obj in stream:
                rv = obj["metadata"].get("resourceVersion", rv)
                if etype == "BOOKMARK":
                    continue
                if etype == "DELETED" and kind == "ProxyConfigPromote" or etype != "DELETED" and is_ready(obj, ctype, kind):
                    self.ready.setdefault((kind, obj["metadata"]["name"]), time.time())


OPENAPI = {"openapi": "3.0.3", "info": {"title": "bench", "version": "1"},
           "paths": {"/v1/completions": {"post": {"responses": {"200": {"description": "completion"}}}}}}


def openapi_secret(ns: str) -> dict:
    """One single-key Secret with an OpenAPI 3.0 document that every bench ActiveDoc points at."""
    doc = base64.b64encode(json.dumps(OPENAPI).encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "bench-openapi", "namespace": ns},
            "data": {"openapi.json": doc}}


def manifests(name: str, ns: str, model_url: str) -> list[dict]:
    """A model's four CRs, shaped like the role's templates but minimal (the ActiveDoc reads the
    bench-openapi Secret: vLLM's own /openapi.json is OpenAPI 3.1, which the operator rejects)."""
    meta = {"name": name, "namespace": ns, "labels": {"maas.threescale/bench": "waits"}}
    return [
        {"apiVersion": API, "kind": "Backend", "metadata": meta,
         "spec": {"name": name, "systemName": name, "privateBaseURL": model_url}},
        {"apiVersion": API, "kind": "Product", "metadata": meta, "spec": {
            "name": name, "systemName": name, "backendUsages": {name: {"path": "/"}},
            "mappingRules": [{"httpMethod": "POST", "pattern": "/v1/completions", "metricMethodRef": "hits", "increment": 1}],
            "deployment": {"apicastHosted": {"authentication": {"userkey": {
                "authUserKey": "Authorization", "credentials": "authorization"}}}}}},
        {"apiVersion": API, "kind": "ActiveDoc", "metadata": meta, "spec": {
            "name": name, "productSystemName": name, "activeDocOpenAPIRef": {"secretRef": {"name": "bench-openapi", "namespace": ns}}}},
        {"apiVersion": API, "kind": "ProxyConfigPromote", "metadata": meta,
         "spec": {"productCRName": name, "production": False}},
    ]


def targets(names: list[str], ns: str) -> list[dict]:
    return [{"kind": k, "name": n, "namespace": ns} for n in names for k in KINDS]


def kubectl_apply(lab: LabHandle, objs: list[dict]) -> None:
    doc = "\n---\n".join(json.dumps(o) for o in objs)  # a YAML stream of JSON documents
    subprocess.run(["kubectl", "apply", "-f", "-"], input=doc, env=lab.env, text=True, capture_output=True, check=True)


def run_wait(lab: LabHandle, resources: list[dict], apply: list[dict] | None = None, timeout: float = 120,
             extra: dict | None = None, work: Path | None = None) -> dict:
    """ONE cr_wait task over `resources` (ansible-playbook, the lab's kubeconfig from K8S_AUTH_*). With
    `apply`, those objects are applied with kubectl once the module watches every kind it waits for
    (the lab's kube counts a list and a watch on each collection path). Returns the task result plus
    'task_end' (epoch, task_times callback), 'applied_at' and 'rc'."""
    work = Path(work or tempfile.mkdtemp(prefix="cr-wait-"))
    out_file, times_file = work / "result.json", work / "times.jsonl"
    times_file.unlink(missing_ok=True)
    args = dict({"resources": resources, "timeout": timeout}, **(extra or {}))
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "cr_wait", "maas.threescale.cr_wait": args, "register": "r", "ignore_errors": True},
        {"name": "save", "ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(out_file)}}]}]
    (work / "play.yml").write_text(json.dumps(play))
    kinds = sorted({r["kind"] for r in resources})
    before = lab.collection_gets()
    proc = subprocess.Popen(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e",
                             f"ansible_python_interpreter={ROOT / '.venv/bin/python'}", str(work / "play.yml")], cwd=ROOT,
                            env={**lab.env, "TASK_TIMES_FILE": str(times_file)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    applied_at = None
    if apply:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            now = lab.collection_gets()
            if all(now[k] - before[k] >= 2 for k in kinds):
                break
            time.sleep(0.05)
        applied_at = time.time()
        kubectl_apply(lab, apply)
    stdout = proc.communicate(timeout=timeout + 120)[0]
    result = json.loads(out_file.read_text()) if out_file.exists() else {}
    ends = [json.loads(line) for line in times_file.read_text().splitlines()] if times_file.exists() else []
    result["task_end"] = next((e["end"] for e in ends if e["task"] == "cr_wait"), None)
    result["applied_at"] = applied_at
    result["rc"] = proc.returncode
    result["stdout"] = stdout[-3000:]
    return result


def delays(result: dict, ready: dict) -> dict:
    """Per CR: when the independent watch saw it ready, how much later cr_wait noticed it; and how long
    after the LAST CR became ready the task ended."""
    rows = []
    for r in result.get("resources", []):
        seen = ready.get((r["kind"], r["name"]))
        rows.append({"kind": r["kind"], "name": r["name"], "state": r["state"], "ready": seen, "noticed": r["ready_at"],
                     "notice_delay": round(r["ready_at"] - seen, 3) if seen and r["ready_at"] else None})
    readies = [row["ready"] for row in rows if row["ready"]]
    last = max(readies) if len(readies) == len(rows) and rows else None
    end = result.get("task_end")
    return {"crs": len(rows), "rows": rows,
            "max_notice_delay": max([row["notice_delay"] for row in rows if row["notice_delay"] is not None], default=None),
            "return_delay": round(end - last, 3) if last and end else None,
            "ready_before_apply": sum(1 for t in readies if result.get("applied_at") and t < result["applied_at"])}


def measure_batch(lab: LabHandle, names: list[str], work: Path | None = None) -> dict:
    kubectl_apply(lab, [openapi_secret(lab.ns)])
    objs = [o for n in names for o in manifests(n, lab.ns, lab.info["env"]["LAB_MODEL_URL"])]
    with ReadyWatch(lab) as watch:
        result = run_wait(lab, targets(names, lab.ns), apply=objs, work=work)
        wanted = {(r["kind"], r["name"]) for r in result.get("resources", []) if r["state"] in ("ready", "absent")}
        deadline = time.monotonic() + 10  # the independent watch's own copy of the last events
        while not wanted <= set(watch.ready) and time.monotonic() < deadline:
            time.sleep(0.02)
    out = delays(result, watch.ready)
    out["elapsed"] = result.get("elapsed")
    out["api"] = result.get("api")
    out["rc"] = result["rc"]
    if result["rc"]:
        out["stdout"] = result["stdout"]
    return out


def measure_onboarding(lab: LabHandle, model: str) -> dict:
    """The onboarding playbook; for each of its waits, time from the CR becoming ready to the wait task ending."""
    times_file = Path(lab.dir) / "task-times.jsonl"
    times_file.unlink(missing_ok=True)
    with ReadyWatch(lab) as watch:
        t0 = time.time()
        out = subprocess.run(
            ["ansible-playbook", "-i", "inventories/lab", "playbooks/onboard_model.yml",
             "-e", json.dumps({"maas_models": [{"name": model, "display_name": model.title(), "model_id": "tinyllama/tinyllama-1.1b-chat-v1.0",
                                                "endpoint": lab.info["env"]["LAB_MODEL_URL"], "accounts": ["user1"]}]})],
            cwd=ROOT, env={**lab.env, "TASK_TIMES_FILE": str(times_file)}, capture_output=True, text=True, check=False)
        wall = time.time() - t0
    if out.returncode:
        return {"rc": out.returncode, "stdout": out.stdout[-3000:]}
    tasks = [json.loads(line) for line in times_file.read_text().splitlines()]
    waits = []
    for (kind, name), t_ready in sorted(watch.ready.items(), key=lambda kv: kv[1]):
        # The role waits for all the CRs of a kind with one task ("... ready or rejected <Kind>").
        ends = [t["end"] for t in tasks if t["task"].startswith("Wait for the CRs to be ready or rejected")
                and t["task"].endswith(kind) and t["end"] >= t_ready - 0.001]
        if ends:
            waits.append({"kind": kind, "name": name, "delay": round(min(ends) - t_ready, 3)})
    recap = re.search(r"ok=(\d+)\s+changed=(\d+)", out.stdout)
    return {"rc": 0, "wall": round(wall, 1), "recap": recap.group(0) if recap else "", "waits": waits}


def run(models: int = 10, onboarding: bool = False, lab_dir: str | None = None) -> dict:
    """Start a lab (or use the running one in lab_dir), measure, stop it; return the figures."""
    own = lab_dir is None
    lab_path = Path(lab_dir or tempfile.mkdtemp(prefix="measure-lab-"))
    t0 = time.time()
    if own:
        subprocess.run([sys.executable, "-m", "maaslab", "up", "--dir", str(lab_path)], check=True, capture_output=True)
    lab_up = time.time() - t0
    try:
        info = json.loads((lab_path / "lab.json").read_text())
        info["dir"] = str(lab_path)
        info["env"] = {k: v.strip("'") for k, _s, v in (line[len("export "):].partition("=") for line in
                       (lab_path / "lab.env").read_text().splitlines() if line.startswith("export "))}
        lab = LabHandle(info)
        tag = time.strftime("%H%M%S")
        figures = {"lab_up_s": round(lab_up, 2),
                   "one_model": measure_batch(lab, [f"wa-{tag}"]),
                   "batch": measure_batch(lab, [f"wb{i}-{tag}" for i in range(models)])}
        if onboarding:
            figures["onboarding"] = measure_onboarding(lab, f"wo-{tag}")
        return figures
    finally:
        if own:
            subprocess.run([sys.executable, "-m", "maaslab", "down", "--dir", str(lab_path)], capture_output=True, check=False)


def report(fig: dict) -> str:
    lines = [f"lab up: {fig['lab_up_s']:.2f}s"]
    for case in ("one_model", "batch"):
        c = fig[case]
        if c.get("rc"):
            lines.append(f"{case}: cr_wait failed\n{c.get('stdout', '')}")
            continue
        lines.append(f"{case:10} {c['crs']:3} CRs, one cr_wait task: returned {c['return_delay']}s after the last CR was ready "
                     f"(independent watch); each CR noticed at most {c['max_notice_delay']}s after it was ready; "
                     f"waited {c['elapsed']}s; API {c['api']}")
    if "onboarding" in fig:
        o = fig["onboarding"]
        lines.append(f"onboarding playbook: {o.get('wall')}s ({o.get('recap')}); each wait task ended after the CR was ready by:")
        lines += [f"  {w['kind']:19} {w['name']:24} +{w['delay']:.3f}s" for w in o.get("waits", [])]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--onboarding", action="store_true", help="also time the onboarding playbook's waits")
    ap.add_argument("--lab-dir", help="use this running lab instead of starting one")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    fig = run(args.models, args.onboarding, args.lab_dir)
    print(report(fig))
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2))


if __name__ == "__main__":
    main()
