"""kill -9 at any moment, then a re-run converges (issue 10 item 4).

One new model with two accounts is onboarded by a chain of runs, each killed with SIGKILL on its whole
process group (ansible-playbook and its module processes) at a different point, detected by watching the
playbook's stdout for a task name or by polling porta and the cluster, never by a timer:
  1. after the Backend apply          (stdout: the Backend wait starts)
  2. after the Product apply          (stdout: the Product wait starts)
  3. while the ProxyConfigPromote exists (stdout: the promotion wait starts, and kubectl sees the PCP)
  4. during the accounts' applications (porta holds the first account's application, not yet both)
then a run to the end must converge: rc 0, one product, one application per account read back from
porta, keys that work at the gateway, no orphan Secret or CR, no ProxyConfigPromote left (Failed or
not), production == staging; a further run reports changed=0.

Every run passes the same maas_lock_holder, so a re-run takes over the Lease its killed predecessor
left at once (maas.threescale.k8s_lease: take_own); the default per-run random identity would wait
maas_lock_duration for it to expire (covered by test_concurrency.py). A stable identity is opt-in
because two runs that may overlap must never share one.

Upstream: kubernetes staging/src/k8s.io/client-go/tools/leaderelection/leaderelection.go (a holder
that finds its own identity in the Lease keeps it), 3scale-operator
controllers/capabilities/proxyconfigpromote_controller.go (a PCP is one-shot; deleteCR on success).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid

from conftest import REPO
from dryrun_helpers import playbook, recap
from test_modules import Porta
from test_reliability import assert_converged, fault, kubectl_items, model

ROLE = "TASK [maas.threescale.maas_product : "


def run_until(lab_env, extra_vars: dict, trigger, timeout: float = 300.0):
    """Start the onboarding in its own process group, poll trigger(stdout so far) until it is true,
    then SIGKILL the group. Returns (seconds from start to kill, detail from the trigger)."""
    args = ["ansible-playbook", "-i", "inventories/lab", "playbooks/onboard_model.yml", "-e", json.dumps(extra_vars)]
    proc = subprocess.Popen(args, cwd=REPO, env=dict(lab_env, ANSIBLE_NOCOLOR="1", PYTHONUNBUFFERED="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    t0 = time.monotonic()
    try:
        while True:
            detail = trigger("".join(lines))
            if detail:
                os.killpg(proc.pid, signal.SIGKILL)
                return time.monotonic() - t0, detail
            assert proc.poll() is None, "the run ended before the kill point:\n" + "".join(lines)[-4000:]
            assert time.monotonic() - t0 < timeout, "kill point not reached:\n" + "".join(lines)[-4000:]
            time.sleep(0.05)  # polling interval of the trigger, not a stand-in for a condition
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(timeout=10)


def test_kill_at_four_points_then_rerun_converges(lab, lab_env):
    name = "kill" + uuid.uuid4().hex[:6]
    accounts = ["user1", "user5"]
    porta = Porta(lab_env)
    extra = {"maas_models": [model(lab_env, name, accounts)], "maas_smoke_test": False,
             "maas_lock_holder": f"kill-test-{name}",
             # One application create at a time, so the kill can land between the two accounts.
             "maas_access_concurrency": 1}

    def after_task(task):
        return lambda out: (ROLE + task) in out and task

    def pcp_exists(out):
        if (ROLE + "Promote with ProxyConfigPromotes") not in out:
            return None
        pcps = [o["metadata"]["name"] for o in kubectl_items(lab_env, "proxyconfigpromotes.capabilities.3scale.net")
                if o["spec"].get("productCRName") == name]
        return pcps and f"PCP {pcps[0]} exists"

    def first_application(out):
        if "TASK [maas.threescale.maas_access : Ensure one application per account" not in out:
            return None
        sid = porta.product(name)["id"]
        have = [a for a in accounts if any(x["service_id"] == sid for x in porta.apps(porta.find(a)["id"]))]
        return len(have) == 1 and f"porta holds the application of {have[0]} only"

    points = [("after the Backend apply", after_task("Wait for the Backend to be synced"), {}),
              ("after the Product apply", after_task("Wait for the Product to be synced"), {}),
              # porta takes 1 s to deploy and promote: the PCP lives long enough to be seen and killed under.
              ("while the ProxyConfigPromote exists", pcp_exists,
               {"porta": ["delay=1", "exclude_operator=false", "path_regex=/proxy/(deploy|configs/.*/promote)"]}),
              # Each application create takes 1 s at porta: the kill lands between the two accounts.
              ("during the accounts' applications", first_application,
               {"porta": ["delay=1", "path_regex=/applications.json$", 'verbs=["POST"]']})]
    tried = []
    t_all = time.monotonic()
    for label, trigger, faults in points:
        for component, switches in faults.items():
            fault(lab["dir"], component, *switches)
        try:
            at, detail = run_until(lab_env, extra, trigger)
        finally:
            fault(lab["dir"], "clear")
        tried.append(f"{label}: killed at {at:.1f}s ({detail})")
    leftover = [o["metadata"]["name"] for o in kubectl_items(lab_env, "proxyconfigpromotes.capabilities.3scale.net")
                if o["spec"].get("productCRName") == name]
    proc, rerun_s = playbook(lab_env, "onboard_model", extra)
    assert proc.returncode == 0, proc.stdout[-5000:]
    figures = assert_converged(lab_env, name, accounts)
    again, again_s = playbook(lab_env, "onboard_model", extra)
    assert again.returncode == 0 and recap(again)["changed"] == 0, again.stdout[-4000:]
    print(f"\nkill -9 points tried ({time.monotonic() - t_all:.0f}s in all):\n  " + "\n  ".join(tried)
          + f"\n  PCPs left by the killed runs: {leftover or 'none'}"
          + f"\n  re-run converged in {rerun_s:.0f}s (rc 0, {figures}); next run changed=0 in {again_s:.0f}s")


def test_a_killed_run_lets_the_next_one_go_on_within_two_minutes(lab, lab_env):
    """Issue 19 item 7: with the default identity (random per run) and the default Lease of 60 s, kept
    renewed by a background task only while its ansible-playbook process lives, a run killed with -9
    does not lock the next one out for long: the re-run takes the Lease over once it expires and
    converges within 2 minutes, nothing doubled."""
    name = "kilt" + uuid.uuid4().hex[:6]
    accounts = ["user1", "user5"]
    extra = {"maas_models": [model(lab_env, name, accounts)], "maas_lock_poll_interval": 0.5}

    def after_product_apply(out):
        return (ROLE + "Wait for the Product to be synced") in out and "the Product wait started"
    at, _detail = run_until(lab_env, extra, after_product_apply)
    lease = json.loads(subprocess.run(["kubectl", "get", "lease", "-n", "3scale", f"maas-onboard-{name}", "-o", "json"],
                                      env=lab_env, check=True, capture_output=True, text=True).stdout)
    assert lease["spec"]["leaseDurationSeconds"] == 60
    t0 = time.monotonic()
    proc, rerun_s = playbook(lab_env, "onboard_model", extra)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert rerun_s < 120, f"the re-run took {rerun_s:.0f}s: the killed run's Lease was still renewed"
    # It waited for the killed run's Lease (held by that run's random identity) to expire, then took it.
    assert f"Holding maas-onboard-{name} after waiting" in proc.stdout and lease["spec"]["holderIdentity"] in proc.stdout, \
        proc.stdout[-3000:]
    figures = assert_converged(lab_env, name, accounts)
    print(f"\nkilled at {at:.1f}s; the re-run took the expired Lease over and converged in {time.monotonic() - t0:.0f}s "
          f"({figures})")
