"""maas.threescale.k8s_lease against the lab's Kubernetes API server, run as Ansible runs it
(`ansible localhost -m maas.threescale.k8s_lease`, kubernetes.core's client, the lab kubeconfig from
K8S_AUTH_KUBECONFIG), every outcome read back independently with kubectl and the lab's request counters
(kube `/lab/stats.json`).

Upstream: kubernetes staging/src/k8s.io/client-go/tools/leaderelection/leaderelection.go (tryAcquireOrRenew:
create when absent, update at the resourceVersion read when expired or our own, renew keeps acquireTime),
resourcelock/leaselock.go, kubernetes pkg/registry/coordination/lease/strategy.go (no unconditional update),
apiserver pkg/registry/rest/delete.go (DeleteOptions preconditions -> 409 Conflict)."""
from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

from conftest import REPO
from test_reliability import fault, kube_token, session

NS = "3scale"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"


def run_module(lab_env, args: dict, check: bool = False, background: bool = False):
    """One module run: (rc, result) or, with background, the Popen (see finish())."""
    cmd = ["ansible", "localhost", "-m", "maas.threescale.k8s_lease", "-a", json.dumps(dict({"namespace": NS}, **args))]
    cmd += ["--check"] if check else []
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(lab_env, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc if background else finish(proc)


def finish(proc):
    out = proc.communicate(timeout=300)[0]
    assert "=> {" in out, out
    return proc.returncode, json.loads(out[out.index("=> {") + 3:])


def kube_requests(lab_env) -> dict:
    """Requests the lab's API server answered on the Leases of the namespace, by 'METHOD path'."""
    by = session(lab_env).get(lab_env["LAB_KUBE_URL"] + "/lab/stats.json", timeout=30,
                              headers={"Authorization": "Bearer " + kube_token(lab_env)}).json()["by_method_path"]
    return {k: n for k, n in by.items() if k.split(" ", 1)[1].startswith(LEASES)}


def requests_between(before: dict, after: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def by_method(delta: dict) -> dict:
    out: dict = {}
    for k, n in delta.items():
        out[k.split(" ")[0]] = out.get(k.split(" ")[0], 0) + n
    return out


def kubectl_lease(lab_env, name):
    p = subprocess.run(["kubectl", "get", "leases.coordination.k8s.io", name, "-n", NS, "-o", "json"], env=lab_env,
                       capture_output=True, text=True, check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


def put_foreign_lease(lab_env, tmp_path, name, holder, renewed_ago_s=0, duration_s=60):
    when = (datetime.now(timezone.utc) - timedelta(seconds=renewed_ago_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                "metadata": {"name": name, "namespace": NS},
                                "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration_s,
                                         "acquireTime": when, "renewTime": when, "leaseTransitions": 2}}))
    subprocess.run(["kubectl", "create", "-f", str(path)], env=lab_env, check=True, capture_output=True)
    return kubectl_lease(lab_env, name)


def uniq(prefix, n=1):
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}-{tag}-{i}" for i in range(n)]


def test_ten_leases_in_one_call_two_requests_each(lab_env):
    names = uniq("ten", 10)
    before = kube_requests(lab_env)
    t0 = time.monotonic()
    rc, got = run_module(lab_env, {"names": names[::-1], "holder": "batch-run", "lease_duration": 120})
    t_acquire = time.monotonic() - t0
    assert rc == 0 and got["changed"], got
    acquired = requests_between(before, kube_requests(lab_env))
    assert by_method(acquired) == {"GET": 10, "POST": 10} and got["requests"] == 20
    assert [e["name"] for e in got["leases"]] == sorted(names)   # sorted order: no deadlock between batches
    for name in names:
        lease = kubectl_lease(lab_env, name)
        assert lease["spec"]["holderIdentity"] == "batch-run" and lease["spec"]["leaseDurationSeconds"] == 120
    held = got["held"]
    assert {h["name"]: h["resource_version"] for h in held} == {
        n: kubectl_lease(lab_env, n)["metadata"]["resourceVersion"] for n in names}

    mid = kube_requests(lab_env)
    rc, renewed = run_module(lab_env, {"state": "renewed", "holder": "batch-run", "held": held})
    assert rc == 0, renewed
    assert by_method(requests_between(mid, kube_requests(lab_env))) == {"PATCH": 10}
    for h in renewed["held"]:
        assert kubectl_lease(lab_env, h["name"])["metadata"]["resourceVersion"] == h["resource_version"]

    mid = kube_requests(lab_env)
    rc, released = run_module(lab_env, {"state": "released", "held": renewed["held"]})
    assert rc == 0 and released["held"] == [] and {e["action"] for e in released["leases"]} == {"released"}
    assert by_method(requests_between(mid, kube_requests(lab_env))) == {"DELETE": 10}
    assert all(kubectl_lease(lab_env, n) is None for n in names)
    print(f"\nten Leases: 3 module runs, 40 Lease requests (acquire 20, renew 10, release 10); acquire took {t_acquire:.1f}s")


def test_contended_lease_is_waited_for_then_taken_when_released(lab_env, tmp_path):
    first, contended = sorted(uniq("wait", 2))
    put_foreign_lease(lab_env, tmp_path, contended, "maas.threescale/other-run", duration_s=300)
    path = f"GET {LEASES}/{contended}"
    reads = kube_requests(lab_env).get(path, 0)
    proc = run_module(lab_env, {"names": [contended, first], "holder": "waiting-run", "wait_timeout": 120,
                                "poll_interval": 0.2}, background=True)
    deadline = time.monotonic() + 120
    while kube_requests(lab_env).get(path, 0) < reads + 3:   # the module has read it held three times
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else ""
        time.sleep(0.1)  # polling interval of the condition
    assert kubectl_lease(lab_env, first)["spec"]["holderIdentity"] == "waiting-run"   # taken before waiting
    subprocess.run(["kubectl", "delete", "leases.coordination.k8s.io", contended, "-n", NS], env=lab_env, check=True,
                   capture_output=True)
    rc, got = finish(proc)
    assert rc == 0, got
    entry = {e["name"]: e for e in got["leases"]}[contended]
    assert entry["action"] == "create" and entry["holder_seen"] == "maas.threescale/other-run" and entry["waited"] > 0
    assert kubectl_lease(lab_env, contended)["spec"]["holderIdentity"] == "waiting-run"
    run_module(lab_env, {"state": "released", "held": got["held"]})
    print(f"\ncontended Lease: waited {entry['waited']:.1f}s for other-run, taken once released")


def test_a_live_lease_not_released_in_time_fails_naming_the_holder_and_gives_back_the_others(lab_env, tmp_path):
    first, held_elsewhere = sorted(uniq("timeout", 2))
    put_foreign_lease(lab_env, tmp_path, held_elsewhere, "maas.threescale/busy-run", duration_s=300)
    rc, got = run_module(lab_env, {"names": [first, held_elsewhere], "holder": "late-run", "wait_timeout": 1,
                                   "poll_interval": 0.2})
    assert rc != 0 and got["reason"] == "held_by_other" and got["holder_seen"] == "maas.threescale/busy-run"
    assert got["lease_name"] == held_elsewhere
    assert "busy-run" in got["msg"] and "Fix:" in got["msg"] and f"released {first}" in got["msg"]
    assert kubectl_lease(lab_env, first) is None                     # the one it took was given back
    assert kubectl_lease(lab_env, held_elsewhere)["spec"]["holderIdentity"] == "maas.threescale/busy-run"


def test_expired_lease_is_taken_over_at_once(lab_env, tmp_path):
    (name,) = uniq("expired")
    old = put_foreign_lease(lab_env, tmp_path, name, "maas.threescale/killed-run", renewed_ago_s=3600, duration_s=60)
    t0 = time.monotonic()
    rc, got = run_module(lab_env, {"names": [name], "holder": "next-run", "wait_timeout": 60})
    assert rc == 0 and got["leases"][0]["action"] == "take_expired" and got["waited"] == 0, got
    now = kubectl_lease(lab_env, name)
    assert now["metadata"]["uid"] == old["metadata"]["uid"]             # updated in place, not recreated
    assert now["spec"]["holderIdentity"] == "next-run" and now["spec"]["leaseTransitions"] == 3
    run_module(lab_env, {"state": "released", "held": got["held"]})
    print(f"\nexpired Lease of killed-run taken over in {time.monotonic() - t0:.1f}s (one module run)")


def test_release_of_a_lease_another_run_took_over_is_refused(lab_env):
    (name,) = uniq("foreign")
    rc, got = run_module(lab_env, {"names": [name], "holder": "slow-run", "lease_duration": 1})
    assert rc == 0, got
    # slow-run's Lease expired; another run takes it over with its own module run
    deadline = time.monotonic() + 30
    while True:
        rc, other = run_module(lab_env, {"names": [name], "holder": "fast-run", "wait_timeout": 0})
        if rc == 0:
            break
        assert time.monotonic() < deadline, other
    rc, released = run_module(lab_env, {"state": "released", "held": got["held"]})
    assert rc == 0 and released["leases"] == [{"name": name, "action": "not_ours", "holder_seen": "fast-run"}]
    assert not released["changed"]
    assert kubectl_lease(lab_env, name)["spec"]["holderIdentity"] == "fast-run"
    rc, renewed = run_module(lab_env, {"state": "renewed", "holder": "slow-run", "held": got["held"]})
    assert rc != 0 and renewed["reason"] == "lost" and "fast-run" in renewed["msg"]
    run_module(lab_env, {"state": "released", "held": other["held"]})
    assert kubectl_lease(lab_env, name) is None


def test_two_runs_at_once_on_the_same_names_exactly_one_wins_each(lab_env):
    outcomes = []
    for _round in range(3):
        names = uniq("race", 5)
        procs = {h: run_module(lab_env, {"names": names, "holder": h, "wait_timeout": 0}, background=True)
                 for h in ("run-a", "run-b")}
        results = {h: finish(p) for h, p in procs.items()}
        winners = [h for h, (rc, _r) in results.items() if rc == 0]
        assert len(winners) == 1, results
        loser = ({"run-a", "run-b"} - set(winners)).pop()
        rc, lost = results[loser]
        assert lost["reason"] == "held_by_other" and lost["holder_seen"] == winners[0], lost
        for name in names:
            assert kubectl_lease(lab_env, name)["spec"]["holderIdentity"] == winners[0]
        assert sorted(h["name"] for h in results[winners[0]][1]["held"]) == sorted(names)
        run_module(lab_env, {"state": "released", "held": results[winners[0]][1]["held"]})
        outcomes.append(f"{winners[0]} won all 5 ({loser} stopped at {lost['lease_name'].rsplit('-', 1)[1]})")
    print("\nraces:", "; ".join(outcomes))


def test_check_mode_reads_and_writes_nothing(lab_env, tmp_path):
    free, busy, stale = sorted(uniq("check", 3))
    put_foreign_lease(lab_env, tmp_path, busy, "maas.threescale/live-run", duration_s=300)
    put_foreign_lease(lab_env, tmp_path, stale, "maas.threescale/dead-run", renewed_ago_s=3600, duration_s=60)
    versions = {n: (kubectl_lease(lab_env, n) or {}).get("metadata", {}).get("resourceVersion") for n in (free, busy, stale)}
    before = kube_requests(lab_env)
    rc, got = run_module(lab_env, {"names": [free, busy, stale], "holder": "dry-run", "wait_timeout": 60}, check=True)
    assert rc == 0 and got["changed"] and got["held"] == []
    assert {e["name"]: e["action"] for e in got["leases"]} == {free: "create", busy: "wait", stale: "take_expired"}
    assert set(by_method(requests_between(before, kube_requests(lab_env)))) == {"GET"}
    assert {n: (kubectl_lease(lab_env, n) or {}).get("metadata", {}).get("resourceVersion")
            for n in (free, busy, stale)} == versions
    held = [{"name": busy, "uid": "x", "resource_version": versions[busy]}]
    for state in ("renewed", "released"):
        rc, got = run_module(lab_env, {"state": state, "holder": "dry-run", "held": held}, check=True)
        assert rc == 0 and got["changed"]
    assert set(by_method(requests_between(before, kube_requests(lab_env)))) == {"GET"}
    assert kubectl_lease(lab_env, busy)["metadata"]["resourceVersion"] == versions[busy]


def lab_faults(lab_env) -> dict:
    return session(lab_env).get(lab_env["LAB_KUBE_URL"] + "/lab/stats.json", timeout=30,
                                headers={"Authorization": "Bearer " + kube_token(lab_env)}).json()["faults"]


def test_transient_errors_are_retried_inside_the_run(lab, lab_env):
    """A 429 with Retry-After and a connection dropped without an answer (on POST, the method urllib3
    does not retry by itself) cost one more request each, not a failed task nor another module run.
    Upstream: apiserver pkg/storage/cacher (429 + Retry-After), client-go rest/request.go (retries 429 after Retry-After)."""
    names = uniq("retry", 2)
    outcomes = []
    for switches, key, seen in ((["error_rate=1", "error_status=429", "retry_after=1"], "errors", "429"),
                                (["drop_rate=1"], "drops", "no answer")):
        start = lab_faults(lab_env).get(key, 0)
        fault(lab["dir"], "kube", *switches, f"path_regex={LEASES}", 'verbs=["POST"]', "max_count=1")
        try:
            rc, got = run_module(lab_env, {"names": names, "holder": "patient-run", "retry_delay": 0.5})
        finally:
            fault(lab["dir"], "clear")
        assert rc == 0, got
        assert lab_faults(lab_env).get(key, 0) == start + 1
        assert len(got["retried"]) == 1 and seen in got["retried"][0], got["retried"]
        assert all(kubectl_lease(lab_env, n)["spec"]["holderIdentity"] == "patient-run" for n in names)
        rc, rel = run_module(lab_env, {"state": "released", "held": got["held"]})
        assert rc == 0 and all(kubectl_lease(lab_env, n) is None for n in names)
        outcomes.append(got["retried"][0])
    print("\nretried inside the run:", " | ".join(outcomes))


def test_a_run_that_takes_its_own_lease_again_keeps_it(lab_env):
    """maas_lock_holder: a re-run after kill -9 with the same identity takes its Lease at once."""
    (name,) = uniq("own")
    rc, first = run_module(lab_env, {"names": [name], "holder": "job-7"})
    assert rc == 0
    acquired_at = kubectl_lease(lab_env, name)["spec"]["acquireTime"]
    result = {}
    t = threading.Thread(target=lambda: result.update(zip(("rc", "got"), run_module(
        lab_env, {"names": [name], "holder": "job-7", "wait_timeout": 0}))))
    t.start()
    t.join(timeout=120)
    assert result["rc"] == 0 and result["got"]["leases"][0]["action"] == "take_own"
    assert kubectl_lease(lab_env, name)["spec"]["acquireTime"] == acquired_at
    run_module(lab_env, {"state": "released", "held": result["got"]["held"]})
