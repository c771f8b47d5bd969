"""Bulk access (issue 11 item 1): one task gives N=50 accounts their application, through ansible-playbook
against a lab of its own (``--users 50``); porta's own request counters (``/lab/stats.json``) prove the
request bounds, the independent REST client of test_modules reads back what was written, APIcast answers
with a sample of the keys.

Upstream: porta app/controllers/admin/api/buyers_applications_controller.rb (``before_action
:find_or_create_service_contract``: creating an application subscribes the account, so no separate
subscribe), app/lib/logic/contracting.rb (default service plan, else the first),
app/controllers/admin/api/applications_controller.rb (``paginate``, ``service_id`` filter),
app/controllers/admin/api/filters/pagination.rb (``per_page`` 1..500), app/controllers/admin/api/accounts_controller.rb
(index, ``find``), app/models/account.rb (Account#to_xml lists the users; the JSON list carries no usernames:
app/representers/account_representer.rb).
"""
from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest
import requests

import test_modules
from conftest import start_lab, stop_lab, user_env
from test_modules import COLLECTION_AGENT, Porta, task, uniq

play = test_modules.play  # its lab_env is this module's (below): the lab with 50 developer accounts

N = 50
PRODUCT = "granite-3dot2-8b-instruct"  # seeded, promoted: its keys answer through APIcast
ACCOUNTS = ["user%d" % i for i in range(1, N + 1)]


@pytest.fixture(scope="module")
def bulk_lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bulk-lab")
    info = start_lab(directory, "--users", str(N))
    yield info
    stop_lab(directory)


@pytest.fixture(scope="module")
def lab_env(bulk_lab):
    return user_env(bulk_lab)


@pytest.fixture(scope="module")
def porta(lab_env):
    return Porta(lab_env)


def counts(porta):
    stats = porta.s.get(porta.base + "/lab/stats.json", timeout=30).json()
    mine = stats["by_agent"].get(COLLECTION_AGENT, {})  # not APIcast's configuration polling, nor the operator's
    writes = {k: n for k, n in mine.items() if not k.startswith(("GET ", "HEAD "))}
    return sum(mine.values()), writes, mine, stats["faults"]


def bulk(register, name, **args):
    return task("threescale_application", register, accounts=args.pop("accounts", ACCOUNTS), product=PRODUCT,
                plan="standard", name=name, **args)


def product_apps(porta, name):
    pid = porta.product(PRODUCT)["id"]
    status, body = porta.req("GET", "/applications.json", params={"service_id": pid, "per_page": 500})
    assert status == 200 and "metadata" not in body, body
    return [a["application"] for a in body["applications"] if a["application"]["name"] == name]


def recap(proc):
    return dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", proc.stdout.split("PLAY RECAP")[1]))


def test_bulk_first_run_rerun_request_bounds_and_keys_at_the_gateway(play, porta, lab_env):
    """First run: ≤ 2 admin requests per account + 10, the only writes are the N creates (no subscribe);
    re-run: ≤ 1 per account + 10 and not one write; one application per account; keys work at APIcast."""
    name = uniq("bulk")
    porta.reset_stats()
    r, first = play(bulk("first", name, service_plan="Default"))
    total, writes, _all, _f = counts(porta)
    assert r["first"]["changed"] and [a["action"] for a in r["first"]["applications"]] == ["created"] * N
    assert total <= 2 * N + 10, _all
    assert writes == {"POST /admin/api/accounts/%d/applications.json" % a["account_id"]: 1
                      for a in r["first"]["applications"]}, writes          # one create each, no subscription POST
    porta.reset_stats()
    r2, again = play(bulk("again", name, service_plan="Default"))
    total2, writes2, all2, _f = counts(porta)
    assert not r2["again"]["changed"] and [a["action"] for a in r2["again"]["applications"]] == ["unchanged"] * N
    assert total2 <= N + 10 and not writes2, all2
    assert all2.get("GET /admin/api/accounts.xml") == 1 and not any("find" in k for k in all2), all2  # one list
    assert recap(again)["changed"] == 1  # only the test's result file
    print(f"\nN={N}: first run {total} admin requests ({total / N:.2f}/account), re-run {total2} ({total2 / N:.2f}/account)")
    apps = product_apps(porta, name)
    by_account = {}
    for a in apps:
        by_account.setdefault(a["account_id"], []).append(a)
    assert sorted(len(v) for v in by_account.values()) == [1] * N
    for res in (r["first"], r2["again"]):
        assert [a["account"] for a in res["applications"]] == ACCOUNTS
        assert {a["account_id"]: a["user_key"] for a in res["applications"]} == \
            {k: v[0]["user_key"] for k, v in by_account.items()}
    pid = porta.product(PRODUCT)["id"]
    subs = [s for s in porta.subscriptions(r["first"]["applications"][0]["account_id"]) if s["service_id"] == pid]
    plans = porta.req("GET", "/services/%s/service_plans.json" % pid)[1]["plans"]
    assert [s["plan_id"] for s in subs] == [p["service_plan"]["id"] for p in plans if p["service_plan"]["name"] == "Default"]
    for key in (first.stdout + again.stdout, first.stderr + again.stderr):
        assert not any(a["user_key"] in key for a in r["first"]["applications"])   # the keys are never displayed
    gateway = porta.req("GET", "/services/%s/proxy.json" % pid)[1]["proxy"]["endpoint"]
    s = requests.Session()
    s.trust_env = False
    for a in random.Random(7).sample(r["first"]["applications"], 5):
        answer = s.get(gateway + "/v1/models", headers={"Authorization": "Bearer " + a["user_key"]}, timeout=30)
        assert answer.status_code == 200 and answer.json()["object"] == "list", (a["account"], answer.text[:200])


def test_bulk_check_mode_diff_and_unknown_accounts(play, porta):
    """Check mode reports the creates and writes nothing; unknown accounts (all named) fail the task before
    any write for every account."""
    name = uniq("dry")
    porta.reset_stats()
    dry = bulk("dry", name, accounts=ACCOUNTS[:5])
    dry[0]["check_mode"] = True
    r, proc = play(dry)
    _t, writes, _a, _f = counts(porta)
    assert r["dry"]["changed"] and not writes
    assert [(a["action"], a["user_key"], a["application_id"]) for a in r["dry"]["applications"]] == \
        [("created", None, None)] * 5
    assert set(r["dry"]["diff"]["after"]) == set(ACCOUNTS[:5]) and r["dry"]["diff"]["before"]["user1"] == {}
    assert not product_apps(porta, name)
    r, proc = play(bulk("bad", name, ignore_errors=True, accounts=["user1", "nobody-x", "user2", "ghost@example.com"]))
    _t, writes, _a, _f = counts(porta)
    assert r["bad"]["failed"] and not writes, writes
    assert "2 of 4 accounts not found" in r["bad"]["msg"] and "'nobody-x' as a username" in r["bad"]["msg"]
    assert "'ghost@example.com' as an email" in r["bad"]["msg"] and "nothing was changed" in r["bad"]["msg"]


def test_bulk_lost_answers_converge(play, porta, bulk_lab, lab_env):
    """30 % of the creates lose their answer after porta committed them: the module reads back and adopts,
    every account ends with exactly one application, and a re-run writes nothing."""
    name = uniq("lost")

    def fault(*args):
        subprocess.run([sys.executable, "-m", "maaslab", "fault", "--dir", bulk_lab["dir"], *args], check=True,
                       capture_output=True, env=lab_env, timeout=60)

    fault("porta", "lost_response_rate=0.3", 'verbs=["POST"]', r"path_regex=^/admin/api/accounts/\d+/applications\.json$")
    try:
        porta.reset_stats()
        r, _proc = play(bulk("lost", name, accounts=ACCOUNTS[:20]))
        _t, writes, _a, faults = counts(porta)
    finally:
        fault("clear")
    assert faults.get("lost_responses", 0) >= 1, ("the fault did not fire: the test proved nothing", faults, writes)
    assert r["lost"]["changed"] and len(r["lost"]["recovered_writes"]) == faults["lost_responses"]
    assert sum(writes.values()) == 20, writes  # an adopted create is never sent twice
    apps = product_apps(porta, name)
    assert sorted(a["account_id"] for a in apps) == sorted(a["account_id"] for a in r["lost"]["applications"])
    assert {a["account_id"]: a["user_key"] for a in apps} == \
        {a["account_id"]: a["user_key"] for a in r["lost"]["applications"]}
    porta.reset_stats()
    r, _proc = play(bulk("again", name, accounts=ACCOUNTS[:20]))
    _t, writes, _a, _f = counts(porta)
    assert not r["again"]["changed"] and not writes


def test_bulk_rotate_suspend_resume_delete(play, porta):
    """The single-account guarantees in bulk: rotate_key gives new keys, suspended/present/absent change every
    application once and report it, a repeat changes nothing; porta holds exactly what was reported."""
    name, accounts = uniq("life"), ACCOUNTS[:3]
    r, proc = play(bulk("create", name, accounts=accounts)
                   + bulk("rotate", name, accounts=accounts, rotate_key=True)
                   + bulk("suspend", name, accounts=accounts, state="suspended")
                   + bulk("suspend2", name, accounts=accounts, state="suspended")
                   + bulk("resume", name, accounts=accounts)
                   + bulk("delete", name, accounts=accounts, state="absent")
                   + bulk("delete2", name, accounts=accounts, state="absent"))
    actions = {k: [a["action"] for a in r[k]["applications"]] for k in r if k != "out_file"}
    assert actions == {"create": ["created"] * 3, "rotate": ["updated"] * 3, "suspend": ["suspended"] * 3,
                       "suspend2": ["unchanged"] * 3, "resume": ["resumed"] * 3, "delete": ["deleted"] * 3,
                       "delete2": ["unchanged"] * 3}, actions
    old = [a["user_key"] for a in r["create"]["applications"]]
    new = [a["user_key"] for a in r["rotate"]["applications"]]
    assert all(len(k) == 32 for k in old + new) and not set(old) & set(new)
    assert r["rotate"]["diff"]["after"]["user1"]["user_key"] == "(new key)"
    assert [a["state"] for a in r["suspend"]["applications"]] == ["suspended"] * 3
    assert [a["user_key"] for a in r["resume"]["applications"]] == new  # resume keeps the rotated key
    assert not r["suspend2"]["changed"] and not r["delete2"]["changed"] and not product_apps(porta, name)
    assert not any(k in proc.stdout for k in old + new)
