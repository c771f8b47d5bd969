"""What the playbooks and roles report (plugins/plugin_utils/outcomes.py, filters plugins/filter/outcomes.py):
results, reports, summaries and failure explanations, built as data, for any name a user may give."""
from __future__ import annotations

import json
import shlex

import pytest

from ansible_collections.maas.threescale.plugins.filter.outcomes import FilterModule
from ansible_collections.maas.threescale.plugins.plugin_utils import outcomes as o
from ansible_collections.maas.threescale.plugins.module_utils.spreadsheet import spreadsheet_cell

F = FilterModule().filters()


@pytest.mark.parametrize("failed,why", [
    ({"status": 401, "msg": "Unauthorized"}, "refused the credentials (HTTP 401"),
    ({"msg": "Forbidden: products is forbidden"}, "may not read Products in namespace 3scale (HTTP 403)"),
    ({"msg": "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"}, "certificate is not trusted"),
    ({"msg": "Max retries exceeded: Connection refused"}, "cannot be reached or is not a Kubernetes API server"),
])
def test_k8s_access_problem_names_the_cause_and_the_fix(failed, why):
    msg = F["k8s_access_problem"](failed, "3scale", "https://api.example:6443")
    assert msg.startswith("Cannot use the cluster https://api.example:6443, nothing was changed: ")
    assert why in msg and "maas_k8s_api_key" in msg and "K8S_AUTH_SSL_CA_CERT" in msg
    assert "of the kubeconfig" in o.k8s_access_problem(failed, "3scale")


@pytest.mark.parametrize("failed,why", [
    ({"status": 403, "msg": "Access denied"}, "it refused the access token (HTTP 403)."),
    ({"status": None, "msg": "certificate verify failed"}, "its certificate is not trusted (CA)."),
    ({"msg": "Connection refused"}, "it cannot be reached."),
    ({"status": 503, "msg": "Service Unavailable"}, "it answered HTTP 503."),
])
def test_admin_access_problem(failed, why):
    msg = F["admin_access_problem"](failed, "https://3scale-admin.example", "3scale")
    assert msg.startswith("Cannot use the 3scale admin API at https://3scale-admin.example, nothing was changed: " + why)
    assert "maas_admin_access_token" in msg and "namespace 3scale" in msg
    long = o.admin_access_problem({"status": 500, "msg": "x" * 1000}, "u", "ns")
    assert "x" * 297 + "..." in long and "x" * 298 not in long


def test_cr_rejections_keep_the_operators_message_and_hint():
    resources = [
        {"kind": "Product", "namespace": "3scale", "name": "ok", "state": "ready"},
        {"kind": "Product", "namespace": "3scale", "name": "taken", "state": "failed",
         "message": 'code: 422 {"system_name":["has already been taken"]}'},
        {"kind": "Backend", "namespace": "3scale", "name": "slow", "state": "timeout", "condition": "Synced",
         "conditions": [{"type": "Synced", "status": "False"}]},
    ]
    out = F["cr_rejections"](resources, 300)
    assert [(r["name"], r["phase"]) for r in out] == [("taken", "Product"), ("slow", "Backend")]
    assert out[0]["message"].startswith("The 3scale operator rejected Product 3scale/taken: code: 422")
    assert "Hint: 3scale still holds the system name" in out[0]["message"]
    assert out[1]["message"] == ('Backend 3scale/slow was not Synced after 300 s; last conditions: '
                                 '[{"type": "Synced", "status": "False"}]')


def test_product_results_any_unicode_name():
    items = [{"name": "llama-🦙", "system_name": "llama", "removed_methods": ["tokenize"],
              "model": {"display_name": "Llama 🦙 «8B»", "model_id": "meta/llama", "auth_mode": "headers",
                        "operations": ["completions"]}},
             {"name": "gone", "system_name": "gone", "removed_methods": [], "model": {}}]
    infos = [{"product": "llama", "exists": True, "id": 7, "endpoint": "http://gw", "sandbox_endpoint": "http://sb",
              "production_version": 3}]
    failed = [{"name": "gone", "message": "a"}, {"name": "gone", "message": "b"}]
    out = F["product_results"](items, infos, failed, "standard", False)
    assert out[0]["display_name"] == "Llama 🦙 «8B»" and out[0]["product_id"] == 7 and out[0]["pending_promotion"]
    assert not out[0]["failed"] and out[0]["error"] == ""
    assert out[1] == dict(out[1], exists=False, product_id=None, failed=True, error="a; b", pending_promotion=False)
    assert not F["product_results"](items, infos, [], "standard", True)[0]["pending_promotion"]


def test_account_specs():
    specs = F["account_specs"](["user1", "dev@example.org", "user2"], "example.com", {"user2": "own-pass-123"}, "")
    assert specs == [{"username": "user1", "org_name": "user1", "email": "user1@example.com"},
                     {"email": "dev@example.org"},
                     {"username": "user2", "org_name": "user2", "email": "user2@example.com", "password": "own-pass-123"}]
    assert all(s["password"] == "d" * 12 for s in o.account_specs(["a", "b@c"], "x", None, "d" * 12))


ONBOARDED = [{"name": "m", "display_name": "Model's «best»", "system_name": "m", "product_id": 5,
              "endpoint": "https://gw.example/it's/", "model_id": "org/model'1", "auth_mode": "headers",
              "applications": [{"account": "user1", "application_id": 11, "user_key": "SECRET-KEY-1"},
                               {"account": "user2", "application_id": 12, "user_key": "SECRET-KEY-2"}],
              "smoke_test": {"total_tokens": 20, "latency_ms": 35}}]


def test_the_report_never_carries_a_key():
    report = F["onboard_report"](ONBOARDED)
    assert "SECRET" not in json.dumps(report)
    assert report[0]["applications"] == [{"account": "user1", "application_id": 11}, {"account": "user2", "application_id": 12}]
    assert report[0]["production_endpoint"] == "https://gw.example/it's/"


def test_the_summary_curl_is_quoted_for_a_shell_and_keys_only_when_asked():
    hidden = F["onboard_summary"](ONBOARDED, False)[0]
    assert "SECRET" not in json.dumps(hidden) and "keys" not in hidden
    assert hidden["accounts"] == ["user1 -> application 11", "user2 -> application 12"]
    assert hidden["smoke_test"] == "OK, 20 tokens in 35 ms"
    argv = shlex.split(hidden["curl"])  # what a POSIX shell would run: the quote in the URL stays data
    assert argv[:4] == ["curl", "-X", "POST", "https://gw.example/it's/v1/completions"]
    assert argv[argv.index("-H", 5) + 1] == "Authorization: Bearer <API_KEY>"
    assert json.loads(argv[-1]) == {"model": "org/model'1", "prompt": "San Francisco is a", "max_tokens": 15,
                                    "temperature": 0}
    shown = F["onboard_summary"](ONBOARDED, True)[0]
    assert shown["keys"] == ["user1: SECRET-KEY-1", "user2: SECRET-KEY-2"]
    assert "Authorization: Bearer SECRET-KEY-1" in shlex.split(shown["curl"])
    skipped = F["onboard_summary"]([dict(ONBOARDED[0], smoke_test={"skipped": "check mode"})], False)[0]
    assert skipped["smoke_test"] == "skipped: check mode"


@pytest.mark.parametrize("exists,path,check,status,ms,summary,detail", [
    (True, "/v1/models", False, 200, 35, "OK", "OK"),
    (True, "/v1/models", False, 200, 2500, "slow", "slow"),
    (True, "/v1/models", False, 403, 5, "key refused", "key refused"),
    (True, "/v1/models", False, -1, 5, "gateway not serving", "gateway not serving"),
    (True, "/v1/models", False, 404, 5, "gateway not serving", "gateway not serving"),
    (True, "/v1/models", False, 502, 5, "model down", "model down"),
    (True, "/v1/models", False, 418, 5, "error 418", "error 418"),
    (False, "/v1/models", False, -1, 0, "not published", "not published"),
    (True, "", False, -1, 0, "OK", "no GET operation to probe"),
    (True, "/v1/models", True, -1, 0, "OK", "skipped (check mode)"),
])
def test_verify_result_verdicts(exists, path, check, status, ms, summary, detail):
    r = F["verify_result"]({"name": "m", "system_name": "m", "path": path}, {"exists": exists, "endpoint": "http://gw"},
                           status, ms, check)
    assert (r["status"], r["detail"], r["http_status"], r["latency_ms"]) == (summary, detail, status, ms)
    assert r["line"] == "m: %s (HTTP %s, %s ms)" % (detail, status, ms)


TRANSIENT = r"\b(429|500|502|503|504)\b|RemoteDisconnected"
DEFS = [{"kind": "Backend", "metadata": {"name": "m1", "labels": {"maas.threescale/model": "m1"}}},
        {"kind": "Backend", "metadata": {"name": "m2", "labels": {"maas.threescale/model": "m2"}}}]


def test_k8s_apply_outcomes_of_one_call_or_of_a_loop():
    one_call = {"results": [{"changed": True, "result": {"results": [
        {"result": {"metadata": {"name": "m1"}}}, {"error": {"msg": "Backend.capabilities \"m2\" is invalid", "status": 422}}]}}]}
    per_definition = {"results": [{"changed": True, "result": {"metadata": {"name": "m1"}}},
                                  {"changed": False, "error": {"msg": "admission webhook denied"}}]}
    for registered, why in ((one_call, 'Backend.capabilities "m2" is invalid'), (per_definition, "admission webhook denied")):
        results = F["k8s_apply_results"](registered)
        assert len(results) == 2 and "error" not in results[0]
        assert F["k8s_apply_refusals"](DEFS, results, "3scale") == [
            {"name": "m2", "phase": "Backend", "message": "The Kubernetes API refused Backend 3scale/m2: " + why}]


def test_k8s_apply_retryable_only_for_transient_errors():
    assert F["k8s_apply_retryable"]({"failed": True, "msg": "Failed: (503) Service Unavailable"}, TRANSIENT)
    assert not F["k8s_apply_retryable"]({"failed": True, "msg": "Failed: (422) Unprocessable"}, TRANSIENT)
    went_through = {"result": {"results": [{"result": {}}, {"error": {"msg": "x", "status": 429}}]}}
    assert F["k8s_apply_retryable"](went_through, TRANSIENT)
    assert not F["k8s_apply_retryable"]({"result": {"results": [{"error": {"msg": "x", "status": 422}}]}}, TRANSIENT)
    assert not F["k8s_apply_retryable"]({"changed": True, "result": {"metadata": {}}}, TRANSIENT)


def test_usage_products_given_or_every_managed_product():
    crs = [{"metadata": {"name": "b-cr"}, "spec": {"systemName": "b"}}, {"metadata": {"name": "a"}, "spec": {}},
           {"metadata": {"name": "b2"}, "spec": {"systemName": "b"}}]
    assert F["usage_products"](None, crs) == ["a", "b"]
    assert F["usage_products"](" x , y,,", crs) == ["x", "y"]
    assert F["usage_products"](["y", "x"], crs) == ["y", "x"]
    assert F["usage_products"]("", crs) == ["a", "b"]


def test_usage_rows_and_a_csv_no_spreadsheet_runs():
    results = [{"exists": False},
               {"exists": True, "product": {"system_name": "m", "name": "M"},
                "methods": [{"system_name": "completions"}, {"system_name": "models"}],
                "accounts": [{"id": 7, "name": '=HYPERLINK("http://evil","x")', "methods": {"completions": 3}},
                             {"id": 8, "name": "", "methods": {"completions": "2", "models": 1}}]}]
    rows = F["usage_rows"](results)
    assert [(r["account"], r["operation"], r["calls"]) for r in rows] == [
        ('=HYPERLINK("http://evil","x")', "completions", 3), ('=HYPERLINK("http://evil","x")', "models", 0),
        ("8", "completions", 2), ("8", "models", 1)]
    text = F["usage_csv"](rows, {"since": "2026-12-01", "until": "2026-12-07"})
    import csv
    import io
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed[0]["account"] == "'" + '=HYPERLINK("http://evil","x")' and parsed[0]["calls"] == "3"
    assert parsed[2] == {"model": "m", "account_id": "8", "account": "8", "operation": "completions", "calls": "2",
                         "since": "2026-12-01", "until": "2026-12-07"}
    assert [spreadsheet_cell(v) for v in ("+1", "-x", "@a", "\tt", "ok", 5)] == ["'+1", "'-x", "'@a", "'\tt", "ok", 5]


def test_managed_product_targets_keys_and_refs():
    crs = [{"metadata": {"name": "z"}, "spec": {"systemName": "zs", "name": "Z", "applicationPlans": {"standard": {}},
                                                "mappingRules": [{"httpMethod": "GET", "pattern": "/health"}]}},
           {"metadata": {"name": "a", "annotations": {"maas.threescale/model-id": "org/a"}},
            "spec": {"mappingRules": [{"httpMethod": "GET", "pattern": "/v1/models"},
                                      {"httpMethod": "POST", "pattern": "/v1/completions"}]}},
           {"metadata": {"name": "m"}, "spec": {"mappingRules": [{"httpMethod": "POST", "pattern": "/v1/models"}]}}]
    assert F["verify_targets"](crs) == [
        {"name": "a", "system_name": "a", "plan": "", "path": "/v1/models", "operation": "models", "model_id": "org/a"},
        {"name": "m", "system_name": "m", "plan": "", "path": "", "operation": "", "model_id": ""},
        {"name": "z", "system_name": "zs", "plan": "standard", "path": "/health", "operation": "health", "model_id": ""}]
    assert F["prune_targets"](crs[:2]) == [{"name": "z", "system_name": "zs", "display_name": "Z", "accounts": []},
                                           {"name": "a", "system_name": "", "display_name": "a", "accounts": []}]
    assert F["application_keys"]([{"account": "u", "application_id": 1, "user_key": "k", "state": "live"}]) == [
        {"account": "u", "application_id": 1, "user_key": "k"}]
    assert F["object_refs"](["s1"], "Secret", "3scale") == [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1", "namespace": "3scale"}}]


def test_smoke_test_result_reports_the_request_and_the_wait_of_the_first_call():
    completion = {"status": 200, "text": " a city", "usage": {"total_tokens": 8}, "total_tokens": 8,
                  "latency_ms": 412, "attempts": 1}
    listing = {"status": 200, "attempts": 3}
    r = F["smoke_test_result"](completion, listing, "completions", "https://gw", "tiny")
    assert r == {"endpoint": "https://gw", "model_id": "tiny", "operation": "completions", "status": 200,
                 "text": " a city", "usage": {"total_tokens": 8}, "total_tokens": 8, "latency_ms": 412,
                 "completion_seconds": 0.412, "attempts": 3}
    # no model list mapped (a skipped task has no attempts): the completion's own attempts
    skipped_listing = {"skipped": True, "changed": False}
    assert F["smoke_test_result"](dict(completion, attempts=2), skipped_listing, "completions", "u", "m")["attempts"] == 2
    check = F["smoke_test_result"]({"skipped_reason": "check mode sends no request"}, {}, "completions", "u", "m")
    assert check == {"endpoint": "u", "model_id": "m", "operation": "completions", "skipped": "check mode"}


def test_lease_summary_and_problem_name_the_holders_and_the_variable_to_change():
    held = {"held": [{"name": "maas-onboard-a"}, {"name": "maas-onboard-b"}], "waited": 0}
    assert F["lease_summary"](held) == "Holding maas-onboard-a, maas-onboard-b"
    waited = dict(held, waited=3.5, leases=[{"waited": 3.5, "holder_seen": "run-1"}, {"waited": 0, "holder_seen": None},
                                            {"waited": 1, "holder_seen": "run-1"}])
    assert F["lease_summary"](waited) == "Holding maas-onboard-a, maas-onboard-b after waiting 3.5 s for run-1"
    assert F["lease_problem"](held, "3scale", 900) == ""
    busy = {"reason": "held_by_other", "lease_name": "maas-onboard-a", "holder_seen": "run-1", "msg": "still held"}
    msg = F["lease_problem"](busy, "3scale", 60)
    assert "Lease 3scale/maas-onboard-a, holder run-1" in msg and "maas_lock_timeout (seconds to wait, now 60)" in msg
    assert "nothing was changed" in msg and "(still held)" in msg
    other = F["lease_problem"]({"reason": "error", "msg": "x" * 600}, "3scale", 60)
    assert other.startswith("Cannot take the onboarding lock") and len(other) < 600 and other.endswith("...")


def test_onboard_record_keeps_the_smoke_test_only_when_one_ran():
    published = {"name": "m", "endpoint": "https://gw"}
    apps = [{"account": "user1", "user_key": "k"}]
    expected = dict(published, applications=apps, smoke_test={"status": 200})
    assert F["onboard_record"](published, apps, {"status": 200}, True) == expected
    assert F["onboard_record"](published, apps, {"status": 200}, False)["smoke_test"] == {}
    assert F["onboard_record"](published, [], {"status": 200}, True)["smoke_test"] == {}
    assert "applications" not in published  # the input is not changed


def test_onboard_failures_names_each_model_with_its_message():
    assert F["onboard_failures"]([], 3) == ""
    failed = [{"name": "a", "message": "Backend rejected"}, {"name": "b", "message": "timeout"}]
    assert F["onboard_failures"](failed, 3, ", and are in the credentials file") == (
        "2 of 3 model(s) could not be onboarded (the others were, and are in the credentials file): "
        "a: Backend rejected | b: timeout")


def test_offboard_objects_in_deletion_order_and_only_this_models():
    pcps = [{"metadata": {"name": "m-1"}, "spec": {"productCRName": "m"}},
            {"metadata": {"name": "mm-1"}, "spec": {"productCRName": "mm"}}]
    secrets = [{"metadata": {"name": "m-openapi-0a1b"}}, {"metadata": {"name": "m-openapi"}},
               {"metadata": {"name": "m-openapi-zz"}}, {"metadata": {"name": "mm-openapi-0a1b"}}]
    objects = F["offboard_objects"](pcps, secrets, "m", "3scale")
    refs = objects["crs"] + objects["secrets"]
    assert [r["kind"] for r in objects["secrets"]] == ["Secret", "Secret"]
    assert [(r["kind"], r["metadata"]["name"]) for r in refs] == [
        ("ProxyConfigPromote", "m-1"), ("ActiveDoc", "m"), ("Product", "m"), ("Backend", "m"),
        ("Secret", "m-openapi"), ("Secret", "m-openapi-0a1b")]
    assert {r["metadata"]["namespace"] for r in refs} == {"3scale"}
    assert refs[0]["apiVersion"] == "capabilities.3scale.net/v1beta1" and refs[-1]["apiVersion"] == "v1"


def test_custom_policy_problem_only_when_a_model_needs_the_missing_policy():
    models = [{"name": "a", "auth_mode": "headers_remove_bearer"}, {"name": "b", "auth_mode": "authorization"}]
    problem = F["custom_policy_problem"](models, [{"spec": {"name": "other"}}], "3scale")
    assert "models a)" in problem and "namespace 3scale" in problem and "maas_product_check_custom_policy" in problem
    assert F["custom_policy_problem"](models, [{"spec": {"name": "remove-bearer"}}], "3scale") == ""
    assert F["custom_policy_problem"](models[1:], [], "3scale") == ""


def test_lease_holder_stable_when_given_else_random_per_call():
    assert F["lease_holder"]("job-42") == "maas.threescale/job-42"
    one, two = F["lease_holder"](None), F["lease_holder"]("")
    assert one != two and one.startswith("maas.threescale/") and len(one.rsplit("/", 1)[1]) == 12
    assert o.lease_holder(None, hostname="ctl").startswith("maas.threescale/ctl/")


def test_existing_accounts_leave_out_what_check_mode_only_pretended_to_create():
    result = {"accounts": [{"username": "new1", "email": "new1@example.com", "action": "created"},
                           {"username": "", "email": "new2@example.com", "action": "created"},
                           {"username": "old", "email": "old@example.com", "action": "none"}]}
    names = ["new1", "new2@example.com", "old", "new1@example.com"]
    assert F["existing_accounts"](names, result, True) == ["old"]
    assert F["existing_accounts"](names, result, False) == names
    assert F["existing_accounts"](names, {}, True) == names


def test_verify_report_lines_file_and_problem():
    results = [{"name": "a", "status": "OK", "line": "a: OK (HTTP 200, 20 ms)"},
               {"name": "b", "status": "model down", "line": "b: model down (HTTP 502, 5 ms)"}]
    out = F["verify_report"](results, "lab")
    assert out["lines"] == [r["line"] for r in results]
    assert out["file"] == {"cluster": "lab", "models": [{"name": "a", "status": "OK"}, {"name": "b", "status": "model down"}]}
    assert out["problem"] == "1 model(s) not answering: b: model down (HTTP 502, 5 ms)"
    empty = F["verify_report"]([], "lab")
    assert empty["lines"] == ["No product is managed by maas.threescale here."] and empty["problem"] == ""


def test_prune_plan_offboards_what_left_the_catalog_and_never_everything_by_mistake():
    crs = [{"metadata": {"name": n}, "spec": {"name": n.upper()}} for n in ("c", "a", "b")]
    plan = F["prune_plan"](crs, [{"name": "b"}], False)
    assert [m["name"] for m in plan["models"]] == ["a", "c"] and plan["problem"] == ""
    empty = F["prune_plan"](crs, [], False)
    assert empty["models"] == [] and "every model would be offboarded (a, b, c); nothing was removed" in empty["problem"]
    assert [m["name"] for m in F["prune_plan"](crs, [], True)["models"]] == ["a", "b", "c"]
    assert F["prune_plan"]([], [], False) == {"models": [], "problem": ""}


def test_access_preview_names_the_accounts_or_none():
    assert F["access_preview"]({"system_name": "tiny"}, ["user1", "user2"]).startswith(
        "Check mode: product tiny does not exist yet; a real run would subscribe user1, user2 to it")
    assert "subscribe no account to it" in F["access_preview"]({"system_name": "tiny"}, [])


def test_usage_window_a_start_date_wins_and_takes_the_granularity():
    assert F["usage_window"]("week", "", "", "day") == {"period": "week", "since": None, "to": None, "granularity": None}
    assert F["usage_window"]("month", "2026-11-01", "2026-11-30", "day") == {
        "period": None, "since": "2026-11-01", "to": "2026-11-30", "granularity": "day"}
    assert F["usage_window"]("", "", "", "") == {"period": None, "since": None, "to": None, "granularity": None}


def test_verify_result_takes_the_gateway_request_result_itself():
    target = {"name": "m", "system_name": "m", "path": "/v1/models"}
    product = {"exists": True, "endpoint": "https://gw"}
    direct = F["verify_result"](target, product, 200, 20)
    assert F["verify_result"](target, product, {"status": 200, "latency_ms": 20}) == direct
    assert F["verify_result"](target, product, {"skipped": True})["http_status"] == -1


def test_a_model_the_gateway_no_longer_lists_is_not_ok():
    """Issue 20 item 5: HTTP 200 from GET /v1/models is not OK when the list lacks the model id; the
    latency judged is the HTTP call's own (gateway_request's latency_ms), against slow_ms."""
    target = {"name": "m", "system_name": "m", "path": "/v1/models", "model_id": "org/m"}
    product = {"exists": True, "endpoint": "https://gw"}
    gone = F["verify_result"](target, product, {"status": 200, "latency_ms": 12, "model_listed": False})
    assert (gone["status"], gone["detail"]) == ("model not served", "model not served")
    assert gone["line"] == "m: model not served (HTTP 200, 12 ms): the gateway's model list does not name org/m"
    report = F["verify_report"]([gone], "c")
    assert report["problem"].startswith("1 model(s) not answering: m: model not served")
    ok = F["verify_result"](target, product, {"status": 200, "latency_ms": 12, "model_listed": True})
    assert ok["status"] == "OK" and F["verify_report"]([ok], "c")["problem"] == ""
    slow = F["verify_result"](target, product, {"status": 200, "latency_ms": 2500, "model_listed": True}, slow_ms=2000)
    assert slow["status"] == "slow"


def test_smoke_test_result_takes_what_was_called_from_the_request_result():
    response = {"endpoint": "https://gw", "operation": "embeddings", "model_id": "m", "status": 200, "latency_ms": 20,
                "attempts": 1, "usage": {"total_tokens": 3}, "total_tokens": 3}
    r = F["smoke_test_result"](response, {"skipped": True})
    assert (r["endpoint"], r["operation"], r["model_id"], r["status"]) == ("https://gw", "embeddings", "m", 200)


def test_k8s_access_problem_takes_the_host_from_the_connection_options_or_the_environment(monkeypatch):
    failed = {"status": 401, "msg": "Unauthorized"}
    assert "cluster https://api.example:6443," in F["k8s_access_problem"](failed, "3scale", {"host": "https://api.example:6443"})
    monkeypatch.setenv("K8S_AUTH_HOST", "https://from-env:6443")
    for omitted in (None, {}, {"host": "__omit_place_holder__abc"}, "__omit_place_holder__abc"):
        assert "cluster https://from-env:6443," in F["k8s_access_problem"](failed, "3scale", omitted)


def test_failed_model_and_plain_http_explanations():
    assert F["failed_model"]("m", "access", {"msg": "boom"}) == {"name": "m", "phase": "access", "message": "boom"}
    assert F["failed_model"]("m", "access", None)["message"] == "failed"
    refused = {"failed": True, "msg": "admin_url http://x is plain http: ... Fix: use https"}
    assert F["admin_access_problem"](refused, "http://x", "3scale") == refused["msg"]


def test_usage_rows_keep_two_accounts_of_the_same_name_apart():
    """Issue 19 item 3: rows are keyed by account id, the organization name beside it."""
    results = [{"exists": True, "product": {"system_name": "m", "name": "M"}, "methods": [{"system_name": "completions"}],
                "accounts": [{"id": 7, "name": "Acme", "methods": {"completions": 3}},
                             {"id": 9, "name": "Acme", "methods": {"completions": 4}}]}]
    rows = F["usage_rows"](results)
    assert [(r["account_id"], r["account"], r["calls"]) for r in rows] == [(7, "Acme", 3), (9, "Acme", 4)]
    lines = F["usage_csv"](rows).splitlines()
    assert lines[0].startswith("model,account_id,account,") and lines[1:] == ["m,7,Acme,completions,3,,", "m,9,Acme,completions,4,,"]


def test_the_printed_curl_runs_in_a_real_shell_without_running_a_hostile_model_id(tmp_path):
    """Issue 19 item 2: what the summary prints is pasted into a shell. Run it in /bin/sh, with a curl
    on PATH that only records its arguments: the hostile model id reaches curl as data, nothing runs."""
    import os
    import subprocess
    hostile = "x'\"$(touch %s/pwned1)`touch %s/pwned2`; touch %s/pwned3 #" % ((tmp_path,) * 3)
    model = dict(ONBOARDED[0], model_id=hostile, endpoint="https://gw.example/$(touch %s/pwned4)/" % tmp_path)
    line = F["onboard_summary"]([model], False)[0]["curl"]
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "curl").write_text("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$ARGS_FILE\"\n")
    (fake / "curl").chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (fake, os.environ.get("PATH", "")), ARGS_FILE=str(tmp_path / "args"))
    subprocess.run(["/bin/sh", "-c", line], env=env, check=True, cwd=tmp_path)
    argv = (tmp_path / "args").read_text().split("\0")[:-1]
    assert not list(tmp_path.glob("pwned*"))
    assert argv[2] == "https://gw.example/$(touch %s/pwned4)/v1/completions" % tmp_path
    assert json.loads(argv[-1])["model"] == hostile


def test_the_printed_example_fits_the_operations_of_the_model():
    """Issue 20 item 4: an embeddings-only model gets an embeddings call, not a completion that its
    product would answer with 404 "No Mapping Rule matched"; the operation the smoke test proved wins."""
    def example(**kw):
        return shlex.split(F["onboard_summary"]([dict(ONBOARDED[0], **kw)], False)[0]["curl"])

    argv = example(operations=["health", "models", "embeddings"], smoke_test={})
    assert argv[3] == "https://gw.example/it's/v1/embeddings" and json.loads(argv[-1]) == {
        "model": "org/model'1", "input": "San Francisco is a"}
    argv = example(operations=["chat/completions", "embeddings"], smoke_test={})
    assert argv[3].endswith("/v1/chat/completions") and json.loads(argv[-1])["messages"][0]["role"] == "user"
    assert example(operations=["tokenize", "models"], smoke_test={})[3].endswith("/tokenize")
    # The smoke test's own operation is the example (it is the one shown to work).
    smoke = {"operation": "chat/completions", "total_tokens": 9, "latency_ms": 5}
    assert example(operations=["completions", "chat/completions"], smoke_test=smoke)[3].endswith("/v1/chat/completions")
    assert example(smoke_test={"skipped": "no key", "operation": "embeddings"})[3].endswith("/v1/completions")
    none = F["onboard_summary"]([dict(ONBOARDED[0], operations=["health", "models"])], False)[0]["curl"]
    assert none.startswith("no example: the product exposes none of")


def test_the_summary_says_what_was_pruned():
    """Issue 20 item 6: the prune run's summary lists what it removed, or in check mode would remove."""
    assert F["onboard_summary"]([], False, ["a", "b"], False) == [
        {"pruned": "Offboarded 2 model(s) that left the catalog: a, b"}]
    assert F["onboard_summary"]([], False, ["a"], True)[-1]["pruned"].startswith("Would offboard (check mode) 1 model(s)")
    assert F["onboard_summary"](ONBOARDED, False, [], False)[-1].get("pruned") is None


# ---- the access phase in one pass (playbooks/tasks/access_batch.yml)

PUBLISHED = [{"name": "a", "system_name": "a", "endpoint": "https://a.example.com", "exists": True},
             {"name": "b", "system_name": "b", "endpoint": "https://b.example.com", "exists": True},
             {"name": "c", "system_name": "c", "endpoint": "https://c.example.com", "exists": True}]
MODELS = [{"name": "a", "display_name": "A", "model_id": "org/a", "accounts": ["u1", "u2"], "operations": ["models", "completions"]},
          {"name": "b", "display_name": "B", "model_id": "org/b", "accounts": ["u2"], "operations": ["embeddings"]},
          {"name": "c", "display_name": "C", "model_id": "org/c", "accounts": ["u3"], "operations": ["completions"]}]


def test_access_items_and_accounts():
    items = o.access_items(PUBLISHED, MODELS)
    assert items[0] == {"product": "a", "display_name": "A", "accounts": ["u1", "u2"]}
    assert o.access_accounts(items, "u0,u2") == ["u0", "u2", "u1", "u3"]
    want = [{"product": "p", "display_name": "p", "accounts": ["x", "y"]}]
    assert o.access_products([{"product": " p ", "accounts": "x, y"}]) == want


@pytest.mark.parametrize("bad, where", [({"accounts": ["u1"]}, "maas_access_products[0]"), ("p", "maas_access_products[0]")])
def test_access_products_names_the_item_without_a_product(bad, where):
    with pytest.raises(ValueError, match=r"maas_access_products\[0\]: every item needs a product"):
        o.access_products([bad])
    with pytest.raises(ValueError, match="expected a list"):
        o.access_products({"product": "p"})


def registered(*results):
    return {"results": list(results)}


def test_access_results_keep_keys_of_the_products_that_worked_and_the_message_of_the_others():
    res = o.access_results(registered(
        {"item": {"product": "a"}, "changed": True, "applications": [
            {"account": "u1", "application_id": 1, "user_key": "k1", "state": "live", "action": "created"}]},
        {"item": {"product": "b"}, "failed": True, "msg": "Application plan standard not found",
         "applications": [{"account": "u2", "user_key": None}]}))
    assert res == [{"product": "a", "failed": False, "message": "",
                    "applications": [{"account": "u1", "application_id": 1, "user_key": "k1"}]},
                   {"product": "b", "failed": True, "message": "Application plan standard not found", "applications": []}]


def test_smoke_test_targets_only_for_models_with_a_key():
    access = [{"product": "a", "failed": False, "applications": [{"account": "u1", "user_key": "k1"}]},
              {"product": "b", "failed": True, "applications": []},
              {"product": "c", "failed": False, "applications": []}]
    assert o.smoke_test_targets(PUBLISHED, access, MODELS) == [
        {"name": "a", "endpoint": "https://a.example.com", "user_key": "k1", "model_id": "org/a",
         "operations": ["models", "completions"]}]


def test_smoke_test_results_combine_the_two_loops_and_name_each_failure():
    ok = {"item": {"name": "a"}, "status": 200, "text": " hi", "total_tokens": 5, "latency_ms": 12,
          "endpoint": "https://a.example.com", "operation": "completions", "model_id": "org/a", "attempts": 1}
    listed = {"item": {"name": "a"}, "status": 200, "attempts": 3}
    failed = {"item": {"name": "b"}, "failed": True, "msg": "HTTP 403 Authentication parameters missing"}
    no_op = {"item": {"name": "c", "operations": ["health"]}, "skipped": True, "skip_reason": "Conditional result was False"}
    res = o.smoke_test_results(registered(ok, failed, no_op), registered(listed, {"item": {"name": "b"}, "skipped": True}))
    assert res[0]["name"] == "a" and not res[0]["failed"] and res[0]["attempts"] == 3 and res[0]["total_tokens"] == 5
    assert res[1] == {"name": "b", "failed": True, "message": "HTTP 403 Authentication parameters missing"}
    assert res[2]["failed"] and "operations (health) have none of completions" in res[2]["message"]
    lines = o.smoke_test_report(res)
    assert lines[0].startswith('a: org/a answered completions through https://a.example.com: "hi" (5 tokens')
    assert lines[1] == "b: failed: HTTP 403 Authentication parameters missing"
    # the model list failed: that is the model's failure
    res = o.smoke_test_results(registered(ok), registered({"item": {"name": "a"}, "failed": True, "msg": "not listed"}))
    assert res == [{"name": "a", "failed": True, "message": "not listed"}]


def test_onboard_batch_sets_aside_each_failure_with_its_phase_and_message():
    access = [{"product": "a", "failed": False, "applications": [{"account": "u1", "application_id": 1, "user_key": "k1"}]},
              {"product": "b", "failed": True, "message": "no plan", "applications": []},
              {"product": "c", "failed": False, "applications": [{"account": "u3", "application_id": 3, "user_key": "k3"}]}]
    smoke = [{"name": "a", "failed": False, "status": 200, "text": "hi"}, {"name": "c", "failed": True, "message": "503"}]
    out = o.onboard_batch(PUBLISHED, access, smoke)
    assert [m["name"] for m in out["onboarded"]] == ["a"]
    assert out["onboarded"][0]["applications"][0]["user_key"] == "k1"
    assert out["onboarded"][0]["smoke_test"] == {"status": 200, "text": "hi"}
    assert out["failed"] == [{"name": "b", "phase": "access", "message": "no plan"},
                             {"name": "c", "phase": "access", "message": "503"}]
    # check mode, a product not created yet: no access result, no smoke test; onboarded without keys
    out = o.onboard_batch(PUBLISHED[:1], [], [], smoke_enabled=True)
    assert out == {"onboarded": [dict(PUBLISHED[0], applications=[], smoke_test={})], "failed": []}


def test_the_batch_filters_are_registered():
    names = FilterModule().filters()
    for name in ("access_products", "access_accounts", "access_items", "access_results", "smoke_test_results",
                 "smoke_test_targets", "smoke_test_report", "onboard_batch"):
        assert name in names
