"""maas.threescale.proxy_config_promote: the ProxyConfigPromote state machine (plugins/plugin_utils/promotion.py
Promotion) against a fake executor that plays the operator and porta, one test per transition, and the
action plugin's executor (retries, refusals, failures) against a fake module runner. No lab.

Upstream: 3scale-operator controllers/capabilities/proxyconfigpromote_controller.go - a PCP is one-shot
(any promote error leaves it Failed: "can't promote to production as no product changes detected"),
staging is deployed before the promote, deleteCR removes a PCP that succeeded."""
from __future__ import annotations

import pytest

from ansible_collections.maas.threescale.plugins.action import proxy_config_promote as action
from ansible_collections.maas.threescale.plugins.plugin_utils import promotion as P

SETTINGS = {"api_version": "capabilities.3scale.net/v1beta1", "namespace": "3scale"}
NO_CHANGES = "can't promote to production as no product changes detected, delete the proxyConfigPromote CR"


def model(name, h="0123456789abcdef"):
    return {"name": name, "system_name": name + "-sys", "config_hash": h, "backend": {"ignored": True}}


class FakeLab:
    """The cluster and porta as the promotion sees them. ``versions``: per system name [production,
    staging]; ``outcomes``: per PCP name what its wait ends in (default: absent, i.e. promoted and
    deleted by deleteCR), with ``lost`` promoting although the PCP is Failed (an answer lost)."""

    def __init__(self, versions, outcomes=None, existing=(), refuse=()):
        self.versions = dict((k, list(v)) for k, v in versions.items())
        self.outcomes = dict(outcomes or {})
        self.pcps = set(existing)
        self.refuse = set(refuse)
        self.calls = []

    def product_info(self, system_names):
        self.calls.append(("info", list(system_names)))
        out = []
        for s in system_names:
            prod, staging = self.versions[s]
            out.append({"product": s, "exists": True, "production_version": prod, "staging_version": staging,
                        "promotion_due": prod is not None and staging is not None and staging > prod})
        return out

    def create(self, definitions):
        self.calls.append(("create", [d["metadata"]["name"] for d in definitions]))
        out = []
        for d in definitions:
            name = d["metadata"]["name"]
            if name in self.refuse:
                out.append({"changed": False, "error": {"msg": "Failed to create object: 403 Forbidden"}})
                continue
            new = name not in self.pcps
            self.pcps.add(name)
            out.append({"changed": new, "method": "create" if new else "apply", "result": d,
                        "diff": {"before": {}, "after": d} if new else {}})
        return out

    def wait(self, resources):
        self.calls.append(("wait", [r["name"] for r in resources]))
        out = []
        for r in resources:
            what = self.outcomes.get(r["name"], "absent")
            system = r["name"].rsplit("-", 2)[0] + "-sys"
            if what in ("absent", "lost"):
                self.versions[system][1] = (self.versions[system][1] or 0) + (0 if what == "lost" else 1)
                self.versions[system][0] = self.versions[system][1]
            if what == "absent":
                self.pcps.discard(r["name"])
            state = "failed" if what == "lost" else what
            out.append(dict(r, state=state, message=NO_CHANGES if state == "failed" else ""))
        return out

    def delete(self, definitions):
        self.calls.append(("delete", [d["metadata"]["name"] for d in definitions]))
        for d in definitions:
            self.pcps.discard(d["metadata"]["name"])
        return True


def run(lab, models, promoted=None, attempts=3, check_mode=False, timeout=300):
    return P.Promotion(lab, models, promoted or {}, SETTINGS, attempts=attempts, timeout=timeout,
                       check_mode=check_mode).run()


def outcome(result, name):
    return next(m for m in result["models"] if m["name"] == name)


def test_first_attempt_succeeds():
    lab = FakeLab({"a-sys": [1, 2]})
    res = run(lab, [model("a")])
    assert lab.calls == [("info", ["a-sys"]), ("create", ["a-01234567-1"]), ("wait", ["a-01234567-1"])]
    assert outcome(res, "a") == {"name": "a", "system_name": "a-sys", "outcome": "promoted", "attempts": 1,
                                 "pcps": ["a-01234567-1"], "messages": []}
    assert res["promoted"] == ["a"] and res["failures"] == [] and res["changed"] is True
    assert lab.pcps == set() and lab.versions["a-sys"][0] == lab.versions["a-sys"][1]
    d = res["diff"][0]
    assert d["after"]["kind"] == "ProxyConfigPromote" and d["after"]["spec"] == {
        "productCRName": "a", "production": True, "deleteCR": True}
    assert "promoted at attempt 1 of 3" in P.summary(res)[0]


def test_nothing_to_promote_creates_nothing():
    lab = FakeLab({"a-sys": [4, 4]})
    res = run(lab, [model("a")], promoted={"a": {"promoted_config": "0123456789abcdef"}})
    assert lab.calls == [("info", ["a-sys"])]
    assert res["changed"] is False and res["promoted"] == [] and res["attempts"] == []
    assert outcome(res, "a")["outcome"] == "nothing_to_promote" and P.summary(res) == []


def test_specs_never_promoted_are_promoted_although_the_versions_are_equal():
    lab = FakeLab({"a-sys": [4, 4]})
    res = run(lab, [model("a")], promoted={"a": "an-older-hash"})  # the plain-hash form is accepted too
    assert ("create", ["a-01234567-1"]) in lab.calls and res["promoted"] == ["a"]


def test_failed_then_production_equals_staging_is_done_without_another_attempt():
    lab = FakeLab({"a-sys": [1, 2]}, outcomes={"a-01234567-1": "lost"})
    res = run(lab, [model("a")])
    assert lab.calls == [("info", ["a-sys"]), ("create", ["a-01234567-1"]), ("wait", ["a-01234567-1"]),
                         ("delete", ["a-01234567-1"]), ("info", ["a-sys"])]
    a = outcome(res, "a")
    assert a["outcome"] == "nothing_to_promote" and a["attempts"] == 1
    assert a["messages"] == [NO_CHANGES + " (production version 2, staging 2)"]
    assert res["promoted"] == ["a"] and res["failures"] == [] and lab.pcps == set()


def test_failed_and_still_behind_tries_a_new_pcp():
    lab = FakeLab({"a-sys": [1, 2], "b-sys": [None, 1]}, outcomes={"a-01234567-1": "failed"})
    res = run(lab, [model("a"), model("b")])
    assert [c for c in lab.calls if c[0] in ("create", "delete")] == [
        ("create", ["a-01234567-1", "b-01234567-1"]), ("delete", ["a-01234567-1"]), ("create", ["a-01234567-2"])]
    assert outcome(res, "a")["outcome"] == "promoted" and outcome(res, "a")["attempts"] == 2
    assert outcome(res, "a")["pcps"] == ["a-01234567-1", "a-01234567-2"]
    assert outcome(res, "b")["outcome"] == "promoted" and outcome(res, "b")["attempts"] == 1
    assert res["promoted"] == ["a", "b"] and res["failures"] == []
    assert [s["attempt"] for s in res["attempts"]] == [1, 2] and res["attempts"][0]["pending"] == ["a"]
    assert "a: promoted at attempt 2 of 3 (a-01234567-1, a-01234567-2): " + NO_CHANGES in P.summary(res)[0]


def test_every_attempt_fails_reports_each_distinct_message():
    lab = FakeLab({"a-sys": [1, 2]}, outcomes={"a-01234567-%d" % n: "failed" for n in (1, 2)})
    res = run(lab, [model("a")], attempts=2)
    assert [c[1] for c in lab.calls if c[0] == "delete"] == [["a-01234567-1"], ["a-01234567-2"]]
    assert lab.pcps == set()  # no Failed PCP left behind
    assert res["promoted"] == [] and len(res["failures"]) == 1
    f = res["failures"][0]
    assert f["name"] == "a" and f["phase"] == "ProxyConfigPromote"
    assert f["message"] == ("The 3scale operator could not promote a after 2 ProxyConfigPromote attempt(s): "
                            + NO_CHANGES + " (production version 1, staging 2)")  # once, though seen twice
    assert outcome(res, "a")["outcome"] == "failed" and outcome(res, "a")["attempts"] == 2


def test_a_wait_timeout_counts_as_a_failed_attempt():
    lab = FakeLab({"a-sys": [1, 2]}, outcomes={"a-01234567-1": "timeout"})
    res = run(lab, [model("a")], timeout=7)
    assert ("delete", ["a-01234567-1"]) in lab.calls and outcome(res, "a")["outcome"] == "promoted"
    assert outcome(res, "a")["messages"] == [
        "ProxyConfigPromote a-01234567-1 was not Ready after 7 s (production version 1, staging 2)"]
    timed_out = FakeLab({"a-sys": [1, 2]}, outcomes={"a-01234567-1": "timeout"})
    res = run(timed_out, [model("a")], attempts=1, timeout=7)
    assert "was not Ready after 7 s" in res["failures"][0]["message"]
    assert "after 1 ProxyConfigPromote attempt(s)" in res["failures"][0]["message"]


def test_check_mode_dry_runs_the_first_attempt_and_waits_for_nothing():
    lab = FakeLab({"a-sys": [1, 2], "b-sys": [3, 3]}, outcomes={"a-01234567-1": "failed"})
    res = run(lab, [model("a"), model("b")], promoted={"b": "0123456789abcdef"}, check_mode=True)
    assert lab.calls == [("info", ["a-sys", "b-sys"]), ("create", ["a-01234567-1"])]
    assert outcome(res, "a")["outcome"] == "would_promote" and outcome(res, "b")["outcome"] == "nothing_to_promote"
    assert res["promoted"] == ["a"] and res["failures"] == [] and res["changed"] is True
    assert res["max_attempts"] == 1 and res["diff"][0]["after"]["metadata"]["name"] == "a-01234567-1"
    # a check-mode run with nothing due changes nothing
    again = run(FakeLab({"a-sys": [2, 2]}), [model("a")], promoted={"a": "0123456789abcdef"}, check_mode=True)
    assert again["changed"] is False and again["attempts"] == []


def test_resumes_the_pcp_an_interrupted_run_left():
    # Killed while attempt 1's PCP was running: the same name is applied again (unchanged), then waited for.
    lab = FakeLab({"a-sys": [1, 2]}, existing={"a-01234567-1"})
    res = run(lab, [model("a")])
    assert [c for c in lab.calls if c[0] != "info"] == [("create", ["a-01234567-1"]), ("wait", ["a-01234567-1"])]
    assert res["changed"] is False and res["diff"] == [] and outcome(res, "a")["outcome"] == "promoted"
    # Left Failed: it is found Failed at once, removed, and replaced by attempt 2.
    lab = FakeLab({"a-sys": [1, 2]}, existing={"a-01234567-1"}, outcomes={"a-01234567-1": "failed"})
    res = run(lab, [model("a")])
    assert [c for c in lab.calls if c[0] in ("create", "delete")] == [
        ("create", ["a-01234567-1"]), ("delete", ["a-01234567-1"]), ("create", ["a-01234567-2"])]
    assert outcome(res, "a")["outcome"] == "promoted" and lab.pcps == set()


def test_a_refused_pcp_sets_its_model_aside_and_the_others_go_on():
    lab = FakeLab({"a-sys": [1, 2], "b-sys": [1, 2]}, refuse={"a-01234567-1"})
    res = run(lab, [model("a"), model("b")])
    assert ("wait", ["b-01234567-1"]) in lab.calls
    assert [f["name"] for f in res["failures"]] == ["a"]
    assert res["failures"][0]["message"].startswith("The Kubernetes API refused ProxyConfigPromote 3scale/a-01234567-1")
    assert outcome(res, "a")["outcome"] == "failed" and res["promoted"] == ["b"]


def test_no_models_no_calls():
    lab = FakeLab({})
    assert run(lab, [])["models"] == [] and lab.calls == []


def test_retried_only_while_retryable():
    answers = iter([{"failed": True, "msg": "503"}, {"failed": True, "msg": "503"}, {"ok": 1}])
    slept = []
    out = P.retried(lambda: next(answers), lambda r: r.get("failed"), 5, 2, sleep=slept.append)
    assert out == {"ok": 1} and slept == [2, 2]
    assert P.retried(lambda: {"failed": True}, lambda r: True, 2, 1, sleep=slept.append) == {"failed": True}
    assert len(slept) == 4


# ------------------------------------------------------------------------------- the action's executor
class FakeAction:
    """ActionModule.call as the executor uses it: scripted module answers, per module name."""

    def __init__(self, answers):
        self.answers = dict((k, list(v)) for k, v in answers.items())
        self.calls = []

    def call(self, module, args, task_vars):
        self.calls.append((module, args))
        return self.answers[module].pop(0)


ARGS = {"timeout": 60.0, "terminal_failure_regex": "x", "k8s_retries": 2, "k8s_retry_delay": 0}
DEF = {"kind": "ProxyConfigPromote", "metadata": {"name": "a-1", "namespace": "3scale", "labels": {"maas.threescale/model": "a"}}}


def test_executor_retries_a_transient_create_then_returns_each_outcome():
    fake = FakeAction({action.K8S: [
        {"changed": False, "result": {"results": [{"error": {"msg": 'Failed: "code": 503'}}, {"changed": True}]}},
        {"changed": True, "result": {"results": [{"changed": True}, {"changed": False}]}}]})
    ex = action.Executor(fake, {}, ARGS)
    assert ex.create([DEF, DEF]) == [{"changed": True}, {"changed": False}]
    assert len(fake.calls) == 2
    module, args = fake.calls[0]
    assert args == {"state": "present", "apply": True, "continue_on_error": True, "definition": [DEF, DEF]}


def test_executor_failures_stop_the_promotion_with_the_modules_message():
    fake = FakeAction({action.PRODUCT_INFO: [{"failed": True, "msg": "401 Unauthorized"}],
                       action.CR_WAIT: [{"failed": True, "msg": "Forbidden"}],
                       action.K8S: [{"failed": True, "msg": "Module failed: 503"}] * 3})
    ex = action.Executor(fake, {}, ARGS)
    with pytest.raises(P.PromotionError, match="401 Unauthorized"):
        ex.product_info(["a"])
    with pytest.raises(P.PromotionError, match="Forbidden"):
        ex.wait([{"kind": "ProxyConfigPromote", "name": "a-1", "namespace": "3scale"}])
    with pytest.raises(P.PromotionError, match="Removing the Failed"):
        ex.delete([DEF])
    assert len([c for c in fake.calls if c[0] == action.K8S]) == 3  # 1 + k8s_retries
    assert fake.calls[1][1]["fail_on_error"] is False and fake.calls[1][1]["timeout"] == 60.0
    assert fake.calls[2][1]["state"] == "absent" and fake.calls[2][1]["wait"] is True
