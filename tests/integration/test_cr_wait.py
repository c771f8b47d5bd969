"""maas.threescale.cr_wait against the lab: the real kubernetes client (through kubernetes.core's
client factory) lists and watches the lab's Kubernetes API while the lab's operator reconciles.

Every figure is compared with an independent watch (hack/measure_waits.py ReadyWatch, the lab's own
KubeClient), and every fault is counted by the lab's kube `/lab/stats.json`, so a run that saw no
fault proves nothing and fails.

Upstream: 3scale-operator controllers/capabilities/*_status_reconciler.go (conditions,
observedGeneration) and activedoc_controller.go (Invalid on a document kin-openapi rejects);
client-go tools/cache/reflector.go (list, watch from the list's resourceVersion, resume after the
server ends a watch, list again on 410); apiserver pkg/storage/cacher/cacher.go (429 + Retry-After
while the watch cache initialises).
"""
from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "hack"))
import measure_waits as mw  # noqa: E402

# A loaded 2-core machine (five workers) stretches the ~0.1 s measured when idle: the target is
# 0.3 s, the assertion allows a margin and the figure is printed.
RETURN_MARGIN = 1.0


@pytest.fixture(scope="module")
def lab_h(lab):
    return mw.LabHandle(lab)


def fault(lab, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "maaslab", "fault", "--dir", lab["dir"], *args], check=True, capture_output=True)


def kube_faults(lab_h) -> dict:
    return dict(lab_h.kube.request("GET", "/lab/stats.json")["faults"])


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def model_objs(lab_h, name: str) -> list[dict]:
    return mw.manifests(name, lab_h.ns, lab_h.info["env"]["LAB_MODEL_URL"])


def timed(lab_h, objs, resources, tmp_path, **extra):
    """Apply objs once ONE cr_wait task watches, return (result, delays against the independent watch)."""
    mw.kubectl_apply(lab_h, [mw.openapi_secret(lab_h.ns)])
    with mw.ReadyWatch(lab_h) as watch:
        result = mw.run_wait(lab_h, resources, apply=objs, work=tmp_path, extra=extra)
        wanted = {(r["kind"], r["name"]) for r in result.get("resources", []) if r["state"] == "ready"}
        deadline = time.monotonic() + 10
        while not wanted <= set(watch.ready) and time.monotonic() < deadline:
            time.sleep(0.02)
    return result, mw.delays(result, watch.ready)


def test_one_cr_returns_right_after_it_is_ready(lab_h, tmp_path):
    name = uniq("cw1")
    backend = model_objs(lab_h, name)[0]
    result, d = timed(lab_h, [backend], [{"kind": "Backend", "name": name, "namespace": lab_h.ns}], tmp_path)
    assert result["rc"] == 0, result["stdout"]
    assert [r["state"] for r in result["resources"]] == ["ready"]
    assert d["ready_before_apply"] == 0 and d["return_delay"] is not None, d
    print(f"\none CR: cr_wait returned {d['return_delay']:.3f}s after the independent watch saw it ready "
          f"(noticed after {d['max_notice_delay']:.3f}s)")
    assert d["return_delay"] <= RETURN_MARGIN


def test_forty_crs_return_right_after_the_last_is_ready(lab_h, tmp_path):
    names = [uniq(f"cw40x{i}") for i in range(10)]
    objs = [o for n in names for o in model_objs(lab_h, n)]
    result, d = timed(lab_h, objs, mw.targets(names, lab_h.ns), tmp_path)
    assert result["rc"] == 0, result["stdout"]
    assert len(result["resources"]) == 40 and {r["state"] for r in result["resources"]} == {"ready"}
    assert result["api"]["lists"] == 4 and result["api"]["watches"] >= 4  # one list+watch per kind
    assert d["ready_before_apply"] == 0 and d["return_delay"] is not None, d
    print(f"\nforty CRs: cr_wait returned {d['return_delay']:.3f}s after the independent watch saw the last ready; "
          f"each noticed within {d['max_notice_delay']:.3f}s; waited {result['elapsed']}s")
    assert d["return_delay"] <= RETURN_MARGIN


def invalid_case(lab_h, tmp_path, **extra):
    """A model whose ActiveDoc points at vLLM's OpenAPI 3.1 document (kin-openapi: Invalid=True), plus a
    Backend that never exists."""
    name = uniq("cwbad")
    objs = model_objs(lab_h, name)[:3]
    objs[2]["spec"]["activeDocOpenAPIRef"] = {"url": lab_h.info["env"]["LAB_MODEL_URL"] + "/openapi.json"}
    resources = mw.targets([name], lab_h.ns)[:3] + [{"kind": "Backend", "name": uniq("ghost"), "namespace": lab_h.ns}]
    t0 = time.monotonic()
    result = mw.run_wait(lab_h, resources, apply=objs, work=tmp_path, **extra)
    return result, time.monotonic() - t0


def test_invalid_fails_fast_with_the_operator_message(lab_h, tmp_path):
    result, seconds = invalid_case(lab_h, tmp_path, timeout=120)
    assert result.get("failed") is True, result["stdout"]
    assert "The 3scale operator rejected ActiveDoc" in result["msg"]
    assert "spec.activeDocOpenAPIRef.url: Invalid value" in result["msg"]
    assert seconds < 60  # far from the 120 s timeout: the ghost Backend was not waited for
    states = {r["kind"] + ("/ghost" if r["name"].startswith("ghost") else ""): r["state"] for r in result["resources"]}
    assert states["ActiveDoc"] == "failed" and states["Backend/ghost"] == "timeout"


def test_an_untrusted_certificate_fails_at_once(lab_h, tmp_path):
    """Issue 19 item 6: a TLS verification error is not retried until the timeout. With the system's CA
    bundle instead of the lab's CA, the API server's certificate is not trusted: the task fails within
    seconds (its timeout is 120 s) naming ca_cert. Upstream: kubernetes.core module_utils/k8s/client.py
    (ca_cert -> ssl_ca_cert), urllib3's SSLError."""
    resources = [{"kind": "Backend", "name": uniq("tls"), "namespace": lab_h.ns}]
    t0 = time.monotonic()
    result = mw.run_wait(lab_h, resources, timeout=120, work=tmp_path,
                         extra={"ca_cert": "/etc/ssl/certs/ca-certificates.crt"})
    seconds = time.monotonic() - t0
    assert result.get("failed") is True, result["stdout"]
    assert "certificate is not trusted" in result["msg"] and "ca_cert" in result["msg"], result["msg"]
    assert seconds < 30, seconds
    print(f"\ncr_wait with an untrusted certificate: failed in {seconds:.1f} s (timeout 120 s)")


def test_fail_on_error_false_reports_each_cr(lab_h, tmp_path):
    result, _seconds = invalid_case(lab_h, tmp_path, timeout=8, extra={"fail_on_error": False})
    assert not result.get("failed"), result["stdout"]
    assert [r["state"] for r in result["resources"]] == ["ready", "ready", "failed", "timeout"]
    assert "Invalid value" in result["resources"][2]["message"]
    assert [r["state"] for r in result["failed_resources"]] == ["failed", "timeout"]
    assert "was not Synced after 8.0 s" in result["resources"][3]["message"]


def test_watch_closed_early_still_returns(lab, lab_h, tmp_path):
    before = kube_faults(lab_h).get("watch_closes", 0)
    names = [uniq("cwclose")]
    # Every watch of a client (not the operator's) ends after 0.3 s; porta answering the operator in
    # 0.1 s per request spreads its status writes over several of those streams.
    fault(lab, "kube", "watch_close_after=0.3")
    fault(lab, "porta", "delay=0.1", "exclude_operator=false")
    try:
        result, d = timed(lab_h, [o for n in names for o in model_objs(lab_h, n)], mw.targets(names, lab_h.ns), tmp_path)
    finally:
        fault(lab, "clear")
    closes = kube_faults(lab_h).get("watch_closes", 0) - before
    assert result["rc"] == 0, result["stdout"]
    assert {r["state"] for r in result["resources"]} == {"ready"}
    assert closes >= 3 and result["api"]["watches"] >= 4 + 3, (closes, result["api"])
    print(f"\nwatch closed {closes} times by the lab; cr_wait re-watched ({result['api']}) and returned "
          f"{d['return_delay']}s after the last CR was ready")
    assert d["return_delay"] is not None and d["return_delay"] <= RETURN_MARGIN


def test_429_on_list_is_retried(lab, lab_h, tmp_path):
    """Five 429 answers in a row: urllib3 (the kubernetes client's pool) retries a 429 with Retry-After
    three times itself, then gives up; cr_wait lists again and the next tries get through."""
    before = kube_faults(lab_h).get("errors", 0)
    path = f"/apis/{mw.API}/namespaces/{lab_h.ns}/backends$"
    fault(lab, "kube", "error_rate=1", "error_status=429", "retry_after=1", "max_count=5", "verbs=[\"GET\"]",
          f"path_regex={path}")
    try:
        result = mw.run_wait(lab_h, [{"kind": "Backend", "name": "granite-3dot2-8b-instruct", "namespace": lab_h.ns}],
                             work=tmp_path, timeout=60)
    finally:
        fault(lab, "clear")
    assert result["rc"] == 0, result["stdout"]
    assert result["resources"][0]["state"] == "ready"
    assert kube_faults(lab_h).get("errors", 0) - before == 5
    assert result["api"]["retries"] >= 1 and result["api"]["lists"] >= 2, result["api"]
    assert result["elapsed"] >= 4.0  # Retry-After: 1 honoured on each 429 answered
    print(f"\nfive 429 answers to the list, each retried after Retry-After: ready after {result['elapsed']}s "
          f"(cr_wait's own re-lists: {result['api']['retries']})")


def test_timeout_names_the_last_conditions(lab, lab_h, tmp_path):
    name = uniq("cwstuck")
    # porta fails every backend call of the operator (a 3scale outage as the operator sees it)
    fault(lab, "porta", "error_rate=1", "error_status=503", "exclude_operator=false", "path_regex=^/admin/api/backend_apis")
    try:
        result = mw.run_wait(lab_h, [{"kind": "Backend", "name": name, "namespace": lab_h.ns}],
                             apply=model_objs(lab_h, name)[:1], work=tmp_path, timeout=4)
    finally:
        fault(lab, "clear")
    assert result.get("failed") is True, result["stdout"]
    assert f"Backend {lab_h.ns}/{name} was not Synced after 4.0 s; last conditions:" in result["msg"]
    assert "code: 503" in result["msg"]  # the Failed=True message the operator wrote from porta's answer
    assert result["resources"][0]["state"] == "timeout"
