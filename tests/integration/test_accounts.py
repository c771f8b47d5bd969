"""Porta's account and subscription rules met through ansible-playbook against the lab (porta CONTRACT.md
§11 items 2, 3, 5, 6): the workshop password checked before any change, generated per-user passwords,
admin users left pending without a password (and activated), all-digit usernames, pending applications.
Every claim about porta's state is checked with the independent REST client of test_modules.

Upstream: porta app/lib/authentication/by_password.rb (STRONG_PASSWORD_MIN_SIZE 15),
app/models/user/states.rb (initial state pending, event activate), app/models/user.rb and
app/lib/authentication.rb (username 3..40, RE_LOGIN_OK), app/controllers/admin/api/buyers_users_controller.rb
(activate), app/models/contract/states.rb (only live applications suspend)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import test_modules
from test_modules import Porta, task, uniq

play = test_modules.play  # the fixtures of test_modules, shared by name
porta = test_modules.porta

REPO = Path(__file__).resolve().parents[2]
LONG = "a-long-workshop-passphrase"  # 26 characters: accepted by 2.16 and by porta master


def bootstrap(env, tmp_path, users, password=None, extra=()):
    """Run the bootstrap playbook as an instructor would; returns (process, credentials file)."""
    creds = tmp_path / "creds.csv"
    run_env = dict(env, MAAS_WORKSHOP_PASSWORD=password or "", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(["ansible-playbook", "-i", "inventories/lab", "playbooks/bootstrap_workshop.yml",
                           "-e", "maas_workshop_users=%d" % users, "-e", "maas_workshop_credentials_file=%s" % creds,
                           *extra], cwd=REPO, env=run_env, capture_output=True, text=True, check=False, timeout=600)
    return proc, creds


def admin_state(porta, account_id):
    status, body = porta.req("GET", "/accounts/%s/users.json" % account_id)
    assert status == 200, body
    return [u["user"]["state"] for u in body["users"] if u["user"]["role"] == "admin"][0]


def test_bootstrap_refuses_a_short_password_before_any_request(lab_env, porta, tmp_path):
    """The workshop's "openshift" (9 characters) fails fast, naming the variable and the fix."""
    porta.reset_stats()
    proc, creds = bootstrap(lab_env, tmp_path, 2, password="openshift")
    counts = porta.collection_counts()
    assert proc.returncode == 2, proc.stdout[-3000:]
    out = proc.stdout + proc.stderr
    assert "maas_workshop_user_password (or env MAAS_WORKSHOP_PASSWORD) has 9 characters" in out
    assert "at least 15" in out and "leave it empty to generate" in out and "Nothing was changed" in out
    assert "openshift" not in out.replace("(or env MAAS_WORKSHOP_PASSWORD)", "")
    assert not [k for k in counts if "signup" in k or "provider" in k or not k.startswith("GET")]  # no write
    assert not creds.exists()


def test_bootstrap_refuses_an_unrelated_file_at_the_credentials_path_before_any_write(lab_env, porta, tmp_path):
    """Issue 19: a file this collection did not write is neither overwritten nor read for passwords,
    and the run stops before any account is created (whose generated passwords would be lost)."""
    creds = tmp_path / "creds.csv"
    creds.write_text("name,notes\nimportant,do not lose\n")
    porta.reset_stats()
    proc, _creds = bootstrap(lab_env, tmp_path, 2)
    counts = porta.collection_counts()
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2, out[-3000:]
    assert "is not a workshop credentials file written by this collection" in out and "Move it aside" in out
    assert not [k for k in counts if not k.startswith("GET")], counts  # no write
    assert creds.read_text() == "name,notes\nimportant,do not lose\n"


def test_account_lookup_all_digit_username(play, porta):
    """A username that is all digits (porta's RE_LOGIN_OK allows it) is not read as an account id."""
    other = porta.find("user2")["id"]
    name, product = "%03d" % other, uniq("digits")  # the username reads as user2's account id
    status, body = porta.req("POST", "/services.json", data={"name": product, "system_name": product})
    assert status == 201, body
    r, _proc = play(task("threescale_account", "create", username=name, email=uniq("d") + "@example.com",
                         password=LONG)
                    + task("threescale_account", "again", username=name)
                    + task("threescale_subscription", "auto", ignore_errors=True, accounts=[name], product=product)
                    + task("threescale_subscription", "byname", accounts=[name], product=product, account_lookup="username"))
    mine = porta.find(name)["id"]
    assert r["create"]["account"]["id"] == mine != other and not r["again"]["changed"]
    assert r["auto"]["failed"] and "set account_lookup: username" in r["auto"]["msg"]  # auto: digits = an id
    assert r["byname"]["subscriptions"][0]["account_id"] == mine and r["byname"]["changed"]
    pid = porta.product(product)["id"]
    assert pid in [s["service_id"] for s in porta.subscriptions(mine)]


def test_pending_applications_and_unsubscribe(play, porta):
    """Only live applications are suspended; pending ones are named, then deleted on request."""
    product, user = uniq("gated"), uniq("pend")
    aid = porta.signup(user)["id"]
    assert porta.req("POST", "/services.json", data={"name": product, "system_name": product})[0] == 201
    pid = porta.product(product)["id"]
    for plan, approval in (("open", "false"), ("gated", "true")):
        status, body = porta.req("POST", "/services/%s/application_plans.json" % pid,
                                 data={"name": plan, "system_name": plan, "approval_required": approval})
        assert status == 201, body
    gone = dict(accounts=[user], product=product, state="absent", suspend_applications=True)
    r, _proc = play(task("threescale_application", "live", account=user, product=product, plan="open", name="running")
                    + task("threescale_application", "pending", account=user, product=product, plan="gated", name="waiting")
                    + task("threescale_subscription", "refused", ignore_errors=True, **gone))
    assert (r["live"]["application"]["state"], r["pending"]["application"]["state"]) == ("live", "pending")
    assert "accepted in the 3scale admin portal" in str(r["pending"]["warnings"]) and "warnings" not in r["live"]
    msg = r["refused"]["msg"]
    assert r["refused"]["failed"] and "waiting for approval (waiting)" in msg and "delete_pending_applications" in msg
    assert sorted(a["state"] for a in porta.apps(aid) if a["service_id"] == pid) == ["live", "pending"]  # unchanged
    dry = task("threescale_subscription", "dry", delete_pending_applications=True, **gone)
    dry[0]["check_mode"] = True
    r, _proc = play(dry)
    assert r["dry"]["changed"] and len([a for a in porta.apps(aid) if a["service_id"] == pid]) == 2
    r, _proc = play(task("threescale_subscription", "done", delete_pending_applications=True, **gone)
                    + task("threescale_subscription", "again", delete_pending_applications=True, **gone))
    assert r["done"]["changed"] and not r["again"]["changed"]
    # signup's own "API signup" application on the default product (contract §11.4) is not ours to touch
    assert not [a for a in porta.apps(aid) if a["service_id"] == pid]
    assert not [x for x in porta.subscriptions(aid) if x["service_id"] == pid]


def test_account_without_password_pending_then_activated(play, porta):
    user, other = uniq("nopw"), uniq("act")
    r, _proc = play(task("threescale_account", "plain", username=user, email=user + "@example.com")
                    + task("threescale_account", "fix", username=user, activate_user=True)
                    + task("threescale_account", "fixed", username=user, activate_user=True)
                    + task("threescale_account", "direct", username=other, email=other + "@example.com",
                           activate_user=True))
    assert r["plain"]["account"]["user_state"] == "pending"
    assert any("pending" in str(w) and "activate_user" in str(w) for w in r["plain"]["warnings"])
    assert r["fix"]["account"]["action"] == "activated" and r["fix"]["diff"]["after"][user]["user_state"] == "active"
    assert not r["fixed"]["changed"]
    assert r["direct"]["account"]["user_state"] == "active" and "warnings" not in r["direct"]
    assert admin_state(porta, porta.find(user)["id"]) == "active" == admin_state(porta, porta.find(other)["id"])


# --- porta master (3scale 2.17+) rules: a lab started with --porta-release next --------------------------

def lab_env_file(path: Path) -> dict:
    """The variables of a lab.env (``export KEY='value'`` lines)."""
    pairs = (line[len("export "):].partition("=") for line in path.read_text().splitlines() if line.startswith("export "))
    return {key: (shlex.split(value)[0] if value else "") for key, _sep, value in pairs}


@pytest.fixture(scope="module")
def next_lab(tmp_path_factory):
    directory = tmp_path_factory.mktemp("nextlab")
    lab = [sys.executable, "-m", "maaslab"]
    subprocess.run(lab + ["up", "--dir", str(directory), "--porta-release", "next", "--users", "2"], check=True,
                   capture_output=True, text=True)
    env = dict(os.environ, **lab_env_file(directory / "lab.env"))
    env["PATH"] = "%s:%s" % (Path(sys.executable).parent, env.get("PATH", ""))
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / ".venv" / "collections")
    yield env
    subprocess.run(lab + ["down", "--dir", str(directory)], check=True, capture_output=True, text=True)


def test_master_refuses_short_password_and_bootstrap_generates(next_lab, tmp_path):
    rest = Porta(next_lab)
    user = uniq("short")
    form = dict(username=user, org_name=user, email=user + "@example.com", password="openshift")
    status, body = rest.req("POST", "/signup.json", data=form)
    assert status == 422 and body == {"errors": {"password": ["is too short (minimum is 15 characters)"]}}
    book = tmp_path / "play.yml"
    book.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                    "    - maas.threescale.threescale_account: {username: %s, email: %s@example.com, password: openshift}\n"
                    % (user, user))
    proc = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(book),
                           "-e", "ansible_python_interpreter=%s" % sys.executable], env=next_lab,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "password is too short (minimum is 15 characters)" in proc.stdout
    assert "at least 15 characters" in proc.stdout and "openshift" not in proc.stdout
    assert rest.find(user) is None
    proc, creds = bootstrap(next_lab, tmp_path, 3, extra=("-e", "maas_smoke_test=false"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    rows = [line.split(",") for line in creds.read_text().splitlines()]
    assert rows[0][:2] == ["username", "password"] and oct(creds.stat().st_mode & 0o777) == "0o600"
    new = [r for r in rows[1:] if r[0] == "user3"][0]
    assert len(new[1]) == 24 and new[1].isalnum() and new[1] not in proc.stdout
    assert admin_state(rest, rest.find("user3")["id"]) == "active"


def test_access_role_reads_role_accounts_as_usernames_or_emails(play, porta):
    """maas_access never passes an account id: an all-digit username and an email both reach their account."""
    product = uniq("role")
    assert porta.req("POST", "/services.json", data={"name": product, "system_name": product})[0] == 201
    pid = porta.product(product)["id"]
    assert porta.req("POST", "/services/%s/application_plans.json" % pid,
                     data={"name": "Standard", "system_name": "standard"})[0] == 201
    user3 = porta.find("user3")["id"]
    name = "%04d" % user3  # reads as user3's id in auto mode
    role = [{"name": "Give access", "ansible.builtin.include_role": {"name": "maas.threescale.maas_access"},
             "vars": {"maas_access_product": product, "maas_access_accounts": [name, "user4@example.com"],
                      "maas_access_create_accounts": True, "maas_access_account_passwords": {name: LONG}}}]
    _r, first = play(role)
    _r, second = play(role)
    mine = porta.find(name)["id"]
    assert [a["service_id"] for a in porta.apps(mine)].count(pid) == 1
    assert [a["service_id"] for a in porta.apps(porta.find("user4")["id"])].count(pid) == 1
    assert pid not in [a["service_id"] for a in porta.apps(user3)]
    changed = [int(re.search(r"changed=(\d+)", p.stdout.split("PLAY RECAP")[1]).group(1)) for p in (first, second)]
    assert changed[0] >= 3 and changed[1] == 1  # account, subscription, applications; then only the result file
    assert LONG not in first.stdout + second.stdout
