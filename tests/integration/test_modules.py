"""The collection's modules and lookup run AS ANSIBLE RUNS THEM (ansible-playbook, our collection on
ANSIBLE_COLLECTIONS_PATH) against the lab's porta over HTTPS with the lab CA, and the lab's
Kubernetes API.  Every claim about porta's state is checked with an independent REST client."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
import requests
import yaml

# plugins/module_utils/threescale_api.py USER_AGENT: how porta's counts tell the collection's requests apart
COLLECTION_AGENT = "maas.threescale-ansible-collection"


def registered(tasks):
    for t in tasks:
        if str(t.get("register", "")).startswith("_"):
            yield t["register"]
        yield from registered(t.get("block", []))


def save_task(tasks):
    """Last task: write r + every registered result to out_file (no_log: results may hold keys)."""
    regs = ", ".join("'%s': %s | default(None)" % (name[1:], name) for name in registered(tasks))
    return {"name": "Save the results for the test", "no_log": True,
            "ansible.builtin.copy": {"dest": "{{ out_file }}", "content": "{{ r | combine({%s}) | to_json }}" % regs,
                                     "mode": "0600"}}


class Porta:
    """Independent REST client (requests) to prove what the modules did or did not write."""

    def __init__(self, env):
        self.url = env["THREESCALE_ADMIN_URL"] + "/admin/api"
        self.s = requests.Session()
        self.s.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would replace the lab CA
        self.s.auth = ("", env["THREESCALE_ACCESS_TOKEN"])
        self.s.verify = env["THREESCALE_CA_BUNDLE"]
        self.base = env["THREESCALE_ADMIN_URL"]

    def req(self, method, path, **kw):
        r = self.s.request(method, self.url + path, timeout=30, **kw)
        return r.status_code, (r.json() if r.content.strip() else None)

    def find(self, username):
        status, body = self.req("GET", "/accounts/find.json", params={"username": username})
        return body["account"] if status == 200 else None

    def signup(self, username):
        status, body = self.req("POST", "/signup.json", data=dict(username=username, email=username + "@example.com",
                                                                  org_name=username, password="pw-" + username))
        assert status == 201, body
        return body["account"]

    def subscriptions(self, account_id):
        return [s["service_subscription"] for s in
                self.req("GET", "/accounts/%s/service_subscriptions.json" % account_id)[1]["service_subscriptions"]]

    def apps(self, account_id):
        return [a["application"] for a in self.req("GET", "/accounts/%s/applications.json" % account_id)[1]["applications"]]

    def new_product(self, prefix, app_plan=None):
        """A product of this test alone: signup's own subscription and "API signup" application land on
        the tenant's default product (porta CONTRACT.md §11.4), never on this one."""
        name = uniq(prefix)
        status, body = self.req("POST", "/services.json", data={"name": name, "system_name": name})
        assert status == 201, body
        if app_plan:
            status, body = self.req("POST", "/services/%s/application_plans.json" % body["service"]["id"],
                                    data={"name": app_plan, "system_name": app_plan})
            assert status == 201, body
        return name

    def product(self, system_name):
        services = [s["service"] for s in self.req("GET", "/services.json")[1]["services"]]
        return next(s for s in services if s["system_name"] == system_name)

    def collection_counts(self):
        """Admin API requests the collection sent (porta's counts for its User-Agent), by method and path.
        The real operator (porta-go-client) and APIcast call porta too, on their own schedule: a Backend
        another test left failing is retried in the background, so all-client counts are not ours."""
        stats = self.s.get(self.base + "/lab/stats.json", timeout=30).json()
        return stats["by_agent"].get(COLLECTION_AGENT, {})

    def stats(self):
        """Admin API requests the collection sent since reset_stats."""
        return sum(self.collection_counts().values())

    def requests_to(self, fragment):
        """Admin API requests the collection sent whose method and path contain ``fragment``."""
        return sum(n for key, n in self.collection_counts().items() if fragment in key)

    def reset_stats(self):
        assert self.s.post(self.base + "/lab/stats/reset", timeout=30).status_code in (200, 204)


@pytest.fixture(scope="module")
def porta(lab_env):
    return Porta(lab_env)


@pytest.fixture
def play(lab_env, tmp_path):
    """play(tasks, check=False, verbosity=0, env=None) -> (results dict, completed process)."""

    def run(tasks, check=False, verbosity=0, env=None, expect_rc=0, vars=None):
        out = tmp_path / ("out-%s.json" % uuid.uuid4().hex[:8])
        playbook = [{"name": "test", "hosts": "localhost", "gather_facts": False,
                     "vars": dict(vars or {}, out_file=str(out), r={}), "tasks": tasks + [save_task(tasks)]}]
        book = tmp_path / "play.yml"
        book.write_text(yaml.safe_dump(playbook, sort_keys=False))
        inventory = tmp_path / "inventory"
        inventory.write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
        cmd = ["ansible-playbook", "-i", str(inventory), str(book), "--diff"]
        cmd += ["--check"] if check else []
        cmd += ["-" + "v" * verbosity] if verbosity else []
        full_env = dict(lab_env, ANSIBLE_NOCOLOR="1", **(env or {}))
        proc = subprocess.run(cmd, check=False, env={k: v for k, v in full_env.items() if v is not None}, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == expect_rc, proc.stdout[-4000:] + proc.stderr[-2000:]
        return (json.loads(out.read_text()) if out.exists() else {}), proc
    return run


def task(module, register, ignore_errors=False, **args):
    """One module task, registered as _<register>; the test reads it as r[<register>]."""
    t = {"name": "%s %s" % (module, register), "maas.threescale.%s" % module: args, "register": "_%s" % register}
    if ignore_errors:
        t["ignore_errors"] = True
    return [t]


def uniq(prefix):
    return "%s%s" % (prefix, uuid.uuid4().hex[:8])


def test_account_module(play, porta, lab_env):
    a, b, ghost = uniq("acc"), uniq("acc"), uniq("ghost")
    accounts = [dict(username=a, email=a + "@example.com", password="Pw-" + a), dict(username=b, email=b + "@example.com")]
    tasks = task("threescale_account", "dry", accounts=[dict(username=ghost, email=ghost + "@example.com")])
    tasks[0]["check_mode"] = True
    tasks += task("threescale_account", "create", accounts=accounts)
    tasks += task("threescale_account", "again", accounts=accounts)
    fine = uniq("x")
    tasks += task("threescale_account", "bad", ignore_errors=True,  # porta: username of 3 to 40 characters
                  accounts=[dict(username=fine, email=uniq("y") + "@e.com"), dict(username="ab")])
    tasks += task("threescale_account", "rm", username=b, state="absent")
    tasks += task("threescale_account", "rm2", username=b, state="absent")
    r, proc = play(tasks, verbosity=3)
    assert r["dry"]["changed"] and r["dry"]["accounts"][0]["action"] == "created"
    assert porta.find(ghost) is None                                    # check mode wrote nothing
    assert r["create"]["changed"] and [x["action"] for x in r["create"]["accounts"]] == ["created", "created"]
    assert set(r["create"]["diff"]["after"]) == {a, b}
    assert porta.find(a)["id"] == r["create"]["accounts"][0]["id"]
    assert not r["again"]["changed"] and "diff" not in r["again"]
    assert r["bad"]["failed"] and "3 to 40 characters" in r["bad"]["msg"] and "nothing was changed" in r["bad"]["msg"]
    assert porta.find(fine) is None
    assert r["rm"]["changed"] and r["rm"]["diff"]["before"][b]["id"] and not r["rm2"]["changed"]
    assert porta.find(b) is None
    for secret in ("Pw-" + a, lab_env["THREESCALE_ACCESS_TOKEN"]):
        assert secret not in proc.stdout + proc.stderr                     # password / token never logged (-vvv)
    assert a in proc.stdout                                                # ...while the output is really there


def test_subscription_module(play, porta):
    names = [uniq("sub") for i in range(4)]
    ids = [porta.signup(n)["id"] for n in names]
    product = porta.product(porta.new_product("sub", app_plan="basic"))
    plan = porta.req("GET", "/services/%s/application_plans.json" % product["id"])[1]["plans"][0]["application_plan"]
    # names[3] owns a live application (which also subscribed it): unsubscribing it needs suspend_applications
    assert porta.req("POST", "/accounts/%s/applications.json" % ids[3], data=dict(plan_id=plan["id"], name="blocker"))[0] == 201
    args = dict(accounts=[names[0], names[1] + "@example.com", str(ids[2])], product=product["system_name"], plan="Default")
    gone = dict(accounts=[names[3]], product=product["system_name"], state="absent")
    tasks = task("threescale_subscription", "dry", **args)
    tasks[0]["check_mode"] = True
    tasks += task("threescale_subscription", "dryrm", **gone)
    tasks[1].update(check_mode=True, ignore_errors=True)
    r_dry, o = play(tasks)
    assert r_dry["dry"]["changed"] and all(x["action"] == "subscribed" for x in r_dry["dry"]["subscriptions"])
    assert r_dry["dryrm"]["failed"] and "blocker" in r_dry["dryrm"]["msg"]     # refused in check mode as well
    assert all(not [x for x in porta.subscriptions(i) if x["service_id"] == product["id"]] for i in ids[:3])

    r, o = play(task("threescale_subscription", "sub", **args) + task("threescale_subscription", "again", **args)
                + task("threescale_subscription", "badplan", ignore_errors=True, accounts=names, product=product["system_name"],
                       plan="Gold")
                + task("threescale_subscription", "badacc", ignore_errors=True, accounts=[names[0], uniq("nobody")],
                       product=product["system_name"])
                + task("threescale_subscription", "refused", ignore_errors=True, **gone)
                + task("threescale_subscription", "forced", suspend_applications=True, **gone)
                + task("threescale_subscription", "gone", **gone))
    assert r["sub"]["changed"] and r["sub"]["api"] == "service_subscriptions" and len(r["sub"]["diff"]["before"]) == 3
    assert all([x for x in porta.subscriptions(i) if x["service_id"] == product["id"]] for i in ids[:3])
    assert not r["again"]["changed"]
    assert r["badplan"]["failed"] and "'Gold' not found" in r["badplan"]["msg"] and "Default" in r["badplan"]["msg"]
    assert r["badacc"]["failed"] and "not found" in r["badacc"]["msg"]
    assert r["refused"]["failed"] and "blocker" in r["refused"]["msg"] and "suspend_applications" in r["refused"]["msg"]
    assert r["forced"]["changed"] and not r["gone"]["changed"]
    assert not [x for x in porta.subscriptions(ids[3]) if x["service_id"] == product["id"]]
    assert not [x for x in porta.apps(ids[3]) if x["service_id"] == product["id"]]


def test_application_module_and_key_never_logged(play, porta, lab_env):
    user = uniq("app")
    acc = porta.signup(user)
    base = dict(account=user, product="granite-3dot2-8b-instruct", name="chat")
    plans = porta.req("GET", "/services/%s/application_plans.json" % porta.product(base["product"])["id"])[1]["plans"]
    plan = plans[0]["application_plan"]["system_name"]
    dry = task("threescale_application", "dry", plan=plan, **{**base, "name": "never"})
    dry[0]["check_mode"] = True
    tmp = {**base, "name": "tmp"}
    r, proc = play(dry + task("threescale_application", "create", plan=plan, **base)
                   + task("threescale_application", "again", plan=plan, **base)
                   + task("threescale_application", "suspend", state="suspended", **base)
                   + task("threescale_application", "rotate", rotate_key=True, state="suspended", **base)
                   + task("threescale_application", "resume", **base)
                   + task("threescale_application", "badplan", ignore_errors=True, plan="nope", **{**base, "name": "x"})
                   + task("threescale_application", "tmp", plan=plan, **tmp)
                   + task("threescale_application", "rm", state="absent", **tmp)
                   + task("threescale_application", "rm2", state="absent", **tmp), verbosity=3)
    key, new_key = r["create"]["user_key"], r["rotate"]["user_key"]
    assert r["dry"]["changed"] and r["dry"]["user_key"] is None
    assert r["create"]["changed"] and len(key) == 32 and user not in key and "user_key" not in r["create"]["application"]
    assert not r["again"]["changed"] and r["again"]["user_key"] == key
    assert r["suspend"]["changed"] and r["suspend"]["diff"]["after"]["state"] == "suspended"
    assert r["rotate"]["changed"] and new_key != key and len(new_key) == 32
    assert r["rotate"]["application"]["state"] == "suspended"
    assert r["resume"]["changed"] and r["resume"]["application"]["state"] == "live" and r["resume"]["user_key"] == new_key
    assert r["badplan"]["failed"] and "'nope' not found" in r["badplan"]["msg"]
    assert r["rm"]["changed"] and not r["rm2"]["changed"]
    granite = porta.product(base["product"])["id"]
    apps = [x for x in porta.apps(acc["id"]) if x["service_id"] == granite]
    assert [x["name"] for x in apps] == ["chat"]                        # "never" (check mode) and "tmp" are absent
    assert apps[0]["user_key"] == new_key and apps[0]["state"] == "live" and apps[0]["id"] == r["create"]["application"]["id"]
    for secret in (key, new_key, lab_env["THREESCALE_ACCESS_TOKEN"]):
        assert secret not in proc.stdout + proc.stderr                     # -vvv output never shows a key
    assert "censored" in proc.stdout


def test_portal_module(play, porta):
    original = porta.req("GET", "/provider.json")[1]["account"].get("site_access_code", "")
    try:
        dry = task("threescale_portal", "dry", access_code="") + task("threescale_portal", "read")
        dry[0]["check_mode"] = True
        r, o = play(dry)
        assert r["read"]["access_code"] == original and not r["read"]["changed"]
        assert r["dry"]["changed"] == (original != "")
        assert porta.req("GET", "/provider.json")[1]["account"].get("site_access_code", "") == original
        r, o = play(task("threescale_portal", "open", access_code="") + task("threescale_portal", "again", access_code="")
                    + task("threescale_portal", "close", access_code="lab-code"))
        assert r["open"]["portal_open"] and not r["again"]["changed"]
        assert r["close"]["changed"] and r["close"]["diff"] == {"before": {"access_code": ""}, "after": {"access_code": "lab-code"}}
        assert porta.req("GET", "/provider.json")[1]["account"]["site_access_code"] == "lab-code"
    finally:
        porta.req("PUT", "/provider.json", data={"site_access_code": original})


def test_product_info_module(play, porta):
    granite = porta.product("granite-3dot2-8b-instruct")
    r, o = play(task("threescale_product_info", "g", product=granite["system_name"])
                + task("threescale_product_info", "byid", product=str(granite["id"]))
                + task("threescale_product_info", "missing", product=uniq("nope")))
    proxy = porta.req("GET", "/services/%s/proxy.json" % granite["id"])[1]["proxy"]
    latest = {env: porta.req("GET", "/services/%s/proxy/configs/%s/latest.json" % (granite["id"], env))[1]
              for env in ("sandbox", "production")}
    g = r["g"]
    assert g["exists"] and g["id"] == granite["id"] and g["endpoint"] == proxy["endpoint"]
    assert g["sandbox_endpoint"] == proxy["sandbox_endpoint"]
    assert g["staging_version"] == latest["sandbox"]["proxy_config"]["version"]
    assert g["production_version"] == latest["production"]["proxy_config"]["version"]
    assert g["promotion_due"] == (g["staging_version"] > g["production_version"])
    assert g["application_plans"] and all(p["system_name"] for p in g["application_plans"])
    assert [p["name"] for p in g["service_plans"]] == ["Default"]
    assert r["byid"]["system_name"] == granite["system_name"]
    assert r["missing"]["exists"] is False and not r["missing"].get("failed")


def test_module_defaults_group_and_tls_errors(play, lab_env, tmp_path):
    """Connection options through module_defaults (no THREESCALE_* env), and a clear TLS failure."""
    conn = dict(admin_url=lab_env["THREESCALE_ADMIN_URL"], access_token=lab_env["THREESCALE_ACCESS_TOKEN"],
                ca_path=lab_env["THREESCALE_CA_BUNDLE"])
    block = {"name": "group", "module_defaults": {"group/maas.threescale.threescale": conn},
             "block": task("threescale_product_info", "ok", product="api")
             # an action-plugin-backed module must get the group defaults too
             + task("threescale_application", "grp", account="user1", product="api", name=uniq("none"), state="absent")}
    notls = task("threescale_portal", "notls", ignore_errors=True, admin_url=conn["admin_url"], access_token="x" * 20)
    unset = {k: None for k in ("THREESCALE_ADMIN_URL", "THREESCALE_ACCESS_TOKEN", "THREESCALE_CA_BUNDLE")}
    r, proc = play([block] + notls, env=dict(unset, SSL_CERT_FILE=str(tmp_path / "none.pem")), verbosity=3)
    assert r["ok"]["exists"] and r["ok"]["system_name"] == "api"
    assert r["grp"]["changed"] is False and r["grp"]["application"] == {}
    assert r["notls"]["failed"] and "validate_certs" in r["notls"]["msg"] and "ca_path" in r["notls"]["msg"]
    assert lab_env["THREESCALE_ACCESS_TOKEN"] not in proc.stdout + proc.stderr


def test_secret_lookup(play, lab_env):
    token = "{{ lookup('maas.threescale.secret_lookup', 'system-seed', namespace='3scale', key='ADMIN_ACCESS_TOKEN') }}"
    tasks = [
        {"name": "token equals the lab's porta token", "no_log": True,
         "ansible.builtin.assert": {"that": ["(%s) == lookup('ansible.builtin.env', 'THREESCALE_ACCESS_TOKEN')" % token[3:-3]]}},
        {"name": "whole secret", "no_log": True, "ansible.builtin.set_fact": {
            "r": "{{ r | combine({'keys': lookup('maas.threescale.secret_lookup', 'system-seed', namespace='3scale') | list | sort}) }}"}},
    ]
    for label, expr in (("nosecret", "'nope-secret', namespace='3scale'"),
                        ("nokey", "'system-seed', namespace='3scale', key='NOPE'")):
        tasks += [{"name": label, "ignore_errors": True, "register": "_" + label,
                   "ansible.builtin.debug": {"msg": "{{ lookup('maas.threescale.secret_lookup', %s) }}" % expr}}]
    r, proc = play(tasks, verbosity=3)
    assert "ADMIN_ACCESS_TOKEN" in r["keys"] and "ADMIN_PASSWORD" in r["keys"]
    assert "Secret 3scale/nope-secret not found" in r["nosecret"]["msg"]
    assert "Secret 3scale/system-seed has no key 'NOPE'" in r["nokey"]["msg"] and "ADMIN_ACCESS_TOKEN" in r["nokey"]["msg"]
    assert lab_env["THREESCALE_ACCESS_TOKEN"] not in proc.stdout + proc.stderr


@pytest.mark.timeout(300)
def test_subscription_scale_200_accounts(play, porta):
    """Request counts (porta's own counter) and wall time for 200 accounts: none, half, all subscribed."""
    from concurrent.futures import ThreadPoolExecutor

    prefix = uniq("scale")
    names = ["%s-%03d" % (prefix, i) for i in range(200)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(Porta.signup, [porta] * len(names), names))
    product = porta.new_product("scale")
    sub = dict(accounts=names, product=product)
    report = {}
    for label, prepare in (("none", None), ("half", dict(accounts=names[:100], product=product, state="absent")),
                           ("all", None)):
        if prepare:
            play(task("threescale_subscription", "prep", **prepare))
        porta.reset_stats()
        started = time.monotonic()
        r, o = play(task("threescale_subscription", "s", **sub))
        wall = time.monotonic() - started
        changes = sum(s["action"] != "none" for s in r["s"]["subscriptions"])
        report[label] = dict(changes=changes, porta_requests=porta.stats(), module_requests=r["s"]["api_requests"],
                             account_list_pages=porta.requests_to("accounts.xml"), playbook_wall_s=round(wall, 2))
    print("\nsubscription of 200 accounts:", json.dumps(report))
    assert [report[k]["changes"] for k in ("none", "half", "all")] == [200, 100, 0]
    for row in report.values():
        # 2 reads (product, service plans) + the XML account list (module_utils/threescale_accounts: one page of
        # 500 accounts resolves them all; it replaced one find per account) + per account 1 subscription read
        # + 1 write per change
        assert 1 <= row["account_list_pages"] <= 3
        assert row["module_requests"] == 2 + row["account_list_pages"] + len(names) + row["changes"]
        assert row["porta_requests"] == row["module_requests"]


def test_retries_against_injected_porta_faults(play, porta, lab, lab_env):
    """Real server faults (the lab's fault switch): a GET answered 503 is retried; a POST answered 502 (porta
    may have committed it) is followed by a read-back, and sent again only because nothing was written."""
    def fault(*args):
        subprocess.run([sys.executable, "-m", "maaslab", "fault", "--dir", lab["dir"], *args], check=True,
                       capture_output=True, env=lab_env, timeout=60)

    def injected():
        return porta.s.get(porta.base + "/lab/stats.json", timeout=30).json()["faults"].get("errors", 0)

    user = uniq("fault")
    try:
        fault("porta", "error_rate=1", "error_status=503", r"path_regex=provider\.json")
        porta.reset_stats()
        r, o = play(task("threescale_portal", "read", ignore_errors=True, retries=1))
        assert r["read"]["failed"] and r["read"]["status"] == 503 and "gave up after 2 attempts" in r["read"]["msg"]
        assert injected() == 2                                             # first try + one retry
        fault("porta", "error_rate=1", "error_status=502", "path_regex=signup")
        porta.reset_stats()
        r, o = play(task("threescale_account", "create", ignore_errors=True, retries=3,
                         username=user, email=user + "@example.com"))
        assert r["create"]["failed"] and r["create"]["status"] == 502
        assert "no answer 4 times; the read-back found no account %s, so nothing was created" % user in r["create"]["msg"]
        assert injected() == 4                                             # resent only after a read-back found nothing
        assert porta.s.get(porta.base + "/lab/stats.json", timeout=30).json()["by_method_path"].get(
            "GET /admin/api/accounts/find.json", 0) >= 4                   # one read-back per unanswered POST
    finally:
        fault("clear")
    assert porta.find(user) is None
