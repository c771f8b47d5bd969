"""Operator emulator behaviours re-read from upstream master de2fb005 (CONTRACT §10): the method still
used by the latest gateway configuration, terminal promote errors, ActiveDoc order/defaults/kin-openapi
0.94 validation, upstream Failed texts, policy configurationRef, deletion with the provider gone.
Each test names the upstream file it follows.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import start_lab, stop_lab
from test_operator import (NO_CHANGES, NS, OAS30, Lab, activedoc, backend, cond, pcp, poll, product, secret,
                           synced_current)

METHOD_IN_USE = ("method is used by the latest gateway configuration, it will be removed from 3scale only once the "
                 "promotion without the mapping rule that uses the deleted method is done")


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    directory = tmp_path_factory.mktemp("opup")
    lab = Lab(start_lab(directory))
    yield lab
    stop_lab(directory)


def methods_of(lab: Lab, base: str) -> set[str]:
    metrics = lab.porta_list(f"{base}/metrics.json", "metrics", "metric")
    hits = next(m["id"] for m in metrics if m["system_name"].split(".")[0] == "hits")
    return {m["system_name"].split(".")[0] for m in lab.porta_list(f"{base}/metrics/{hits}/methods.json", "methods", "method")}


def fresh_status(lab: Lab, ref: str, ctype: str, status: str = "True") -> dict:
    """The CR once its current generation has been reconciled into condition ctype=status."""
    return poll(lambda: (o := lab.get(ref)).get("status", {}).get("observedGeneration") == o["metadata"]["generation"]
                and cond(o, ctype)["status"] == status and o)


# ------------------------------------------------------------------ item 1: method used by the latest config
def test_method_in_use_product_failed_until_promoted(up):
    """Upstream: 3scale-operator pkg/helper/task_runner.go, pkg/helper/errors.go,
    controllers/capabilities/proxyconfigpromote_controller.go (Failed with ErrReferencedMethodIsBeingDeleted
    is promotable)."""
    up.apply(backend("mu-be"))
    up.wait("backend/mu-be", "Synced")
    rule = {"httpMethod": "POST", "pattern": "/v1/chat", "metricMethodRef": "chat", "increment": 1}
    up.apply(product("mu-pr", "mube", methods={"chat": {"friendlyName": "Chat"}}, mappingRules=[rule]))
    pid = up.wait("product/mu-pr", "Synced")["status"]["productId"]
    up.apply(pcp("mu-1", "mu-pr", production=True))
    up.wait("proxyconfigpromote/mu-1", "Ready")
    svc = f"/admin/api/services/{pid}"
    # drop the operation: porta refuses to delete the method, the rest (mapping rule) is synced
    up.kubectl("patch", "product/mu-pr", "--type=json", "-p",
               json.dumps([{"op": "remove", "path": "/spec/methods"}, {"op": "remove", "path": "/spec/mappingRules"}]))
    obj = fresh_status(up, "product/mu-pr", "Failed")
    assert cond(obj, "Failed")["message"] == METHOD_IN_USE
    assert [cond(obj, t)["status"] for t in ("Invalid", "Orphan", "Synced")] == ["False", "False", "False"]
    assert obj["status"]["productId"] == pid
    assert methods_of(up, svc) == {"chat"}
    assert up.porta_list(f"{svc}/proxy/mapping_rules.json", "mapping_rules", "mapping_rule") == []
    # a PCP accepts the Product in that state; after the promotion the Product re-syncs and the method goes
    up.apply(pcp("mu-2", "mu-pr", production=True))
    st = up.wait("proxyconfigpromote/mu-2", "Ready")["status"]
    assert st["latestProductionVersion"] == st["latestStagingVersion"]
    assert synced_current(up.wait("product/mu-pr", "Synced", timeout=60))
    assert methods_of(up, svc) == set()


def test_backend_with_method_in_use_is_still_usable_by_products(up):
    """Upstream: 3scale-operator pkg/controller/helper/backend_list.go, backend_threescale_reconciler.go."""
    rule = {"httpMethod": "POST", "pattern": "/v1/embed", "metricMethodRef": "embed", "increment": 1}
    up.apply(backend("bu-be", methods={"embed": {"friendlyName": "Embed"}}, mappingRules=[rule]))
    bid = up.wait("backend/bu-be", "Synced")["status"]["backendId"]
    up.apply(product("bu-pr", "bube"))
    up.wait("product/bu-pr", "Synced")
    up.apply(pcp("bu-1", "bu-pr", production=True))
    up.wait("proxyconfigpromote/bu-1", "Ready")
    up.kubectl("patch", "backend/bu-be", "--type=json", "-p",
               json.dumps([{"op": "remove", "path": "/spec/methods"}, {"op": "remove", "path": "/spec/mappingRules"}]))
    obj = fresh_status(up, "backend/bu-be", "Failed")
    assert cond(obj, "Failed")["message"] == METHOD_IN_USE and cond(obj, "Synced")["status"] == "False"
    # another Product may still use that Backend (not Orphan)
    up.apply(product("bu-pr2", "bube"))
    assert synced_current(up.wait("product/bu-pr2", "Synced"))
    up.apply(pcp("bu-2", "bu-pr", production=True))
    up.wait("proxyconfigpromote/bu-2", "Ready")
    assert synced_current(up.wait("backend/bu-be", "Synced", timeout=60))
    assert methods_of(up, f"/admin/api/backend_apis/{bid}") == set()


# ------------------------------------------------------------------ item 2: ProxyConfigPromote
def test_promote_error_is_terminal_invalid(up):
    """Upstream: 3scale-operator controllers/capabilities/proxyconfigpromote_controller.go (any promote
    error → Invalid "[]: ...no product changes detected", pkg/helper/reconcile_error_handler.go no requeue)."""
    up.apply(backend("pe-be"))
    up.wait("backend/pe-be", "Synced")
    up.apply(product("pe-pr", "pebe"))
    pid = up.wait("product/pe-pr", "Synced")["status"]["productId"]
    faults = Path(up.info["dir"]) / "faults.json"
    faults.write_text(json.dumps({"porta": {"error_rate": 1, "error_status": 503, "path_regex": f"/services/{pid}/.*promote"}}))
    try:
        up.apply(pcp("pe-1", "pe-pr", production=True))
        obj = up.wait("proxyconfigpromote/pe-1", "Failed")
    finally:
        faults.write_text("{}")
    assert cond(obj, "Failed")["message"] == '[]: Invalid value: "": cannot promote to production as ' + NO_CHANGES
    assert cond(obj, "Ready")["status"] == "False"
    st = obj["status"]
    assert st["productId"] == str(pid) and st["latestStagingVersion"] > 0 and "latestProductionVersion" not in st
    # a new CR promotes; the failed one was not retried meanwhile
    up.apply(pcp("pe-2", "pe-pr", production=True))
    up.wait("proxyconfigpromote/pe-2", "Ready")
    again = up.get("proxyconfigpromote/pe-1")
    assert again["status"] == obj["status"]


def test_ready_pcp_honours_late_delete_cr_and_flips_back_without_product(up):
    """Upstream: 3scale-operator controllers/capabilities/proxyconfigpromote_controller.go (Product read
    before the Ready check; deleteCR checked on every reconcile)."""
    up.apply(backend("fb-be"))
    up.wait("backend/fb-be", "Synced")
    up.apply(product("fb-pr", "fbbe"))
    up.wait("product/fb-pr", "Synced")
    up.apply(pcp("fb-stage", "fb-pr"))
    assert "latestProductionVersion" not in up.wait("proxyconfigpromote/fb-stage", "Ready")["status"]  # 0: omitted
    up.apply(pcp("fb-late", "fb-pr", production=True))
    up.wait("proxyconfigpromote/fb-late", "Ready")
    up.kubectl("patch", "proxyconfigpromote/fb-late", "--type=merge", "-p", '{"spec":{"deleteCR":true}}')
    up.kubectl("wait", "--for=delete", "--timeout=30s", "proxyconfigpromote/fb-late")
    up.kubectl("delete", "product/fb-pr", "--timeout=30s")
    up.kubectl("annotate", "proxyconfigpromote/fb-stage", "touch=1")
    obj = up.wait("proxyconfigpromote/fb-stage", "Failed")
    assert cond(obj, "Ready")["status"] == "False"
    assert cond(obj, "Failed")["message"] == 'products.capabilities.3scale.net "fb-pr" not found'
    assert obj["status"] == {"productId": "product not found", "conditions": obj["status"]["conditions"]}
