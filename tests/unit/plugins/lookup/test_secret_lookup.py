"""secret_lookup against a minimal local Kubernetes API (plain HTTP, bearer token): decoding,
whole-Secret dicts and the error messages for a missing Secret, a missing key and no permission."""
from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import pytest

# kubernetes.core (whose client code the lookup reuses) lives in the venv's collections dir.
for candidate in [os.environ.get("ANSIBLE_COLLECTIONS_PATH", ""), str(Path(__file__).resolve().parents[4] / ".venv" / "collections")]:
    for entry in filter(None, candidate.split(os.pathsep)):
        if (Path(entry) / "ansible_collections" / "kubernetes" / "core").is_dir() and entry not in sys.path:
            sys.path.append(entry)

pytest.importorskip("kubernetes")
pytest.importorskip("ansible_collections.kubernetes.core.plugins.module_utils.k8s.client")

import yaml  # noqa: E402
from ansible import constants as C  # noqa: E402
from ansible.errors import AnsibleError  # noqa: E402
from ansible_collections.maas.threescale.plugins.lookup import secret_lookup  # noqa: E402

TOKEN = "kube-unit-token"
DATA = {"ADMIN_ACCESS_TOKEN": "tok-123", "TENANT_NAME": "3scale"}


def kube_app(method, path, query, form, headers):
    if headers.get("Authorization") != "Bearer " + TOKEN:
        return 401, {"kind": "Status", "status": "Failure", "reason": "Unauthorized", "code": 401}, None
    if path == "/version":
        return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0"}, None
    # discovery, as kubernetes.core's dynamic client reads it once when it is created
    if path == "/api":
        return 200, {"kind": "APIVersions", "versions": ["v1"]}, None
    if path == "/apis":
        return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}, None
    if path == "/api/v1":
        return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret", "verbs": ["get", "list"]}]}, None
    if path == "/api/v1/namespaces/3scale/secrets/system-seed":
        data = {k: base64.b64encode(v.encode()).decode() for k, v in DATA.items()}
        return 200, {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "system-seed", "namespace": "3scale"},
                     "data": data}, None
    if path.startswith("/api/v1/namespaces/private/"):
        return 403, {"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403}, None
    return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}, None


def documented_options() -> dict:
    """The lookup's options with its doc fragments merged, as the plugin loader does (add_fragments)."""
    from ansible_collections.kubernetes.core.plugins.doc_fragments import k8s_auth_options
    doc = yaml.safe_load(secret_lookup.DOCUMENTATION)
    assert doc["extends_documentation_fragment"] == ["kubernetes.core.k8s_auth_options"]
    return {**yaml.safe_load(k8s_auth_options.ModuleDocFragment.DOCUMENTATION)["options"], **doc["options"]}


@pytest.fixture
def lookup(serve, monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("K8S_AUTH_") or name == "KUBECONFIG":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config of the developer
    srv = serve(kube_app)

    def run(name, **kw):
        # what the plugin loader does: register the documented options, then call run()
        plugin = secret_lookup.LookupModule()
        plugin._load_name = "maas.threescale.secret_lookup"
        C.config.initialize_plugin_configuration_definitions("lookup", plugin._load_name, documented_options())
        return plugin.run([name], variables={}, host=srv.url, api_key=TOKEN, **kw)
    return run


def test_key_and_whole_secret(lookup):
    assert lookup("system-seed", namespace="3scale", key="ADMIN_ACCESS_TOKEN") == ["tok-123"]
    assert lookup("system-seed", namespace="3scale") == [DATA]


@pytest.mark.parametrize("name,namespace,key,message", [
    ("nope", "3scale", "X", "Secret 3scale/nope not found"),
    ("system-seed", "3scale", "NOPE", "Secret 3scale/system-seed has no key 'NOPE'; keys present: ADMIN_ACCESS_TOKEN, TENANT_NAME"),
    ("system-seed", "private", None, "Not allowed to read Secret private/system-seed (HTTP 403)"),
])
def test_errors_name_the_secret_and_the_fix(lookup, name, namespace, key, message):
    with pytest.raises(AnsibleError) as err:
        lookup(name, namespace=namespace, key=key)
    assert message in str(err.value)
    assert "tok-123" not in str(err.value)
