"""`make bench`: the collection's scale figures, each from a lab of its own, in one table (+ JSON).

    .venv/bin/python hack/bench.py [--users 200,1000] [--models 10,50] [--bootstrap 200,1000] [--json build/bench.json]
                                   [--no-naive]

Not a test: it asserts nothing, it measures. Every figure comes from one of these, which can be run alone:
  hack/bench_access.py   naive ansible.builtin.uri loop vs the collection's bulk access (first run, re-run),
                         admin API requests and writes as the lab's porta counted them, every size in one lab
  hack/bench_models.py   one model vs N models in one onboarding run, and their idempotent re-run
  hack/bench_bootstrap.py  the workshop bootstrap end to end for N users (and its re-run)
  hack/measure_waits.py  how long after an independent watch saw the last CR ready one cr_wait returned
The machine's load average is printed with the table: on a shared machine the wall times move with it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_access  # noqa: E402  (hack/ is not a package)
import bench_bootstrap  # noqa: E402
import bench_models  # noqa: E402
import measure_waits  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def rows_of(figures: dict) -> list[tuple[str, str, str]]:
    """(what, measured, note) for the summary table."""
    rows = []
    models = figures.get("models")
    if models:
        rows.append(("lab start (maaslab up, seconds)", f"{models['lab_start_s']:.2f}",
                     f"in-process start-up {models['lab_startup_seconds'].get('total', '?')} s"))
        rows.append(("lab memory (RSS at start / peak, MiB)",
                     f"{models['lab_memory_start']['rss_mib']} / {models['lab_memory_end']['peak_rss_mib']}",
                     f"after {1 + sum(int(n) * 2 for n in models['sizes'])} onboarding runs"))
    access = figures.get("access") or []
    for acc in access:
        users, runs = acc["users"], acc["runs"]
        for label, key in (("naive uri loop", "naive"), ("collection, first run", "first"), ("collection, re-run", "rerun")):
            if key in runs:
                run = runs[key]
                rows.append((f"access N={users}: {label}", f"{run['wall_s']:.1f} s",
                             f"{run['requests']} admin requests ({run['requests_per_account']}/account), {run['writes']} "
                             f"writes; lab {run['lab_cpu_ms_per_request']} ms CPU per request"))
        note = f"re-run/first {acc['rerun_vs_first_wall']:.2f} (wall)"
        if "speedup_vs_naive" in acc:
            note = f"{acc['speedup_vs_naive']}x faster than the naive loop; " + note
        if "vs_smallest" in acc:
            vs = acc["vs_smallest"]
            note += (f"; {vs['size']}x the accounts of N={access[0]['users']} in {vs['wall']}x the time "
                     f"({vs.get('task', '?')}x for the bulk task), same lab")
        rows.append((f"access N={users}: summary", "", note))
    if models:
        one = models["one"]
        rows.append(("onboarding: one model", f"{one['wall_s']:.1f} s", _model_note(one)))
        for n, size in models["sizes"].items():
            for label, key in ((f"{n} models, one run", "many"), (f"{n} models, re-run", "many_rerun")):
                rows.append((f"onboarding: {label}", f"{size[key]['wall_s']:.1f} s", _model_note(size[key])))
            rows.append((f"onboarding: {n} models / one model", f"{size['ratio_many_to_one']}x",
                         f"wall time (re-run {size['ratio_rerun_to_one']}x)"))
    for boot in figures.get("bootstrap") or []:
        for key, label in (("first", "first run"), ("rerun", "re-run")):
            run = boot[key]
            rows.append((f"bootstrap {boot['users']} users: {label}", f"{run['wall_s']:.1f} s",
                         f"changed={run['changed']}, {run['admin_requests']} admin requests "
                         f"({run['admin_requests_per_user']}/user, {run['admin_writes']} writes), lab {run['lab_cpu_s']} CPU s"))
        note = f"credentials file: {boot['credentials_rows']} rows with password and key"
        if "vs_smallest" in boot:
            note += f"; {boot['vs_smallest']['size']}x the users in {boot['vs_smallest']['wall']}x the time, same lab"
        rows.append((f"bootstrap {boot['users']} users: summary", "", note))
    waits = figures.get("waits")
    if waits:
        for label, key in (("one model (4 CRs)", "one_model"), (f"{waits['batch']['crs']} CRs", "batch")):
            case = waits[key]
            rows.append((f"readiness wait, {label}", f"{case['return_delay']} s",
                         f"after the last CR was ready (independent watch); each CR noticed within {case['max_notice_delay']} s"))
    return rows


def _model_note(run: dict) -> str:
    return (f"changed={run['changed']}, {run['admin_requests']} admin requests ({run['admin_writes']} writes), "
            f"{run['kube_requests']} Kubernetes requests ({run['kube_requests_per_model']}/model), "
            f"{run['cpu_s']} CPU s (lab {run['lab_cpu_s']})")


def table(figures: dict) -> str:
    rows = rows_of(figures)
    width = max(len(r[0]) for r in rows) if rows else 10
    lines = [f"{'measure':{width}}  {'value':>12}  note", "-" * (width + 40)]
    lines += [f"{what:{width}}  {value:>12}  {note}" for what, value, note in rows]
    lines.append(f"(machine: {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}; "
                 f"load average before {figures['load_before']}, after {figures['load_after']}; "
                 f"measured {figures['started']}, {figures['seconds']:.0f} s in all)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="200,1000", help="account counts for the access benchmark (comma-separated)")
    parser.add_argument("--models", default="10,50", help="models per onboarding run (comma-separated)")
    parser.add_argument("--bootstrap", default="200,1000", help="workshop users for the bootstrap (comma-separated; "
                        "empty to skip)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive uri loop (minutes at N=200)")
    parser.add_argument("--json", type=Path, default=ROOT / "build" / "bench.json")
    args = parser.parse_args()
    # What the tools write to the temporary directory (the labs, the kubernetes client's discovery cache
    # k8srcp-*.json and CA files, ansible-playbook's files) goes to one directory, removed at the end.
    scratch = tempfile.mkdtemp(prefix="maas-bench-")
    os.environ["TMPDIR"] = scratch
    tempfile.tempdir = None
    try:
        run(args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def sizes(text: str) -> list[int]:
    """"200,1000" -> [200, 1000] ("" -> [])."""
    return [int(n) for n in text.split(",") if n.strip()]


def run(args) -> None:
    t0 = time.monotonic()
    figures: dict = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "load_before": [round(x, 2) for x in os.getloadavg()]}
    if sizes(args.users):
        print(f"bench: access for {args.users} accounts, one lab ...", flush=True)
        figures["access"] = bench_access.run(sizes(args.users), naive=not args.no_naive)
    print(f"bench: one model vs {args.models} models ...", flush=True)
    figures["models"] = bench_models.run(sizes(args.models))
    if sizes(args.bootstrap):
        print(f"bench: workshop bootstrap for {args.bootstrap} users ...", flush=True)
        figures["bootstrap"] = bench_bootstrap.run(sizes(args.bootstrap))
    print("bench: readiness waits ...", flush=True)
    figures["waits"] = measure_waits.run(models=sizes(args.models)[0])
    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
    figures["seconds"] = time.monotonic() - t0
    print(table(figures))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"JSON: {args.json}")


if __name__ == "__main__":
    main()
