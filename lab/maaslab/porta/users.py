"""Users of buyer accounts and of the tenant itself (porta admin/api/users_controller,
admin/api/buyers_users_controller), and the validations they share with signup (app/models/user.rb,
app/lib/authentication.rb, app/lib/authentication/by_password.rb, app/models/user/states.rb)."""
from __future__ import annotations

import hashlib
import re
import secrets

from ..context import now_iso
from .server import A, ID, Reply, Req, created, invalid, route, to_int

RE_LOGIN_OK = re.compile(r"\A\w[\w.\-_@+]+\Z", re.ASCII)
MSG_LOGIN_BAD = "use only letters, numbers, and .-_@+ please."
RE_EMAIL_OK = re.compile(r"\A['\w.%+\-]+@(?:[A-Z0-9\-]+\.)+[A-Za-z]{2,63}\Z", re.IGNORECASE | re.ASCII)
MSG_EMAIL_BAD = "should look like an email address"
STRONG_PASSWORD_MIN_SIZE = 15  # porta master; 3scale 2.16 has no minimum
# user state machine (app/models/user/states.rb): event → (from states, to state)
STATE_EVENTS = {"activate": ({"pending"}, "active"), "suspend": ({"active", "suspended"}, "suspended"),
                "unsuspend": ({"suspended"}, "active")}
ROLE_EVENTS = {"admin": "admin", "member": "member"}


def hash_password(salt: str, password: str) -> str:
    return hashlib.sha256((salt + password).encode()).hexdigest()


class UsersMixin:
    def strong_passwords(self) -> bool:
        """`maaslab up --porta-release next`: porta master's 15-character minimum (by_password.rb)."""
        return str(self.ctx.settings.get("porta_release", "2.16")) == "next"

    def user_errors(self, p: dict, user: dict | None, provider: bool, minimal: bool) -> dict[str, list[str]]:
        """Validate username/email/password of a new (`user` None) or changed user.
        `provider`: a tenant user (else a buyer's); a username/email must be unique among those
        (case-sensitive, utf8mb3_bin), looked up by value (porta's users indexes)."""
        errors: dict[str, list[str]] = {}

        def taken(field: str, value: str) -> bool:
            return any(user is None or u["id"] != user["id"]
                       for u in self.store.all("user", provider=provider, **{field: value}))
        if user is None or "username" in p:
            name = str(p.get("username") or "")
            if not name.strip():  # the minimal signup skips the fields definitions' presence check
                errors["username"] = (["is too short (minimum is 3 characters)"] if minimal else
                                      ["can't be blank", "is too short (minimum is 3 characters)"])
            elif len(name) < 3:
                errors["username"] = ["is too short (minimum is 3 characters)"]
            elif len(name) > 40:
                errors["username"] = ["is too long (maximum is 40 characters)"]
            elif not RE_LOGIN_OK.match(name):
                errors["username"] = [MSG_LOGIN_BAD]
            elif taken("username", name):
                errors["username"] = ["has already been taken"]
        if user is None or "email" in p:
            email = str(p.get("email") or "")
            msgs = []
            if not email.strip():
                if not minimal:  # required field, except for the API's minimal signup
                    msgs.append("can't be blank")
            else:
                if len(email) < 6:
                    msgs.append("is too short (minimum is 6 characters)")
                if not minimal and not RE_EMAIL_OK.match(email):
                    msgs.append(MSG_EMAIL_BAD)
                if taken("email", email):
                    msgs.append("has already been taken")
            if msgs:
                errors["email"] = msgs
        password = p.get("password")
        if password not in (None, "") and self.strong_passwords() and len(str(password)) < STRONG_PASSWORD_MIN_SIZE:
            errors["password"] = [f"is too short (minimum is {STRONG_PASSWORD_MIN_SIZE} characters)"]
        return errors

    def new_user(self, account_id: int, p: dict, role: str, state: str, provider: bool = False) -> dict:
        now, salt = now_iso(), secrets.token_hex(8)
        return self.store.insert("user", {
            "account_id": account_id, "provider": provider, "username": str(p["username"]),
            "email": str(p.get("email") or ""), "role": role, "state": state, "created_at": now, "updated_at": now,
            "salt": salt, "password_sha256": hash_password(salt, str(p.get("password") or ""))})

    def buyer_users(self) -> list[dict]:
        return self.store.all("user", provider=False)

    def tenant_users(self) -> list[dict]:
        return self.store.all("user", provider=True)


def _create(api, req: Req, account_id: int, provider: bool) -> dict:
    errors = api.user_errors(req.params, None, provider, minimal=False)
    if errors:
        raise Reply(422, {"errors": errors})
    role = "member"  # porta creates users as members; `admin` is an event
    return api.new_user(account_id, req.params, role, "pending", provider=provider)


def _update(api, req: Req, user: dict) -> dict:
    p = {k: req.get(k) for k in ("username", "email", "password") if req.has(k)}
    errors = api.user_errors(p, user, bool(user.get("provider")), minimal=False)
    if errors:
        raise Reply(422, {"errors": errors})
    for f in ("username", "email"):
        if f in p:
            user[f] = str(p[f])
    if p.get("password"):
        user["salt"] = secrets.token_hex(8)
        user["password_sha256"] = hash_password(user["salt"], str(p["password"]))
    user["updated_at"] = now_iso()
    return api.store.save("user", user)


def _event(api, user: dict, event: str) -> dict:
    if event in ROLE_EVENTS:
        user["role"] = ROLE_EVENTS[event]
    else:
        sources, target = STATE_EVENTS[event]
        if user["state"] not in sources:
            raise invalid("state", f'cannot transition via "{event}"')
        user["state"] = target
    user["updated_at"] = now_iso()
    return api.store.save("user", user)


def _filtered(req: Req, users: list[dict]) -> list[dict]:
    for f in ("state", "role"):
        if req.get(f):
            users = [u for u in users if u[f] == req.get(f)]
    return users


EVENTS = "(?P<event>activate|suspend|unsuspend|admin|member)"
BUYER_USERS = A + r"/accounts/(?P<aid>\d+)/users"


def need_buyer_user(api, aid, id) -> dict:
    user = api.need("user", id, account_id=int(aid))
    if user.get("provider"):
        raise Reply(404, {"status": "Not found"})
    return user


@route("GET", BUYER_USERS)
def users_list(api, req: Req, aid):
    api.need("account", aid)
    users = api.store.all("user", account_id=int(aid), provider=False)
    return {"users": [{"user": api.user_json(u)} for u in _filtered(req, users)]}


@route("GET", BUYER_USERS + "/" + ID)
def user_show(api, req: Req, aid, id):
    return {"user": api.user_json(need_buyer_user(api, aid, id))}


@route("POST", BUYER_USERS)
def user_create(api, req: Req, aid):
    acc = api.need("account", aid)
    return created({"user": api.user_json(_create(api, req, acc["id"], provider=False))})


@route("PUT", BUYER_USERS + "/" + ID)
def user_update(api, req: Req, aid, id):
    return {"user": api.user_json(_update(api, req, need_buyer_user(api, aid, id)))}


@route("PUT", BUYER_USERS + "/" + ID + "/" + EVENTS)
def user_event(api, req: Req, aid, id, event):
    return {"user": api.user_json(_event(api, need_buyer_user(api, aid, id), event))}


@route("DELETE", BUYER_USERS + "/" + ID)
def user_delete(api, req: Req, aid, id):
    user = need_buyer_user(api, aid, id)
    if user["role"] == "admin" and len(api.store.all("user", account_id=user["account_id"], role="admin")) == 1:
        raise Reply(403, {"errors": {"base": ["last admin of an account cannot be deleted"]}})
    api.store.delete("user", user["id"])
    return Reply(200, None)


# ---- users of the tenant (provider account): /admin/api/users
def need_tenant_user(api, id) -> dict:
    user = api.store.get("user", id)
    if user is None or not user.get("provider"):
        raise Reply(404, {"status": "Not found"})
    return user


@route("GET", A + "/users")
def tenant_users_list(api, req: Req):
    return {"users": [{"user": api.user_json(u)} for u in _filtered(req, api.tenant_users())]}


@route("POST", A + "/users")
def tenant_user_create(api, req: Req):
    return created({"user": api.user_json(_create(api, req, api.provider()["id"], provider=True))})


@route("GET", A + "/users/" + ID)
def tenant_user_show(api, req: Req, id):
    return {"user": api.user_json(need_tenant_user(api, id))}


@route("PUT", A + "/users/" + ID)
def tenant_user_update(api, req: Req, id):
    return {"user": api.user_json(_update(api, req, need_tenant_user(api, id)))}


@route("PUT", A + "/users/" + ID + "/" + EVENTS)
def tenant_user_event(api, req: Req, id, event):
    return {"user": api.user_json(_event(api, need_tenant_user(api, id), event))}


@route("DELETE", A + "/users/" + ID)
def tenant_user_delete(api, req: Req, id):
    user = need_tenant_user(api, id)
    if user["role"] == "admin" and sum(u["role"] == "admin" for u in api.tenant_users()) == 1:
        raise Reply(403, {"errors": {"base": ["last admin of an account cannot be deleted"]}})
    api.store.delete("user", user["id"])
    return Reply(200, None)


# ---- member permissions of the tenant's users (admin/api/member_permissions_controller.rb,
# app/representers/member_permissions_representer.rb, app/models/user/permissions.rb)
# AdminSection.permissions on premises (ThreeScale.master_on_premises?: no `finance`), sorted like the representer
ADMIN_SECTIONS = ("portal", "settings", "partners", "monitoring", "plans", "policy_registry")


def permissions_json(api, user: dict) -> dict:
    admin = user["role"] == "admin"
    sections = ADMIN_SECTIONS if admin else user.get("member_sections") or []
    ids = user.get("member_service_ids")  # None: no `services` permission row (every service)
    if admin or ids is None:
        service_ids = None
    else:
        existing = {s["id"] for s in api.services()}
        service_ids = [i for i in ids if i in existing]
    return {"permissions": {
        "user_id": user["id"], "role": user["role"], "allowed_sections": sorted(sections),
        "allowed_service_ids": service_ids,  # render_nil
        "links": api.links(("user", f"/admin/api/accounts/{user['account_id']}/users/{user['id']}"))}}


def _as_list(v) -> list | None:
    if v is None or isinstance(v, list):
        return v
    return [v]


@route("GET", A + "/users/" + ID + "/permissions")
def tenant_user_permissions(api, req: Req, id):
    return permissions_json(api, need_tenant_user(api, id))


@route("PUT", A + "/users/" + ID + "/permissions")
def tenant_user_permissions_update(api, req: Req, id):
    user = need_tenant_user(api, id)
    has_sections = req.has("allowed_sections[]") or req.has("allowed_sections")
    has_ids = req.has("allowed_service_ids[]") or req.has("allowed_service_ids")
    if not has_sections and not has_ids:
        raise Reply(400, "Required parameter missing: permissions", "text/plain; charset=utf-8")
    wanted = req.get("allowed_sections[]", req.get("allowed_sections"))
    if isinstance(wanted, list):  # permit(allowed_sections: []): a scalar is not permitted, so ignored
        # member_permission_ids=: blanks dropped, only known sections kept (e.g. the "[]" placeholder)
        user["member_sections"] = [s for s in ADMIN_SECTIONS if s in {str(x) for x in wanted}]
    if has_ids:
        raw = req.get("allowed_service_ids[]", req.get("allowed_service_ids"))
        if isinstance(raw, list) or req.has("allowed_service_ids[]"):
            # member_permission_service_ids=: non-integers dropped ("[]" means none), only existing services
            ids = [to_int(x) for x in (_as_list(raw) or [])]
            existing = {s["id"] for s in api.services()}
            user["member_service_ids"] = [i for i in ids if i is not None and i in existing]
        elif raw in (None, ""):  # a blank scalar: the `services` permission goes (every service)
            user["member_service_ids"] = None
    user["updated_at"] = now_iso()
    api.store.save("user", user)
    return permissions_json(api, user)
