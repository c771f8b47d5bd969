"""Measure the model catalog against a fresh lab of its own (issue 12's closing figures):

1. discovery: N labelled KServe InferenceServices (created with kubectl, 2 accounts each) published by one
   `onboard_model.yml` run with `maas_discover: true` -> wall time, models published, requests the lab's
   admin API (porta) and Kubernetes API served during the run (lab /lab/stats.json);
2. health: `verify_models.yml` over those N models -> wall time, statuses;
3. usage: a few calls per application through the production gateway, then `usage_report.yml` -> wall time,
   files and their sizes.

    .venv/bin/python hack/measure_catalog.py [--models 10] [--json-only]

`run(models=10) -> dict` does the same for a caller. Figures depend on the machine's load.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PUBLISH = {"maas.threescale/publish": "true"}


def lab_env(directory: Path) -> dict:
    env = dict(os.environ)
    for line in (directory / "lab.env").read_text().splitlines():
        if line.startswith("export "):
            key, _sep, value = line[len("export "):].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / ".venv" / "collections")
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def playbook(env: dict, name: str, extra: dict) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", "inventories/lab", f"playbooks/{name}.yml", "-e", json.dumps(extra)],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=1800)
    return time.monotonic() - t0, proc


class LabStats:
    """Request counters of the lab's porta and kube API servers (lab-only endpoints)."""

    def __init__(self, info: dict, env: dict):
        self.porta = env["THREESCALE_ADMIN_URL"].rstrip("/")
        self.kube = info["urls"]["kube"].rstrip("/")
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.verify = env["THREESCALE_CA_BUNDLE"]
        self.kube_auth = {"Authorization": "Bearer " + info["settings"]["credentials"]["kube_admin_token"]}

    def reset(self) -> None:
        self.http.post(self.porta + "/lab/stats/reset", timeout=30).raise_for_status()
        self.http.post(self.kube + "/lab/stats/reset", headers=self.kube_auth, timeout=30).raise_for_status()

    def read(self) -> dict:
        porta = self.http.get(self.porta + "/lab/stats.json", timeout=30).json()["by_method_path"]
        kube = self.http.get(self.kube + "/lab/stats.json", headers=self.kube_auth, timeout=30).json()["by_method_path"]
        polling = sum(n for k, n in porta.items() if "/admin/api/account/proxy_configs/" in k)
        return {"admin_api_requests": sum(porta.values()) - polling, "apicast_config_polls": polling,
                "kube_requests": sum(kube.values())}


def inference_services(n: int) -> list[dict]:
    return [{"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
             "metadata": {"name": f"m{i:02d}", "namespace": "3scale", "labels": PUBLISH,
                          "annotations": {"maas.threescale/accounts": "user1,user2",
                                          "maas.threescale/display-name": f"Model {i:02d}"}},
             "spec": {"predictor": {"model": {"modelFormat": {"name": "vLLM"},
                                              "args": [f"--served-model-name=org/model-{i:02d}"]}}}}
            for i in range(1, n + 1)]


def send_traffic(env: dict, names: list[str], calls: int) -> int:
    """`calls` GET /v1/models per application of the published models, through the production gateway."""
    http = requests.Session()
    http.trust_env = False
    http.verify = env["THREESCALE_CA_BUNDLE"]
    admin = env["THREESCALE_ADMIN_URL"].rstrip("/") + "/admin/api"
    auth = {"access_token": env["THREESCALE_ACCESS_TOKEN"]}
    services = http.get(admin + "/services.json", params=dict(auth, per_page=500), timeout=30).json()["services"]
    endpoints = {}
    for s in (x["service"] for x in services if x["service"]["system_name"] in names):
        proxy = http.get(admin + f"/services/{s['id']}/proxy.json", params=auth, timeout=30).json()["proxy"]
        endpoints[s["id"]] = proxy["endpoint"].rstrip("/")
    apps = http.get(admin + "/applications.json", params=dict(auth, per_page=500), timeout=30).json()["applications"]
    sent = 0
    for app in (a["application"] for a in apps):
        if app["service_id"] not in endpoints or app.get("name") == "MaaS health check":
            continue
        for _call in range(calls):
            r = requests.get(endpoints[app["service_id"]] + "/v1/models", timeout=30,
                             headers={"Authorization": "Bearer " + app["user_key"]})
            sent += r.status_code == 200
    return sent


def usage_report(env: dict, report_dir: Path) -> tuple[float, list[dict]]:
    seconds, proc = playbook(env, "usage_report", {"maas_usage_report_dir": str(report_dir)})
    if proc.returncode != 0:
        raise RuntimeError("usage report failed:\n" + proc.stdout[-3000:] + proc.stderr[-2000:])
    with (report_dir / "usage.csv").open(encoding="utf-8", newline="") as f:
        return seconds, list(csv.DictReader(f))


def developer_calls(rows: list[dict]) -> int:
    """Calls of the developer accounts in usage.csv (the monitoring account's health checks apart)."""
    return sum(int(r["calls"]) for r in rows if r["account"] != "MaaS monitoring")


def run(models: int = 10) -> dict:
    out: dict = {"models": models, "note": "shared, loaded machine (2 cores, several workers): wall times vary"}
    with tempfile.TemporaryDirectory(prefix="measure-catalog-") as tmp:
        tmp = Path(tmp)
        directory = tmp / "lab"
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "maaslab", "up", "--dir", str(directory)], check=True,
                       capture_output=True, text=True)
        out["lab_start_s"] = round(time.monotonic() - t0, 1)
        try:
            info = json.loads((directory / "lab.json").read_text())
            env = lab_env(directory)
            stats = LabStats(info, env)
            manifest = tmp / "isvcs.yaml"
            manifest.write_text(yaml.safe_dump_all(inference_services(models)))
            t0 = time.monotonic()
            subprocess.run(["kubectl", "apply", "-f", str(manifest)], env=env, check=True, capture_output=True)
            subprocess.run(["kubectl", "wait", "--for=condition=Ready", "--timeout=120s", "-n", "3scale",
                            "inferenceservices.serving.kserve.io", "--all"], env=env, check=True, capture_output=True)
            out["kserve_ready_s"] = round(time.monotonic() - t0, 1)

            stats.reset()
            report = tmp / "onboard.json"
            seconds, proc = playbook(env, "onboard_model", {"maas_models": [], "maas_discover": True,
                                                            "maas_discover_namespaces": ["3scale"],
                                                            "maas_report_file": str(report)})
            if proc.returncode != 0:
                raise RuntimeError("discovery run failed:\n" + proc.stdout[-3000:] + proc.stderr[-2000:])
            published = json.loads(report.read_text())["models"]
            names = [m["name"] for m in published]
            out["discovery"] = {"wall_s": round(seconds, 1), "published": len(published),
                                "applications": sum(len(m.get("applications") or []) for m in published),
                                "smoke_tests_200": sum((m.get("smoke_test") or {}).get("status") == 200
                                                       for m in published), **stats.read()}

            stats.reset()
            health = tmp / "health.json"
            seconds, proc = playbook(env, "verify_models", {"maas_verify_report_file": str(health)})
            statuses: dict = {}
            for m in json.loads(health.read_text())["models"]:
                statuses[m["status"]] = statuses.get(m["status"], 0) + 1
            out["health"] = {"wall_s": round(seconds, 1), "rc": proc.returncode, "statuses": statuses,
                             "max_latency_ms": max((m["latency_ms"] for m in json.loads(health.read_text())["models"]),
                                                   default=0), **stats.read()}

            # the onboarding's smoke tests were developer calls too: a first report gives the baseline
            _seconds, before = usage_report(env, tmp / "usage-before")
            sent = send_traffic(env, names, calls=2)
            stats.reset()
            seconds, after = usage_report(env, tmp / "usage")
            files = {str(p.relative_to(tmp / "usage")): p.stat().st_size for p in sorted((tmp / "usage").rglob("*"))
                     if p.is_file()}
            out["usage"] = {"wall_s": round(seconds, 1), "calls_sent": sent,
                            "calls_added_to_csv": developer_calls(after) - developer_calls(before), "files": files,
                            "csv_rows": len(after), **stats.read()}
        finally:
            subprocess.run([sys.executable, "-m", "maaslab", "down", "--dir", str(directory)], check=False,
                           capture_output=True, text=True)
    return out


def table(r: dict) -> str:
    d, h, u = r["discovery"], r["health"], r["usage"]
    discovery = (f"{d['published']}/{r['models']} published, {d['applications']} apps, "
                 f"{d['smoke_tests_200']} smoke tests 200")
    usage = (f"{u['calls_sent']} calls sent, {u['calls_added_to_csv']} more in the CSV ({u['csv_rows']} rows); files "
             + ", ".join(f"{k} {v:,} B" for k, v in u["files"].items()))
    rows = [
        ("discovery run", f"{d['wall_s']} s", discovery),
        ("  requests", "", f"admin API {d['admin_api_requests']}, kube {d['kube_requests']} "
                           f"(all clients: playbook + operator; APIcast polls {d['apicast_config_polls']} apart)"),
        ("health check", f"{h['wall_s']} s", f"rc {h['rc']}, {h['statuses']}, max latency {h['max_latency_ms']} ms"),
        ("  requests", "", f"admin API {h['admin_api_requests']}, kube {h['kube_requests']}"),
        ("usage report", f"{u['wall_s']} s", usage),
        ("  requests", "", f"admin API {u['admin_api_requests']}, kube {u['kube_requests']}"),
    ]
    width = max(len(row[0]) for row in rows)
    return "\n".join(f"{name:<{width}}  {took:>8}  {what}" for name, took, what in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--json-only", action="store_true")
    args = ap.parse_args()
    result = run(args.models)
    if not args.json_only:
        print(table(result))
        print()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
