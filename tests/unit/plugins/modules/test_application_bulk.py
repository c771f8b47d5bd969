"""Resolution logic of threescale_application's bulk mode (accounts:), without a server: which requests
resolve which accounts, what each account needs, and that a list of keys is censored.

Upstream: porta app/controllers/admin/api/accounts_controller.rb (index paginated, find by username/email),
app/representers/account_representer.rb (no usernames in the JSON list), app/lib/logic/contracting.rb
(find_or_create_service_contract: default service plan, else the first)."""
from __future__ import annotations

import pytest

from ansible_collections.maas.threescale.plugins.action.threescale_application import carries_key
from ansible_collections.maas.threescale.plugins.module_utils.threescale_api import ThreescaleError
from ansible_collections.maas.threescale.plugins.module_utils.threescale_accounts import (
    find_accounts as resolve_accounts, lookup_kind, unique_idents)
from ansible_collections.maas.threescale.plugins.modules.threescale_application import (
    Pool, decide, implicit_service_plan, index_applications)


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

    def request(self, method, path, params=None, raw=False):
        self.calls.append(("xml", path, params["page"]))
        raise ThreescaleError("406", status=406)  # like the lab before accounts.xml, or a proxy refusing XML

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


def test_names_fall_back_to_finds_when_the_xml_list_is_refused():
    c = Client()
    names = ["alice", "alice@example.com", "1234", "bob@example.com"]
    found = resolve_accounts(c, names, "username_or_email", serial)
    assert [found[n]["id"] for n in names] == [7, 7, 8, 8]
    assert c.calls[0] == ("xml", "/accounts.xml", 1) and [x[0] for x in c.calls[1:]] == ["get"] * 4


class XmlClient(Client):
    """Serves porta's XML account list (Account#to_xml with users), ``per_page`` accounts a page."""

    def __init__(self, accounts, per_page):
        super(XmlClient, self).__init__()
        self.rows, self.per_page = accounts, per_page

    def request(self, method, path, params=None, raw=False):
        page = params["page"]
        self.calls.append(("xml", path, page))
        rows = self.rows[(page - 1) * self.per_page: page * self.per_page]
        pages = -(-len(self.rows) // self.per_page)
        attrs = ' per_page="%d" total_pages="%d" current_page="%d"' % (self.per_page, pages, page) if pages > 1 else ""
        return ("<?xml version=\"1.0\"?><accounts%s>%s</accounts>" % (attrs, "".join(
            "<account><id>%d</id><org_name>o%d</org_name><state>approved</state><users>%s</users></account>"
            % (aid, aid, "".join("<user><username>%s</username><email>%s</email></user>" % u for u in users))
            for aid, users in rows))).encode()


ROWS = [(i, [("u%d" % i, "u%d@x.org" % i)]) for i in range(1, 11)] + [(11, [("admin11", "a@x.org"), ("m11", "m@x.org")])]


def test_xml_list_resolves_names_and_ids_in_one_request():
    c = XmlClient(ROWS, per_page=500)
    idents = ["u1", "u2@x.org", "m11", "m@x.org", "3", "nobody", "99"]
    found = resolve_accounts(c, idents, "auto", serial)
    assert {i: (found[i] or {}).get("id") for i in idents} == \
        {"u1": 1, "u2@x.org": 2, "m11": 11, "m@x.org": 11, "3": 3, "nobody": None, "99": None}
    assert c.calls == [("xml", "/accounts.xml", 1)]  # the whole list was read: what it lacks does not exist


def test_xml_pages_only_while_cheaper_than_finds():
    c = XmlClient(ROWS, per_page=3)  # 4 pages
    found = resolve_accounts(c, ["u1", "u4", "u7", "u10", "m11"], "username", serial)
    assert all(found[i] for i in ["u1", "u4", "u7", "u10", "m11"])
    assert [x for x in c.calls if x[0] == "xml"] == [("xml", "/accounts.xml", p) for p in (1, 2, 3, 4)]
    c = XmlClient(ROWS, per_page=2)  # 6 pages, 4 names: after page 1, 5 pages left > 3 names left
    c.users.update({("username", "u%d" % i): i for i in range(1, 11)})
    c.accounts.update({i: dict(id=i) for i in range(1, 11)})
    found = resolve_accounts(c, ["u1", "u5", "u9", "u10"], "username", serial)
    assert [found[i]["id"] for i in ["u1", "u5", "u9", "u10"]] == [1, 5, 9, 10]
    assert c.calls == [("xml", "/accounts.xml", 1)] + [("get", "/accounts/find.json", (("username", u),))
                                                       for u in ("u5", "u9", "u10")]


def test_few_names_use_finds_not_the_list():
    c = XmlClient(ROWS, per_page=500)
    c.users[("username", "u1")] = 7
    resolve_accounts(c, ["u1", "u2", "u3"], "username", serial)
    assert [x[0] for x in c.calls] == ["get"] * 3


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
