"""Benchmark: one model vs N models onboarded by one playbook run, against a lab of its own.

    .venv/bin/python hack/bench_models.py [--models 10] [--models 50] [--json out.json]

Each model gets two accounts (user1, user2) and the full pipeline (Backend, Product, ActiveDoc,
promotion, applications, smoke test). Runs, in one lab: one model; then for each size N, N other models
in one `ansible-playbook` run and the same N again (idempotent re-run, must report changed=0).
Wall times are measured around the `ansible-playbook` process; CPU is that process tree's
user+system time; requests are the lab's own counters (porta and kube `/lab/stats.json`); lab CPU is
the lab process's (porta, APIcast, the model).
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


def lab_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the lab process so far (porta, APIcast and the model run in it)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(info: dict, env: dict, models: list[dict]) -> dict:
    before, cpu0 = lab_stats(info), lab_cpu_s(info["pid"])
    out = {**onboard(env, models), **counted(info, before)}
    out["lab_cpu_s"] = round(lab_cpu_s(info["pid"]) - cpu0, 1)
    out["kube_requests_per_model"] = round(out["kube_requests"] / len(models), 1)
    return out


def run(models=10) -> dict:
    """Measure one model, then for each size in ``models`` (an int or a list) that many new models in one run
    and their idempotent re-run, all in one lab. The first size's figures are also under the keys ``many``
    and ``many_rerun`` (and ``models``), as before."""
    sizes = sorted(set(models)) if isinstance(models, (list, tuple)) else [models]
    directory = Path(tempfile.mkdtemp(prefix="bench-models-"))
    info, started = lab_up(directory)
    try:
        env = lab_env(info)
        endpoint = info["env"]["LAB_MODEL_URL"]
        result = {"lab_start_s": round(started, 2), "lab_startup_seconds": info.get("startup_seconds", {}),
                  "models": sizes[0], "sizes": {}}
        result["lab_memory_start"] = lab_rss_mib(info)
        result["one"] = measured(info, env, [spec("one", endpoint)])
        for n in sizes:
            batch = [spec(f"s{n}m{i:02d}", endpoint) for i in range(n)]
            many = measured(info, env, batch)
            rerun = measured(info, env, batch)
            result["sizes"][str(n)] = {"many": many, "many_rerun": rerun,
                                       "ratio_many_to_one": round(many["wall_s"] / result["one"]["wall_s"], 2),
                                       "ratio_rerun_to_one": round(rerun["wall_s"] / result["one"]["wall_s"], 2)}
        first = result["sizes"][str(sizes[0])]
        result.update(many=first["many"], many_rerun=first["many_rerun"], ratio_many_to_one=first["ratio_many_to_one"])
        result["lab_memory_end"] = lab_rss_mib(info)
        result["load_average"] = os.getloadavg()
        return result
    finally:
        lab_down(directory)


def table(result: dict) -> str:
    rows = [("one model", result["one"])]
    for n, size in result["sizes"].items():
        rows += [(f"{n} models, one run", size["many"]), (f"{n} models, re-run", size["many_rerun"])]
    lines = [f"{'run':24} {'wall s':>7} {'cpu s':>6} {'changed':>7} {'admin req':>9} {'writes':>6} {'kube req':>8} "
             f"{'kube/model':>10} {'lab cpu s':>9}"]
    for label, row in rows:
        lines.append(f"{label:24} {row['wall_s']:7.1f} {row['cpu_s']:6.1f} {row['changed']:7d} "
                     f"{row['admin_requests']:9d} {row['admin_writes']:6d} {row['kube_requests']:8d} "
                     f"{row['kube_requests_per_model']:10.1f} {row['lab_cpu_s']:9.1f}")
    for n, size in result["sizes"].items():
        lines.append(f"{n} models / one model: {size['ratio_many_to_one']}x wall time (re-run {size['ratio_rerun_to_one']}x)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, action="append", help="models per run (repeatable; default 10)")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = parser.parse_args()
    result = run(args.models or [10])
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
