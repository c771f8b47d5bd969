"""Applications and their analytics (porta admin/api/applications_controller,
buyers_applications_controller, stats/data/applications_controller)."""
from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import unquote

from ..context import now_iso
from .server import A, ID, USER_KEY_RE, created, invalid, not_found, paginate_query, Reply, Req, route, to_int


class ApplicationsMixin:
    def _check_user_key(self, key: Any, exclude: int | None = None) -> str:
        key = str(key if key is not None else "")
        if not key or len(key) > 256 or not USER_KEY_RE.fullmatch(key):
            raise invalid("user_key", "is invalid")
        if any(a["id"] != exclude for a in self.store.all("application", user_key=key)):
            raise invalid("user_key", "has already been taken")
        return key

    def _create_app(self, acc: dict, plan: dict, p: dict) -> dict:
        st = self.store
        svc = self.need_service(plan["service_id"])
        if not st.first("contract", account_id=acc["id"], service_id=svc["id"]):
            # implicit subscription: default service plan, else the first one (find_or_create_service_contract)
            sps = st.all("plan", type="ServicePlan", service_id=svc["id"])
            sp = next((x for x in sps if x["default"]), sps[0] if sps else None)
            if sp is None:
                raise Reply(422, {"error": "You cannot subscribe to that service."})
            self._subscribe(acc, sp)
        user_key = self._check_user_key(p["user_key"]) if p.get("user_key") is not None else secrets.token_hex(16)
        app_id = None
        if svc["backend_version"] != "1":
            app_id = str(p.get("application_id") or secrets.token_hex(4))
            if not re.fullmatch(r"[\x21-\x7e]{4,255}", app_id):
                raise invalid("application_id", "is invalid")
            if st.first("application", application_id=app_id):
                raise invalid("application_id", "has already been taken")
        now = now_iso()
        # Cinstance#create_first_key: app_id/app_key products get one generated application key
        keys = [{"value": secrets.token_hex(16), "created_at": now, "updated_at": now}] if app_id else []
        return st.insert("application", {
            "account_id": acc["id"], "plan_id": plan["id"], "service_id": svc["id"], "name": p.get("name"),
            "description": p.get("description"), "user_key": user_key, "application_id": app_id,
            "state": "pending" if plan["approval_required"] else "live", "created_at": now, "updated_at": now,
            "first_traffic_at": None, "first_daily_traffic_at": None, "keys": keys})


# ---- applications
APPS = A + "/accounts/(?P<aid>\\d+)/applications"


@route("GET", APPS)
def apps_list(api, req: Req, aid):
    acc = api.need("account", aid)
    apps = api.store.all("application", account_id=acc["id"])
    if req.get("state"):
        apps = [a for a in apps if a["state"] == req.get("state")]
    return {"applications": [{"application": api.app_json(a)} for a in apps]}


@route("POST", APPS)
def app_create(api, req: Req, aid):
    acc = api.need("account", aid)
    plan = api.store.get("plan", req.get("plan_id"))
    if plan is None or plan["type"] != "ApplicationPlan":
        raise not_found()
    app = api._create_app(acc, plan, req.params)
    return created({"application": api.app_json(app)},
                   f"{api.base}{A}/accounts/{acc['id']}/applications/{app['id']}")


def find_app(api, req: Req, account_id: int | None) -> dict:
    match = {"account_id": account_id} if account_id else {}
    if req.get("service_id"):
        match["service_id"] = to_int(req.get("service_id"))

    def version(a):
        return (api.store.get("service", a["service_id"]) or {}).get("backend_version", "1")
    if req.get("application_id") and account_id is None:
        app = api.store.get("application", req.get("application_id"))
        found = [app] if app and all(app.get(k) == v for k, v in match.items()) else []
    elif req.get("user_key"):
        found = [a for a in api.store.all("application", user_key=req.get("user_key"), **match) if version(a) == "1"]
    elif req.get("app_id"):
        found = [a for a in api.store.all("application", application_id=req.get("app_id"), **match)
                 if version(a) != "1"]
    else:
        found = []
    if not found:
        raise not_found()
    return {"application": api.app_json(found[0])}


@route("GET", APPS + "/find")
def app_find_account(api, req: Req, aid):
    return find_app(api, req, api.need("account", aid)["id"])


@route("GET", A + "/applications/find")
def app_find(api, req: Req):
    return find_app(api, req, None)


@route("GET", A + "/applications")
def apps_all(api, req: Req):
    match = {f: to_int(req.get(f)) for f in ("service_id", "plan_id") if req.get(f)}
    page, meta = paginate_query(api.store, "application", req, **match)
    out: dict = {"applications": [{"application": api.app_json(a)} for a in page]}
    if meta:
        out["metadata"] = meta
    return out


def need_app(api, aid, id) -> dict:
    return api.need("application", id, account_id=int(aid))


@route("GET", APPS + "/" + ID)
def app_show(api, req: Req, aid, id):
    return {"application": api.app_json(need_app(api, aid, id))}


@route("PUT", APPS + "/" + ID)
def app_update(api, req: Req, aid, id):
    app = need_app(api, aid, id)
    for f in ("name", "description"):
        if req.has(f):
            app[f] = req.get(f)
    if req.has("user_key"):
        app["user_key"] = api._check_user_key(req.get("user_key"), exclude=app["id"])
    app["updated_at"] = now_iso()
    return {"application": api.app_json(api.store.save("application", app))}


@route("DELETE", APPS + "/" + ID)
def app_delete(api, req: Req, aid, id):
    api.store.delete("application", need_app(api, aid, id)["id"])
    return Reply(200, None)


TRANSITIONS = {"suspend": ({"live"}, "suspended"), "resume": ({"suspended"}, "live"), "accept": ({"pending"}, "live")}


@route("PUT", APPS + "/" + ID + "/(?P<event>suspend|resume|accept)")
def app_transition(api, req: Req, aid, id, event):
    app = need_app(api, aid, id)
    sources, target = TRANSITIONS[event]
    if app["state"] not in sources:  # porta/CONTRACT.md §11.6
        raise invalid("state", f'cannot transition via "{event}"')
    app.update(state=target, updated_at=now_iso())
    return {"application": api.app_json(api.store.save("application", app))}


@route("PUT", APPS + "/" + ID + "/change_plan")
def app_change_plan(api, req: Req, aid, id):
    app = need_app(api, aid, id)
    plan = api.store.get("plan", req.get("plan_id"))
    if plan is None or plan["type"] != "ApplicationPlan":
        raise not_found()
    if plan["service_id"] != app["service_id"]:
        raise invalid("plan", "must belong to the same product")
    app.update(plan_id=plan["id"], updated_at=now_iso())
    api.store.save("application", app)
    return {"application_plan": api.plan_json(plan)}


# ---- application keys (porta admin/api/buyer_application_keys_controller.rb, app/models/application_key.rb)
KEYS = APPS + r"/(?P<id>\d+)/keys"
KEYS_LIMIT = 5
KEY_RE = re.compile(r"\A[\x21-\x7e]+\Z")


def key_json(api, app: dict, k: dict) -> dict:
    return {"key": {"value": k["value"], "created_at": k["created_at"], "updated_at": k["updated_at"],
                    "links": api.links(("application",
                                        f"/admin/api/accounts/{app['account_id']}/applications/{app['id']}"))}}


@route("GET", KEYS)
def keys_list(api, req: Req, aid, id):
    app = need_app(api, aid, id)
    return {"keys": [key_json(api, app, k) for k in app.get("keys") or []]}


@route("POST", KEYS)
def key_create(api, req: Req, aid, id):
    app = need_app(api, aid, id)
    keys = app.setdefault("keys", [])
    value = str(req.get("key")) if req.get("key") not in (None, "") else secrets.token_hex(16)
    errors = []
    if not KEY_RE.match(value):
        errors.append(("value", "is invalid"))
    if not 5 <= len(value) <= 255:
        errors.append(("value", "is too short (minimum is 5 characters)" if len(value) < 5 else
                       "is too long (maximum is 255 characters)"))
    if any(k["value"].lower() == value.lower() for k in keys):
        errors.append(("value", "has already been taken"))
    if len(keys) >= KEYS_LIMIT:
        errors.append(("base", "Limit reached"))
    if errors:
        out: dict[str, list[str]] = {}
        for attr, msg in errors:
            out.setdefault(attr, []).append(msg)
        raise Reply(422, {"errors": out})
    now = now_iso()
    keys.append({"value": value, "created_at": now, "updated_at": now})
    app["updated_at"] = now
    return created({"application": api.app_json(api.store.save("application", app))})


@route("DELETE", KEYS + r"/(?P<key>[^/]+)")
def key_delete(api, req: Req, aid, id, key):
    app = need_app(api, aid, id)
    keys = app.get("keys") or []
    value = unquote(key)
    if not any(k["value"] == value for k in keys):
        raise not_found()
    app["keys"] = [k for k in keys if k["value"] != value]
    app["updated_at"] = now_iso()
    api.store.save("application", app)
    return Reply(200, None)
