"""Creates that cannot double, through ansible-playbook against the lab (issue 10, item 2), and the
module half of item 6 (a refused token, an unreachable admin URL, a missing CA: a clear error naming
the setting, nothing changed).

The lab's porta fault ``lost_response_rate`` processes and commits a request, then closes the
connection without an answer: the worst case for a POST.  The modules must read back and adopt what
porta committed, report the change, and end with exactly one account / subscription / application,
which the independent REST client of test_modules reads back; a re-run reports no change.

Upstream: porta app/controllers/admin/api/signups_controller.rb (unique username, 422 when taken),
app/controllers/admin/api/service_subscriptions_controller.rb (one subscription per account and
product, 422 "already subscribed"), app/controllers/admin/api/buyers_applications_controller.rb
(application names are not unique: only the module's read-back prevents a second one),
app/lib/api_authentication/by_access_token.rb (403 for a refused or read-only token).
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
import yaml

import test_modules
from test_modules import task, uniq

play = test_modules.play  # the fixtures of test_modules, shared by name
porta = test_modules.porta

CREATES = r"^/admin/api/(signup|accounts/\d+/(service_subscriptions|applications))\.json$"


@pytest.fixture
def fault(lab, lab_env):
    def set_fault(*args):
        subprocess.run([sys.executable, "-m", "maaslab", "fault", "--dir", lab["dir"], *args], check=True,
                       capture_output=True, env=lab_env, timeout=60)
    yield set_fault
    set_fault("clear")


def lab_stats(porta):
    return porta.s.get(porta.base + "/lab/stats.json", timeout=30).json()


def lost(porta):
    faults = lab_stats(porta)["faults"]
    return faults.get("lost_responses", faults.get("lost_response", 0))


def writes(porta):
    """Admin API writes the collection sent since reset_stats (not the operator's, on its own schedule)."""
    return {k: n for k, n in porta.collection_counts().items() if not k.startswith(("GET ", "HEAD "))}


def exactly_one(items, what):
    assert len(items) == 1, "%s: %d found, expected exactly one: %s" % (what, len(items), items)
    return items[0]


def test_lost_signup_answer_adopts_the_account(play, porta, fault):
    """Exactly the first signup loses its answer: one account, changed, adopted, and changed=0 after."""
    user = uniq("lost")
    account = dict(username=user, email=user + "@example.com", password="a-long-password-" + user)
    fault("porta", "lost_response_rate=1", "max_count=1", r"path_regex=^/admin/api/signup\.json$")
    before = lost(porta)
    porta.reset_stats()
    r, o = play(task("threescale_account", "create", **account))
    assert lost(porta) - before == 1, "the fault did not fire: the test proved nothing"
    assert r["create"]["changed"] and r["create"]["account"]["action"] == "created"
    assert "adopted the account %s" % user in r["create"]["recovered_writes"][0]
    assert writes(porta) == {"POST /admin/api/signup.json": 1}          # never sent twice
    assert porta.find(user)["id"] == r["create"]["account"]["id"]
    r, o = play(task("threescale_account", "again", **account))
    assert not r["again"]["changed"] and "recovered_writes" not in r["again"]


def _creates_play(names, product, plan, retries):
    accounts = [dict(username=n, email=n + "@example.com", password="a-long-password-" + n) for n in names]
    tasks = task("threescale_account", "accounts", accounts=accounts, retries=retries)
    tasks += task("threescale_subscription", "subs", accounts=names, product=product, retries=retries)
    apps = task("threescale_application", "apps", account="{{ item }}", product=product, plan=plan,
                name="{{ item }}-chat", retries=retries)
    apps[0]["loop"] = names
    return tasks + apps


@pytest.mark.timeout(900)
def test_lost_answers_at_30_percent_over_30_accounts(play, porta, fault):
    """30 % of the signup, subscription and application calls (GETs of those paths too) are committed
    and their answer lost.  The run converges with exactly one of each, then a re-run changes nothing."""
    names = ["%s-%02d" % (uniq("lr"), i) for i in range(30)]
    product = porta.new_product("lr", app_plan="basic")
    pid = porta.product(product)["id"]
    tasks = _creates_play(names, product, "basic", retries=8)  # a GET lost 9 times in a row: p = 2e-5
    fault("porta", "lost_response_rate=0.3", "path_regex=" + CREATES)
    before = lost(porta)
    porta.reset_stats()
    started = time.monotonic()
    r, o = play(tasks)
    wall = time.monotonic() - started
    injected = lost(porta) - before
    requests_seen = lab_stats(porta)["requests"]
    sent = writes(porta)
    fault("clear")

    recovered = {k: len(r[k].get("recovered_writes") or []) for k in ("accounts", "subs")}
    recovered["apps"] = sum(len(x.get("recovered_writes") or []) for x in r["apps"]["results"])
    posts = dict((kind, sum(n for k, n in sent.items() if k.startswith("POST ") and k.endswith(suffix)))
                 for kind, suffix in (("signup", "/signup.json"), ("subscription", "/service_subscriptions.json"),
                                      ("application", "/applications.json")))
    print("\nlost answers, 30 accounts at 30 %%: %s" % json.dumps(dict(
        lost_responses_injected=injected, porta_requests=requests_seen, creates_sent=posts, adopted=recovered,
        playbook_wall_s=round(wall, 1))))
    assert injected > 0 and sum(recovered.values()) > 0, "no create lost its answer: the test proved nothing"
    assert all(a["action"] == "created" for a in r["accounts"]["accounts"]) and r["accounts"]["changed"]
    assert all(s["action"] == "subscribed" for s in r["subs"]["subscriptions"]) and r["subs"]["changed"]
    assert all(x["changed"] and x["user_key"] for x in r["apps"]["results"])
    # porta saw each create once, plus once more only where a read-back found nothing (never with this fault)
    assert posts == dict(signup=30, subscription=30, application=30) and sum(sent.values()) == 90

    for name, app_result in zip(names, r["apps"]["results"]):
        account = porta.find(name)
        subs = [s for s in porta.subscriptions(account["id"]) if s["service_id"] == pid]
        exactly_one(subs, "subscriptions of %s" % name)
        apps = [a for a in porta.apps(account["id"]) if a["service_id"] == pid]
        app = exactly_one(apps, "applications of %s" % name)
        assert app["name"] == name + "-chat" and app["user_key"] == app_result["user_key"]

    porta.reset_stats()
    again, o = play(tasks)
    assert not again["accounts"]["changed"] and not again["subs"]["changed"]
    assert not any(x["changed"] for x in again["apps"]["results"]) and not writes(porta)


# -- item 6: a clear error naming the setting, nothing changed ----------------------------------------

def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_settings_errors_name_the_setting(play, porta, lab_env, tmp_path):
    user = uniq("bad")
    url = lab_env["THREESCALE_ADMIN_URL"]
    status, body = porta.req("POST", "/personal/access_tokens.json",
                             data={"name": uniq("ro"), "scopes[]": "account_management", "permission": "ro"})
    assert status == 201, body
    read_only = body["access_token"]["value"]
    port = _closed_port()
    new = dict(username=user, email=user + "@example.com", ignore_errors=True)
    tasks = task("threescale_account", "token", access_token="not-the-token-" + user, **new)
    tasks += task("threescale_account", "readonly", access_token=read_only, **new)
    tasks += task("threescale_account", "unreachable", admin_url="https://127.0.0.1:%d" % port, retries=0, **new)
    tasks += task("threescale_account", "noca", ca_path=str(tmp_path / "missing-ca.pem"), **new)
    porta.reset_stats()
    r, proc = play(tasks)
    # no CA that trusts the lab: no THREESCALE_CA_BUNDLE, an empty system store
    r2, proc2 = play(task("threescale_subscription", "untrusted", accounts=["user1"], product="api", ignore_errors=True,
                          retries=0), env=dict(THREESCALE_CA_BUNDLE=None, SSL_CERT_FILE=str(tmp_path / "none.pem")))
    r.update(r2)
    assert r["token"]["failed"] and r["token"]["msg"].startswith(
        "access_token (or THREESCALE_ACCESS_TOKEN) was refused by %s" % url)
    assert r["readonly"]["failed"] and "access_token (or THREESCALE_ACCESS_TOKEN) was refused" in r["readonly"]["msg"]
    assert "read-write" in r["readonly"]["msg"]
    assert r["unreachable"]["failed"] and "cannot reach admin_url https://127.0.0.1:%d (host 127.0.0.1:%d)" % (
        port, port) in r["unreachable"]["msg"]
    assert r["noca"]["failed"] and "missing-ca.pem given as ca_path (or THREESCALE_CA_BUNDLE)" in r["noca"]["msg"]
    assert r["untrusted"]["failed"] and "(admin_url) failed" in r["untrusted"]["msg"]
    for setting in ("ca_path", "THREESCALE_CA_BUNDLE", "validate_certs"):
        assert setting in r["untrusted"]["msg"]
    # the read-only token reached the first write and was refused there; nothing else wrote anything
    assert writes(porta) == {"POST /admin/api/signup.json": 1} and porta.find(user) is None
    assert read_only not in proc.stdout + proc.stderr and lab_env["THREESCALE_ACCESS_TOKEN"] not in proc.stdout


def test_lost_answers_to_suspend_unsubscribe_and_delete(play, porta, fault):
    """Exactly the first suspend, subscription delete and account delete lose their answer (each path is
    used by one method only, so max_count=1 hits the write itself): the resent PUT is refused with 422
    and the resent DELETEs get 404, because porta had done it; each task succeeds, reports the change,
    and the state read back is the one asked for."""
    user = uniq("gone")
    account = porta.signup(user)
    product = porta.new_product("gone", app_plan="basic")
    pid = porta.product(product)["id"]
    r, o = play(task("threescale_application", "app", account=user, product=product, plan="basic", name="chat"))
    steps = (("suspend", r"^/admin/api/accounts/\d+/applications/\d+/suspend\.json$",
              task("threescale_application", "suspend", account=user, product=product, name="chat", state="suspended")),
             ("unsubscribe", r"^/admin/api/accounts/\d+/service_subscriptions/\d+\.json$",
              task("threescale_subscription", "unsubscribe", accounts=[user], product=product, state="absent")),
             ("delete", r"^/admin/api/accounts/\d+\.json$",
              task("threescale_account", "delete", username=user, state="absent")))
    figures = {}
    for name, regex, tasks in steps:
        fault("porta", "lost_response_rate=1", "max_count=1", "path_regex=" + regex)
        before = lost(porta)
        r, o = play(tasks)
        figures[name] = lost(porta) - before
        assert figures[name] == 1, "the fault did not fire on %s" % name
        assert r[name]["changed"] and not r[name].get("failed"), r[name]
        if name == "suspend":
            assert r[name]["application"]["state"] == "suspended" and "had applied it" in r[name]["recovered_writes"][0]
            assert [a["state"] for a in porta.apps(account["id"]) if a["service_id"] == pid] == ["suspended"]
        if name == "unsubscribe":
            assert not [x for x in porta.subscriptions(account["id"]) if x["service_id"] == pid]
            assert not [a for a in porta.apps(account["id"]) if a["service_id"] == pid]
    print("\nlost answers to state changes and deletes: %s" % json.dumps(figures))
    assert r["delete"]["accounts"][0]["action"] == "deleted" and porta.find(user) is None
    assert porta.req("GET", "/accounts/%s.json" % account["id"])[0] == 404


def test_two_runs_at_once_end_with_one_application_per_account(porta, lab_env, tmp_path, fault):
    """Two ansible-playbook processes create the same 12 applications at the same time (look, then create,
    on both sides).  3scale does not make application names unique; the module's read-back after each
    create keeps the oldest, so both runs return the same key and porta holds exactly one per account."""
    names = ["%s-%02d" % (uniq("two"), i) for i in range(12)]
    for n in names:
        porta.signup(n)
    product = porta.new_product("two", app_plan="basic")
    pid = porta.product(product)["id"]
    inventory = tmp_path / "inventory"
    inventory.write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    outs, books = [tmp_path / "out-a.json", tmp_path / "out-b.json"], []
    for out in outs:
        t = task("threescale_application", "apps", account="{{ item }}", product=product, plan="basic", name="shared")
        t[0]["loop"] = names
        t.append({"name": "save", "no_log": True, "ansible.builtin.copy": {
            "dest": str(out), "content": "{{ _apps.results | map(attribute='user_key') | list | to_json }}", "mode": "0600"}})
        book = tmp_path / ("play-%s.yml" % out.stem)
        book.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": t}]))
        books.append(book)
    env = dict(lab_env, ANSIBLE_NOCOLOR="1")
    # a slow application list/create widens the window between "look" and "create" (injected latency)
    fault("porta", "delay=0.3", r"path_regex=^/admin/api/accounts/\d+/applications\.json$")
    started = time.monotonic()
    procs = [subprocess.Popen(["ansible-playbook", "-i", str(inventory), str(b)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for b in books]
    output = [p.communicate(timeout=300)[0] for p in procs]
    wall = time.monotonic() - started
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in output)
    keys = [json.loads(o.read_text()) for o in outs]
    converged = sum(o.count("kept the oldest") for o in output)
    print("\ntwo concurrent runs, 12 accounts: %s" % json.dumps(dict(
        duplicates_removed=converged, wall_s=round(wall, 1))))
    for name, key_a, key_b in zip(names, *keys):
        apps = [a for a in porta.apps(porta.find(name)["id"]) if a["service_id"] == pid]
        app = exactly_one(apps, "applications of %s" % name)
        assert key_a == key_b == app["user_key"]
