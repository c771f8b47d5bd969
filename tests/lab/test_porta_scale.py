"""The lab's porta costs the same per request at 1,000 accounts as at 50: lookups by value use indexes and
lists are paginated in the database, as porta's are.

Upstream: porta db/schema.rb (cinstances indexed on user_account_id, plan_id, user_key, application_id and
(type, service_id, ...); users on account_id, username and email; metrics on (owner_type, owner_id) and
parent_id; backend_api_configs on service_id), app/lib/three_scale/api/collection.rb and porta's
``paginate`` (will_paginate: LIMIT/OFFSET plus a COUNT), app/controllers/admin/api/accounts_controller.rb
(``find`` by username, email or user_id), app/models/cinstance.rb (user_key unique per provider).

Cost is measured in documents the store decodes (``Store.decoded``), not in seconds: it does not move with
the machine's load. Before the indexes, one application create decoded every contract twice and every
application once (about 3 x N documents at N accounts).
"""
from __future__ import annotations

import pytest
from maaslab.porta.db import INDEXED, Store
from test_porta import Lab, account_id


# ---- the store: SQL matching means what the Python comparison meant

DOCS = [
    {"name": "a", "n": 1, "flag": True, "opt": None, "tags": ["x"]},
    {"name": "b", "n": 2, "flag": False},
    {"name": "1", "n": 1.0, "flag": 1, "opt": "set"},
    {"name": "c", "flag": False, "tags": ["x"]},
    {"name": "d", "n": "1", "opt": 0},
]
MATCHES = [{"name": "a"}, {"name": 1}, {"name": "1"}, {"n": 1}, {"n": "1"}, {"n": None}, {"flag": True},
           {"flag": False}, {"flag": 1}, {"opt": None}, {"opt": 0}, {"opt": False}, {"tags": ["x"]},
           {"n": 1, "flag": True}, {"missing": None}, {"missing": "x"}, {}]


@pytest.fixture()
def store(tmp_path):
    st = Store(tmp_path / "porta.sqlite3")
    for d in DOCS:
        st.insert("thing", d)
    st.insert("other", {"name": "a", "n": 1})
    yield st
    st.close()


@pytest.mark.parametrize("match", MATCHES, ids=lambda m: repr(m))
def test_sql_matching_equals_the_python_comparison(store, match):
    ids = {d["name"]: store.first("thing", name=d["name"])["id"] for d in DOCS}
    expected = [ids[d["name"]] for d in DOCS if all(d.get(k) == v for k, v in match.items())]
    assert [d["id"] for d in store.all("thing", **match)] == expected
    assert store.count("thing", **match) == len(expected)
    first = store.first("thing", **match)
    assert (first["id"] if first else None) == (expected[0] if expected else None)


def test_match_by_row_id_page_and_all_in(store):
    everything = store.all("thing")
    second = everything[1]
    assert store.all("thing", id=second["id"]) == [second]
    assert store.all("other", id=second["id"]) == []  # the kind still counts
    items, total = store.page("thing", 1, 2)
    assert (items, total) == (everything[1:3], len(DOCS))
    items, total = store.page("thing", 0, 10, flag=False)
    assert [d["name"] for d in items] == ["b", "c"] and total == 2
    assert [d["name"] for d in store.all_in("thing", "name", ["d", "a", "zz", "a"])] == ["a", "d"]
    assert store.all_in_ids("thing", [everything[3]["id"], 10**6, "x"]) == [everything[3]]


@pytest.mark.parametrize("field", INDEXED)
def test_each_lookup_by_value_uses_an_index(store, field):
    where, args, rest = Store._where("thing", {field: 1})
    assert not rest
    plan = store.conn.execute(f"EXPLAIN QUERY PLAN SELECT id, data FROM obj WHERE {where}", args).fetchall()
    assert any("USING INDEX obj_" in row[-1] for row in plan), plan


def test_an_accounts_contract_on_a_product_uses_the_composite_index(store):
    where, args, _ = Store._where("contract", {"account_id": 5, "service_id": 3})
    plan = store.conn.execute(f"EXPLAIN QUERY PLAN SELECT id, data FROM obj WHERE {where} ORDER BY id LIMIT 1",
                              args).fetchall()
    assert any("obj_account_service" in row[-1] for row in plan), plan


# ---- through the admin API: the documents one request reads do not grow with the accounts

@pytest.fixture(scope="module", params=[50, 1000], ids=lambda n: f"{n}-accounts")
def sized(request, tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp(f"porta-scale-{request.param}"), users=request.param)
    sid = lab.ok("POST", "/admin/api/services.json", 201, data={"name": "scale"})["service"]["id"]
    plan = lab.ok("POST", f"/admin/api/services/{sid}/application_plans.json", 201,
                  data={"name": "Standard"})["application_plan"]
    yield lab, sid, plan["id"], request.param
    lab.stop()


COSTS: dict = {}


def decoded(lab: Lab, method: str, path: str, status: int = 200, **kw):
    before = lab.porta.store.decoded
    body = lab.ok(method, path, status, **kw) if method != "XML" else lab.get(path, **kw)
    return lab.porta.store.decoded - before, body


def test_request_costs_do_not_grow_with_the_accounts(sized):
    lab, sid, plan_id, n = sized
    costs = {}
    # every account gets an application (the tables grow to N contracts and N applications), and each
    # create costs what the first did
    for acc in lab.porta.store.all("account"):
        costs.setdefault("create application", []).append(decoded(
            lab, "POST", f"/admin/api/accounts/{acc['id']}/applications.json", 201,
            data={"plan_id": plan_id, "name": "scale"})[0])
    last = decoded(lab, "POST", f"/admin/api/accounts/{account_id(lab, f'user{n}')}/applications.json", 201,
                   data={"plan_id": plan_id, "name": "second"})
    key = last[1]["application"]["user_key"]
    costs["find account by username"] = [decoded(lab, "GET", "/admin/api/accounts/find.json",
                                                 params={"username": f"user{n}"})[0]]
    costs["find account by email"] = [decoded(lab, "GET", "/admin/api/accounts/find.json",
                                              params={"email": f"user{n}@example.com"})[0]]
    costs["find application by user_key"] = [decoded(lab, "GET", "/admin/api/applications/find.json",
                                                     params={"user_key": key})[0]]
    costs["accounts page of 20"] = [decoded(lab, "GET", "/admin/api/accounts.json",
                                            params={"per_page": 20, "page": 2})[0]]
    costs["accounts.xml page of 20"] = [decoded(lab, "XML", "/admin/api/accounts.xml",
                                                params={"per_page": 20, "page": 2})[0]]
    costs["applications page of 20"] = [decoded(lab, "GET", "/admin/api/applications.json",
                                                params={"service_id": sid, "per_page": 20})[0]]
    costs["signup"] = [decoded(lab, "POST", "/admin/api/signup.json", 201,
                               data={"org_name": "late", "username": "late", "email": "late@example.com"})[0]]
    COSTS[n] = {k: max(v) for k, v in costs.items()}
    print("\nporta request costs at %d accounts (documents decoded, worst):" % n, COSTS[n], len(costs["create application"]))
    # a bound that does not depend on N: a handful of documents (plans, service, account, contract) plus
    # one page (20 accounts, their users, contracts and plans) for the lists
    for what, worst in COSTS[n].items():
        bound = 200 if "page" in what else 40
        assert worst <= bound, (n, what, worst, COSTS[n])


def test_the_costs_are_the_same_at_both_sizes():
    if set(COSTS) != {50, 1000}:
        pytest.skip("needs both sizes of test_request_costs_do_not_grow_with_the_accounts")
    for what in COSTS[50]:
        assert COSTS[1000][what] <= COSTS[50][what] + 5, (what, COSTS)


def test_paginated_lists_agree_with_one_unpaginated_read(sized):
    lab, sid, _plan, n = sized
    total = lab.porta.store.count("account")
    first = lab.ok("GET", "/admin/api/accounts.json", params={"per_page": 500})
    pages = -(-total // 500)
    assert first.get("metadata", {}).get("total_pages", 1) == pages
    ids = [a["account"]["id"] for p in range(1, pages + 2)  # one page past the end: empty
           for a in lab.ok("GET", "/admin/api/accounts.json", params={"per_page": 500, "page": p})["accounts"]]
    assert ids == [a["id"] for a in lab.porta.store.all("account")]
