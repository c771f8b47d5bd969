"""The real 3scale operator (v0.11.0, 3scale 2.14) where it matters to the collection and where it
differs from the contract's master (CONTRACT §10): a method still used by the latest gateway
configuration, promote errors retried, ActiveDoc order/defaults/kin-openapi 0.94 validation, the
Failed texts, policy configurationRef, deletion with the provider gone. Each test names the upstream
file it follows (paths relative to the module github.com/3scale/3scale-operator@v0.11.0).
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from conftest import start_lab, stop_lab
from test_operator import (NO_CHANGES, NS, OAS30, Lab, activedoc, backend, cond, pcp, poll, product, secret,
                           synced_current)

# porta app/models/metric.rb (belongs_to_latest_config? → errors[:base]), 403 from
# app/controllers/admin/api/metric_methods_controller.rb, re-marshalled by porta-go-client
METHOD_IN_USE = ('error calling 3scale system - reason: {"errors": {"base": ["Method is used by the latest gateway '
                 'configuration and cannot be deleted"]}} - code: 403')


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
def test_method_in_use_blocks_the_product_until_its_rule_goes_first(up):
    """v0.11.0 pkg/helper/task_runner.go stops at the first failing task, and
    controllers/capabilities/product_threescale_reconciler.go runs SyncMethods before SyncMappingRules:
    removing an operation (method + rule) at once leaves the rule in 3scale and the Product Failed, and
    proxyconfigpromote_controller.go refuses an unsynced Product. Hence the collection's two steps:
    drop the rule, promote, then drop the method (roles/maas_product)."""
    up.apply(backend("mu-be"))
    up.wait("backend/mu-be", "Synced")
    rule = {"httpMethod": "POST", "pattern": "/v1/chat", "metricMethodRef": "chat", "increment": 1}
    up.apply(product("mu-pr", "mube", methods={"chat": {"friendlyName": "Chat"}}, mappingRules=[rule]))
    pid = up.wait("product/mu-pr", "Synced")["status"]["productId"]
    up.apply(pcp("mu-1", "mu-pr", production=True))
    up.wait("proxyconfigpromote/mu-1", "Ready")
    svc = f"/admin/api/services/{pid}"
    up.kubectl("patch", "product/mu-pr", "--type=json", "-p",
               json.dumps([{"op": "remove", "path": "/spec/methods"}, {"op": "remove", "path": "/spec/mappingRules"}]))
    obj = fresh_status(up, "product/mu-pr", "Failed")
    assert cond(obj, "Failed")["message"] == ("Task failed SyncMethods: Error sync product methods [mupr]: product "
                                              "[mupr] delete method: " + METHOD_IN_USE)
    assert [cond(obj, t)["status"] for t in ("Invalid", "Orphan", "Synced")] == ["False", "False", "False"]
    assert methods_of(up, svc) == {"chat"}
    rules = up.porta_list(f"{svc}/proxy/mapping_rules.json", "mapping_rules", "mapping_rule")
    assert [(r["http_method"], r["pattern"]) for r in rules] == [("POST", "/v1/chat")]  # never reached
    up.apply(pcp("mu-2", "mu-pr", production=True))
    obj = up.wait("proxyconfigpromote/mu-2", "Failed")
    assert cond(obj, "Failed")["message"] == "proudct CR is not ready"  # sic, upstream's spelling
    up.kubectl("delete", "proxyconfigpromote/mu-2")
    # the collection's way: the method stays while the rule goes and is promoted, then the method goes
    up.kubectl("patch", "product/mu-pr", "--type=merge", "-p", json.dumps({"spec": {"methods": {"chat": {
        "friendlyName": "Chat"}}}}))
    assert synced_current(fresh_status(up, "product/mu-pr", "Synced"))
    assert up.porta_list(f"{svc}/proxy/mapping_rules.json", "mapping_rules", "mapping_rule") == []
    up.apply(pcp("mu-3", "mu-pr", production=True))
    st = up.wait("proxyconfigpromote/mu-3", "Ready")["status"]
    assert st["latestProductionVersion"] == st["latestStagingVersion"]
    up.kubectl("patch", "product/mu-pr", "--type=json", "-p", json.dumps([{"op": "remove", "path": "/spec/methods"}]))
    assert synced_current(fresh_status(up, "product/mu-pr", "Synced"))
    assert methods_of(up, svc) == set()


def test_backend_with_method_in_use_orphans_new_products_until_synced(up):
    """v0.11.0 pkg/controller/helper/backend_list.go lists only Synced Backends, so a Product that uses a
    Failed Backend is Orphan until it syncs again (master lists them all);
    controllers/capabilities/backend_threescale_reconciler.go runs SyncMethods before SyncMappingRules."""
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
    assert cond(obj, "Failed")["message"] == ("Task failed SyncMethods: Error sync backend methods [bube]: backend "
                                              "[bube] delete method: " + METHOD_IN_USE)
    assert cond(obj, "Synced")["status"] == "False"
    up.apply(product("bu-pr2", "bube"))
    assert "bube" in cond(up.wait("product/bu-pr2", "Orphan"), "Orphan")["message"]
    # the rule first, promoted, then the method
    up.kubectl("patch", "backend/bu-be", "--type=merge", "-p", json.dumps({"spec": {"methods": {"embed": {
        "friendlyName": "Embed"}}}}))
    assert synced_current(fresh_status(up, "backend/bu-be", "Synced"))
    assert synced_current(up.wait("product/bu-pr2", "Synced", timeout=60))  # retried with backoff
    up.apply(pcp("bu-2", "bu-pr", production=True))
    up.wait("proxyconfigpromote/bu-2", "Ready")
    up.kubectl("patch", "backend/bu-be", "--type=json", "-p", json.dumps([{"op": "remove", "path": "/spec/methods"}]))
    assert synced_current(fresh_status(up, "backend/bu-be", "Synced"))
    assert methods_of(up, f"/admin/api/backend_apis/{bid}") == set()


# ------------------------------------------------------------------ item 2: ProxyConfigPromote
def test_promote_error_is_reported_with_the_operators_text_and_retried(up):
    """v0.11.0 controllers/capabilities/proxyconfigpromote_controller.go: any PromoteProxyConfig error
    becomes Failed "can't promote to production as no product changes detected, ..." (porta's own error
    is dropped) and is returned, so the CR is retried with backoff and goes Ready once porta answers."""
    up.apply(backend("pe-be"))
    up.wait("backend/pe-be", "Synced")
    up.apply(product("pe-pr", "pebe"))
    pid = up.wait("product/pe-pr", "Synced")["status"]["productId"]
    faults = Path(up.info["dir"]) / "faults.json"
    faults.write_text(json.dumps({"porta": {"error_rate": 1, "error_status": 503, "exclude_operator": False,
                                            "path_regex": f"/services/{pid}/.*promote"}}))
    try:
        up.apply(pcp("pe-1", "pe-pr", production=True))
        obj = up.wait("proxyconfigpromote/pe-1", "Failed")
    finally:
        faults.write_text("{}")
    assert cond(obj, "Failed")["message"] == NO_CHANGES
    assert cond(obj, "Ready")["status"] == "False"
    st = obj["status"]
    assert st["productId"] == str(pid) and st["latestStagingVersion"] > 0 and "latestProductionVersion" not in st
    st = up.wait("proxyconfigpromote/pe-1", "Ready", timeout=60)["status"]
    assert st["latestProductionVersion"] == st["latestStagingVersion"]


def test_ready_pcp_honours_late_delete_cr_and_flips_back_without_product(up):
    """Upstream: controllers/capabilities/proxyconfigpromote_controller.go (Product read before the Ready
    check; deleteCR checked on every reconcile)."""
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
    # controller-runtime's cached client names the kind, not the resource, in its NotFound
    assert cond(obj, "Failed")["message"] == 'Product.capabilities.3scale.net "fb-pr" not found'
    assert obj["status"] == {"productId": "product not found", "conditions": obj["status"]["conditions"]}


# ------------------------------------------------------------------ item 3: ActiveDoc
def test_activedoc_defaults_then_lookup_failure_is_failed_and_retried(up):
    """Upstream: 3scale-operator controllers/capabilities/activedoc_controller.go (SetDefaults before the
    provider lookup; a lookup error goes to status), apis/capabilities/v1beta1/activedoc_types.go."""
    up.apply(secret("adl-doc", {"doc.json": json.dumps(OAS30)}))
    up.apply(activedoc("adl", {"secretRef": {"name": "adl-doc"}}, providerAccountRef={"name": "adl-tenant"}))
    obj = up.wait("activedoc/adl", "Failed")
    assert obj["metadata"]["generation"] == 2
    assert obj["spec"]["systemName"] == "adl" and obj["spec"]["activeDocOpenAPIRef"]["secretRef"]["namespace"] == NS
    assert cond(obj, "Failed")["message"] == 'Secret "adl-tenant" not found'  # the cached client's NotFound
    assert cond(obj, "Ready")["status"] == "False" and "providerAccountHost" not in obj["status"]
    up.apply(secret("adl-tenant", {"adminURL": up.porta_url, "token": up.token}))
    obj = up.wait("activedoc/adl", "Ready")
    assert synced_current(obj, "Ready") and obj["status"]["providerAccountHost"] == up.porta_url


def test_activedoc_orphan_is_checked_before_the_document(up):
    """Upstream: 3scale-operator controllers/capabilities/activedoc_controller.go (checkExternalRefs before
    activedoc_threescale_reconciler.go reads the document)."""
    up.apply(secret("ado-doc", {"doc.json": "not an openapi document: ["}))
    up.apply(activedoc("ado", {"secretRef": {"name": "ado-doc"}}, productSystemName="nosuch"))
    obj = up.wait("activedoc/ado", "Orphan")
    assert cond(obj, "Orphan")["message"] == 'spec.productSystemName: Invalid value: "nosuch": not a valid reference'
    assert cond(obj, "Invalid")["status"] == "False"


BASE = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}}
OK_RESP = {"200": {"description": "ok"}}


@pytest.mark.parametrize("name,doc,expect", [
    ("kin-31-ok", {**BASE, "openapi": "3.1.0", "paths": {"/v1/models": {"get": {"responses": OK_RESP}}}}, None),
    ("kin-noversion", {**BASE, "info": {"title": "t"}, "paths": {}},
     "invalid info: value of version must be a non-empty string"),
    ("kin-notitle", {**BASE, "info": {"version": "1"}, "paths": {}}, "invalid info: value of title must be a non-empty string"),
    ("kin-noinfo", {"openapi": "3.0.0", "paths": {}}, "invalid info: must be an object"),
    ("kin-nopaths", {**BASE}, "invalid paths: must be an object"),
    ("kin-slash", {**BASE, "paths": {"v1/models": {"get": {"responses": OK_RESP}}}},
     'invalid paths: path "v1/models" does not start with a forward slash (/)'),
    ("kin-noresp", {**BASE, "paths": {"/x": {"get": {}}}}, "invalid paths: value of responses must be an object"),
    ("kin-emptyresp", {**BASE, "paths": {"/x": {"get": {"responses": {}}}}},
     "invalid paths: the responses object MUST contain at least one response code"),
    ("kin-nodesc", {**BASE, "paths": {"/x": {"get": {"responses": {"200": {}}}}}},
     "invalid paths: a short description of the response is required"),
    ("kin-param", {**BASE, "paths": {"/m/{id}": {"get": {"responses": OK_RESP}}}},
     "invalid paths: operation GET /m/{id} must define exactly all path parameters (missing: [id])"),
    ("kin-null", {**BASE, "paths": {}, "components": {"schemas": {"N": {"type": "null"}}}},
     "invalid components: unsupported 'type' value \"null\""),
])
def test_activedoc_validated_as_kin_openapi_094(up, name, doc, expect):
    """Upstream: kin-openapi v0.94.0 openapi3/openapi3.go, info.go, paths.go, operation.go, response.go,
    schema.go; 3scale-operator controllers/capabilities/activedoc_threescale_reconciler.go (field prefix)."""
    up.apply(secret(name, {"doc.json": json.dumps(doc)}))
    up.apply(activedoc(name, {"secretRef": {"name": name}}))
    if expect is None:
        assert synced_current(up.wait(f"activedoc/{name}", "Ready"), "Ready")
        return
    obj = up.wait(f"activedoc/{name}", "Invalid")
    assert cond(obj, "Invalid")["message"] == (
        f'spec.activeDocOpenAPIRef.secretRef: Invalid value: v1.ObjectReference{{Kind:"", Namespace:"{NS}", '
        f'Name:"{name}", UID:"", APIVersion:"", ResourceVersion:"", FieldPath:""}}: {expect}')


def test_activedoc_does_not_watch_its_secret(up):
    """Upstream: 3scale-operator controllers/capabilities/activedoc_controller.go (SetupWithManager watches
    ActiveDoc only)."""
    up.apply(secret("adw-doc", {"doc.json": json.dumps(OAS30)}))
    up.apply(activedoc("adw", {"secretRef": {"name": "adw-doc"}}))
    doc_id = up.wait("activedoc/adw", "Ready")["status"]["activeDocId"]
    changed = {**OAS30, "info": {"title": "changed", "version": "2"}}
    up.apply(secret("adw-doc", {"doc.json": json.dumps(changed)}))
    # another ActiveDoc reconciled after the Secret change proves the worker went past it
    up.apply(secret("adw-other", {"doc.json": json.dumps(OAS30)}))
    up.apply(activedoc("adw-other", {"secretRef": {"name": "adw-other"}}))
    up.wait("activedoc/adw-other", "Ready")
    body = lambda: json.loads(up.porta("GET", f"/admin/api/active_docs/{doc_id}.json").json()["api_doc"]["body"])  # noqa: E731
    assert body()["info"]["title"] == "tiny"
    up.kubectl("patch", "activedoc/adw", "--type=merge", "-p", '{"spec":{"description":"touched"}}')
    poll(lambda: body()["info"]["title"] == "changed")


# ------------------------------------------------------------------ item 4: Failed texts and friends
def test_product_create_error_has_reconcile3scale_prefix(up):
    """Upstream: 3scale-operator controllers/capabilities/product_threescale_reconciler.go
    (reconcile3scaleProduct), 3scale-porta-go-client client/client.go (422 reason re-marshalled)."""
    up.apply(product("pc-x", systemName="x"))
    obj = up.wait("product/pc-x", "Failed")
    assert cond(obj, "Failed")["message"] == (
        'reconcile3scaleProduct product [x]: error calling 3scale system - reason: {"system_name":["invalid. Only '
        'ASCII letters, numbers, dashes and underscores are allowed."]} - code: 422')


def test_duplicate_friendly_name_reaches_porta(up):
    """Upstream: 3scale-operator apis/capabilities/v1beta1/product_types.go (Validate's friendly-name map
    is keyed by system name), controllers/capabilities/metrics.go."""
    up.apply(product("fn-pr", metrics={"hits": {"friendlyName": "Hits", "unit": "hit"},
                                       "tokens": {"friendlyName": "Hits", "unit": "token"}}))
    obj = up.wait("product/fn-pr", "Failed")
    assert cond(obj, "Invalid")["status"] == "False"
    assert cond(obj, "Failed")["message"] == (
        'Task failed SyncMetrics: Error sync product metrics [fnpr]: product [fnpr] create metric: error calling '
        '3scale system - reason: '
        '{"friendly_name":["has already been taken"]} - code: 422')
    up.kubectl("patch", "product/fn-pr", "--type=merge", "-p", '{"spec":{"metrics":{"tokens":{"friendlyName":"Tokens"}}}}')
    assert synced_current(fresh_status(up, "product/fn-pr", "Synced"))


def test_policy_configuration_ref_failed_then_synced_and_inline_wins(up):
    """Upstream: 3scale-operator controllers/capabilities/product_policies.go (convertPolicyConfiguration)."""
    up.apply(product("pol-pr", policies=[
        {"name": "cors", "version": "builtin", "enabled": True, "configurationRef": {"name": "pol-cors"}},
        {"name": "headers", "version": "builtin", "enabled": True, "configuration": {"inline": True},
         "configurationRef": {"name": "pol-missing"}}]))
    obj = up.wait("product/pol-pr", "Failed")
    assert cond(obj, "Failed")["message"] == 'Task failed SyncPolicies: Secret "pol-cors" not found'
    assert cond(obj, "Invalid")["status"] == "False"
    up.apply(secret("pol-cors", {"configuration": json.dumps({"allow_origin": "*"})}))
    pid = up.wait("product/pol-pr", "Synced", timeout=60)["status"]["productId"]
    chain = up.porta("GET", f"/admin/api/services/{pid}/proxy/policies.json").json()["policies_config"]
    assert [(p["name"], p["configuration"]) for p in chain] == [
        ("cors", {"allow_origin": "*"}), ("headers", {"inline": True}), ("apicast", {})]


def test_touching_pricing_ranges_pass_the_operator_and_reach_porta(up):
    """Upstream: 3scale-operator apis/capabilities/v1beta1/product_types.go (isOverlappingRanges: strict),
    controllers/capabilities/application_plan_reconciler.go (nested task runner); porta
    app/models/pricing_rule.rb range_overlap (inclusive ranges: 1..10 and 10..20 overlap)."""
    rules = [{"from": 1, "to": 10, "pricePerUnit": "0.10", "metricMethodRef": {"systemName": "hits"}},
             {"from": 10, "to": 20, "pricePerUnit": "0.05", "metricMethodRef": {"systemName": "hits"}}]
    up.apply(product("pr-touch", applicationPlans={"p": {"name": "P", "pricingRules": rules}}))
    obj = up.wait("product/pr-touch", "Failed")
    assert cond(obj, "Invalid")["status"] == "False"  # the operator allows them; porta refuses the second
    assert cond(obj, "Failed")["message"] == (
        "Task failed SyncApplicationPlans: Error sync product [prtouch] plan [p]: Task failed SyncPricingRules: "
        'application plan [p] create pricing rule: error calling 3scale system - reason: {"min":["overlaps with other pricing rule"]} - code: 422')
    rules[1]["from"] = 11
    up.kubectl("patch", "product/pr-touch", "--type=merge", "-p",
               json.dumps({"spec": {"applicationPlans": {"p": {"pricingRules": rules}}}}))
    assert synced_current(fresh_status(up, "product/pr-touch", "Synced"))
    rules.append({"from": 15, "to": 30, "pricePerUnit": "0.01", "metricMethodRef": {"systemName": "hits"}})
    up.kubectl("patch", "product/pr-touch", "--type=merge", "-p",
               json.dumps({"spec": {"applicationPlans": {"p": {"pricingRules": rules}}}}))
    obj = fresh_status(up, "product/pr-touch", "Invalid")
    assert cond(obj, "Invalid")["message"] == (
        'spec.applicationPlans[p].pricingRules[2]: Invalid value: "{\\"from\\":15,\\"to\\":30,\\"metricMethodRef\\":'
        '{\\"systemName\\":\\"hits\\"},\\"pricePerUnit\\":\\"0.01\\"}": '
        "'From' value cannot be less than 'To' values of current rules for the same metric.")


def test_delete_with_provider_secret_gone_drops_the_finalizer(up):
    """Upstream: 3scale-operator controllers/capabilities/backend_controller.go and product_controller.go
    (removeXFrom3scale: a NotFound provider lookup leaves the 3scale object)."""
    up.apply(secret("gone-tenant", {"adminURL": up.porta_url, "token": up.token}))
    up.apply(backend("gone-be", providerAccountRef={"name": "gone-tenant"}))
    bid = up.wait("backend/gone-be", "Synced")["status"]["backendId"]
    up.apply(product("gone-pr", providerAccountRef={"name": "gone-tenant"}))
    pid = up.wait("product/gone-pr", "Synced")["status"]["productId"]
    up.kubectl("delete", "secret/gone-tenant")
    up.kubectl("delete", "product/gone-pr", "backend/gone-be", "--timeout=30s")
    assert up.porta("GET", f"/admin/api/services/{pid}.json").status_code == 200
    assert up.porta("GET", f"/admin/api/backend_apis/{bid}.json").status_code == 200


def _alias_of_loopback() -> str | None:
    """A host name that resolves to 127.0.0.1 but is not in the lab certificate (localhost, 127.0.0.1)."""
    import socket
    for name in (socket.gethostname(), "vm", "runsc"):
        try:
            if name not in ("localhost",) and socket.gethostbyname(name) == "127.0.0.1":
                return name
        except OSError:
            continue
    return None


def test_pcp_reads_the_tls_skip_annotation_from_itself(up):
    """Upstream: 3scale-operator controllers/capabilities/proxyconfigpromote_controller.go
    (GetInsecureSkipVerifyAnnotation(proxyConfigPromote.GetAnnotations()))."""
    alias = _alias_of_loopback()
    if alias is None:
        pytest.skip("no other name for 127.0.0.1 on this machine")
    port = up.porta_url.rsplit(":", 1)[1]
    up.apply(secret("tls-tenant", {"adminURL": f"https://{alias}:{port}", "token": up.token}))
    body = product("tls-pr", providerAccountRef={"name": "tls-tenant"})
    body["metadata"]["annotations"] = {"insecure_skip_verify": "true"}
    up.apply(body)
    up.wait("product/tls-pr", "Synced")
    up.apply(pcp("tls-strict", "tls-pr"))
    obj = up.wait("proxyconfigpromote/tls-strict", "Failed")
    assert "certificate" in cond(obj, "Failed")["message"] and cond(obj, "Ready")["status"] == "False"
    skip = pcp("tls-skip", "tls-pr")
    skip["metadata"]["annotations"] = {"insecure_skip_verify": "true"}
    up.apply(skip)
    assert up.wait("proxyconfigpromote/tls-skip", "Ready")["status"]["latestStagingVersion"] > 0


def test_backend_metric_removal_cleans_product_plan_references(up):
    """Upstream: 3scale-operator controllers/capabilities/backend_threescale_reconciler.go
    (deleteExternalMetricReferences / deleteExternalMetricReferencesOnProduct)."""
    up.apply(backend("xr-be", metrics={"tokens": {"friendlyName": "Tokens", "unit": "token"}},
                     methods={"chat": {"friendlyName": "Chat"}}))
    up.wait("backend/xr-be", "Synced")
    plans = {"basic": {"name": "Basic", "limits": [
        {"period": "day", "value": 10, "metricMethodRef": {"systemName": "hits"}},
        {"period": "day", "value": 5, "metricMethodRef": {"systemName": "tokens", "backend": "xrbe"}}],
        "pricingRules": [{"from": 1, "to": 9, "pricePerUnit": "1.00", "metricMethodRef": {"systemName": "chat", "backend": "xrbe"}}]}}
    up.apply(product("xr-pr", "xrbe", applicationPlans=plans))
    up.wait("product/xr-pr", "Synced")
    # one at a time: only Synced Product CRs are cleaned (helper.ProductList), and the cleaned Product
    # re-syncs against the Backend spec (removing both at once races with that re-sync, as upstream)
    up.kubectl("patch", "backend/xr-be", "--type=json", "-p", json.dumps([{"op": "remove", "path": "/spec/methods"}]))
    poll(lambda: not up.get("product/xr-pr")["spec"]["applicationPlans"]["basic"].get("pricingRules"))
    assert synced_current(fresh_status(up, "product/xr-pr", "Synced"))
    up.kubectl("patch", "backend/xr-be", "--type=json", "-p", json.dumps([{"op": "remove", "path": "/spec/metrics/tokens"}]))
    plan = poll(lambda: len((p := up.get("product/xr-pr")["spec"]["applicationPlans"]["basic"])["limits"]) == 1 and p)
    assert plan["limits"] == [{"period": "day", "value": 10, "metricMethodRef": {"systemName": "hits"}}]
    assert synced_current(fresh_status(up, "backend/xr-be", "Synced"))
    assert synced_current(fresh_status(up, "product/xr-pr", "Synced"))


@pytest.mark.parametrize("raw,expect", [
    (b'{"openapi": 3.0, "info": {"title": "t", "version": "1"}, "paths": {}}',
     'error unmarshaling JSON: failed to unmarshal property "openapi" (*string): '
     "json: cannot unmarshal number into Go value of type string"),
    (b'{"openapi": "3.0.0", "info": "x", "paths": {}}',
     'error unmarshaling JSON: failed to unmarshal property "info" (*openapi3.Info): failed to unmarshal extension '
     'properties: json: cannot unmarshal string into Go value of type map[string]json.RawMessage ("x")'),
    (b'{"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": []}',
     'error unmarshaling JSON: failed to unmarshal property "paths" (*openapi3.Paths): '
     "json: cannot unmarshal array into Go value of type openapi3.Paths"),
    (b"openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n  /m/{id}:\n    get:\n      parameters:\n"
     b"      - {name: id, in: path, schema: {type: string}}\n      responses: {'200': {description: ok}}\n",
     'invalid paths: path parameter "id" must be required'),
    (b'{"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"get": {"responses": '
     b'{"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Nope"}}}}}}}}}',
     'failed to resolve "Nope" in fragment in URI: "#/components/schemas/Nope": map key "Nope" not found'),
])
def test_kin_openapi_094_decoding_and_validation_texts(up, raw, expect):
    """What the operator's kin-openapi v0.94.0 says about broken documents (jsoninfo/unmarshal.go,
    openapi3/loader.go LoadFromData, openapi3/parameter.go Validate): the collection shows the Invalid
    message as is, so these are the texts a user reads."""
    name = f"kin-raw-{abs(hash(raw)) % 100000}"
    up.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
              "data": {"doc.json": base64.b64encode(raw).decode()}})
    up.apply(activedoc(name, {"secretRef": {"name": name}}))
    obj = up.wait(f"activedoc/{name}", "Invalid")
    assert cond(obj, "Invalid")["message"].endswith(": " + expect)
