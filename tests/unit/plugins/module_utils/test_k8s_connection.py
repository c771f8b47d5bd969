"""The collection's one Kubernetes connection (module_utils/k8s_connection.py) against a small local
API: kubernetes.core's argument spec and client, answers and the three kinds of failure (retry, list
again, give up), and the modules and lookup that share it.

Upstream: kubernetes.core plugins/module_utils/args_common.py (AUTH_ARG_SPEC) and k8s/client.py
(get_api_client, K8S_AUTH_* fallbacks); client-go rest/request.go (which statuses are retried);
kube-apiserver responsewriters (429 + Retry-After, Status bodies).
"""
from __future__ import annotations

import pytest

pytest.importorskip("kubernetes")
pytest.importorskip("ansible_collections.kubernetes.core.plugins.module_utils.k8s.client")

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC  # noqa: E402
from ansible_collections.maas.threescale.plugins.module_utils import k8s_connection  # noqa: E402
from ansible_collections.maas.threescale.plugins.modules import cr_wait, k8s_lease  # noqa: E402

TOKEN = "kube-unit-token"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message,
            "code": code}


def kube_app(method, path, query, form, headers):
    if headers.get("Authorization") != "Bearer " + TOKEN:
        return 401, status(401, "Unauthorized", "Unauthorized"), None
    if path == "/version":
        return 200, {"major": "1", "minor": "36", "gitVersion": "v1.36.3"}, None
    if path == "/api":
        return 200, {"kind": "APIVersions", "versions": ["v1"]}, None
    if path == "/apis":
        return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "coordination.k8s.io", "versions": [{"groupVersion": "coordination.k8s.io/v1", "version": "v1"}],
             "preferredVersion": {"groupVersion": "coordination.k8s.io/v1", "version": "v1"}}]}, None
    if path == "/api/v1":
        return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": []}, None
    if path == "/apis/coordination.k8s.io/v1":
        return 200, {"kind": "APIResourceList", "groupVersion": "coordination.k8s.io/v1", "resources": [
            {"name": "leases", "singularName": "lease", "namespaced": True, "kind": "Lease",
             "verbs": ["create", "get", "list", "update", "delete", "watch"]}]}, None
    if path == LEASES + "/busy":
        return 429, status(429, "TooManyRequests", "storage is (re)initializing"), {"Retry-After": "2"}
    if path == LEASES + "/down":
        return None, None, None  # connection closed, no answer
    if path == LEASES + "/mine" and method == "GET":
        return 200, {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                     "metadata": {"name": "mine", "namespace": "ns", "resourceVersion": "7"}}, None
    if path == LEASES and method == "POST":
        return 201, {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1", "metadata": {"name": "new"}}, None
    return 404, status(404, "NotFound", 'leases.coordination.k8s.io "%s" not found' % path.rsplit("/", 1)[1]), None


@pytest.fixture
def conn(serve, monkeypatch, tmp_path):
    for name in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    srv = serve(kube_app)
    return k8s_connection.Connection(host=srv.url, api_key=TOKEN)


def test_the_argument_spec_is_kubernetes_cores_own():
    spec = k8s_connection.auth_argument_spec()
    assert spec == AUTH_ARG_SPEC and spec is not AUTH_ARG_SPEC
    spec["host"]["x"] = 1  # a copy: callers may change theirs
    assert "x" not in AUTH_ARG_SPEC["host"]
    assert k8s_connection.auth_options() == tuple(AUTH_ARG_SPEC)
    for module in (cr_wait, k8s_lease):
        assert "kubernetes.core.k8s_auth_options" in module.DOCUMENTATION


def test_answers_are_decoded_and_posts_report_201(conn):
    st, body, _headers = conn.request("GET", LEASES + "/mine")
    assert st == 200 and body["metadata"]["resourceVersion"] == "7"
    st, body, _headers = conn.request("POST", LEASES, body={"metadata": {"name": "new"}})
    assert st == 201 and body["metadata"]["name"] == "new"
    assert conn.resource_path("coordination.k8s.io/v1", "Lease", "ns") == LEASES


def test_failures_say_whether_to_retry(conn):
    with pytest.raises(k8s_connection.ApiError) as err:
        conn.request("GET", LEASES + "/nope")
    assert (err.value.status, err.value.transient, err.value.gone) == (404, False, False)
    assert err.value.message == 'HTTP 404: leases.coordination.k8s.io "nope" not found'
    with pytest.raises(k8s_connection.ApiError) as err:
        conn.request("GET", LEASES + "/busy")
    assert (err.value.status, err.value.transient, err.value.retry_after) == (429, True, 2.0)
    with pytest.raises(k8s_connection.ApiError) as err:
        conn.request("GET", LEASES + "/down")
    assert err.value.status is None and err.value.transient
    assert err.value.message.startswith("No answer from the Kubernetes API server")


def test_unusable_credentials_are_not_retried(serve, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    conn = k8s_connection.Connection(kubeconfig=str(tmp_path / "missing.yaml"))
    with pytest.raises(k8s_connection.ApiError) as err:
        conn.request("GET", "/version")
    assert not err.value.transient and "Could not create the Kubernetes API client" in err.value.message
    unauthorized = k8s_connection.Connection(host=serve(kube_app).url, api_key="wrong")
    with pytest.raises(k8s_connection.ApiError) as err:
        unauthorized.request("GET", LEASES + "/mine")
    assert (err.value.status, err.value.transient) == (401, False)


def test_gone_is_its_own_case():
    e = k8s_connection.ApiError.from_response(410, b'{"kind":"Status","code":410,"message":"too old resource version"}')
    assert e.gone and not e.transient and e.message == "HTTP 410: too old resource version"


@pytest.mark.parametrize("headers,expect", [
    ({"Retry-After": "3"}, 3.0), ({"retry-after": "1"}, 1.0), ({"Retry-After": "600"}, 30.0),
    ({"Retry-After": "soon"}, None), ({}, None), (None, None)])
def test_retry_after_is_read_case_insensitively_and_bounded(headers, expect):
    assert k8s_connection.retry_after(headers) == expect


def test_the_lease_transport_hands_http_errors_back_and_raises_on_no_answer(serve, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    srv = serve(kube_app)
    transport = k8s_lease.Transport.__new__(k8s_lease.Transport)
    transport.conn = k8s_connection.Connection(host=srv.url, api_key=TOKEN)
    st, body, headers = transport("GET", LEASES + "/busy", None, None)
    assert st == 429 and body["reason"] == "TooManyRequests" and headers.get("Retry-After") == "2"
    with pytest.raises(k8s_lease.TransientError):
        transport("GET", LEASES + "/down", None, None)


def test_a_modules_parameters_are_its_connection(serve, monkeypatch, tmp_path):
    """Modules pass their AnsibleModule: the auth options are read from its params (None = not given,
    so kubernetes.core's K8S_AUTH_* fallbacks apply)."""
    from types import SimpleNamespace
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("K8S_AUTH_API_KEY", TOKEN)
    params = dict.fromkeys(AUTH_ARG_SPEC)
    params["host"] = serve(kube_app).url
    conn = k8s_connection.Connection(SimpleNamespace(params=params))
    assert conn.request("GET", LEASES + "/mine")[0] == 200
