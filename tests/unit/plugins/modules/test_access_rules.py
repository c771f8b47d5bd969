"""Porta's account and subscription rules as the modules meet them (porta CONTRACT.md §11, items 2, 3, 5, 6):
signup passwords refused under porta master's 15-character minimum, admin users left pending without a
password (and the user activate call), all-digit usernames, and pending applications that can be neither
suspended nor left behind when unsubscribing.  Against FakePorta, in-process.

Upstream: porta app/lib/authentication/by_password.rb, app/models/user/states.rb, app/models/user.rb,
app/controllers/admin/api/buyers_users_controller.rb (activate), app/models/contract/states.rb (application states)."""
from __future__ import annotations

import os
import sys

import pytest
try:
    from ansible.module_utils import _internal as module_internal
except ImportError:  # ansible-core < 2.19 (hack/compat.sh): warnings always land in the module result
    module_internal = None
from ansible.module_utils.common import warnings as module_warnings

sys.path.insert(0, os.path.dirname(__file__))
from fake_porta import FakePorta  # noqa: E402

from ansible_collections.maas.threescale.plugins.modules import (  # noqa: E402
    threescale_account, threescale_application, threescale_subscription)

TOKEN = "unit-token-0123456789"


@pytest.fixture
def porta(serve, run_module, monkeypatch):
    # Module warnings land in the result only outside a controller process; the lookup unit tests load
    # controller code into this pytest process, which would send them to the display instead.
    if module_internal is not None:
        monkeypatch.setattr(module_internal, "is_controller", False)

    def start(**kw):
        fake = FakePorta(token=TOKEN, **kw)
        fake.run_module = run_module
        fake.server = serve(fake)
        fake.conn = dict(admin_url=fake.server.url, access_token=TOKEN, retries=0)
        return fake
    return start


def writes(fake):
    return [(r["method"], r["path"]) for r in fake.server.log if r["method"] != "GET"]


def run(module, fake, check=False, **args):
    module_warnings._global_warnings.clear()  # a module process starts with none; this one is reused
    args = dict(fake.conn, _ansible_diff=True, **args)
    if check:
        args["_ansible_check_mode"] = True
    result = fake.run_module(module, args)
    assert TOKEN not in str(result)
    if "warnings" in result:  # ansible-core 2.19 returns WarningSummary objects
        result["warnings"] = [w if isinstance(w, str) else w["event"]["msg"] for w in result["warnings"]]
    return result


def account_of(fake, username):
    return next(a for a in fake.accounts.values() if a["_user"] == username)


def test_short_password_refused_with_the_field_and_the_fix(porta):
    """porta master: 422 {"errors":{"password":["is too short (minimum is 15 characters)"]}}."""
    fake = porta(min_password=15)
    res = run(threescale_account, fake, accounts=[
        dict(username="longpw", email="longpw@example.com", password="a-long-enough-passphrase"),
        dict(username="shortpw", email="shortpw@example.com", password="openshift")])
    assert res["failed"] and res["status"] == 422 and res["error"]["errors"]["password"]
    assert "refused to create account shortpw" in res["msg"]
    assert "password is too short (minimum is 15 characters)" in res["msg"]
    assert "at least 15 characters" in res["msg"] and "activate_user" in res["msg"]
    assert "before it: longpw" in res["msg"] and "openshift" not in str(res)
    assert [a["_user"] for a in fake.accounts.values()][-1] == "longpw"
    # 2.16 has no such rule: the same password is accepted
    fake216 = porta()
    res = run(threescale_account, fake216, username="shortpw", email="shortpw@example.com", password="openshift")
    assert res["changed"] and res["account"]["user_state"] == "active" and "warnings" not in res


def test_account_without_password_is_pending_then_activated(porta):
    fake = porta()
    res = run(threescale_account, fake, check=True, username="nopw", email="nopw@example.com")
    assert res["account"]["user_state"] == "pending" and not writes(fake)
    assert any("pending" in w and "activate_user: true" in w for w in res["warnings"])
    res = run(threescale_account, fake, username="nopw", email="nopw@example.com")
    assert res["changed"] and res["account"]["user_state"] == "pending" and "activate_user" in res["warnings"][0]
    assert account_of(fake, "nopw")["_user_state"] == "pending"
    # an existing account with a pending admin user: activate_user fixes it (check mode first)
    fake.server.log.clear()
    res = run(threescale_account, fake, check=True, username="nopw", activate_user=True)
    assert res["changed"] and res["account"]["action"] == "activated" and not writes(fake)
    res = run(threescale_account, fake, username="nopw", activate_user=True)
    assert res["account"]["action"] == "activated" and res["account"]["user_state"] == "active"
    assert res["diff"] == {"before": {"nopw": {"user_state": "pending"}}, "after": {"nopw": {"user_state": "active"}}}
    uid = account_of(fake, "nopw")["_user_id"]
    assert ("PUT", "/admin/api/accounts/%s/users/%s/activate.json" % (account_of(fake, "nopw")["id"], uid)) in writes(fake)
    res = run(threescale_account, fake, username="nopw", activate_user=True)
    assert not res["changed"] and res["account"]["user_state"] == "active"


def test_create_with_activate_user(porta):
    fake = porta()
    res = run(threescale_account, fake, accounts=[dict(username="sso1", email="sso1@example.com")], activate_user=True)
    assert res["accounts"][0]["action"] == "created" and res["accounts"][0]["user_state"] == "active"
    assert "warnings" not in res and account_of(fake, "sso1")["_user_state"] == "active"


def test_activate_user_without_the_users_list(porta):
    """The users list needs the tenant's multiple_users switch (contract §3): 403 otherwise."""
    fake = porta(multiple_users=False)
    res = run(threescale_account, fake, username="nolist", email="nolist@example.com")
    assert res["changed"] and res["account"]["user_state"] == "pending" and res["warnings"]
    res = run(threescale_account, fake, username="nolist", activate_user=True)
    assert res["failed"] and res["status"] == 403
    assert "account nolist" in res["msg"] and "multiple_users" in res["msg"]


def test_username_rules_checked_before_any_request(porta):
    fake = porta()
    res = run(threescale_account, fake, accounts=[dict(username="ab"), dict(username="x" * 41), dict(username="-dash")])
    assert res["failed"] and res["msg"].count("3 to 40 characters") == 3 and not fake.server.log


def test_all_digit_username_is_not_an_account_id(porta):
    fake = porta()
    user2 = account_of(fake, "user2")["id"]
    name = str(user2)  # a username that is also another account's id
    res = run(threescale_account, fake, username=name, email="digits@example.com", password="digits-password-123")
    assert res["changed"] and res["account"]["id"] != user2
    assert not run(threescale_account, fake, username=name, email="digits@example.com")["changed"]  # found again
    digits = account_of(fake, name)["id"]
    # auto reads it as an id (today's behaviour): that is user2's account
    res = run(threescale_subscription, fake, check=True, accounts=[name], product="api")
    assert res["subscriptions"][0]["account_id"] == user2
    res = run(threescale_subscription, fake, accounts=[name], product="api", account_lookup="username")
    assert res["subscriptions"][0]["account_id"] == digits and res["changed"]
    res = run(threescale_subscription, fake, accounts=["99999"], product="api")
    assert res["failed"] and "account_lookup: username" in res["msg"]
    res = run(threescale_subscription, fake, accounts=["user1"], product="api", account_lookup="id")
    assert res["failed"] and "not numeric account ids: user1" in res["msg"]
    res = run(threescale_application, fake, account=name, account_lookup="username", product="api", plan="basic",
              name="digits-app")
    assert res["application"]["account_id"] == digits
    res = run(threescale_application, fake, account="99999", product="api", name="x")
    assert res["failed"] and "as an account id" in res["msg"]


def pending_app(fake, account):
    fake.app_plans[22] = dict(id=22, name="Gated", system_name="gated", service_id=1, state="published",
                              approval_required=True)
    res = run(threescale_application, fake, account=account, product="api", plan="gated", name="waiting")
    assert res["application"]["state"] == "pending"
    return res["application"]["id"]


def test_pending_applications_block_unsubscribing(porta):
    fake = porta()
    running = run(threescale_application, fake, account="user4", product="api", plan="basic", name="running")
    running = running["application"]["id"]
    waiting = pending_app(fake, "user4")
    fake.server.log.clear()
    res = run(threescale_subscription, fake, accounts=["user4"], product="api", state="absent", suspend_applications=True)
    assert res["failed"] and not writes(fake)
    assert "waiting for approval (waiting)" in res["msg"] and "delete_pending_applications: true" in res["msg"]
    assert "accept them" in res["msg"] and "running" not in res["msg"]  # live ones are handled by suspend_applications
    res = run(threescale_subscription, fake, check=True, accounts=["user4"], product="api", state="absent",
              suspend_applications=True, delete_pending_applications=True)
    assert res["changed"] and not writes(fake)
    res = run(threescale_subscription, fake, accounts=["user4"], product="api", state="absent",
              suspend_applications=True, delete_pending_applications=True)
    assert res["changed"] and not fake.contracts and not fake.apps
    aid = account_of(fake, "user4")["id"]
    # the live one was suspended, the pending one deleted (never suspended: porta would answer 422)
    assert ("DELETE", "/admin/api/accounts/%s/applications/%s.json" % (aid, waiting)) in writes(fake)
    assert [w for w in writes(fake) if w[1].endswith("/suspend.json")] == [
        ("PUT", "/admin/api/accounts/%s/applications/%s/suspend.json" % (aid, running))]


def test_pending_alone_needs_only_delete_pending(porta):
    fake = porta()
    pending_app(fake, "user5")
    res = run(threescale_subscription, fake, accounts=["user5"], product="api", state="absent")
    assert res["failed"] and "suspend_applications" not in res["msg"].split("waiting for approval")[0]
    res = run(threescale_subscription, fake, accounts=["user5"], product="api", state="absent",
              delete_pending_applications=True)
    assert res["changed"] and not fake.apps and not fake.contracts


def test_fake_porta_refuses_suspending_a_pending_application(porta):
    """The rule the module works around (contract §11.6), proven on the fake it is tested against."""
    fake = porta()
    app = pending_app(fake, "user3")
    aid = account_of(fake, "user3")["id"]
    status, body, _h = fake("PUT", "/admin/api/accounts/%s/applications/%s/suspend.json" % (aid, app), {}, {},
                            {"Authorization": fake.auth})
    assert status == 422 and body == {"errors": {"state": ['cannot transition via "suspend"']}}


def test_application_module_on_a_pending_application(porta):
    fake = porta()
    pending_app(fake, "user2")
    res = run(threescale_application, fake, account="user2", product="api", name="waiting")
    assert not res["changed"] and res["application"]["state"] == "pending"
    assert any("pending" in w and "accepted" in w for w in res["warnings"])
    fake.server.log.clear()
    res = run(threescale_application, fake, account="user2", product="api", name="waiting", state="suspended")
    assert res["failed"] and "suspends only live applications" in res["msg"] and not writes(fake)
