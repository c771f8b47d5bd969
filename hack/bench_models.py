"""Benchmark: one model vs N models onboarded by one playbook run, against a lab of its own.

    .venv/bin/python hack/bench_models.py [--models 10] [--json out.json]

Each model gets two accounts (user1, user2) and the full pipeline (Backend, Product, ActiveDoc,
promotion, applications, smoke test). Runs, in one lab: one model; then N other models in one
`ansible-playbook` run; then the same N again (idempotent re-run, must report changed=0).
Wall times are measured around the `ansible-playbook` process; CPU is that process tree's
user+system time; requests are the lab's own counters (porta and kube `/lab/stats.json`).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_ID = "tinyllama/tinyllama-1.1b-chat-v1.0"


def lab_up(directory: Path, *extra: str) -> tuple[dict, float]:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "maaslab", "up", "--dir", str(directory), *extra],
                   check=True, capture_output=True, cwd=ROOT)
    took = time.monotonic() - t0
    return json.loads((directory / "lab.json").read_text()), took


def lab_down(directory: Path) -> None:
    """Stop the lab and remove its directory (it holds 0600 token files and the lab's CA key)."""
    subprocess.run([sys.executable, "-m", "maaslab", "down", "--dir", str(directory)], capture_output=True, check=False)
    shutil.rmtree(directory, ignore_errors=True)


def lab_rss_mib(info: dict) -> dict:
    """Resident memory of the lab process now and at its peak (VmRSS / VmHWM)."""
    fields = {}
    for line in Path(f"/proc/{info['pid']}/status").read_text().splitlines():
        key, unused, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mib": fields.get("VmRSS"), "peak_rss_mib": fields.get("VmHWM")}


def lab_stats(info: dict) -> dict:
    """Request counters of porta and kube, as the lab counted them (kube's need the admin token)."""
    ctx = ssl.create_default_context(cafile=info["tls"]["ca_cert"])
    out = {}
    for name in ("porta", "kube"):
        request = urllib.request.Request(info["urls"][name] + "/lab/stats.json")
        if name == "kube":
            request.add_header("Authorization", "Bearer " + info["credentials"]["kube_admin_token"])
        with urllib.request.urlopen(request, context=ctx, timeout=10) as answer:
            out[name] = json.load(answer)["by_method_path"]
    return out


def lab_env(info: dict) -> dict:
    env = dict(os.environ, **info["env"])
    env["PATH"] = f"{ROOT / '.venv/bin'}:{env['PATH']}"
    env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / ".venv/collections")
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def onboard(env: dict, models: list[dict]) -> dict:
    """One ansible-playbook run; returns wall and CPU seconds and the recap."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(["ansible-playbook", "-i", "inventories/lab", "playbooks/onboard_model.yml",
                          "-e", json.dumps({"maas_models": models})],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        raise RuntimeError(f"onboarding failed (rc {out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}")
    recap = re.search(r"ok=(\d+)\s+changed=(\d+)", out.stdout)
    return {"wall_s": round(wall, 1),
            "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
            "changed": int(recap.group(2))}


def counted(info: dict, before: dict) -> dict:
    """Requests since `before`: porta's admin API (every client but APIcast's configuration polling,
    so the operator's calls count too), its writes, and the Kubernetes API (every client)."""
    now = lab_stats(info)

    def delta(name: str, keep) -> int:
        return sum(n - before[name].get(key, 0) for key, n in now[name].items() if keep(key))

    return {"admin_requests": delta("porta", lambda k: "/admin/api/account/proxy_configs/" not in k),
            "admin_writes": delta("porta", lambda k: not k.startswith("GET ") and "/admin/api/" in k),
            "kube_requests": delta("kube", lambda k: True)}


def spec(name: str, endpoint: str) -> dict:
    return {"name": name, "display_name": name.title(), "endpoint": endpoint, "model_id": MODEL_ID,
            "accounts": ["user1", "user2"]}


def run(models: int = 10) -> dict:
    """Measure one model, then `models` models in one run, then their idempotent re-run."""
    directory = Path(tempfile.mkdtemp(prefix="bench-models-"))
    info, started = lab_up(directory)
    try:
        env = lab_env(info)
        endpoint = info["env"]["LAB_MODEL_URL"]
        result = {"lab_start_s": round(started, 2), "lab_startup_seconds": info.get("startup_seconds", {}),
                  "models": models}
        result["lab_memory_start"] = lab_rss_mib(info)
        before = lab_stats(info)
        result["one"] = {**onboard(env, [spec("one", endpoint)]), **counted(info, before)}
        batch = [spec(f"m{i:02d}", endpoint) for i in range(models)]
        before = lab_stats(info)
        result["many"] = {**onboard(env, batch), **counted(info, before)}
        before = lab_stats(info)
        result["many_rerun"] = {**onboard(env, batch), **counted(info, before)}
        result["ratio_many_to_one"] = round(result["many"]["wall_s"] / result["one"]["wall_s"], 2)
        result["lab_memory_end"] = lab_rss_mib(info)
        result["load_average"] = os.getloadavg()
        return result
    finally:
        lab_down(directory)


def table(result: dict) -> str:
    rows = [("one model", result["one"]), (f"{result['models']} models, one run", result["many"]),
            (f"{result['models']} models, re-run", result["many_rerun"])]
    lines = [f"{'run':24} {'wall s':>7} {'cpu s':>6} {'changed':>7} {'admin req':>9} {'writes':>6} {'kube req':>8}"]
    for label, row in rows:
        lines.append(f"{label:24} {row['wall_s']:7.1f} {row['cpu_s']:6.1f} {row['changed']:7d} "
                     f"{row['admin_requests']:9d} {row['admin_writes']:6d} {row['kube_requests']:8d}")
    lines.append(f"{result['models']} models / one model: {result['ratio_many_to_one']}x wall time")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = parser.parse_args()
    result = run(args.models)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
