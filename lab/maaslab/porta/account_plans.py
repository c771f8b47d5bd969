"""Account plans and an account's plan (porta admin/api/account_plans_controller,
admin/api/accounts_controller#change_plan, admin/api/buyers_account_plans_controller)."""
from __future__ import annotations

from ..context import now_iso
from .server import A, ID, Reply, Req, created, invalid, not_found, route
from .services import update_plan_fields

AP = A + "/account_plans"


def need_account_plan(api, id) -> dict:
    return api.need("plan", id, type="AccountPlan")


@route("GET", AP)
def account_plans_list(api, req: Req):
    return {"plans": [api.wrap_plan(p) for p in api.store.all("plan", type="AccountPlan")]}


@route("POST", AP)
def account_plan_create(api, req: Req):
    if not str(req.get("name") or "").strip():
        raise invalid("name", "can't be blank")
    data = api._plan_data("AccountPlan", None, req.params)
    if api.store.first("plan", type="AccountPlan", system_name=data["system_name"]):
        raise invalid("system_name", "has already been taken")
    return created(api.wrap_plan(api.store.insert("plan", data)))


@route("GET", AP + "/" + ID)
def account_plan_show(api, req: Req, id):
    return api.wrap_plan(need_account_plan(api, id))


@route("PUT", AP + "/" + ID)
def account_plan_update(api, req: Req, id):
    return api.wrap_plan(api.store.save("plan", update_plan_fields(req, need_account_plan(api, id))))


@route("DELETE", AP + "/" + ID)
def account_plan_delete(api, req: Req, id):
    p = need_account_plan(api, id)
    if any(a.get("account_plan_id") == p["id"] for a in api.store.all("account")):
        raise Reply(403, {"errors": {"base": ["This plan cannot be deleted because it has subscriptions"]}})
    api.store.delete("plan", p["id"])
    return Reply(200, None)


@route("PUT", AP + "/" + ID + "/default")
def account_plan_default(api, req: Req, id):
    p = need_account_plan(api, id)
    for other in api.store.all("plan", type="AccountPlan", default=True):
        other["default"] = False
        api.store.save("plan", other)
    p.update(default=True, updated_at=now_iso())
    return api.wrap_plan(api.store.save("plan", p))


@route("GET", A + r"/accounts/(?P<aid>\d+)/plan")
def account_plan_of(api, req: Req, aid):
    acc = api.need("account", aid)
    p = api.store.get("plan", acc.get("account_plan_id"))
    if p is None:
        raise not_found()
    return api.wrap_plan(p)


@route("PUT", A + "/accounts/" + ID + "/change_plan")
def account_change_plan(api, req: Req, id):
    acc = api.need("account", id)
    p = api.store.get("plan", req.get("plan_id"))
    if p is None or p["type"] != "AccountPlan":
        raise not_found()
    acc.update(account_plan_id=p["id"], updated_at=now_iso())
    api.store.save("account", acc)
    return {"account": api.account_json(acc)}
