"""Benchmark: keys for N accounts, the naive ansible.builtin.uri loop against the collection, side by side.

    .venv/bin/python hack/bench_access.py --users 200 [--users 1000] [--json out.json] [--skip-naive]

Starts one lab (``python -m maaslab up --users N``, N the largest size), creates a product per contender
and size (so none finds another's applications), then runs, each as one ansible-playbook:
  * naive      hack/bench/naive_uri.yml: per account a find, a subscribe and a create (uri tasks);
  * first      hack/bench/collection.yml: the maas_access role, one bulk threescale_application task;
  * re-run     the same playbook again (idempotent: must write nothing).
Requests are counted by the lab's porta (``/lab/stats.json``, reset before each run), leaving out
APIcast's own configuration polling (``/admin/api/account/proxy_configs/``). ``task s`` is the bulk
task alone (from the task_times callback), without ansible-playbook's start-up. ``lab ms/req`` is the lab
process's CPU time (porta, APIcast and the model share it) per admin request counted: it shows a lab regression.
The naive loop runs only at the smallest size (it takes minutes at 200).
``run(users)`` returns the figures as a dict (for ``make bench``).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from bench_models import lab_cpu_s  # hack/ is on sys.path when a hack/ script runs

ROOT = Path(__file__).resolve().parent.parent
APICAST_POLL = "/admin/api/account/proxy_configs/"
BULK_TASK = "Ensure one application per account on the product"


class Admin:
    """Just enough of the admin API for the set-up and the lab's counters (stdlib only)."""

    def __init__(self, env: dict):
        self.base = env["THREESCALE_ADMIN_URL"]
        self.auth = "Basic " + base64.b64encode((":" + env["THREESCALE_ACCESS_TOKEN"]).encode()).decode()
        self.ctx = ssl.create_default_context(cafile=env["THREESCALE_CA_BUNDLE"])

    def call(self, method: str, path: str, data: dict | None = None) -> dict:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers={"Authorization": self.auth, "Accept": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=60) as resp:
            raw = resp.read()
        return json.loads(raw) if raw.strip() else {}

    def product(self, system_name: str) -> int:
        pid = self.call("POST", "/admin/api/services.json", {"name": system_name, "system_name": system_name})["service"]["id"]
        self.call("POST", f"/admin/api/services/{pid}/application_plans.json", {"name": "Standard", "system_name": "standard"})
        return pid

    def reset(self) -> None:
        self.call("POST", "/lab/stats/reset", {})

    def counts(self) -> dict:
        stats = self.call("GET", "/lab/stats.json")["by_method_path"]
        mine: dict = {}
        for k, n in stats.items():
            if APICAST_POLL not in k:
                key = re.sub(r"/\d+(?=[/.])", "/{id}", k)
                mine[key] = mine.get(key, 0) + n
        return {"requests": sum(mine.values()),
                "writes": sum(n for k, n in mine.items() if not k.startswith(("GET ", "HEAD "))),
                "by_method_path": mine}


def playbook(env: dict, name: str, extra: dict, times: Path) -> float:
    if times.exists():
        times.unlink()
    t0 = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", "inventories/lab", f"hack/bench/{name}.yml", "-e", json.dumps(extra)],
                          cwd=ROOT, env=dict(env, TASK_TIMES_FILE=str(times)), capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    if proc.returncode:
        raise RuntimeError(f"{name}.yml failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return wall


def task_seconds(times: Path) -> float | None:
    """Duration of the bulk task: its end minus the end of the task before it."""
    rows = [json.loads(line) for line in times.read_text().splitlines()] if times.exists() else []
    for before, row in zip(rows, rows[1:]):
        if row["task"].endswith(BULK_TASK):
            return row["end"] - before["end"]
    return None


def measure(admin: Admin, env: dict, name: str, extra: dict, times: Path, users: int, lab_pid: int) -> dict:
    admin.reset()
    cpu0 = lab_cpu_s(lab_pid)
    wall = playbook(env, name, extra, times)
    cpu = lab_cpu_s(lab_pid) - cpu0
    counts = admin.counts()
    out = {"wall_s": round(wall, 2), "requests": counts["requests"], "writes": counts["writes"],
           "requests_per_account": round(counts["requests"] / users, 2), "by_method_path": counts["by_method_path"],
           "lab_cpu_s": round(cpu, 2),
           "lab_cpu_ms_per_request": round(1000 * cpu / counts["requests"], 1) if counts["requests"] else None}
    task = task_seconds(times)
    if task is not None:
        out["task_s"] = round(task, 2)
    return out


def load() -> str:
    try:
        return " ".join("%.2f" % x for x in os.getloadavg())
    except OSError:
        return "?"


def run(users, naive: bool = True) -> dict | list:
    """Start one lab with as many developer accounts as the largest size, measure each size there (its own
    product, so no size finds another's applications; the naive loop only at the smallest size), stop the
    lab; return the figures (a list when ``users`` is a list of sizes)."""
    sizes = sorted(set(users)) if isinstance(users, (list, tuple)) else [users]
    lab_dir = Path(tempfile.mkdtemp(prefix="bench-access-"))
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "maaslab", "up", "--dir", str(lab_dir), "--users", str(max(sizes))],
                   check=True, capture_output=True, cwd=ROOT)
    lab_up_s = round(time.monotonic() - t0, 2)
    results = []
    try:
        info = json.loads((lab_dir / "lab.json").read_text())
        env = dict(os.environ, **info["env"], ANSIBLE_NOCOLOR="1")
        env["PATH"] = f"{ROOT / '.venv/bin'}:{env['PATH']}"
        env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / ".venv/collections")
        env["ANSIBLE_CALLBACK_PLUGINS"] = str(ROOT / "hack/callbacks")
        env["ANSIBLE_CALLBACKS_ENABLED"] = "task_times"
        admin = Admin(env)
        times = lab_dir / "task-times.jsonl"
        for n in sizes:
            result: dict = {"users": n, "lab_users": max(sizes), "lab_up_s": lab_up_s, "load_before": load()}
            runs = {}
            if naive and n == sizes[0]:
                admin.product(f"bench-naive-{n}")
                runs["naive"] = measure(admin, env, "naive_uri", {"bench_product": f"bench-naive-{n}", "bench_users": n},
                                        times, n, info["pid"])
            admin.product(f"bench-collection-{n}")
            extra = {"bench_product": f"bench-collection-{n}", "bench_users": n}
            runs["first"] = measure(admin, env, "collection", extra, times, n, info["pid"])
            runs["rerun"] = measure(admin, env, "collection", extra, times, n, info["pid"])
            result["runs"] = runs
            result["load_after"] = load()
            first, rerun = runs["first"], runs["rerun"]
            result["rerun_vs_first_wall"] = round(rerun["wall_s"] / first["wall_s"], 3)
            if "task_s" in first and "task_s" in rerun:
                result["rerun_vs_first_task"] = round(rerun["task_s"] / first["task_s"], 3)
            if "naive" in runs:
                result["speedup_vs_naive"] = round(runs["naive"]["wall_s"] / first["wall_s"], 1)
            results.append(result)
        if len(results) > 1:
            small = results[0]
            for r in results[1:]:
                r["vs_smallest"] = {"size": round(r["users"] / small["users"], 2),
                                    "wall": round(r["runs"]["first"]["wall_s"] / small["runs"]["first"]["wall_s"], 2)}
                if "task_s" in r["runs"]["first"] and "task_s" in small["runs"]["first"]:
                    r["vs_smallest"]["task"] = round(r["runs"]["first"]["task_s"] / small["runs"]["first"]["task_s"], 2)
    finally:
        subprocess.run([sys.executable, "-m", "maaslab", "down", "--dir", str(lab_dir)], capture_output=True,
                       check=False, cwd=ROOT)
        shutil.rmtree(lab_dir, ignore_errors=True)
    return results if isinstance(users, (list, tuple)) else results[0]


def table(result: dict) -> str:
    n = result["users"]
    lines = [f"N={n} accounts (lab up {result['lab_up_s']}s; load {result['load_before']} -> {result.get('load_after')})",
             f"{'run':8} {'wall s':>8} {'task s':>8} {'admin req':>10} {'writes':>7} {'req/account':>12} {'lab ms/req':>11}"]
    for name, r in result["runs"].items():
        lines.append(f"{name:8} {r['wall_s']:8.2f} {r.get('task_s', float('nan')):8.2f} {r['requests']:10d} "
                     f"{r['writes']:7d} {r['requests_per_account']:12.2f} {r['lab_cpu_ms_per_request'] or 0:11.1f}")
    extra = [f"re-run/first wall {result['rerun_vs_first_wall']:.0%}"]
    if "rerun_vs_first_task" in result:
        extra.append(f"re-run/first bulk task {result['rerun_vs_first_task']:.0%}")
    if "speedup_vs_naive" in result:
        extra.append(f"collection first run {result['speedup_vs_naive']}x faster than the naive loop")
    return "\n".join(lines + ["; ".join(extra)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, action="append", help="accounts (repeatable; default 200)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--skip-naive", action="store_true", help="leave out the (slow) naive uri loop")
    args = ap.parse_args()
    results = run(args.users or [200], naive=not args.skip_naive)
    for result in results:
        print(table(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results if len(results) > 1 else results[0], indent=2) + "\n")


if __name__ == "__main__":
    main()
