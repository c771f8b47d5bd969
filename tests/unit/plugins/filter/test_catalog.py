"""The model catalog (plugins/plugin_utils/catalog.py) and its filters (plugins/filter/catalog.py):
normalisation of every input form, the validation messages every entry point shares, discovered
InferenceServices, and the CRs built as data (Unicode names included)."""
from __future__ import annotations

import base64
import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.maas.threescale.plugins.filter import catalog as filters
from ansible_collections.maas.threescale.plugins.plugin_utils import catalog

SETTINGS = {
    "api_version": "capabilities.3scale.net/v1beta1", "namespace": "3scale", "plan_system_name": "standard",
    "plan_name": "Standard Plan", "plan_published": True, "plan_requires_approval": False, "upstream_timeout": "180",
    "cors_allow_origin": "*", "activedoc_published": True, "provider_account_ref": "",
}


def model(**kw):
    return dict({"name": "tinyllama", "endpoint": "https://tinyllama.example:8443", "model_id": "tiny/llama-1"}, **kw)


def one(**kw):
    result = catalog.catalog([model(**kw)])
    return result["models"][0], result["errors"]


# --- normalisation -----------------------------------------------------------------------------

def test_defaults_fill_every_key():
    m, errors = one()
    assert errors == []
    assert m == {
        "name": "tinyllama", "display_name": "tinyllama", "system_name": "tinyllama",
        "description": "tinyllama served by vLLM (tiny/llama-1)", "endpoint": "https://tinyllama.example:8443",
        "model_id": "tiny/llama-1", "accounts": [], "operations": list(catalog.OPERATION_NAMES),
        "auth_mode": "authorization", "limits": [], "openapi_url": "",
    }


def test_comma_separated_survey_fields_are_split_and_trimmed():
    m, errors = one(accounts=" user1, ,user2 ", operations="completions, health", endpoint="  http://m:8000/v1 ")
    assert errors == []
    assert m["accounts"] == ["user1", "user2"]
    assert m["operations"] == ["completions", "health"]
    assert m["endpoint"] == "http://m:8000/v1"


def test_caller_defaults_apply_only_to_empty_keys():
    limits = [{"metric": "hits", "period": "minute", "value": 5}]
    result = catalog.catalog([model(), model(name="other", auth_mode="authorization", operations=["embeddings"])],
                             operations="completions", auth_mode="headers_remove_bearer", limits=limits,
                             openapi_url="https://docs.example/x.json")
    first, second = result["models"]
    assert (first["operations"], first["auth_mode"], first["limits"]) == (["completions"], "headers_remove_bearer", limits)
    assert first["limits"][0] is not limits[0]  # a copy: later changes do not leak into the caller's variable
    assert (second["operations"], second["auth_mode"]) == (["embeddings"], "authorization")
    assert second["openapi_url"] == "https://docs.example/x.json"


def test_unknown_keys_are_kept_and_description_uses_the_display_name():
    m = one(display_name="Tiny Llama", team="a")[0]
    assert m["team"] == "a"
    assert m["description"] == "Tiny Llama served by vLLM (tiny/llama-1)"


def test_select_input_prefers_maas_models_then_the_single_model_form():
    single = {"name": "solo", "endpoint": "http://s", "model_id": "s", "accounts": "u1,u2"}
    assert filters.model_catalog_input([model()], single) == [model()]
    assert filters.model_catalog_input(None, single) == [single]
    assert filters.model_catalog_input([], single) == [single]
    assert filters.model_catalog_input(None, {"name": ""}) == []
    # A wrong type goes through untouched, for the argument spec check to name it.
    assert filters.model_catalog_input({"name": "x"}, single) == {"name": "x"}
    assert filters.model_catalog_input("tinyllama", single) == "tinyllama"


def test_product_specs_keep_only_the_keys_the_role_takes():
    m = one(accounts=["u1"])[0]
    spec = filters.model_product_specs([m])[0]
    assert set(spec) == set(catalog.PRODUCT_KEYS)
    assert "accounts" not in spec


# --- validation: one message per field, the same from every entry point -----------------------

@pytest.mark.parametrize("fields, expected", [
    ({"name": "Tiny_Llama"}, "name: Kubernetes and 3scale need a DNS-1123 label"),
    ({"name": "m" * 41}, "at most 40 characters (got '" + "m" * 41 + "'"),
    ({"endpoint": "file:///etc/passwd"}, "endpoint: give the model server's base URL with http:// or https:// (got 'file:///etc/passwd')."),
    ({"endpoint": "model.example.com:8000"}, "endpoint: give"),
    ({"endpoint": "https://host:port/"}, "endpoint: give"),
    ({"model_id": "  "}, "model_id: give the id the model server lists in /v1/models"),
    ({"system_name": "Tiny Llama!"}, "system_name: use 2 to 255 lower-case letters, digits, '_' and '-'"),
    ({"system_name": "a"}, "(got 'a'); leave it empty to use the name."),
    ({"system_name": "_x"}, "system_name:"),
    ({"auth_mode": "basic"}, "auth_mode: choose authorization or headers_remove_bearer (got 'basic')."),
    ({"openapi_url": "ftp://x"}, "openapi_url: give an http:// or https:// URL, or leave it empty (got 'ftp://x')."),
    ({"operations": ["chat"]}, "operations: choose one or more of health, tokenize, detokenize, models, version,"
                               " chat/completions, completions, embeddings (got chat)."),
    ({"limits": [{"metric": "hits", "period": "minute", "value": -5}]}, "limits: value must be 0 or more (got -5)."),
    ({"limits": [{"metric": "hits", "period": "minute", "value": "many"}]}, "limits: value must be a whole number"),
    ({"limits": ["lots"]}, "limits: give each limit as a dict {metric, period, value}"),
    ({"operations": ["embeddings"], "limits": [{"metric": "completions", "period": "minute", "value": 5}]},
     "limits: a metric must be hits or one of the operations of the model (embeddings), got completions."),
])
def test_each_bad_field_is_named_with_its_fix(fields, expected):
    _m, errors = one(**fields)
    assert len(errors) == 1
    assert errors[0].startswith("Model '%s' is invalid, nothing was changed: " % _m["name"])
    assert expected in errors[0]


def test_every_problem_of_a_model_is_reported_at_once():
    _m, errors = one(name="Bad", endpoint="x", model_id="")
    assert len(errors) == 1
    for field in ("name:", "endpoint:", "model_id:", "system_name:"):
        assert field in errors[0]


def test_good_system_names_and_endpoints_pass():
    for fields in ({"system_name": "ab"}, {"system_name": "tiny_llama-2"}, {"endpoint": "http://10.0.0.1:8000"},
                   {"endpoint": "https://m.svc.cluster.local/v1/"}, {"openapi_url": "https://x/y.json"},
                   {"limits": [{"metric": "completions", "period": "day", "value": 0}]}):
        assert one(**fields)[1] == [], fields


def test_duplicate_names_are_refused():
    errors = catalog.catalog([model(), model()])["errors"]
    assert errors == ["name: every model needs its own name, nothing was changed (names given: tinyllama, tinyllama)."
                      " Fix: remove or rename the repeated entries."]


def test_playbook_and_role_get_the_same_system_name_message():
    """The playbooks call model_catalog with their defaults, the maas_product role with its own:
    a bad system_name reads the same either way."""
    from_playbook = filters.model_catalog([model(system_name="Tiny Llama!", accounts="u1")], operations=None)
    from_role = filters.model_catalog([filters.model_product_specs([model(system_name="Tiny Llama!")])[0]],
                                      operations=list(catalog.OPERATION_NAMES), auth_mode="authorization", limits=[],
                                      openapi_url="")
    assert from_playbook["errors"] == from_role["errors"]
    assert len(from_role["errors"]) == 1


def test_model_catalog_refuses_what_is_not_a_list_of_dicts():
    with pytest.raises(AnsibleFilterError, match="expected a list of models"):
        filters.model_catalog("tinyllama")
    with pytest.raises(AnsibleFilterError, match="an item of type str"):
        filters.model_catalog(["tinyllama"])


# --- discovered InferenceServices -------------------------------------------------------------

def isvc(name="llm", annotations=None, ready="True", generation=1, observed=1, url="https://llm.example", args=None,
         containers=None):
    predictor = {"model": {"args": args or []}}
    if containers is not None:
        predictor["containers"] = containers
    return {"metadata": {"name": name, "namespace": "models", "generation": generation, "annotations": annotations or {}},
            "spec": {"predictor": predictor},
            "status": {"url": url, "observedGeneration": observed,
                       "conditions": [{"type": "Ready", "status": ready, "message": "not yet" if ready != "True" else ""}]}}


def test_ready_inference_service_becomes_a_model_from_its_object():
    found = filters.inference_service_models([isvc(args=["--port=8080", "--served-model-name=granite"])], ["u1"])
    assert found == [{"ready": True, "namespace": "models", "reason": "", "source": "InferenceService models/llm",
                      "model": {"name": "llm", "display_name": "", "endpoint": "https://llm.example",
                                "model_id": "granite", "accounts": ["u1"]}}]


def test_annotations_win_over_the_object_and_the_defaults():
    ann = {"maas.threescale/display-name": "Granite 🪨", "maas.threescale/endpoint": "http://internal:8000",
           "maas.threescale/model-id": "ibm/granite", "maas.threescale/accounts": "a,b",
           "maas.threescale/operations": "completions", "maas.threescale/limits": '[{"metric": "hits", "period": "day", "value": 9}]'}
    m = catalog.inference_service_model(isvc(annotations=ann), ["u1"], allow_endpoint=True)["model"]
    assert m == {"name": "llm", "display_name": "Granite 🪨", "endpoint": "http://internal:8000", "model_id": "ibm/granite",
                 "accounts": "a,b", "operations": "completions", "limits": [{"metric": "hits", "period": "day", "value": 9}]}
    normalised = catalog.catalog([m])
    assert normalised["errors"] == []
    assert normalised["models"][0]["accounts"] == ["a", "b"]


@pytest.mark.parametrize("args, containers, expected", [
    (["--served-model-name", "a"], None, "a"),
    (["--served-model-name"], None, "llm"),  # a flag with no value: fall back to the name
    ([], [{"name": "c", "args": ["--served-model-name=b"]}], "b"),
    ([7, "--other"], None, "llm"),
])
def test_served_model_name_from_the_predictor(args, containers, expected):
    assert catalog.inference_service_model(isvc(args=args, containers=containers))["model"]["model_id"] == expected


@pytest.mark.parametrize("kw, reason", [
    ({"ready": "False"}, "not yet"),
    ({"observed": 0, "generation": 2}, ""),
    ({"url": ""}, ""),
])
def test_not_ready_inference_services_are_marked(kw, reason):
    found = catalog.inference_service_model(isvc(**kw))
    assert found["ready"] is False
    assert found["reason"] == reason


def test_missing_ready_condition_is_the_reason():
    item = isvc()
    item["status"]["conditions"] = []
    assert catalog.inference_service_model(item)["reason"] == "no Ready condition"


def test_limits_annotation_that_is_not_json_names_the_object_and_the_fix():
    with pytest.raises(AnsibleFilterError, match=r"InferenceService models/llm: annotation maas.threescale/limits is not JSON"):
        filters.inference_service_models([isvc(annotations={"maas.threescale/limits": "60/min"})])


# --- CRs as data ------------------------------------------------------------------------------

def resources(products=None, settings=None, **kw):
    m = catalog.catalog([model(**kw)])["models"][0]
    return filters.product_resources([m], settings or SETTINGS, products)[0]


def test_backend_product_and_activedoc_carry_the_model():
    item = resources(display_name="Tiny", system_name="tiny_llama", operations=["completions", "health"],
                     limits=[{"metric": "completions", "period": "minute", "value": "5"}])
    labels = {"app.kubernetes.io/managed-by": "maas.threescale", "maas.threescale/model": "tinyllama"}
    assert item["backend"]["metadata"] == {"name": "tinyllama", "namespace": "3scale", "labels": labels}
    assert item["backend"]["spec"]["privateBaseURL"] == "https://tinyllama.example:8443"
    assert item["backend"]["spec"]["systemName"] == "tiny_llama"
    spec = item["product"]["spec"]
    # Mapping rules in the catalog's order, whatever the order given.
    assert [r["pattern"] for r in spec["mappingRules"]] == ["/health", "/v1/completions"]
    assert list(spec["methods"]) == ["health", "completions"]
    assert spec["backendUsages"] == {"tiny_llama": {"path": "/"}}
    assert spec["deployment"]["apicastHosted"]["authentication"]["userkey"] == {"credentials": "authorization"}
    assert [p["name"] for p in spec["policies"]] == ["cors", "apicast", "upstream_connection"]
    assert spec["policies"][2]["configuration"]["read_timeout"] == 180
    assert spec["applicationPlans"]["standard"]["limits"] == [
        {"metricMethodRef": {"systemName": "completions"}, "period": "minute", "value": 5}]
    doc = item["activedoc"]["spec"]
    assert doc["systemName"] == "tinyllama"  # ActiveDoc systemName: [a-z0-9] only
    assert doc["productSystemName"] == "tiny_llama"
    assert doc["activeDocOpenAPIRef"] == {"secretRef": {"name": item["secret"]["metadata"]["name"], "namespace": "3scale"}}
    assert "providerAccountRef" not in item["product"]["spec"]
    assert item["waits"]["Product"] == {"kind": "Product", "name": "tinyllama", "namespace": "3scale"}
    assert item["exists"] is False


def test_headers_remove_bearer_adds_the_custom_policy_before_apicast():
    spec = resources(auth_mode="headers_remove_bearer")["product"]["spec"]
    assert spec["deployment"]["apicastHosted"]["authentication"]["userkey"] == {"authUserKey": "Authorization",
                                                                                "credentials": "headers"}
    assert [p["name"] for p in spec["policies"]] == ["cors", "remove-bearer", "apicast", "upstream_connection"]


def test_openapi_document_lists_the_selected_operations():
    item = resources(operations=["completions", "models"])
    document = json.loads(base64.b64decode(item["secret"]["data"]["openapi.json"]))
    assert document["openapi"] == "3.0.3"
    assert list(document["paths"]) == ["/v1/models", "/v1/completions"]
    post = document["paths"]["/v1/completions"]["post"]
    assert post["operationId"] == "completions"
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Completion"}
    assert post["responses"]["403"] == {"description": "Authentication parameters missing, or authentication failed"}
    assert "requestBody" not in document["paths"]["/v1/models"]["get"]
    assert document["components"]["schemas"]["Completion"]["properties"]["model"]["example"] == "tiny/llama-1"
    assert item["secret"]["metadata"]["labels"]["maas.threescale/component"] == "openapi"


def test_the_secret_name_follows_the_document():
    a, b = resources(), resources()
    assert a["secret"]["metadata"]["name"] == b["secret"]["metadata"]["name"]
    assert a["secret"]["metadata"]["name"].startswith("tinyllama-openapi-")
    assert len(a["secret"]["metadata"]["name"]) == len("tinyllama-openapi-") + 10
    changed = resources(operations=["completions"])
    assert changed["secret"]["metadata"]["name"] != a["secret"]["metadata"]["name"]


def test_openapi_url_means_no_secret():
    item = resources(openapi_url="https://docs.example/openapi.json")
    assert item["secret"] == {}
    assert item["activedoc"]["spec"]["activeDocOpenAPIRef"] == {"url": "https://docs.example/openapi.json"}


def test_config_hash_changes_with_the_specs_only():
    a = resources()
    assert a["config_hash"] == resources()["config_hash"]
    assert a["config_hash"] != resources(endpoint="https://other.example")["config_hash"]
    assert a["config_hash"] != resources(limits=[{"metric": "hits", "period": "day", "value": 1}])["config_hash"]
    assert a["config_hash"] == resources(openapi_url="https://docs.example/x.json")["config_hash"]  # ActiveDoc only


def test_provider_account_ref_and_existing_products():
    settings = dict(SETTINGS, provider_account_ref="tenant-secret")
    item = resources(products=[{"product": "tinyllama", "exists": True}], settings=settings)
    for kind in ("backend", "product", "activedoc"):
        assert item[kind]["spec"]["providerAccountRef"] == {"name": "tenant-secret"}
    assert item["exists"] is True


def test_unicode_names_are_plain_strings_in_every_cr():
    """The reason for building CRs as data: an emoji (a surrogate pair in JSON escapes) once broke
    the YAML round trip with "invalid Unicode character escape code"."""
    name = "Tiny 🦙 Llama — \u201cchat\u201d \\ \"quoted\": {yaml}"
    item = resources(display_name=name, model_id="tiny/🦙")
    assert item["backend"]["spec"]["name"] == name
    assert item["product"]["spec"]["name"] == name
    assert item["activedoc"]["spec"]["name"] == name + " API"
    assert item["model"]["description"] == name + " served by vLLM (tiny/🦙)"
    document = json.loads(base64.b64decode(item["secret"]["data"]["openapi.json"]).decode("utf-8"))
    assert document["info"]["title"] == name + " API"
    assert document["paths"]["/v1/completions"]["post"]["summary"] == "Completions (tiny/🦙)"
    # Raw UTF-8 in the Secret: the operator's YAML reader (gopkg.in/yaml.v2 under kin-openapi)
    # refuses JSON's surrogate-pair escapes of an emoji
    raw = base64.b64decode(item["secret"]["data"]["openapi.json"])
    assert "🦙".encode("utf-8") in raw and b"\\ud83e" not in raw.lower()


def test_product_resources_names_what_is_missing():
    with pytest.raises(AnsibleFilterError, match="product_resources: missing 'api_version'"):
        filters.product_resources([catalog.catalog([model()])["models"][0]], {"namespace": "3scale"})


def test_promote_requests_one_per_model_and_attempt():
    item = resources()
    pcps = filters.promote_requests([item], 2, SETTINGS)
    name = "tinyllama-%s-2" % item["config_hash"][:8]
    assert pcps == [{
        "model": "tinyllama", "system_name": "tinyllama", "name": name,
        "definition": {"apiVersion": "capabilities.3scale.net/v1beta1", "kind": "ProxyConfigPromote",
                       "metadata": {"name": name, "namespace": "3scale",
                                    "labels": {"app.kubernetes.io/managed-by": "maas.threescale",
                                               "maas.threescale/model": "tinyllama"}},
                       "spec": {"productCRName": "tinyllama", "production": True, "deleteCR": True}},
        "wait": {"kind": "ProxyConfigPromote", "name": name, "namespace": "3scale", "absent_ok": True},
    }]


def test_model_operations_is_the_catalog():
    ops = filters.model_operations()
    assert [op["system_name"] for op in ops] == list(catalog.OPERATION_NAMES)
    ops[0]["path"] = "/changed"
    assert catalog.OPERATIONS[0]["path"] == "/health"  # callers get copies


def test_accounts_replace_every_models_accounts():
    out = catalog.catalog([{"name": "ma", "endpoint": "http://x:8000", "model_id": "m", "accounts": ["u9"]},
                           {"name": "mb", "endpoint": "http://x:8000", "model_id": "m"}], accounts="user1, user2")
    assert [m["accounts"] for m in out["models"]] == [["user1", "user2"], ["user1", "user2"]] and out["errors"] == []
    assert catalog.catalog([{"name": "a", "accounts": ["u9"]}], accounts=[])["models"][0]["accounts"] == ["u9"]


def test_both_forms_given_is_refused_naming_both_and_the_way_out():
    conflict = filters.FilterModule().filters()["model_catalog_conflict"]
    single = {"name": "solo", "endpoint": "http://s", "model_id": "", "display_name": "", "accounts": []}
    message = conflict([model(), model(name="other")], single)
    assert message.startswith("Both maas_models (tinyllama, other) and the single-model form (maas_model_name, "
                              "maas_model_endpoint) are set"), message
    assert "nothing was changed" in message and """-e '{"maas_models": []}'""" in message
    # A single field is enough (a misplaced survey answer), accounts as a string too.
    assert "(maas_model_accounts)" in conflict([model()], {"name": "", "accounts": "user1"})
    assert "(maas_model_id, maas_model_display_name)" not in conflict([model()], {"model_id": "m", "display_name": "M"})
    assert "(maas_model_display_name, maas_model_id)" in conflict([model()], {"model_id": "m", "display_name": "M"})
    # No conflict: either form alone, an empty list beside the single form, empty single fields.
    assert conflict([model()], {"name": "", "endpoint": "", "accounts": []}) == ""
    assert conflict([], single) == "" and conflict(None, single) == "" and conflict([model()], None) == ""
    # Offboarding refuses it the same way, before any change.
    out = catalog.offboard_catalog([{"name": "a"}], {"name": "b"})
    assert out["models"] == [] and out["errors"][0].startswith("Both maas_models (a)")


def test_offboard_catalog_takes_the_list_or_the_single_form_and_checks_names():
    single = {"name": "tinyllama", "display_name": "", "accounts": "user1, ,user2"}
    out = filters.FilterModule().filters()["offboard_catalog"](None, single)
    assert out == {"models": [{"name": "tinyllama", "system_name": "", "display_name": "tinyllama",
                               "accounts": ["user1", "user2"]}], "errors": []}
    listed = catalog.offboard_catalog([{"name": "a", "system_name": "a_sys"}, {"name": "Bad_Name"}], {"name": ""})
    assert [m["name"] for m in listed["models"]] == ["a", "Bad_Name"]
    assert len(listed["errors"]) == 1 and "'Bad_Name'" in listed["errors"][0] and "nothing was changed" in listed["errors"][0]
    assert "Nothing to offboard" in catalog.offboard_catalog([], {"name": ""})["errors"][0]
    assert "expected a list" in catalog.offboard_catalog("tinyllama", {})["errors"][0]


def test_stale_openapi_secrets_keep_the_current_document_of_each_model():
    items = [{"name": "m", "secret": {"metadata": {"name": "m-openapi-00aa"}}}, {"name": "n", "secret": {}}]
    secrets = [{"metadata": {"name": x}} for x in ("m-openapi-00aa", "m-openapi-11bb", "m-openapi", "mm-openapi-22cc",
                                                   "n-openapi-33dd", "m-openapi-notahash")]
    refs = filters.FilterModule().filters()["stale_openapi_secrets"](secrets, items, "3scale")
    assert [r["metadata"]["name"] for r in refs] == ["m-openapi", "m-openapi-11bb", "n-openapi-33dd"]
    assert refs[0] == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "m-openapi", "namespace": "3scale"}}
    assert catalog.stale_openapi_secrets(secrets, [], "3scale") == []


def test_discovered_models_set_aside_not_ready_and_unreadable_ones_and_go_on():
    def isvc(name, ready=True, **annotations):
        return {"metadata": {"name": name, "namespace": "llm", "generation": 1, "annotations": annotations},
                "status": {"url": "https://%s.llm.svc" % name, "observedGeneration": 1,
                           "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                           "message": "" if ready else "weights missing"}]}}
    listings = [{"resources": [isvc("zeta"), isvc("alpha", ready=False)]},
                {"resources": [isvc("beta", **{"maas.threescale/limits": "[not json"})]}]
    out = filters.FilterModule().filters()["discovered_models"](listings, ["user1"])
    assert [m["name"] for m in out["models"]] == ["zeta"] and out["discovered"] == ["zeta"]
    assert out["models"][0]["accounts"] == ["user1"] and sorted(out["skipped"]) == ["alpha", "beta"]
    assert "Skipped, not Ready: InferenceService llm/alpha: weights missing" in out["report"]
    assert "Skipped, unreadable annotations: InferenceService llm/beta: annotation maas.threescale/limits is not JSON" \
        in out["report"]
    assert catalog.discovered_models([], None) == {"models": [], "discovered": [], "skipped": [], "report": "",
                                                   "annotated_accounts": []}


def test_discovery_trusts_status_url_and_existing_accounts_only():
    """Issue 19 item 4: the Backend URL is the object's status.url unless the endpoint annotation is
    explicitly allowed; an accounts annotation may only name accounts that exist."""
    def isvc(name, **annotations):
        return {"metadata": {"name": name, "namespace": "llm", "generation": 1, "annotations": annotations},
                "status": {"url": "https://%s.llm.svc" % name, "observedGeneration": 1,
                           "conditions": [{"type": "Ready", "status": "True"}]}}
    listings = [{"resources": [isvc("plain"), isvc("moved", **{"maas.threescale/endpoint": "http://elsewhere:8000"}),
                               isvc("named", **{"maas.threescale/accounts": "user2, ghost"})]}]
    flt = filters.FilterModule().filters()
    out = flt["discovered_models"](listings, ["user1"])
    assert out["discovered"] == ["named", "plain"] and out["skipped"] == ["moved"]
    assert ("Skipped, untrusted annotations: InferenceService llm/moved: annotation maas.threescale/endpoint is not "
            "trusted") in out["report"] and "maas_discover_allow_endpoint_annotation" in out["report"]
    assert out["annotated_accounts"] == [{"name": "named", "source": "InferenceService llm/named", "accounts": ["user2", "ghost"]}]
    allowed = flt["discovered_models"](listings, ["user1"], True)
    assert {m["name"]: m["endpoint"] for m in allowed["models"]}["moved"] == "http://elsewhere:8000"
    with pytest.raises(AnsibleFilterError, match="not trusted"):
        flt["inference_service_models"]([isvc("moved", **{"maas.threescale/endpoint": "http://x"})])
    # The account lookup (threescale_account in check mode: a missing account is "created") sets "named" aside.
    lookup = {"accounts": [{"username": "user2", "action": "none"}, {"username": "ghost", "action": "created"}]}
    checked = flt["discovery_accounts_check"](out, lookup)
    assert checked["discovered"] == ["plain"] and [m["name"] for m in checked["models"]] == ["plain"]
    assert checked["skipped"] == ["moved", "named"]
    assert checked["report"].endswith("(an annotation never creates an account): InferenceService llm/named: ghost")
    assert flt["discovery_accounts_check"](out, {"accounts": [{"username": "ghost", "action": "none"}]}) == out


@pytest.mark.parametrize("operations,expected", [
    (["models", "completions", "chat/completions"], "completions"),
    ("embeddings, chat/completions", "chat/completions"),
    (["embeddings", "tokenize"], "embeddings"),
    (["models", "health"], ""),
])
def test_smoke_test_operation_prefers_the_workshops_completion(operations, expected):
    assert filters.FilterModule().filters()["smoke_test_operation"](operations) == expected
