"""Resolution logic of threescale_application's bulk mode (accounts:), without a server: which requests
resolve which accounts, what each account needs, and that a list of keys is censored.

Upstream: porta app/controllers/admin/api/accounts_controller.rb (index paginated, find by username/email),
app/representers/account_representer.rb (no usernames in the JSON list), app/lib/logic/contracting.rb
(find_or_create_service_contract: default service plan, else the first)."""
from __future__ import annotations

import pytest

from ansible_collections.maas.threescale.plugins.action.threescale_application import carries_key
from ansible_collections.maas.threescale.plugins.modules.threescale_application import (
    Pool, decide, implicit_service_plan, index_applications, lookup_kind, resolve_accounts, unique_idents)


class Client:
    """Records the requests; accounts 7 (alice, alice@example.com) and 8 (1234, bob@example.com)."""

    def __init__(self):
        self.calls = []
        self.accounts = {7: dict(id=7, org_name="Alice"), 8: dict(id=8, org_name="Bob")}
        self.users = {("username", "alice"): 7, ("email", "alice@example.com"): 7, ("username", "1234"): 8,
                      ("email", "bob@example.com"): 8}

    def paginate(self, path, collection, entity, params=None):
        self.calls.append(("list", path))
        return list(self.accounts.values())

    def get(self, path, params=None, expected_404=False):
        self.calls.append(("get", path, tuple(sorted((params or {}).items()))))
        (kind, value), = params.items()
        aid = self.users.get((kind, value))
        return {"account": self.accounts[aid]} if aid else None


def serial(func, items):
    return [func(i) for i in items]


def test_ids_come_from_one_list_names_from_one_find_each():
    c = Client()
    found = resolve_accounts(c, ["7", "alice", "bob@example.com", "9"], "auto", serial)
    assert {k: (v or {}).get("id") for k, v in found.items()} == {"7": 7, "alice": 7, "bob@example.com": 8, "9": None}
    assert c.calls == [("list", "/accounts.json"),
                       ("get", "/accounts/find.json", (("username", "alice"),)),
                       ("get", "/accounts/find.json", (("email", "bob@example.com"),))]


def test_no_account_list_without_ids_and_no_find_for_ids():
    c = Client()
    resolve_accounts(c, ["alice", "1234"], "username_or_email", serial)  # an all-digit username stays a username
    assert c.calls == [("get", "/accounts/find.json", (("username", "alice"),)),
                       ("get", "/accounts/find.json", (("username", "1234"),))]
    c = Client()
    found = resolve_accounts(c, ["8", "7"], "id", serial)
    assert c.calls == [("list", "/accounts.json")] and [found["8"]["id"], found["7"]["id"]] == [8, 7]


def test_lookup_kinds_and_unique_idents():
    assert [lookup_kind(x, "username_or_email") for x in ("42", "a@b", "bob")] == ["username", "email", "username"]
    assert [lookup_kind(x, "auto") for x in ("42", "a@b", "bob")] == ["id", "email", "username"]
    assert unique_idents([" alice", "alice", "", "bob ", "alice"]) == ["alice", "bob"]


def test_index_keeps_only_the_name_oldest_first():
    apps = [dict(id=9, account_id=1, name="x"), dict(id=3, account_id=1, name="x"), dict(id=4, account_id=2, name="y"),
            dict(id=5, account_id=2, name="x")]
    assert index_applications(apps, "x") == {1: [apps[1], apps[0]], 2: [apps[3]]}


def test_implicit_service_plan_is_the_default_else_the_first():
    assert implicit_service_plan([dict(id=1), dict(id=2, default=True)])["id"] == 2
    assert implicit_service_plan([dict(id=1, default=False), dict(id=2)])["id"] == 1
    assert implicit_service_plan([]) is None


PLAN = dict(id=20, name="Basic")


@pytest.mark.parametrize("current,want,plan,description,rotate,expected", [
    (None, "live", PLAN, None, False, ("created", ["create"])),
    (None, "suspended", PLAN, None, False, ("created", ["create", "suspend"])),
    (dict(id=1, state="live", plan_id=20, description="d"), "live", PLAN, None, False, ("unchanged", [])),
    (dict(id=1, state="live", plan_id=20, description="d"), "live", PLAN, "d", False, ("unchanged", [])),
    (dict(id=1, state="live", plan_id=20, description="d"), "live", PLAN, "e", False, ("updated", ["update"])),
    (dict(id=1, state="live", plan_id=21), "live", PLAN, None, False, ("updated", ["change_plan"])),
    (dict(id=1, state="live", plan_id=20), "live", None, None, True, ("updated", ["update"])),
    (dict(id=1, state="live", plan_id=20), "suspended", PLAN, None, False, ("suspended", ["suspend"])),
    (dict(id=1, state="suspended", plan_id=20), "live", PLAN, None, False, ("resumed", ["resume"])),
    (dict(id=1, state="pending", plan_id=20), "live", PLAN, None, False, ("unchanged", [])),
    (dict(id=1, state="live"), "absent", None, None, False, ("deleted", ["delete"])),
    (None, "absent", None, None, False, ("unchanged", [])),
])
def test_decide(current, want, plan, description, rotate, expected):
    assert decide(current, want, plan, description, rotate) == expected


def test_decide_refuses_before_any_write():
    with pytest.raises(ValueError, match="set plan"):
        decide(None, "live", None, None, False)
    with pytest.raises(ValueError, match="pending"):
        decide(dict(id=1, state="pending", plan_id=20), "suspended", PLAN, None, False)


def test_pool_keeps_order_and_bounds_concurrency():
    import threading
    active, peak, lock = [0], [0], threading.Lock()
    together = threading.Barrier(3, timeout=10)  # the first three items must run at the same time

    def work(i):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        if i < 3:
            together.wait()
        with lock:
            active[0] -= 1
        return i * 2

    assert Pool(3).map(work, range(12)) == [i * 2 for i in range(12)]
    assert peak[0] == 3
    peak[0] = 0
    assert Pool(1).map(lambda i: work(i + 3), range(4)) == [6, 8, 10, 12] and peak[0] == 1


def test_a_list_of_keys_is_censored():
    assert carries_key({"user_key": "k"})
    assert carries_key({"applications": [{"user_key": None}, {"user_key": "abc"}]})
    assert not carries_key({"applications": [{"user_key": None}], "user_key": None})
    assert not carries_key({"applications": "not a list"})
