"""The tenant's own settings reachable with the admin API: webhooks (porta admin/api/web_hooks_controller,
app/models/web_hook.rb) and personal access tokens (admin/api/personal/access_tokens_controller,
app/models/access_token.rb). Webhooks are stored and shown, never delivered (lab deviation)."""
from __future__ import annotations

import datetime
import secrets

from ..context import now_iso
from .server import A, Reply, Req, created, not_found, route, truthy

WEBHOOK_EVENTS = ("account_created_on", "account_updated_on", "account_deleted_on", "user_created_on",
                  "user_updated_on", "user_deleted_on", "application_created_on", "application_updated_on",
                  "application_deleted_on", "account_plan_changed_on", "application_plan_changed_on",
                  "application_user_key_updated_on", "application_key_created_on", "application_key_deleted_on",
                  "application_suspended_on", "application_key_updated_on")
SCOPES = ("account_management", "stats", "finance", "cms", "policy_registry")
PERMISSIONS = ("ro", "rw")


def webhook(api) -> dict:
    hook = api.store.first("webhook")
    if hook is None:
        hook = api.store.insert("webhook", {"url": None, "active": False, "provider_actions": False,
                                            **{e: False for e in WEBHOOK_EVENTS}})
    return hook


def webhook_json(hook: dict) -> dict:
    return {"webhook": {k: hook.get(k) for k in ("url", "active", "provider_actions", *WEBHOOK_EVENTS)}}


@route("PUT", A + "/webhooks")
def webhooks_update(api, req: Req):
    hook = webhook(api)
    if req.has("url"):
        hook["url"] = str(req.get("url") or "") or None
    for f in ("active", "provider_actions", *WEBHOOK_EVENTS):
        if req.has(f):
            hook[f] = truthy(req.get(f))
    return webhook_json(api.store.save("webhook", hook))


# ---- personal access tokens
def token_json(t: dict, with_value: bool = False) -> dict:
    d = {"id": t["id"], "name": t["name"], "scopes": t["scopes"], "permission": t["permission"]}
    if t.get("expires_at"):  # nil properties are omitted
        d["expires_at"] = t["expires_at"]
    if with_value:  # plaintext_value: only in the answer that created it
        d["value"] = t["value"]
    return {"access_token": d}


def need_token(api, id) -> dict:
    for t in api.store.all("access_token"):
        if str(t["id"]) == str(id) or t["value"] == str(id):
            return t
    raise not_found()


@route("GET", A + "/personal/access_tokens")
def tokens_list(api, req: Req):
    tokens = api.store.all("access_token")
    if req.get("name"):
        tokens = [t for t in tokens if str(req.get("name")).lower() in t["name"].lower()]
    return {"access_tokens": [token_json(t) for t in tokens]}


@route("POST", A + "/personal/access_tokens")
def token_create(api, req: Req):
    errors: dict[str, list[str]] = {}
    name = str(req.get("name") or "").strip()
    if not name:
        errors["name"] = ["can't be blank"]
    scopes = req.get("scopes[]", req.get("scopes")) or []
    scopes = [scopes] if isinstance(scopes, str) else list(scopes)
    if not scopes:
        errors["scopes"] = ["select at least one scope"]
    elif any(s not in SCOPES for s in scopes):
        errors["scopes"] = ["invalid"]
    permission = req.get("permission")
    if permission not in PERMISSIONS:
        errors["permission"] = ["is not included in the list"]
    expires_at = req.get("expires_at") or None
    if expires_at:
        try:
            when = datetime.datetime.fromisoformat(str(expires_at).replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.timezone.utc)
            if when <= datetime.datetime.now(datetime.timezone.utc):
                errors["expires_at"] = ["must be in the future"]
            expires_at = when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            errors["expires_at"] = ["invalid date"]
    if errors:
        raise Reply(422, {"errors": errors})
    t = api.store.insert("access_token", {"name": name, "scopes": scopes, "permission": permission,
                                          "expires_at": expires_at, "value": secrets.token_hex(32),
                                          "created_at": now_iso()})
    return created(token_json(t, with_value=True))


@route("GET", A + "/personal/access_tokens/(?P<id>[^/]+)")
def token_show(api, req: Req, id):
    return token_json(need_token(api, id))


@route("DELETE", A + "/personal/access_tokens/(?P<id>[^/]+)")
def token_delete(api, req: Req, id):
    api.store.delete("access_token", need_token(api, id)["id"])
    return Reply(200, None)
