"""A deliberately small, stateful stand-in for the porta endpoints the modules use (contract §3-8).

Used only to unit-test module logic in-process, including what the lab's 2.16-style porta cannot
show: tenants without ``service_subscriptions`` (3scale <= 2.15).  The lab porta is the real test.
"""
from __future__ import annotations

import base64
import itertools
import re
import secrets

NOT_FOUND = (404, {"status": "Not found"}, None)
TRANSITIONS = {"suspend": (("live",), "suspended"), "resume": (("suspended",), "live"), "accept": (("pending",), "live")}


class FakePorta:
    def __init__(self, token, new_api=True, accounts=5, min_password=None, multiple_users=True):
        self.auth = "Basic " + base64.b64encode((":" + token).encode()).decode()
        self.new_api = new_api
        self.min_password = min_password  # 15 like porta master (contract §11.2); None like 2.16
        self.multiple_users = multiple_users  # tenant switch that the users list needs (contract §3)
        self.ids = itertools.count(100)
        self.accounts = {}
        self.services = {1: dict(id=1, name="API", system_name="api", backend_version="1", state="incomplete")}
        self.service_plans = {10: dict(id=10, name="Default", service_id=1, state="published", default=False)}
        self.app_plans = {20: dict(id=20, name="Basic", system_name="basic", service_id=1, state="published"),
                          21: dict(id=21, name="Premium", system_name="premium", service_id=1, state="published")}
        self.contracts = {}
        self.apps = {}
        self.access_code = "abc123"
        self.versions = {"sandbox": 2, "production": 1}
        for n in range(1, accounts + 1):
            self.signup(dict(username="user%d" % n, email="user%d@example.com" % n, org_name="user%d" % n,
                             password="seeded-password-%d" % n))

    # -- helpers ---------------------------------------------------------------------------------
    def signup(self, form):
        errors = {}
        username, email, password = form.get("username") or "", form.get("email"), form.get("password") or ""
        if not 3 <= len(username) <= 40 or not re.fullmatch(r"\w[\w.\-@+]+", username, re.ASCII):
            errors["username"] = ["is too short (minimum is 3 characters)" if len(username) < 3 else "is invalid"]
        for acc in self.accounts.values():
            if acc["_user"] == username:
                errors["username"] = ["has already been taken"]
            if email and acc["_email"] == email:
                errors["email"] = ["has already been taken"]
        if password and self.min_password and len(password) < self.min_password:
            errors["password"] = ["is too short (minimum is %d characters)" % self.min_password]
        if errors:
            return 422, {"errors": errors}, None
        aid = next(self.ids)
        self.accounts[aid] = dict(id=aid, org_name=form["org_name"], state="approved", _user=username, _email=email,
                                  _user_id=next(self.ids), _user_state="active" if password else "pending")
        return 201, {"account": self.public(self.accounts[aid])}, None

    def user(self, acc):
        return dict(id=acc["_user_id"], state=acc["_user_state"], role="admin", username=acc["_user"],
                    email=acc["_email"])

    @staticmethod
    def public(obj):
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def subscribe(self, aid, plan_id):
        plan = self.service_plans.get(plan_id)
        if not plan:
            return NOT_FOUND
        if any(c["user_account_id"] == aid and c["service_id"] == plan["service_id"] for c in self.contracts.values()):
            return 422, {"errors": {"base": ["already subscribed to this service"]}}, None
        cid = next(self.ids)
        self.contracts[cid] = dict(id=cid, plan_id=plan_id, user_account_id=aid, service_id=plan["service_id"], state="live")
        return 201, {"service_subscription": self.contracts[cid]}, None

    # -- dispatcher ----------------------------------------------------------------------------
    def __call__(self, method, path, query, form, headers):
        if headers.get("Authorization") != self.auth:
            return 403, {"error": "Access denied"}, None
        path = path[len("/admin/api"):]
        if path == "/services.json":
            return 200, {"services": [{"service": s} for s in self.services.values()]}, None
        m = re.fullmatch(r"/services/(\d+)(?:/(\w+))?\.json", path)
        if m and int(m.group(1)) in self.services:
            sid, sub = int(m.group(1)), m.group(2)
            if sub is None:
                return 200, {"service": self.services[sid]}, None
            if sub == "service_plans":
                return 200, {"plans": [{"service_plan": p} for p in self.service_plans.values() if p["service_id"] == sid]}, None
            if sub == "application_plans":
                return 200, {"plans": [{"application_plan": p} for p in self.app_plans.values() if p["service_id"] == sid]}, None
            if sub == "proxy":
                return 200, {"proxy": {"endpoint": "https://prod:443", "sandbox_endpoint": "https://stage:443"}}, None
        m = re.fullmatch(r"/services/(\d+)/proxy/configs/(\w+)/latest\.json", path)
        if m:
            v = self.versions.get(m.group(2))
            return (200, {"proxy_config": {"version": v}}, None) if v else NOT_FOUND
        if path == "/provider.json":
            if method == "PUT":
                self.access_code = form["site_access_code"]
            return 200, {"account": {"id": 1, "site_access_code": self.access_code}}, None
        if path == "/accounts.json":
            return 200, {"accounts": [{"account": self.public(a)} for a in self.accounts.values()]}, None
        if path == "/accounts/find.json":
            for key, field in (("username", "_user"), ("email", "_email")):
                if key in query:  # porta's precedence: username, then email
                    match = [a for a in self.accounts.values() if a[field] == query[key]]
                    return (200, {"account": self.public(match[0])}, None) if match else NOT_FOUND
            return NOT_FOUND
        if path == "/signup.json" and method == "POST":
            return self.signup(form)
        m = re.fullmatch(r"/accounts/(\d+)(/.*)?\.json", path)
        if not m or int(m.group(1)) not in self.accounts:
            return NOT_FOUND
        aid, rest = int(m.group(1)), m.group(2) or ""
        return self.account_route(method, aid, rest, form)

    def account_route(self, method, aid, rest, form):
        if rest == "":
            if method == "DELETE":
                del self.accounts[aid]
                return 200, None, None
            return 200, {"account": self.public(self.accounts[aid])}, None
        if rest.startswith("/users"):
            return self.user_route(method, self.accounts[aid], rest)
        mine = [c for c in self.contracts.values() if c["user_account_id"] == aid]
        m = re.fullmatch(r"/(service_subscriptions|service_contracts)(?:/(\d+))?(/change_plan)?", rest)
        if m and (self.new_api or m.group(1) == "service_contracts"):
            key = m.group(1)
            if m.group(2) is None and method == "GET":
                entity = key[:-1]
                return 200, {key: [{entity: c} for c in mine]}, None
            if m.group(2) is None and method == "POST" and key == "service_subscriptions":
                return self.subscribe(aid, int(form.get("plan_id", 0)))
            cid = int(m.group(2) or 0)
            if cid not in self.contracts:
                return NOT_FOUND
            if m.group(3):
                self.contracts[cid]["plan_id"] = int(form["plan_id"])
                return 200, {"service_plan": self.service_plans[int(form["plan_id"])]}, None
            if method == "DELETE":
                sid = self.contracts[cid]["service_id"]
                apps = [a for a in self.apps.values() if a["account_id"] == aid and a["service_id"] == sid]
                live = [a for a in apps if a["state"] != "suspended"]
                if live:
                    return 403, {"errors": {"base": ["There is %d unsuspended application subscribed to the service"
                                                     % len(live)]}}, None
                for a in apps:
                    del self.apps[a["id"]]
                del self.contracts[cid]
                return 200, None, None
        m = re.fullmatch(r"/service_plans/(\d+)/buy", rest)
        if m and method == "POST":
            status, body, unused = self.subscribe(aid, int(m.group(1)))
            return (201, {"service_plan": self.service_plans[int(m.group(1))]}, None) if status == 201 else (status, body, None)
        m = re.fullmatch(r"/applications(?:/(\d+))?(?:/(\w+))?", rest)
        if m:
            return self.app_route(method, aid, m.group(1), m.group(2), form)
        return NOT_FOUND

    def user_route(self, method, acc, rest):
        if rest == "/users" and method == "GET":
            if not self.multiple_users:
                return 403, {"status": "Forbidden"}, None
            return 200, {"users": [{"user": self.user(acc)}]}, None
        m = re.fullmatch(r"/users/(\d+)(/activate)?", rest)
        if not m or int(m.group(1)) != acc["_user_id"]:
            return NOT_FOUND
        if m.group(2) and method == "PUT":
            acc["_user_state"] = "active"
        return 200, {"user": self.user(acc)}, None

    def app_route(self, method, aid, app_id, action, form):
        if app_id is None:
            if method == "GET":
                return 200, {"applications": [{"application": a} for a in self.apps.values() if a["account_id"] == aid]}, None
            plan = self.app_plans.get(int(form.get("plan_id", 0)))
            if not plan:
                return NOT_FOUND
            if not any(c["user_account_id"] == aid and c["service_id"] == plan["service_id"] for c in self.contracts.values()):
                self.subscribe(aid, next(p["id"] for p in self.service_plans.values() if p["service_id"] == plan["service_id"]))
            new = dict(id=next(self.ids), account_id=aid, service_id=plan["service_id"], plan_id=plan["id"],
                       plan_name=plan["name"], name=form.get("name"), description=form.get("description"),
                       state="pending" if plan.get("approval_required") else "live", user_key=secrets.token_hex(16))
            self.apps[new["id"]] = new
            return 201, {"application": new}, None
        app = self.apps.get(int(app_id))
        if not app or app["account_id"] != aid:
            return NOT_FOUND
        if method == "DELETE":
            del self.apps[app["id"]]
            return 200, None, None
        if action in TRANSITIONS:
            sources, target = TRANSITIONS[action]
            if app["state"] not in sources:  # contract §11.6
                return 422, {"errors": {"state": ['cannot transition via "%s"' % action]}}, None
            app["state"] = target
        elif action == "change_plan":
            plan = self.app_plans[int(form["plan_id"])]
            app.update(plan_id=plan["id"], plan_name=plan["name"])
            return 200, {"application_plan": plan}, None
        elif method == "PUT":
            app.update({k: v for k, v in form.items() if k in ("name", "description", "user_key")})
        return 200, {"application": app}, None
