"""admin_connection: each value from the variable, else the THREESCALE_* environment, else the
operator's Secrets (read only when needed), and one message naming the settings when none is usable."""
from __future__ import annotations

import base64

import pytest
import yaml
from ansible import constants as C
from ansible.errors import AnsibleError

import test_secret_lookup as kube  # the minimal Kubernetes API and the kubernetes.core import path
from ansible_collections.maas.threescale.plugins.lookup import admin_connection

ENV = ("THREESCALE_ADMIN_URL", "THREESCALE_ACCESS_TOKEN", "THREESCALE_CA_BUNDLE")
SECRETS = {"threescale-provider-account": {"adminURL": "https://3scale-admin.apps.example.com", "token": "t"},
           "system-seed": {"ADMIN_ACCESS_TOKEN": "seed-token-123"}}


def kube_app(method, path, query, form, headers):
    log.append(path)
    for name, data in SECRETS.items():
        if path == "/api/v1/namespaces/3scale/secrets/" + name and headers.get("Authorization") == "Bearer " + kube.TOKEN:
            return 200, {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": name, "namespace": "3scale"},
                         "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}, None
    return kube.kube_app(method, path, query, form, headers)


log = []


def documented_options() -> dict:
    from ansible_collections.kubernetes.core.plugins.doc_fragments import k8s_auth_options
    doc = yaml.safe_load(admin_connection.DOCUMENTATION)
    return {**yaml.safe_load(k8s_auth_options.ModuleDocFragment.DOCUMENTATION)["options"], **doc["options"]}


@pytest.fixture
def lookup(serve, monkeypatch, tmp_path):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    srv = serve(kube_app)
    del log[:]

    def run(**kw):
        plugin = admin_connection.LookupModule()
        plugin._load_name = "maas.threescale.admin_connection"
        C.config.initialize_plugin_configuration_definitions("lookup", plugin._load_name, documented_options())
        return plugin.run([], variables={}, host=srv.url, api_key=kube.TOKEN, **kw)[0]
    return run


def secret_reads():
    return [p.rsplit("/", 1)[1] for p in log if "/secrets/" in p]


def test_from_the_operator_secrets_when_nothing_else_is_given(lookup):
    got = lookup(admin_url=None, access_token="", ca_path=None)   # none and empty both mean "not given"
    assert (got["admin_url"], got["access_token"], got["ca_path"]) == (
        "https://3scale-admin.apps.example.com", "seed-token-123", "")
    assert got["sources"] == {"admin_url": "Secret 3scale/threescale-provider-account",
                              "access_token": "Secret 3scale/system-seed", "ca_path": "none"}


def test_variables_first_then_environment_and_no_secret_read(lookup, monkeypatch):
    monkeypatch.setenv("THREESCALE_ADMIN_URL", "https://env.example.com")
    monkeypatch.setenv("THREESCALE_ACCESS_TOKEN", "env-token")
    monkeypatch.setenv("THREESCALE_CA_BUNDLE", "/env/ca.pem")
    got = lookup(admin_url="https://var.example.com ", ca_path="/var/ca.pem")
    assert (got["admin_url"], got["access_token"], got["ca_path"]) == ("https://var.example.com", "env-token", "/var/ca.pem")
    assert got["sources"] == {"admin_url": "variable", "access_token": "environment", "ca_path": "variable"}
    assert secret_reads() == []                                   # nothing read that was not needed


def test_only_the_missing_value_is_read_from_its_secret(lookup):
    got = lookup(admin_url="https://var.example.com")
    assert got["access_token"] == "seed-token-123" and secret_reads() == ["system-seed"]


@pytest.mark.parametrize("kw,message", [
    (dict(admin_url="3scale-admin.example.com", access_token="t"),
     "No usable 3scale admin API connection (URL '3scale-admin.example.com' from variable)"),
    (dict(namespace="elsewhere"), "Secret elsewhere/threescale-provider-account not found"),
])
def test_problems_fail_or_come_back_as_error_without_the_token(lookup, kw, message):
    with pytest.raises(AnsibleError) as err:
        lookup(**kw)
    assert message in str(err.value)
    got = lookup(fail_on_error=False, **kw)
    assert list(got) == ["error"] and message in got["error"]
    assert "seed-token" not in got["error"] and "t'" not in got["error"]


def test_resolve_names_the_settings_when_no_token_is_found():
    with pytest.raises(AnsibleError) as err:
        admin_connection.resolve({"admin_url": "https://a", "access_token": None, "ca_path": None, "namespace": "3scale"},
                                 {}, lambda name, key: "")
    assert "no access token" in str(err.value) and "maas_admin_access_token" in str(err.value)
    assert "THREESCALE_ACCESS_TOKEN" in str(err.value) and "system-seed" in str(err.value)


def test_omitted_values_are_not_set():
    # The playbooks give the lookup their module_defaults dict, built with default(omit).
    try:
        from ansible._internal._templating._utils import Omit  # ansible-core 2.19
    except ImportError:
        Omit = type("_OmitType", (), {})()
    for value in (None, Omit, "__omit_place_holder__0123"):
        assert admin_connection.omitted(value, Omit)
    for value in ("https://api:6443", "", False, 0):
        assert not admin_connection.omitted(value, Omit)


def test_one_omit_rule_for_the_lookup_the_filter_and_the_action():
    from ansible_collections.maas.threescale.plugins.action import proxy_config_promote
    from ansible_collections.maas.threescale.plugins.filter import outcomes
    from ansible_collections.maas.threescale.plugins.plugin_utils.omit import omitted
    assert admin_connection.omitted is omitted is outcomes.omitted is proxy_config_promote.omitted
    assert omitted("__omit_place_holder__x", None) and omitted("play-omit", "play-omit") and not omitted("a", "b")
