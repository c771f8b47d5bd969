"""Time from applying a CR to its ready condition on the lab's 3scale operator (the real one).

    .venv/bin/python hack/measure_sync.py [--models 5] [--json FILE]

Starts its own lab, then for each of --models models applies a Backend,
waits for Synced, applies a Product (8 mapping rules, 8 methods, 4 policies, 1 plan), waits for
Synced, then a ProxyConfigPromote (production) and waits for Ready. Each wait is a Kubernetes watch
(no polling); the clock starts when the create call returns. Prints the median and the maximum of
each kind, and the whole lab's start time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from maaslab.kube.client import KubeClient, Resource

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins" / "plugin_utils"))
import catalog  # noqa: E402  (the collection's own CR builder: what the role applies)

API = "capabilities.3scale.net/v1beta1"
KINDS = {"Backend": (Resource(API, "backends"), "Synced"), "Product": (Resource(API, "products"), "Synced"),
         "ProxyConfigPromote": (Resource(API, "proxyconfigpromotes"), "Ready")}


def ready(obj, ctype):
    status = obj.get("status") or {}
    if ctype == "Synced" and status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return any(c.get("type") == ctype and c.get("status") == "True" for c in status.get("conditions") or [])


def apply_and_wait(kube: KubeClient, obj: dict, timeout: float = 120) -> float:
    res, ctype = KINDS[obj["kind"]]
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    created = kube.create(res, obj)
    t0 = time.monotonic()
    rv = created["metadata"]["resourceVersion"]
    while time.monotonic() - t0 < timeout:
        for _etype, seen in kube.watch(res, ns, resource_version=rv, timeout_seconds=30,
                                       field_selector=f"metadata.name={name}"):
            rv = seen["metadata"]["resourceVersion"]
            if ready(seen, ctype):
                return time.monotonic() - t0
    raise RuntimeError(f"{obj['kind']} {name} not {ctype} after {timeout}s")


def operator_version() -> str:
    mod = (ROOT / "lab" / "operator" / "go.mod").read_text().split()
    return "github.com/3scale/3scale-operator " + mod[mod.index("github.com/3scale/3scale-operator") + 1]


def run(models: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="measure-sync-") as d:
        subprocess.run([sys.executable, "-m", "maaslab", "up", "--dir", d], check=True,
                       capture_output=True)
        try:
            info = json.loads((Path(d) / "lab.json").read_text())
            kube = KubeClient(info["urls"]["kube"], info["credentials"]["kube_admin_token"],
                              ca_file=info["tls"]["ca_cert"])
            settings = {"api_version": API, "namespace": "3scale", "plan_system_name": "standard",
                        "plan_name": "Standard Plan", "plan_published": True, "plan_requires_approval": False,
                        "upstream_timeout": 180, "cors_allow_origin": "*", "activedoc_published": True,
                        "provider_account_ref": ""}
            times: dict[str, list[float]] = {k: [] for k in KINDS}
            for i in range(models):
                model = catalog.catalog([{"name": f"sync{i}", "endpoint": info["urls"]["model"],
                                          "model_id": "tinyllama/tinyllama-1.1b-chat-v1.0"}])["models"][0]
                item = catalog.product_resources(model, settings)
                times["Backend"].append(apply_and_wait(kube, item["backend"]))
                times["Product"].append(apply_and_wait(kube, item["product"]))
                pcp = catalog.promote_requests([item], 1, settings)[0]["definition"]
                times["ProxyConfigPromote"].append(apply_and_wait(kube, pcp))
            return {"operator": operator_version(), "models": models, "lab_start_s": info["startup_seconds"]["total"],
                    **{k: {"median_s": round(statistics.median(v), 3), "max_s": round(max(v), 3)}
                       for k, v in times.items()}}
        finally:
            subprocess.run([sys.executable, "-m", "maaslab", "down", "--dir", d], check=False, capture_output=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=5)
    p.add_argument("--json")
    args = p.parse_args()
    result = run(args.models)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
