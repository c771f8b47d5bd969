"""Readiness of 3scale operator CRs and the list+watch engine of cr_wait, with a scripted source.

Upstream: 3scale-operator controllers/capabilities/*_status_reconciler.go (observedGeneration,
conditions), proxyconfigpromote_controller.go (no observedGeneration, deleteCR), pkg/helper/errors.go
(ErrReferencedMethodIsBeingDeleted); client-go tools/cache/reflector.go (list, then watch from the
list's resourceVersion; 410 Expired means list again).
"""
from __future__ import annotations

import queue
import threading
import time

import pytest

from ansible_collections.maas.threescale.plugins.module_utils.k8s_cr_wait import (
    DEFAULT_TERMINAL_FAILURE_REGEX as TERMINAL,
    Gone,
    Target,
    Transient,
    Waiter,
    default_condition,
    evaluate,
)

METHOD_IN_USE = "is used by the latest gateway configuration"


def cr(name, gen=2, observed=2, rv="1", **conds):
    status = {"conditions": [{"type": t, "status": "True" if v is True else "False" if v is False else "True", "message": v
                              if isinstance(v, str) else None} for t, v in sorted(conds.items())]}
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"name": name, "generation": gen, "resourceVersion": rv, "annotations": {"a": "b"}}, "status": status}


@pytest.mark.parametrize("kind,expected", [("Backend", "Synced"), ("Product", "Synced"), ("ActiveDoc", "Ready"),
                                           ("ProxyConfigPromote", "Ready"), ("DeveloperAccount", "Ready")])
def test_default_condition(kind, expected):
    assert default_condition(kind) == expected


def test_ready_only_for_current_generation():
    t = Target("Product", "p", "ns")
    assert evaluate(t, cr("p", gen=3, observed=2, Synced=True), TERMINAL)[0] == "waiting"
    assert evaluate(t, cr("p", gen=3, observed=3, Synced=True), TERMINAL) == ("ready", "")


def test_proxyconfigpromote_has_no_observed_generation():
    t = Target("ProxyConfigPromote", "pcp", "ns")
    assert evaluate(t, cr("pcp", gen=1, observed=None, Ready=True), TERMINAL)[0] == "ready"


def test_invalid_is_terminal_with_the_operator_message():
    t = Target("Backend", "b", "ns")
    state, msg = evaluate(t, cr("b", Invalid="metrics: hits missing", Failed="metrics: hits missing", Synced=False), TERMINAL)
    assert (state, msg) == ("failed", "metrics: hits missing")


def test_failed_is_terminal_only_when_the_message_matches():
    t = Target("Backend", "b", "ns")
    healing = cr("b", Failed="error calling 3scale system - reason: timeout", Synced=False)
    assert evaluate(t, healing, TERMINAL) == ("waiting", "error calling 3scale system - reason: timeout")
    final = cr("b", Failed='reason: {"private_endpoint":["protected"]} - code: 422', Synced=False)
    assert evaluate(t, final, TERMINAL)[0] == "failed"


def test_method_in_use_is_tolerated_only_when_asked():
    msg = "method 'x' " + METHOD_IN_USE
    obj = cr("p", Failed=msg, Synced=False)
    assert evaluate(Target("Product", "p", "ns"), obj, TERMINAL)[0] == "waiting"
    assert evaluate(Target("Product", "p", "ns", tolerate_message_regex=METHOD_IN_USE), obj, TERMINAL) == ("tolerated", msg)


def test_absent_counts_only_with_absent_ok():
    assert evaluate(Target("ProxyConfigPromote", "x", "ns", absent_ok=True), None, TERMINAL)[0] == "absent"
    assert evaluate(Target("Backend", "x", "ns"), None, TERMINAL)[0] == "waiting"


class FakeSource:
    """Per group: a list answer, then watch streams fed from a queue; scripted errors first."""

    def __init__(self):
        self.objs = {}
        self.streams = {}
        self.errors = {}
        self.calls = []

    def group(self, g):
        self.objs.setdefault(g, {})
        self.streams.setdefault(g, queue.Queue())
        self.errors.setdefault(g, [])
        return self

    def list(self, g):
        self.calls.append(("list", g[1]))
        if self.errors[g]:
            raise self.errors[g].pop(0)
        return list(self.objs[g].values()), "10"

    def watch(self, g, rv, timeout):
        self.calls.append(("watch", g[1], rv))
        while True:
            try:
                ev = self.streams[g].get(timeout=0.05)
            except queue.Empty:
                continue
            if ev == "END":
                return
            if isinstance(ev, Exception):
                raise ev
            yield ev


def group(kind, ns="ns"):
    return ("capabilities.3scale.net/v1beta1", kind, ns)


def test_returns_at_once_when_the_last_cr_becomes_ready():
    src = FakeSource().group(group("Backend")).group(group("Product", "other"))
    src.objs[group("Backend")]["b"] = cr("b", Synced=True)
    targets = [Target("Backend", "b", "ns"), Target("Product", "p", "other")]
    waiter = Waiter(src, targets, timeout=10)
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", waiter.run()))
    th.start()
    time.sleep(0.2)
    assert th.is_alive()
    src.streams[group("Product", "other")].put(("MODIFIED", cr("p", rv="11", Synced=True)))
    t0 = time.monotonic()
    th.join(5)
    assert time.monotonic() - t0 < 0.2
    assert [r["state"] for r in out["r"]] == ["ready", "ready"]
    assert out["r"][0]["annotations"] == {"a": "b"}


def test_fail_fast_on_terminal_and_report_each_without():
    def run(fail_on_error):
        src = FakeSource().group(group("Backend"))
        src.objs[group("Backend")]["bad"] = cr("bad", Invalid="bad spec", Synced=False)
        return Waiter(src, [Target("Backend", "bad", "ns"), Target("Backend", "slow", "ns")], timeout=0.5,
                      fail_on_error=fail_on_error).run()
    t0 = time.monotonic()
    fast = run(True)
    assert time.monotonic() - t0 < 0.3
    assert [r["state"] for r in fast] == ["failed", "timeout"]
    assert fast[0]["message"] == "bad spec"
    slow = run(False)
    assert [r["state"] for r in slow] == ["failed", "timeout"]
    assert "Backend ns/slow was not Synced after 0.5 s" in slow[1]["message"]


def test_gone_relists_and_stream_end_rewatches_from_last_version():
    g = group("ProxyConfigPromote")
    src = FakeSource().group(g)
    src.objs[g]["pcp"] = cr("pcp", observed=None, Failed="product CR is not ready", Ready=False)
    src.streams[g].put("END")
    src.streams[g].put(("MODIFIED", cr("x", rv="12")))
    src.streams[g].put("END")
    src.streams[g].put(Gone("too old"))
    waiter = Waiter(src, [Target("ProxyConfigPromote", "pcp", "ns", absent_ok=True)], timeout=5)
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", waiter.run()))
    th.start()
    deadline = time.monotonic() + 3
    while src.calls.count(("list", "ProxyConfigPromote")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    del src.objs[g]["pcp"]  # deleted while nobody watched: the re-list shows it gone
    src.streams[g].put(Gone("again"))
    th.join(5)
    assert out["r"][0]["state"] == "absent"
    assert ("watch", "ProxyConfigPromote", "10") in src.calls
    assert ("watch", "ProxyConfigPromote", "12") in src.calls  # resumed from the last event, no list
    assert waiter.stats["gone"] >= 2


def test_transient_errors_are_retried_with_retry_after():
    g = group("Backend")
    src = FakeSource().group(g)
    src.objs[g]["b"] = cr("b", Synced=True)
    src.errors[g] = [Transient("HTTP 429: storage is (re)initializing", retry_after=0.2), Transient("HTTP 503")]
    t0 = time.monotonic()
    res = Waiter(src, [Target("Backend", "b", "ns")], timeout=5).run()
    assert res[0]["state"] == "ready"
    assert time.monotonic() - t0 >= 0.2
    assert src.calls.count(("list", "Backend")) == 3


def test_timeout_names_last_api_error():
    g = group("Backend")
    src = FakeSource().group(g)
    src.errors[g] = [Transient("HTTP 503: apiserver is shutting down", retry_after=5)]
    res = Waiter(src, [Target("Backend", "b", "ns")], timeout=0.3).run()
    assert res[0]["state"] == "timeout"
    assert "last API error: HTTP 503: apiserver is shutting down" in res[0]["message"]
