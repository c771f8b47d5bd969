"""Module logic in-process (main() with patched args) against FakePorta: check mode, idempotence,
validation before writes, the pre-2.16 subscription fallback, the unsuspended-applications refusal."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fake_porta import FakePorta  # noqa: E402

from ansible_collections.maas.threescale.plugins.modules import (  # noqa: E402
    threescale_account, threescale_application, threescale_portal, threescale_product_info, threescale_subscription)

TOKEN = "unit-token-0123456789"


@pytest.fixture
def porta(serve, run_module):
    def start(**kw):
        fake = FakePorta(token=TOKEN, **kw)
        fake.run_module = run_module
        srv = serve(fake)
        fake.server = srv
        fake.conn = dict(admin_url=srv.url, access_token=TOKEN, retries=0)
        return fake
    return start


def writes(fake):
    return [r for r in fake.server.log if r["method"] != "GET"]


def run(module, fake, check=False, **args):
    args = dict(fake.conn, **args)
    if check:
        args["_ansible_check_mode"] = True
    args["_ansible_diff"] = True
    result = fake.run_module(module, args)
    assert TOKEN not in str(result)
    return result


@pytest.mark.parametrize("new_api", [True, False])
def test_subscription_lifecycle(porta, new_api):
    fake = porta(new_api=new_api)
    accounts = ["user1", "user2@example.com", str(next(iter(fake.accounts)))]  # username, email, id (= user1)
    res = run(threescale_subscription, fake, check=True, accounts=accounts, product="api")
    assert res["changed"] and not writes(fake)
    assert [s["action"] for s in res["subscriptions"]] == ["subscribed", "subscribed"]  # user1 given twice
    res = run(threescale_subscription, fake, accounts=accounts, product="api")
    assert res["changed"] and res["api"] == ("service_subscriptions" if new_api else "service_contracts")
    assert len(fake.contracts) == 2 and all(c["plan_id"] == 10 for c in fake.contracts.values())
    assert set(res["diff"]["after"]) == {"user1", "user2@example.com"}
    fake.server.log.clear()
    res = run(threescale_subscription, fake, accounts=accounts, product="api")
    assert not res["changed"] and not writes(fake) and "diff" not in res
    res = run(threescale_subscription, fake, accounts=["user1"], product="api", state="absent")
    assert res["changed"] and len(fake.contracts) == 1


def test_subscription_validates_everything_before_writing(porta):
    fake = porta()
    res = run(threescale_subscription, fake, accounts=["user1", "ghost", "99999"], product="api")
    assert res["failed"] and "ghost, 99999" in res["msg"] and "nothing was changed" in res["msg"]
    res = run(threescale_subscription, fake, accounts=["user1"], product="api", plan="Gold")
    assert res["failed"] and "'Gold' not found" in res["msg"] and "Default" in res["msg"]
    res = run(threescale_subscription, fake, accounts=["user1"], product="nope")
    assert res["failed"] and "'nope' not found" in res["msg"]
    assert not writes(fake)


def test_unsubscribe_with_live_application(porta):
    fake = porta()
    app = run(threescale_application, fake, account="user3", product="api", plan="basic", name="demo")
    assert app["changed"] and app["user_key"] and len(fake.contracts) == 1  # implicit subscription
    fake.server.log.clear()
    res = run(threescale_subscription, fake, accounts=["user3"], product="api", state="absent")
    assert res["failed"] and "suspend_applications" in res["msg"] and "demo" in res["msg"] and not writes(fake)
    res = run(threescale_subscription, fake, accounts=["user3"], product="api", state="absent", suspend_applications=True)
    assert res["changed"] and not fake.contracts and not fake.apps


def test_subscription_request_count_grows_with_changes_only(porta):
    fake = porta(accounts=40)
    names = ["user%d" % i for i in range(1, 41)]
    counts = []
    for subset in (names[:20], names):  # half subscribed, then all remaining, then nothing to do
        counts.append(run(threescale_subscription, fake, accounts=subset, product="api")["api_requests"])
    counts.append(run(threescale_subscription, fake, accounts=names, product="api")["api_requests"])
    # 2 product/plan reads + 1 XML account list (module_utils/threescale_accounts: from 4 names on; this fake
    # has none, 404) + per account 1 find + 1 subscription read, + 1 POST per change
    assert counts == [3 + 20 * 2 + 20, 3 + 40 * 2 + 20, 3 + 40 * 2]


def test_account_module(porta):
    fake = porta()
    want = [dict(username="dev%d" % i, email="dev%d@example.com" % i, password="pw-%d-secret" % i) for i in range(3)]
    res = run(threescale_account, fake, check=True, accounts=want)
    assert res["changed"] and not writes(fake) and len(res["accounts"]) == 3
    res = run(threescale_account, fake, accounts=want)
    assert [a["action"] for a in res["accounts"]] == ["created"] * 3 and all(a["id"] for a in res["accounts"])
    assert "pw-0-secret" not in str(res)
    res = run(threescale_account, fake, accounts=want)
    assert not res["changed"]
    fake.server.log.clear()
    res = run(threescale_account, fake, accounts=[dict(username="ok"), dict(email="bad"), dict(username="ok")])
    assert res["failed"] and "'bad' is not an email address" in res["msg"] and "ok is listed twice" in res["msg"]
    assert len(fake.server.log) == 0  # static checks before any request
    res = run(threescale_account, fake, accounts=[dict(username="new1", email="user1@example.com"), dict(username="new2")])
    assert res["failed"] and not writes(fake)
    assert "user1@example.com already belongs" in res["msg"] and "new2" not in res["msg"]  # email is optional
    res = run(threescale_account, fake, username="dev1", state="absent")
    assert res["changed"] and res["account"]["action"] == "deleted"
    assert run(threescale_account, fake, username="dev1", state="absent")["changed"] is False


def test_application_module(porta):
    fake = porta()
    base = dict(account="user1", product="api", name="app1")
    res = run(threescale_application, fake, check=True, plan="basic", **base)
    assert res["changed"] and res["user_key"] is None and not writes(fake)
    res = run(threescale_application, fake, plan="basic", **base)
    key = res["user_key"]
    assert res["changed"] and len(key) == 32
    assert "user_key" not in res["application"] and "user1" not in key
    assert not run(threescale_application, fake, plan="basic", **base)["changed"]
    res = run(threescale_application, fake, plan="premium", state="suspended", **base)
    assert res["changed"] and res["application"]["state"] == "suspended" and res["application"]["plan_id"] == 21
    assert res["diff"]["before"]["state"] == "live" and res["user_key"] == key
    res = run(threescale_application, fake, rotate_key=True, **base)
    assert res["changed"] and res["user_key"] != key and len(res["user_key"]) == 32
    assert run(threescale_application, fake, plan="ghost", **base)["msg"].startswith("Application plan 'ghost' not found")
    assert run(threescale_application, fake, state="absent", **base)["changed"]
    assert not fake.apps


def test_portal_and_product_info(porta):
    fake = porta()
    res = run(threescale_portal, fake)
    assert res == dict(res, changed=False, access_code="abc123", portal_open=False)
    assert run(threescale_portal, fake, check=True, access_code="")["changed"] and fake.access_code == "abc123"
    res = run(threescale_portal, fake, access_code="")
    assert res["changed"] and res["portal_open"] and res["diff"]["before"]["access_code"] == "abc123"
    assert not run(threescale_portal, fake, access_code="")["changed"]
    info = run(threescale_product_info, fake, product="api")
    assert info["exists"] and info["promotion_due"] and (info["staging_version"], info["production_version"]) == (2, 1)
    assert info["endpoint"] == "https://prod:443" and [p["system_name"] for p in info["application_plans"]] == ["basic", "premium"]
    missing = run(threescale_product_info, fake, product="missing")
    assert missing["exists"] is False and missing["id"] is None and missing["application_plans"] == []
    assert not missing.get("failed") and not missing["changed"]


def test_bad_connection_options(porta):
    fake = porta()
    res = run(threescale_portal, fake, admin_url="ftp://x")
    assert res["failed"] and "must start with https://" in res["msg"]
    res = run(threescale_portal, fake, access_token="wrong-token-value")
    assert res["failed"] and res["status"] == 403 and "Access denied" in res["msg"]
    assert res["path"] == "/admin/api/provider.json" and "wrong-token-value" not in str(res)


def test_subscription_moves_account_to_the_requested_plan(porta):
    fake = porta()
    fake.service_plans[11] = dict(id=11, name="Gold", service_id=1, state="published", default=False)
    assert run(threescale_subscription, fake, accounts=["user1"], product="api")["changed"]
    res = run(threescale_subscription, fake, check=True, accounts=["user1"], product="api", plan="Gold")
    assert res["subscriptions"][0]["action"] == "changed_plan" and list(fake.contracts.values())[0]["plan_id"] == 10
    res = run(threescale_subscription, fake, accounts=["user1"], product="api", plan="Gold")
    assert res["changed"] and res["diff"] == {"before": {"user1": {"subscribed": True, "plan_id": 10}},
                                              "after": {"user1": {"subscribed": True, "plan_id": 11}}}
    assert list(fake.contracts.values())[0]["plan_id"] == 11
    assert not run(threescale_subscription, fake, accounts=["user1"], product="api", plan="Gold")["changed"]


@pytest.mark.parametrize("accounts,lookup,expect", [
    (["user1", "ghost"], "auto", "1 of 2 accounts not found: ghost ('ghost' as a username)"),
    (["99999"], "auto", "all-digit values were read as account ids: set account_lookup: username"),
    (["user1"], "id", "account_lookup is id but these are not numeric account ids: user1"),
    (["user1@example.com", "nobody@example.com"], "username_or_email",
     "nobody@example.com ('nobody@example.com' as an email)"),
])
def test_both_account_modules_resolve_accounts_alike(porta, accounts, lookup, expect):
    """One resolver (module_utils/threescale_accounts.py) for threescale_application and threescale_subscription:
    the same lookups, the same message for what is not found, nothing written."""
    fake = porta()
    app = run(threescale_application, fake, accounts=accounts, account_lookup=lookup, product="api", plan="basic",
              name="demo")
    sub = run(threescale_subscription, fake, accounts=accounts, account_lookup=lookup, product="api")
    assert app["failed"] and sub["failed"] and app["msg"] == sub["msg"]
    assert expect in app["msg"] and app["msg"].endswith("; nothing was changed")
    assert app["missing_accounts"] == sub["missing_accounts"] and not writes(fake)
    if len(accounts) == 1:
        single = run(threescale_application, fake, account=accounts[0], account_lookup=lookup, product="api",
                     plan="basic", name="demo")
        assert single["msg"] == app["msg"]


def test_plans_are_found_once_for_both_modules(porta):
    fake = porta()
    app = run(threescale_application, fake, account="user1", product="api", plan="ghost", name="demo")
    assert app["msg"].startswith("Application plan 'ghost' not found in product api; available: ")
    sub = run(threescale_subscription, fake, accounts=["user1"], product="api", plan="Ghost")
    assert sub["msg"].startswith("Service plan 'Ghost' not found in product api; available: ")
    assert not writes(fake)


def test_an_id_with_leading_zeros_is_not_that_account(porta):
    """porta finds /accounts/008.json as account 8 (Rails to_i); "008" under account_lookup auto is read as an
    id, and only the exact id names an account, so it is not found (and the hint names account_lookup)."""
    fake = porta()
    res = run(threescale_subscription, fake, accounts=["0001"], product="api")
    assert res["failed"] and "set account_lookup: username" in res["msg"] and not writes(fake)
