"""Bad input is refused before anything is written (issue 10 item 6): every case runs the onboarding
playbook against the lab and asserts the failure names the field, porta saw no write (lab stats) and
the cluster has no new or changed object (kubectl).

Upstream: ansible-core lib/ansible/plugins/action/validate_argument_spec.py (the spec check),
kubernetes pkg/apis/core/validation (DNS-1123 label names), porta app/models/service.rb (system_name
format), kubernetes staging/src/k8s.io/apiserver authentication (401 on a bad bearer token), porta
app/controllers/admin/api/base_controller.rb (403 "Access denied" on a bad access token)."""
from __future__ import annotations

import uuid

import pytest

from dryrun_helpers import cluster_objects, playbook, porta_writes, writes_between

MODEL_ID = "tinyllama/tinyllama-1.1b-chat-v1.0"


def model(lab_env, **kw):
    return dict({"name": "bad" + uuid.uuid4().hex[:6], "endpoint": lab_env["LAB_MODEL_URL"], "model_id": MODEL_ID,
                 "accounts": ["user1"]}, **kw)


CASES = {
    # id: (extra vars builder, expected text in the failure)
    "typo_in_key": (lambda e: {"maas_models": [dict(model(e), acounts=["user1"])]}, "maas_models.acounts"),
    "maas_models_not_a_list": (lambda e: {"maas_models": {"name": "x"}}, "maas_models"),
    "maas_models_list_of_strings": (lambda e: {"maas_models": "tinyllama"}, "unable to convert to dict"),
    "missing_model_id": (lambda e: {"maas_models": [{k: v for k, v in model(e).items() if k != "model_id"}]},
                         "model_id"),
    "limits_wrong_type": (lambda e: {"maas_models": [model(e, limits="lots")]}, "limits"),
    "negative_limit": (lambda e: {"maas_models": [model(e, limits=[{"metric": "hits", "period": "minute", "value": -5}])]},
                       "limits: value must be 0 or more"),
    "non_integer_limit": (lambda e: {"maas_models": [model(e, limits=[{"metric": "hits", "period": "minute", "value": 1.5}])]},
                          "'value'"),
    "unknown_period": (lambda e: {"maas_models": [model(e, limits=[{"metric": "hits", "period": "fortnight", "value": 5}])]},
                       "period"),
    "file_endpoint": (lambda e: {"maas_models": [model(e, endpoint="file:///etc/passwd")]}, "endpoint: give"),
    "endpoint_without_scheme": (lambda e: {"maas_models": [model(e, endpoint="model.example.com:8000")]}, "endpoint: give"),
    "name_kubernetes_refuses": (lambda e: {"maas_models": [model(e, name="Tiny_Llama")]}, "name: Kubernetes and 3scale"),
    "name_too_long": (lambda e: {"maas_models": [model(e, name="m" * 41)]}, "at most 40 characters"),
    "system_name_3scale_refuses": (lambda e: {"maas_models": [model(e, system_name="Tiny Llama!")]}, "system_name:"),
    "unknown_operation": (lambda e: {"maas_models": [model(e, operations=["chat"])]}, "operations: choose one or more of"),
    "limit_on_unselected_operation": (
        lambda e: {"maas_models": [model(e, operations=["embeddings"],
                                         limits=[{"metric": "completions", "period": "minute", "value": 5}])]},
        "limits: a metric must be hits or one of the operations"),
    "duplicate_names": (lambda e: {"maas_models": [model(e, name="baddup"), model(e, name="baddup")]},
                        "every model needs its own name"),
    "unknown_account": (lambda e: {"maas_models": [model(e, accounts=["nosuchuser" + uuid.uuid4().hex[:6]])]},
                        "do(es) not exist in 3scale"),
    # Issue 20 item 3: the endpoint is asked what it serves before anything is created.
    "model_id_not_served": (lambda e: {"maas_models": [model(e, model_id="tinyllama/tinyllama-1.1b")]},
                            "does not serve model_id tinyllama/tinyllama-1.1b, nothing was changed; it serves: "
                            "ibm-granite/granite-3.2-8b-instruct, tinyllama/tinyllama-1.1b-chat-v1.0"),
    # Issue 20 item 2: the single-model form beside the inventory's maas_models is refused, naming both.
    "single_form_beside_maas_models": (
        lambda e: {"maas_model_name": "solo", "maas_model_endpoint": e["LAB_MODEL_URL"], "maas_model_id": MODEL_ID},
        "Both maas_models (tinyllama) and the single-model form (maas_model_name, maas_model_endpoint, maas_model_id)"),
    "misspelt_variable": (lambda e: {"maas_models": [model(e)], "maas_modle_id": MODEL_ID},
                          "maas_modle_id is not a variable of maas.threescale, nothing was changed: did you mean maas_model_id?"),
    "wrong_cluster_token": (lambda e: {"maas_models": [model(e)], "maas_k8s_host": e["LAB_KUBE_URL"],
                                       "maas_k8s_api_key": "expired-or-wrong", "maas_k8s_ca_cert": e["LAB_CA_CERT"]},
                            "HTTP 401: wrong or expired token"),
    "cluster_ca_missing": (lambda e: {"maas_models": [model(e)], "maas_k8s_host": e["LAB_KUBE_URL"],
                                      "maas_k8s_api_key": "whatever"}, "not trusted (CA)"),
    "unreachable_cluster": (lambda e: {"maas_models": [model(e)], "maas_k8s_host": "https://127.0.0.1:9",
                                       "maas_k8s_api_key": "whatever"}, "cannot be reached"),
    "wrong_admin_token": (lambda e: {"maas_models": [model(e)], "maas_admin_access_token": "wrong"},
                          "it refused the access token (HTTP 403)"),
    "unreachable_admin_url": (lambda e: {"maas_models": [model(e)], "maas_admin_url": "https://127.0.0.1:9"},
                              "3scale admin API at https://127.0.0.1:9, nothing was changed: it cannot be reached"),
    # Issue 19 item 5: the token never goes to a plain http admin URL of another host (no request at all).
    "plain_http_admin_url": (lambda e: {"maas_models": [model(e)], "maas_admin_url": "http://192.0.2.1:9"},
                             "admin_url http://192.0.2.1:9 is plain http: the access token would cross the network"),
    "admin_ca_missing": (lambda e: {"maas_models": [model(e)], "__env": {"THREESCALE_CA_BUNDLE": ""}},
                         "its certificate is not trusted (CA)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_before_any_write(lab_env, case):
    build, expected = CASES[case]
    extra = build(lab_env)
    env = extra.pop("__env", None)
    writes0, objects0 = porta_writes(lab_env), cluster_objects(lab_env)
    proc, elapsed = playbook(lab_env, "onboard_model", extra, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert expected in " ".join(out.split()), out[-3000:]  # ansible-core may wrap long messages
    assert "nothing was changed" in " ".join(out.split()), out[-3000:]
    assert writes_between(writes0, porta_writes(lab_env)) == {}
    assert cluster_objects(lab_env) == objects0
    print(f"\nbad input {case}: refused in {elapsed:.1f}s, 0 porta writes, 0 cluster changes")
