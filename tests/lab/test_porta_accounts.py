"""porta accounts side (issue 9 items 7 and 9, account plans, users, tokens, webhooks), over real HTTPS
with requests and the 3scale QE client `threescale_api`."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
from test_porta import Lab, account_id, new_plan, new_product
from threescale_api import ThreeScaleClient
from threescale_api.errors import ApiClientError


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("porta-accounts"))
    yield lab
    lab.stop()


def api_product(lab: Lab) -> dict:
    return next(s["service"] for s in lab.ok("GET", "/admin/api/services.json")["services"]
                if s["service"]["system_name"] == "api")


def test_minimal_signup_pending_user_and_api_signup_application(lab):
    """A signup with only org_name and username succeeds (201) with the QE client; without a password the
    admin user stays pending, with one it is active. The sample product's default service plan and
    default application plan give a subscription and an "API signup" application.
    Upstream: porta app/controllers/admin/api/signups_controller.rb (defaults "API signup"),
    app/lib/signup/plans_with_defaults.rb, app/models/user/states.rb (activate_on_minimal?),
    app/lib/logic/provider_signup.rb (Default service plan, Basic default application plan)."""
    client = ThreeScaleClient(lab.url, lab.token, ssl_verify=lab.ca)
    acc = client.accounts.create(params={"org_name": "Minimal Org", "username": "minimal"})
    assert acc["org_name"] == "Minimal Org" and acc["state"] == "approved"
    users = lab.ok("GET", f"/admin/api/accounts/{acc['id']}/users.json")["users"]
    assert [(u["user"]["username"], u["user"]["state"], u["user"]["role"]) for u in users] == [
        ("minimal", "pending", "admin")]
    assert "email" not in users[0]["user"]  # nil omitted: email is optional via the API
    api = api_product(lab)
    sp = lab.ok("GET", f"/admin/api/services/{api['id']}/service_plans.json")["plans"]
    default_sp = next(p["service_plan"] for p in sp if p["service_plan"]["default"])
    subs = lab.ok("GET", f"/admin/api/accounts/{acc['id']}/service_subscriptions.json")["service_subscriptions"]
    assert [(s["service_subscription"]["service_id"], s["service_subscription"]["plan_id"]) for s in subs] == [
        (api["id"], default_sp["id"])]
    plans = lab.ok("GET", f"/admin/api/services/{api['id']}/application_plans.json")["plans"]
    basic = next(p["application_plan"] for p in plans if p["application_plan"]["default"])
    assert basic["name"] == "Basic"
    apps = lab.ok("GET", f"/admin/api/accounts/{acc['id']}/applications.json")["applications"]
    assert [(a["application"]["name"], a["application"]["description"], a["application"]["plan_id"])
            for a in apps] == [("API signup", "API signup", basic["id"])]
    # with a password the admin user is active; the seeded developers also went through signup
    with_pw = lab.ok("POST", "/admin/api/signup.json", 201,
                     data={"org_name": "PW Org", "username": "pw-user", "password": "secret"})["account"]
    assert lab.ok("GET", f"/admin/api/accounts/{with_pw['id']}/users.json")["users"][0]["user"]["state"] == "active"
    seeded = lab.ok("GET", f"/admin/api/accounts/{account_id(lab, 'user1')}/applications.json")["applications"]
    assert "API signup" in [a["application"]["name"] for a in seeded]


def test_signup_validations_and_case_sensitive_email(lab):
    """Username 3-40 characters of RE_LOGIN_OK, no email format check, email uniqueness and lookup
    case-sensitive. Upstream: porta app/models/user.rb (validates :username), app/lib/authentication.rb
    (RE_LOGIN_OK, MSG_LOGIN_BAD), app/models/account.rb (org_name format); porta/CONTRACT.md §11.5."""
    def errors(**data):
        r = lab.post("/admin/api/signup.json", data={"org_name": "V", **data})
        assert r.status_code == 422, r.text
        return r.json()["errors"]
    assert errors(username="ab")["username"] == ["is too short (minimum is 3 characters)"]
    assert errors(username="a" * 41)["username"] == ["is too long (maximum is 40 characters)"]
    assert errors(username="bad name")["username"] == ["use only letters, numbers, and .-_@+ please."]
    assert errors(username="-lead")["username"] == ["use only letters, numbers, and .-_@+ please."]
    assert errors(username="")["username"] == ["is too short (minimum is 3 characters)"]
    r = lab.post("/admin/api/signup.json", data={"org_name": "***", "username": "stars"})
    assert r.json()["errors"]["org_name"] == ["must contain at least one alphanumeric character"]
    ok = lab.ok("POST", "/admin/api/signup.json", 201,
                data={"org_name": "Mail", "username": "mail.user+x@y", "email": "Not-An-Email"})["account"]
    assert lab.ok("GET", "/admin/api/accounts/find.json", params={"email": "Not-An-Email"})["account"]["id"] == ok["id"]
    assert lab.get("/admin/api/accounts/find.json", params={"email": "not-an-email"}).status_code == 404
    assert errors(username="mail2", email="Not-An-Email")["email"] == ["has already been taken"]
    # a different case is another address
    lab.ok("POST", "/admin/api/signup.json", 201, data={"org_name": "Mail2", "username": "mail2",
                                                         "email": "not-an-email"})


def test_application_state_refusals_and_pending_blocks_unsubscribe(lab):
    """Only live applications can be suspended; a refused event answers 422 errors.state; a pending
    application blocks unsubscribing like a live one. Upstream: porta app/models/contract/states.rb,
    app/services/service_subscription_service.rb, app/lib/three_scale/api/responder.rb (DELETE → 403)."""
    sid = new_product(lab, "Gated Apps")["id"]
    gated = new_plan(lab, sid, "Gated", approval_required="true")
    aid = account_id(lab, "user2")
    app = lab.ok("POST", f"/admin/api/accounts/{aid}/applications.json", 201,
                 data={"plan_id": gated["id"], "name": "waiting"})["application"]
    assert app["state"] == "pending"
    base = f"/admin/api/accounts/{aid}/applications/{app['id']}"
    for event in ("suspend", "resume"):
        r = lab.put(f"{base}/{event}.json")
        assert (r.status_code, r.json()) == (422, {"errors": {"state": [f'cannot transition via "{event}"']}})
    sub = next(s["service_subscription"] for s in lab.ok(
        "GET", f"/admin/api/accounts/{aid}/service_subscriptions.json")["service_subscriptions"]
        if s["service_subscription"]["service_id"] == sid)
    r = lab.delete(f"/admin/api/accounts/{aid}/service_subscriptions/{sub['id']}.json")
    assert (r.status_code, r.json()) == (
        403, {"errors": {"base": ["There is 1 unsuspended application subscribed to the service"]}})


def test_account_plans_and_change_plan(lab):
    """Account plans CRUD, default, an account's plan and change_plan, with threescale_api where it
    has calls. Upstream: porta app/controllers/admin/api/account_plans_controller.rb,
    accounts_controller.rb (change_plan), buyers_account_plans_controller.rb (plan)."""
    client = ThreeScaleClient(lab.url, lab.token, ssl_verify=lab.ca)
    default = next(p for p in client.account_plans.list() if p["default"])
    assert default["name"] == "Default"
    gold = client.account_plans.create(params={"name": "Gold Accounts", "approval_required": "false"})
    assert (gold["system_name"], gold["default"], gold["setup_fee"]) == ("gold_accounts", False, 0.0)
    aid = account_id(lab, "user3")
    assert lab.ok("GET", f"/admin/api/accounts/{aid}/plan.json")["account_plan"]["id"] == default["id"]
    lab.ok("PUT", f"/admin/api/accounts/{aid}/change_plan.json", data={"plan_id": gold["id"]})
    assert lab.ok("GET", f"/admin/api/accounts/{aid}/plan.json")["account_plan"]["id"] == gold["id"]
    assert lab.put(f"/admin/api/accounts/{aid}/change_plan.json", data={"plan_id": 999999}).status_code == 404
    r = lab.delete(f"/admin/api/account_plans/{gold['id']}.json")
    assert r.status_code == 403 and r.json()["errors"]["base"]
    lab.ok("PUT", f"/admin/api/account_plans/{gold['id']}/default.json")
    assert [p["account_plan"]["id"] for p in lab.ok("GET", "/admin/api/account_plans.json")["plans"]
            if p["account_plan"]["default"]] == [gold["id"]]
    renamed = lab.ok("PUT", f"/admin/api/account_plans/{gold['id']}.json", data={"name": "Golden"})["account_plan"]
    assert renamed["name"] == "Golden"
    # a new signup takes the default account plan
    acc = lab.ok("POST", "/admin/api/signup.json", 201, data={"org_name": "Goldie", "username": "goldie"})["account"]
    assert lab.ok("GET", f"/admin/api/accounts/{acc['id']}/plan.json")["account_plan"]["id"] == gold["id"]
    lab.ok("PUT", f"/admin/api/account_plans/{default['id']}/default.json")


def test_tenant_users_crud_and_state_changes(lab):
    """/admin/api/users: the tenant's own users (the seeded admin), create/update/delete and state
    events; refused events answer 422. Upstream: porta app/controllers/admin/api/users_controller.rb,
    app/models/user/states.rb."""
    client = ThreeScaleClient(lab.url, lab.token, ssl_verify=lab.ca)
    users = lab.ok("GET", "/admin/api/users.json")["users"]
    assert [(u["user"]["username"], u["user"]["role"], u["user"]["state"]) for u in users] == [
        ("admin", "admin", "active")]
    ops = client.provider_account_users.create(params={"username": "ops-bot", "email": "ops@example.com",
                                                       "password": "secret"})
    assert (ops["state"], ops["role"]) == ("pending", "member")
    base = f"/admin/api/users/{ops['id']}"
    r = lab.put(base + "/unsuspend.json")
    assert (r.status_code, r.json()) == (422, {"errors": {"state": ['cannot transition via "unsuspend"']}})
    assert lab.ok("PUT", base + "/activate.json")["user"]["state"] == "active"
    assert lab.ok("PUT", base + "/suspend.json")["user"]["state"] == "suspended"
    assert lab.ok("PUT", base + "/unsuspend.json")["user"]["state"] == "active"
    assert lab.ok("PUT", base + "/admin.json")["user"]["role"] == "admin"
    assert lab.ok("PUT", base + ".json", data={"email": "ops2@example.com"})["user"]["email"] == "ops2@example.com"
    r = lab.post("/admin/api/users.json", data={"username": "ops-bot", "email": "x@example.com"})
    assert r.status_code == 422 and r.json()["errors"]["username"] == ["has already been taken"]
    r = lab.post("/admin/api/users.json", data={"username": "mailless", "email": "not-an-address"})
    assert r.json()["errors"]["email"] == ["should look like an email address"]
    # tenant users are not developers: accounts/find does not see them
    assert lab.get("/admin/api/accounts/find.json", params={"username": "ops-bot"}).status_code == 404
    assert [u["user"]["username"] for u in lab.ok("GET", "/admin/api/users.json",
                                                   params={"role": "admin"})["users"]] == ["admin", "ops-bot"]
    lab.ok("DELETE", base + ".json")
    assert lab.get(base + ".json").status_code == 404


def test_tenant_user_member_permissions(lab):
    """/admin/api/users/{id}/permissions: an admin has every section (on premises: no `finance`) and
    every service (`allowed_service_ids` null, rendered); a member has the sections and services set
    for it. `allowed_sections[]`/`allowed_service_ids[]` keep only known sections and existing
    services ("[]" means none); a blank `allowed_service_ids` drops the services restriction;
    neither parameter → 400. Upstream: porta app/controllers/admin/api/member_permissions_controller.rb,
    app/representers/member_permissions_representer.rb, app/models/user/permissions.rb,
    app/models/admin_section.rb."""
    client = ThreeScaleClient(lab.url, lab.token, ssl_verify=lab.ca)
    user = client.provider_account_users.create(params={"username": "perm-bot", "email": "perm@example.com",
                                                        "password": "secret123"})
    base = f"/admin/api/users/{user['id']}/permissions.json"
    perms = lab.ok("GET", base)["permissions"]
    links = perms.pop("links")
    assert perms == {"user_id": user["id"], "role": "member", "allowed_sections": [], "allowed_service_ids": None}
    provider_id = lab.ok("GET", "/admin/api/provider.json")["account"]["id"]
    assert links == [{"rel": "user", "href": f"{lab.url}/admin/api/accounts/{provider_id}/users/{user['id']}"}]
    user.set_role_admin()
    admin = client.provider_account_users.permissions_read(user["id"])["permissions"]
    assert admin["role"] == "admin" and admin["allowed_service_ids"] is None
    assert admin["allowed_sections"] == ["monitoring", "partners", "plans", "policy_registry", "portal", "settings"]
    user.set_role_member()
    # the QE client's "nothing" is the "[]" placeholder, form-encoded
    none = user.permissions_update()["permissions"]
    assert (none["allowed_sections"], none["allowed_service_ids"]) == ([], [])
    sid = new_product(lab, "Permitted")["id"]
    some = lab.ok("PUT", base, data={"allowed_sections[]": ["portal", "finance", "nonsense"],
                                     "allowed_service_ids[]": [str(sid), "999999", "x"]})["permissions"]
    assert (some["allowed_sections"], some["allowed_service_ids"]) == (["portal"], [sid])
    # JSON, wrapped as `permissions`; only the parameters given change
    both = lab.ok("PUT", base, json={"permissions": {"allowed_sections": ["plans", "monitoring"]}})["permissions"]
    assert (both["allowed_sections"], both["allowed_service_ids"]) == (["monitoring", "plans"], [sid])
    every = lab.ok("PUT", base, data={"allowed_service_ids": ""})["permissions"]
    assert every["allowed_service_ids"] is None and every["allowed_sections"] == ["monitoring", "plans"]
    r = lab.put(base, data={"unrelated": "1"})
    assert r.status_code == 400 and r.text == "Required parameter missing: permissions"
    buyer_user = lab.ok("GET", f"/admin/api/accounts/{account_id(lab, 'user1')}/users.json")["users"][0]["user"]
    assert lab.get(f"/admin/api/users/{buyer_user['id']}/permissions.json").status_code == 404


def test_personal_access_tokens_authenticate_by_scope_and_permission(lab):
    """Personal access tokens: create shows the value once, list/read/delete; a token works on the
    APIs its scopes cover, `ro` only reads. Upstream: porta
    app/controllers/admin/api/personal/access_tokens_controller.rb, app/representers/access_token_representer.rb."""
    tok = lab.ok("POST", "/admin/api/personal/access_tokens.json", 201,
                 json={"name": "reader", "permission": "ro", "scopes": ["account_management"]})["access_token"]
    assert set(tok) == {"id", "name", "scopes", "permission", "value"} and len(tok["value"]) == 64
    shown = lab.ok("GET", f"/admin/api/personal/access_tokens/{tok['id']}.json")["access_token"]
    assert "value" not in shown and shown["scopes"] == ["account_management"]
    assert [t["access_token"]["name"] for t in lab.ok("GET", "/admin/api/personal/access_tokens.json",
                                                        params={"name": "read"})["access_tokens"]] == ["reader"]
    reader = ThreeScaleClient(lab.url, tok["value"], ssl_verify=lab.ca)
    assert {"user1", "user2"} <= {a["org_name"] for a in reader.accounts.list()}
    with pytest.raises(ApiClientError) as denied:
        reader.accounts.create(params={"org_name": "ro", "username": "ro-user"})
    assert denied.value.code == 403
    stats_only = lab.ok("POST", "/admin/api/personal/access_tokens.json", 201,
                        data={"name": "stats", "permission": "rw", "scopes[]": "stats"})["access_token"]
    plain = requests.Session()
    plain.trust_env = False
    wrong_scope = plain.get(lab.url + "/admin/api/accounts.json", params={"access_token": stats_only["value"]},
                            verify=lab.ca)
    # a known token without the scope/permission is told so; an unknown one gets "Access denied"
    # (porta/CONTRACT.md §2 error table, Admin::Api::BaseController)
    assert wrong_scope.status_code == 403
    assert wrong_scope.json() == {"error": "Your access token does not have the correct permissions"}
    unknown = plain.get(lab.url + "/admin/api/accounts.json", params={"access_token": "0" * 64}, verify=lab.ca)
    assert unknown.status_code == 403 and unknown.json() == {"error": "Access denied"}
    r = lab.post("/admin/api/personal/access_tokens.json", json={"name": "x", "permission": "rw", "scopes": []})
    assert r.status_code == 422 and set(r.json()["errors"]) == {"scopes"}
    lab.ok("DELETE", f"/admin/api/personal/access_tokens/{tok['id']}.json")
    with pytest.raises(ApiClientError):
        reader.accounts.list()


def test_webhooks_update(lab):
    """PUT /admin/api/webhooks.json stores the URL and the switches and shows them.
    Upstream: porta app/representers/web_hook_representer.rb, app/models/web_hook.rb."""
    hook = lab.ok("PUT", "/admin/api/webhooks.json",
                  data={"url": "https://hooks.example.com/3scale", "active": "true",
                        "application_created_on": "true"})["webhook"]
    assert (hook["url"], hook["active"], hook["application_created_on"], hook["account_deleted_on"]) == (
        "https://hooks.example.com/3scale", True, True, False)
    again = lab.ok("PUT", "/admin/api/webhooks.json", data={"active": "false"})["webhook"]
    assert (again["url"], again["active"]) == ("https://hooks.example.com/3scale", False)


@pytest.mark.parametrize("release", ["2.16", "next"])
def test_porta_release_password_policy(tmp_path, release):
    """`porta_release` "next" (porta master) refuses passwords shorter than 15 characters on signup,
    user create and password change; 2.16 has no minimum. The seeded developers keep the workshop
    password either way. Upstream: porta app/lib/authentication/by_password.rb (STRONG_PASSWORD_MIN_SIZE);
    porta/CONTRACT.md §11.2."""
    lab = Lab(tmp_path, users=2, settings={"users": 2, "porta_release": release})
    try:
        assert [a["account"]["org_name"] for a in lab.ok("GET", "/admin/api/accounts.json")["accounts"]] == [
            "user1", "user2"]
        short = {"org_name": "Shorty", "username": "shorty", "password": "openshift"}
        too_short = {"errors": {"password": ["is too short (minimum is 15 characters)"]}}
        r = lab.post("/admin/api/signup.json", data=short)
        if release == "2.16":
            assert r.status_code == 201
        else:
            assert (r.status_code, r.json()) == (422, too_short)
            lab.ok("POST", "/admin/api/signup.json", 201, data=dict(short, password="a-long-passphrase"))
        aid = account_id(lab, "user1")
        r = lab.post(f"/admin/api/accounts/{aid}/users.json",
                     data={"username": "dev9", "email": "dev9@example.com", "password": "short"})
        assert r.status_code == (201 if release == "2.16" else 422)
        uid = lab.ok("GET", f"/admin/api/accounts/{aid}/users.json")["users"][0]["user"]["id"]
        r = lab.put(f"/admin/api/accounts/{aid}/users/{uid}.json", data={"password": "tiny"})
        assert (r.status_code, r.json() if r.status_code == 422 else None) == (
            (200, None) if release == "2.16" else (422, too_short))
        # no password at all is a minimal signup either way: no policy to apply
        lab.ok("POST", "/admin/api/signup.json", 201, data={"org_name": "NoPw", "username": "nopw"})
    finally:
        lab.stop()


def test_maaslab_up_porta_release_flag(tmp_path):
    """`maaslab up --porta-release next` persists the setting in lab.json and the running porta applies
    master's password policy; the seeded developers are there. Upstream: porta
    app/lib/authentication/by_password.rb."""
    lab_dir = tmp_path / "lab"
    subprocess.run([sys.executable, "-m", "maaslab", "up", "--dir", str(lab_dir), "--users", "1",
                    "--porta-release", "next"], check=True, capture_output=True, timeout=120)
    try:
        info = json.loads((lab_dir / "lab.json").read_text())
        assert info["settings"]["porta_release"] == "next"
        lines = (lab_dir / "lab.env").read_text().splitlines()
        env = {k: v.strip("'") for k, v in (ln.removeprefix("export ").split("=", 1)
                                            for ln in lines if ln.startswith("export "))}
        http = requests.Session()
        http.trust_env = False
        r = http.post(env["THREESCALE_ADMIN_URL"] + "/admin/api/signup.json", verify=env["THREESCALE_CA_BUNDLE"],
                      auth=("", env["THREESCALE_ACCESS_TOKEN"]),
                      data={"org_name": "cli", "username": "cli-user", "password": "openshift"}, timeout=10)
        assert (r.status_code, r.json()) == (422, {"errors": {"password": ["is too short (minimum is 15 characters)"]}})
        found = http.get(env["THREESCALE_ADMIN_URL"] + "/admin/api/accounts/find.json",
                         verify=env["THREESCALE_CA_BUNDLE"], auth=("", env["THREESCALE_ACCESS_TOKEN"]),
                         params={"username": "user1"}, timeout=10)
        assert found.status_code == 200
    finally:
        subprocess.run([sys.executable, "-m", "maaslab", "down", "--dir", str(lab_dir)], check=True,
                       capture_output=True, timeout=60)


def test_provider_json_and_update_without_parameters(lab):
    """Provider JSON has no self link; PUT /provider.json without any account parameter is 400.
    Upstream: porta app/controllers/admin/api/providers_controller.rb (params.required(:account));
    porta/CONTRACT.md §11.7."""
    provider = lab.ok("GET", "/admin/api/provider.json")["account"]
    assert "self" not in [link["rel"] for link in provider["links"]]
    r = lab.put("/admin/api/provider.json", data={"unrelated": "x"})
    assert (r.status_code, r.text) == (400, "Required parameter missing: account")


def test_signup_default_application_plan_brings_first_published_service_plan(lab):
    """A product without a default service plan but with a default application plan: signup subscribes
    the account to its first published service plan and creates the "API signup" application; a product
    with neither gets nothing. Upstream: porta app/lib/signup/plans_with_defaults.rb
    (add_default_plans_to_service, contract_first_published_service_plan?), app/models/service.rb
    (create_default_service_plan: "Default", published), config/examples/rolling_updates.yml."""
    with_default = new_product(lab, "Default App Plan")["id"]
    sp = lab.ok("GET", f"/admin/api/services/{with_default}/service_plans.json")["plans"][0]["service_plan"]
    assert (sp["name"], sp["state"], sp["default"]) == ("Default", "published", False)
    plan = new_plan(lab, with_default, "Starter", state_event="publish")
    lab.ok("PUT", f"/admin/api/services/{with_default}/application_plans/{plan['id']}/default.json")
    without = new_product(lab, "No Defaults")["id"]
    acc = lab.ok("POST", "/admin/api/signup.json", 201,
                 data={"org_name": "Defaults", "username": "defaults"})["account"]
    subs = {(s["service_subscription"]["service_id"], s["service_subscription"]["plan_id"]) for s in lab.ok(
        "GET", f"/admin/api/accounts/{acc['id']}/service_subscriptions.json")["service_subscriptions"]}
    assert (with_default, sp["id"]) in subs and without not in {sid for sid, _ in subs}
    apps = lab.ok("GET", f"/admin/api/accounts/{acc['id']}/applications.json")["applications"]
    assert ("API signup", plan["id"]) in [(a["application"]["name"], a["application"]["plan_id"]) for a in apps]
