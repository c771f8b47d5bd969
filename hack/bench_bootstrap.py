"""Benchmark: the workshop bootstrap end to end for N users, against a lab of its own.

    .venv/bin/python hack/bench_bootstrap.py [--users 200] [--users 1000] [--json out.json]

One lab; for each size N, `playbooks/bootstrap_workshop.yml` with N new users (prefix ``wsN-``, so no size
finds another's accounts): the accounts with generated passwords, the lab inventory's model onboarded for
all of them (one application each), the credentials file. Then the same run again (idempotent: changed=0
but for the credentials file, which is rewritten only when its content changes). Requests are the lab's
porta counters (every client but APIcast's configuration polling); lab CPU is the lab process's.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from bench_models import ROOT, counted, lab_cpu_s, lab_down, lab_env, lab_stats, lab_up


def bootstrap(env: dict, users: int, prefix: str, credentials: Path) -> dict:
    t0 = time.monotonic()
    out = subprocess.run(["ansible-playbook", "-i", "inventories/lab", "playbooks/bootstrap_workshop.yml",
                          "-e", json.dumps({"maas_workshop_users": users, "maas_workshop_user_prefix": prefix,
                                            "maas_workshop_credentials_file": str(credentials)})],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    if out.returncode:
        raise RuntimeError(f"bootstrap failed (rc {out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}")
    recap = re.search(r"ok=(\d+)\s+changed=(\d+)", out.stdout)
    return {"wall_s": round(wall, 1), "changed": int(recap.group(2))}


def rows_with_keys(credentials: Path) -> int:
    """Rows of the credentials file that carry a password and a key (never printed)."""
    with credentials.open(newline="", encoding="utf-8") as f:
        return sum(1 for row in csv.DictReader(f) if any(row.values()) and row.get("password") and row.get("api_key"))


def run(users=200) -> list[dict]:
    sizes = sorted(set(users)) if isinstance(users, (list, tuple)) else [users]
    directory = Path(tempfile.mkdtemp(prefix="bench-bootstrap-"))
    info, _started = lab_up(directory, "--users", "0")
    results = []
    try:
        env = lab_env(info)
        for n in sizes:
            credentials = directory / f"credentials-{n}.csv"
            entry: dict = {"users": n}
            for key in ("first", "rerun"):
                before, cpu0 = lab_stats(info), lab_cpu_s(info["pid"])
                run_ = bootstrap(env, n, f"ws{n}-", credentials)
                run_.update(counted(info, before))
                run_["lab_cpu_s"] = round(lab_cpu_s(info["pid"]) - cpu0, 1)
                run_["admin_requests_per_user"] = round(run_["admin_requests"] / n, 2)
                entry[key] = run_
            entry["credentials_rows"] = rows_with_keys(credentials)
            entry["credentials_bytes"] = credentials.stat().st_size
            results.append(entry)
        for r in results[1:]:
            r["vs_smallest"] = {"size": round(r["users"] / results[0]["users"], 2),
                                "wall": round(r["first"]["wall_s"] / results[0]["first"]["wall_s"], 2)}
        return results
    finally:
        lab_down(directory)


def table(results: list[dict]) -> str:
    lines = [f"{'run':22} {'wall s':>7} {'changed':>7} {'admin req':>9} {'writes':>6} {'req/user':>8} {'lab cpu s':>9}"]
    for r in results:
        for key in ("first", "rerun"):
            x = r[key]
            lines.append(f"{str(r['users']) + ' users, ' + key:22} {x['wall_s']:7.1f} {x['changed']:7d} "
                         f"{x['admin_requests']:9d} {x['admin_writes']:6d} {x['admin_requests_per_user']:8.2f} "
                         f"{x['lab_cpu_s']:9.1f}")
        lines.append(f"{r['users']} users: credentials file {r['credentials_rows']} rows with a password and a key, "
                     f"{r['credentials_bytes']} bytes" + (f"; {r['vs_smallest']['wall']}x the time of "
                                                          f"{results[0]['users']} users" if "vs_smallest" in r else ""))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, action="append", help="workshop users (repeatable; default 200)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    results = run(args.users or [200])
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
