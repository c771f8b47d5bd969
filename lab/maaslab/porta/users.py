"""Users of buyer accounts (porta admin/api/users_controller)."""
from __future__ import annotations

import hashlib
import secrets

from ..context import now_iso
from .server import A, ID, created, invalid, Reply, Req, route


@route("GET", A + "/accounts/" + r"(?P<aid>\d+)/users")
def users_list(api, req: Req, aid):
    api.need("account", aid)
    users = api.store.all("user", account_id=int(aid))
    for f in ("state", "role"):
        if req.get(f):
            users = [u for u in users if u[f] == req.get(f)]
    return {"users": [{"user": api.user_json(u)} for u in users]}


@route("GET", A + "/accounts/" + r"(?P<aid>\d+)/users/" + ID)
def user_show(api, req: Req, aid, id):
    return {"user": api.user_json(api.need("user", id, account_id=int(aid)))}


USER_EVENTS = {"activate": ("state", "active"), "suspend": ("state", "suspended"), "unsuspend": ("state", "active"),
               "admin": ("role", "admin"), "member": ("role", "member")}


@route("POST", A + "/accounts/" + r"(?P<aid>\d+)/users")
def user_create(api, req: Req, aid):
    acc = api.need("account", aid)
    errors: dict[str, list[str]] = {}
    users = api.store.all("user")
    for f in ("username", "email"):
        if not str(req.get(f) or "").strip():
            errors[f] = ["can't be blank"]
        elif any(str(u[f]).lower() == str(req.get(f)).lower() for u in users):
            errors[f] = ["has already been taken"]
    if errors:
        raise Reply(422, {"errors": errors})
    now, salt = now_iso(), secrets.token_hex(8)
    user = api.store.insert("user", {
        "account_id": acc["id"], "username": str(req.get("username")), "email": str(req.get("email")),
        "role": "member", "state": "pending", "created_at": now, "updated_at": now, "salt": salt,
        "password_sha256": hashlib.sha256((salt + str(req.get("password") or "")).encode()).hexdigest()})
    return created({"user": api.user_json(user)})


@route("PUT", A + "/accounts/" + r"(?P<aid>\d+)/users/" + ID)
def user_update(api, req: Req, aid, id):
    user = api.need("user", id, account_id=int(aid))
    for f in ("username", "email"):
        if req.has(f):
            if any(str(u[f]).lower() == str(req.get(f)).lower() and u["id"] != user["id"]
                   for u in api.store.all("user")):
                raise invalid(f, "has already been taken")
            user[f] = str(req.get(f))
    user["updated_at"] = now_iso()
    return {"user": api.user_json(api.store.save("user", user))}


@route("PUT", A + "/accounts/" + r"(?P<aid>\d+)/users/" + ID + "/(?P<event>activate|suspend|unsuspend|admin|member)")
def user_event(api, req: Req, aid, id, event):
    user = api.need("user", id, account_id=int(aid))
    field, value = USER_EVENTS[event]
    user[field], user["updated_at"] = value, now_iso()
    return {"user": api.user_json(api.store.save("user", user))}


@route("DELETE", A + "/accounts/" + r"(?P<aid>\d+)/users/" + ID)
def user_delete(api, req: Req, aid, id):
    user = api.need("user", id, account_id=int(aid))
    if user["role"] == "admin" and len(api.store.all("user", account_id=user["account_id"], role="admin")) == 1:
        raise Reply(403, {"errors": {"base": ["last admin of an account cannot be deleted"]}})
    api.store.delete("user", user["id"])
    return Reply(200, None)
