"""Helpers shared by the dry-run, bad-input and concurrency tests: run a playbook of the collection
against the lab, and read back, independently of the collection, what porta and the cluster hold."""
from __future__ import annotations

import json
import re
import subprocess
import time

import requests

from conftest import REPO

KINDS = ["backends.capabilities.3scale.net", "products.capabilities.3scale.net", "activedocs.capabilities.3scale.net",
         "proxyconfigpromotes.capabilities.3scale.net", "secrets", "leases.coordination.k8s.io"]


def playbook(lab_env, name, extra_vars, *args, timeout=600, env=None):
    """ansible-playbook playbooks/<name>.yml -e <json> *args; returns (process, wall seconds)."""
    t0 = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", "inventories/lab", f"playbooks/{name}.yml",
                           "-e", json.dumps(extra_vars), *args],
                          cwd=REPO, env=dict(lab_env, ANSIBLE_NOCOLOR="1", **(env or {})), capture_output=True, text=True,
                          check=False, timeout=timeout)
    return proc, time.monotonic() - t0


def recap(proc) -> dict:
    line = proc.stdout.split("PLAY RECAP")[-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def porta_writes(lab_env) -> dict:
    """Every non-GET request porta's admin API has answered so far, by method and path (lab stats)."""
    s = requests.Session()
    s.trust_env = False
    counts = s.get(lab_env["THREESCALE_ADMIN_URL"] + "/lab/stats.json", verify=lab_env["THREESCALE_CA_BUNDLE"],
                   timeout=30).json()["by_method_path"]
    return {k: n for k, n in counts.items() if not k.startswith(("GET ", "HEAD "))}


def cluster_objects(lab_env) -> dict:
    """name -> resourceVersion of every object of KINDS in the 3scale namespace, read with kubectl."""
    out = {}
    for kind in KINDS:
        items = json.loads(subprocess.run(["kubectl", "get", kind, "-n", "3scale", "-o", "json"], env=lab_env,
                                          capture_output=True, text=True, check=True).stdout)["items"]
        for o in items:
            out[f"{kind}/{o['metadata']['name']}"] = o["metadata"]["resourceVersion"]
    return out


def writes_between(before: dict, after: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
