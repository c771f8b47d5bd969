"""The master API's tenant endpoints, as the 3scale QE client's custom-tenant tests use them.

Upstream: porta app/controllers/master/api/providers_controller.rb (create, show with the token set to nil,
destroy = schedule_for_deletion, a scheduled tenant found by show but not by destroy; master access token
only), app/representers/signup_result_with_access_token_representer.rb (``signup``: account + access_token),
app/representers/access_token_representer.rb (``value`` only when just created).
"""
from __future__ import annotations

import pytest
from test_porta import Lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("porta-master"))
    yield lab
    lab.stop()


def master(lab: Lab, method: str, path: str, token: str | None = None, **kw):
    return lab.http.request(method, lab.url + path, timeout=10, auth=("", token or lab.ctx.secret("master_token")), **kw)


def test_a_tenant_is_created_shown_and_scheduled_for_deletion(lab):
    r = master(lab, "POST", "/master/api/providers.json",
               json={"org_name": "Acme Corp", "username": "tenant", "email": "t@example.com", "password": "123456"})
    assert r.status_code == 201, r.text
    signup = r.json()["signup"]
    account, token = signup["account"], signup["access_token"]
    assert account["admin_domain"].startswith("acme-corp-admin.") and account["annotations"] == {}
    assert account["admin_base_url"] == f"https://{account['admin_domain']}/" and account["state"] == "approved"
    assert len(token["value"]) == 64 and token["scopes"] == ["account_management"] and token["permission"] == "rw"
    tid = account["id"]
    shown = master(lab, "GET", f"/master/api/providers/{tid}.json").json()["signup"]
    assert shown["account"]["id"] == tid and "access_token" not in shown  # the token is set to nil on show
    assert master(lab, "DELETE", f"/master/api/providers/{tid}.json").status_code == 200
    assert master(lab, "GET", f"/master/api/providers/{tid}.json").json()["signup"]["account"]["state"] == \
        "scheduled_for_deletion"
    assert master(lab, "DELETE", f"/master/api/providers/{tid}.json").status_code == 404  # without_deleted


def test_the_master_token_only_and_unique_domains(lab):
    body = {"org_name": "Solo", "username": "solo", "email": "s@example.com"}
    assert master(lab, "POST", "/master/api/providers.json", token=lab.token, json=body).status_code == 403
    assert master(lab, "POST", "/master/api/providers.json", json=body).status_code == 201
    again = master(lab, "POST", "/master/api/providers.json", json=body)
    assert again.status_code == 422 and again.json()["errors"] == {"subdomain": ["has already been taken"]}
    blank = master(lab, "POST", "/master/api/providers.json", json={"org_name": " "})
    assert blank.status_code == 422 and set(blank.json()["errors"]) == {"org_name", "username", "email"}
