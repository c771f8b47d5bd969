"""Provider, accounts, signup and service subscriptions (porta admin/api/accounts_controller,
signups_controller, service_contracts_controller, buyers_service_contracts)."""
from __future__ import annotations

import datetime
import re

from ..context import now_iso
from .server import A, ID, created, invalid, not_found, paginate_query, Reply, Req, route, to_int


class AccountsMixin:
    def _signup(self, p: dict, seed: bool = False) -> dict:
        """POST /admin/api/signup (Signup::DeveloperAccountManager, minimal signup): an approved account,
        its admin user (`active` only when a password is given), the default or given account plan,
        and per product the given or default service plan plus the default application plan, which
        gets an application "API signup" (app/lib/signup/plans_with_defaults.rb).
        `seed`: the lab's seeded developers are written as an import would, without the password policy."""
        st = self.store
        errors: dict[str, list[str]] = {}
        org = str(p.get("org_name") or "")
        if not org.strip():
            errors["org_name"] = ["can't be blank"]
        elif not re.search(r"[a-zA-Z0-9]", org):  # app/models/account.rb (on: :create)
            errors["org_name"] = ["must contain at least one alphanumeric character"]
        user_p = {k: p.get(k) for k in ("username", "email", "password")}
        if seed:
            user_p.pop("password")
        errors.update(self.user_errors(user_p, None, False, minimal=True))
        if errors:
            raise Reply(422, {"errors": errors})
        selected = []
        for f in ("account_plan_id", "service_plan_id", "application_plan_id"):
            if p.get(f) not in (None, ""):
                plan = st.get("plan", p[f])
                if plan is None or plan["type"] != {"account_plan_id": "AccountPlan", "service_plan_id": "ServicePlan",
                                                    "application_plan_id": "ApplicationPlan"}[f]:
                    raise not_found()
                selected.append(plan)
        account_plan = next((x for x in selected if x["type"] == "AccountPlan"), None) or \
            st.first("plan", type="AccountPlan", default=True)
        now = now_iso()
        acc = st.insert("account", {"org_name": str(p["org_name"]), "state": "approved", "created_at": now,
                                    "updated_at": now, "account_plan_id": (account_plan or {}).get("id")})
        password = str(p.get("password") or "")
        self.new_user(acc["id"], {**p, "password": password}, "admin", "active" if password else "pending")
        for svc in self.services():
            def pick(ptype: str) -> dict | None:
                return next((x for x in selected if x["type"] == ptype and x["service_id"] == svc["id"]), None) or \
                    next(iter(st.all("plan", type=ptype, service_id=svc["id"], default=True)), None)
            sp, ap = pick("ServicePlan"), pick("ApplicationPlan")
            if sp is None and ap is not None:
                # service plans hidden in the admin UI (the default) + rolling update published_service_plan_signup:
                # an application plan brings the product's first published service plan
                sp = next((x for x in st.all("plan", type="ServicePlan", service_id=svc["id"])
                           if x["state"] == "published"), None)
                if sp is None:  # "Couldn't find a Service Plan for …" → the controller answers 404
                    raise not_found()
            if sp is None:
                continue
            self._subscribe(acc, sp)
            if ap is not None:
                self._create_app(acc, ap, {"name": "API signup", "description": "API signup"})
        return acc

    def _subscribe(self, acc: dict, sp: dict) -> dict:
        if self.store.first("contract", account_id=acc["id"], service_id=sp["service_id"]):
            raise invalid("base", "already subscribed to this service")
        now = now_iso()
        live = not sp["approval_required"]
        trial_end = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            days=sp.get("trial_period_days") or 0)  # Contract::Trial#set_trial_period_expires_at
        return self.store.insert("contract", {
            "account_id": acc["id"], "plan_id": sp["id"], "service_id": sp["service_id"],
            "state": "live" if live else "pending", "created_at": now, "updated_at": now,
            "accepted_at": now if live else None, "trial_period_expires_at": trial_end.strftime("%Y-%m-%dT%H:%M:%SZ")})

    def _unsubscribe(self, c: dict) -> None:
        st = self.store
        apps = st.all("application", account_id=c["account_id"], service_id=c["service_id"])
        live = [a for a in apps if a["state"] != "suspended"]
        if live:
            msg = ("There is 1 unsuspended application subscribed to the service" if len(live) == 1 else
                   f"There are {len(live)} unsuspended applications subscribed to the service")
            raise Reply(403, {"errors": {"base": [msg]}})
        for a in apps:
            st.delete("application", a["id"])
        st.delete("contract", c["id"])


# ---- provider
@route("GET", A + "/provider")
def provider_show(api, req: Req):
    return {"account": api.provider_json(api.provider())}


@route("PUT", A + "/provider")
def provider_update(api, req: Req):
    p = api.provider()
    fields = ("from_email", "support_email", "finance_support_email", "site_access_code")
    if not any(req.has(k) for k in fields + ("org_name",)):  # params.required(:account)
        raise Reply(400, "Required parameter missing: account", "text/plain; charset=utf-8")
    for k in fields:
        if req.has(k):
            p[k] = "" if req.get(k) is None else str(req.get(k))
    p["updated_at"] = now_iso()
    api.store.save("provider", p)
    return {"account": api.provider_json(p)}


# ---- accounts
@route("GET", A + "/accounts")
def accounts_list(api, req: Req):
    page, meta = paginate_query(api.store, "account", req,
                                **({"state": req.get("state")} if req.get("state") else {}))
    out: dict = {"accounts": [{"account": api.account_json(a)} for a in page]}
    if meta:
        out["metadata"] = meta
    return out


@route("GET", A + "/accounts/find")
def accounts_find(api, req: Req):
    st = api.store  # one indexed lookup (porta's users indexes on username, email)
    if req.get("username"):
        u = st.first("user", provider=False, username=req.get("username"))
    elif req.get("user_id"):
        u = st.first("user", provider=False, id=to_int(req.get("user_id")))
    elif req.get("email"):
        u = st.first("user", provider=False, email=str(req.get("email")))  # case-sensitive (utf8mb3_bin)
    else:
        u = None
    acc = api.store.get("account", u["account_id"]) if u else None
    if acc is None:
        raise not_found()
    return {"account": api.account_json(acc)}


@route("GET", A + "/accounts/" + ID)
def account_show(api, req: Req, id):
    return {"account": api.account_json(api.need("account", id))}


@route("PUT", A + "/accounts/" + ID)
def account_update(api, req: Req, id):
    acc = api.need("account", id)
    if req.has("org_name"):
        if not str(req.get("org_name") or "").strip():
            raise invalid("org_name", "can't be blank")
        acc["org_name"] = str(req.get("org_name"))
    acc["updated_at"] = now_iso()
    api.store.save("account", acc)
    return {"account": api.account_json(acc)}


@route("DELETE", A + "/accounts/" + ID)
def account_delete(api, req: Req, id):
    acc = api.need("account", id)
    for kind in ("user", "application", "contract"):
        for obj in api.store.all(kind, account_id=acc["id"]):
            api.store.delete(kind, obj["id"])
    api.store.delete("account", acc["id"])
    return Reply(200, None)


@route("POST", A + "/signup")
def signup(api, req: Req):
    acc = api._signup(req.params)
    return created({"account": api.account_json(acc)}, f"{api.base}{A}/accounts/{acc['id']}")


# ---- service subscriptions / contracts / buy
SUBS = A + "/accounts/(?P<aid>\\d+)/(?P<res>service_subscriptions|service_contracts)"


@route("GET", SUBS)
def subs_list(api, req: Req, aid, res):
    acc = api.need("account", aid)
    entity = res[:-1]
    return {res: [{entity: api.contract_json(c)} for c in api.store.all("contract", account_id=acc["id"])]}


@route("POST", A + "/accounts/(?P<aid>\\d+)/service_subscriptions")
def sub_create(api, req: Req, aid):
    acc = api.need("account", aid)
    if not req.has_body and not req.has("plan_id"):
        raise Reply(400, "Required parameter missing: service_subscription", "text/plain; charset=utf-8")
    sp = api.store.get("plan", req.get("plan_id"))
    if sp is None or sp["type"] != "ServicePlan" or api.store.get("service", sp["service_id"]) is None:
        raise not_found()
    c = api._subscribe(acc, sp)
    return created({"service_subscription": api.contract_json(c)})


@route("GET", A + "/accounts/(?P<aid>\\d+)/service_subscriptions/" + ID)
def sub_show(api, req: Req, aid, id):
    return {"service_subscription": api.contract_json(api.need("contract", id, account_id=int(aid)))}


@route("DELETE", SUBS + "/" + ID)
def sub_delete(api, req: Req, aid, res, id):
    api._unsubscribe(api.need("contract", id, account_id=int(aid)))
    return Reply(200, None)


@route("PUT", A + "/accounts/(?P<aid>\\d+)/service_subscriptions/" + ID + "/change_plan")
def sub_change_plan(api, req: Req, aid, id):
    c = api.need("contract", id, account_id=int(aid))
    sp = api.store.get("plan", req.get("plan_id"))
    if sp is None or sp["type"] != "ServicePlan":
        raise not_found()
    if sp["service_id"] != c["service_id"]:
        raise invalid("plan", "must belong to the same product")
    c.update(plan_id=sp["id"], updated_at=now_iso())
    api.store.save("contract", c)
    return {"service_plan": api.plan_json(sp)}


@route("PUT", A + "/accounts/(?P<aid>\\d+)/service_subscriptions/" + ID + "/approve")
def sub_approve(api, req: Req, aid, id):
    c = api.need("contract", id, account_id=int(aid))
    if c["state"] != "pending":
        raise invalid("state", "cannot transition via \"accept\"")
    now = now_iso()
    c.update(state="live", updated_at=now, accepted_at=now)
    api.store.save("contract", c)
    return {"service_subscription": api.contract_json(c)}


@route("POST", A + "/accounts/(?P<aid>\\d+)/service_plans/(?P<spid>\\d+)/buy")
def buy(api, req: Req, aid, spid):
    acc = api.need("account", aid)
    sp = api.need("plan", spid, type="ServicePlan")
    api.need_service(sp["service_id"])
    api._subscribe(acc, sp)
    return created({"service_plan": api.plan_json(sp)})


@route("GET", A + "/accounts/(?P<aid>\\d+)/service_plans")
def bought_plans(api, req: Req, aid):
    acc = api.need("account", aid)
    plans = [api.store.get("plan", c["plan_id"]) for c in api.store.all("contract", account_id=acc["id"])]
    return {"plans": [{"service_plan": api.plan_json(p)} for p in plans if p]}
