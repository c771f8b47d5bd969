"""The master API's tenant endpoints (porta app/controllers/master/api/providers_controller.rb): create a
tenant (a provider account with its admin user and an access token), show it, schedule it for deletion.

The lab is one tenant on loopback: the tenants made here exist in porta's data and answer on the master API,
but their admin portals (``<org>-admin.<superdomain>``) are not served (no DNS, no per-tenant routing).
Authentication: the master account's access token only (``authenticate_access_token plain: 'unauthorized'``).

Representer: app/representers/signup_result_with_access_token_representer.rb (``signup`` wrapping the
account, as AccountRepresenter renders a provider, and the access token, as AccessTokenRepresenter renders
it, ``value`` only when it was just created: ``show`` sets the token to nil).
"""
from __future__ import annotations

import re
import secrets

from ..context import now_iso
from .server import Reply, Req, created, route

PROVIDERS = "/master/api/providers"


def _subdomain(org_name: str) -> str:
    """ActiveSupport's parameterize, as porta derives the tenant's subdomain from its org name
    (app/lib/signup/provider_account_manager.rb; Account#subdomain=)."""
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9\-_]+", "-", org_name.lower())).strip("-")


def _superdomain(api) -> str:
    return api.provider()["domain"].split(".", 1)[1]


def _signup(api, tenant: dict, token: dict | None) -> dict:
    account = api.provider_json(tenant)
    account["annotations"] = {}
    out = {"account": account}
    if token is not None:
        out["access_token"] = token
    return {"signup": out}


@route("POST", PROVIDERS)
def tenant_create(api, req: Req):
    errors: dict[str, list[str]] = {}
    org = str(req.get("org_name") or "").strip()
    sub = _subdomain(org)
    if not org:
        errors["org_name"] = ["can't be blank"]
    for field in ("username", "email"):
        if not str(req.get(field) or "").strip():
            errors[field] = ["can't be blank"]
    superdomain = _superdomain(api)
    domain, admin_domain = f"{sub}.{superdomain}", f"{sub}-admin.{superdomain}"
    if org and api.store.first("tenant", domain=domain):
        errors["subdomain"] = ["has already been taken"]  # the domains are unique (db/schema.rb accounts)
    if errors:
        raise Reply(422, {"errors": errors})
    now = now_iso()
    tenant = api.store.insert("tenant", {
        "org_name": org, "domain": domain, "admin_domain": admin_domain, "state": "approved", "created_at": now,
        "updated_at": now, "username": str(req.get("username")), "email": str(req.get("email"))})
    token = {"id": tenant["id"], "name": "Signup access token", "scopes": ["account_management"], "permission": "rw",
             "expires_at": None, "value": secrets.token_hex(32)}
    return created(_signup(api, tenant, token))


def _need_tenant(api, tid, include_deleted: bool) -> dict:
    tenant = api.store.get("tenant", tid)
    # show and update find scheduled tenants too; destroy does not (without_deleted), so a second
    # delete is a 404
    if tenant is None or (tenant["state"] == "scheduled_for_deletion" and not include_deleted):
        raise Reply(404, {"status": "Not found"})
    return tenant


@route("GET", PROVIDERS + r"/(?P<tid>\d+)")
def tenant_show(api, req: Req, tid):
    return _signup(api, _need_tenant(api, tid, include_deleted=True), None)


@route("DELETE", PROVIDERS + r"/(?P<tid>\d+)")
def tenant_delete(api, req: Req, tid):
    tenant = _need_tenant(api, tid, include_deleted=False)
    tenant["state"], tenant["updated_at"] = "scheduled_for_deletion", now_iso()
    api.store.save("tenant", tenant)
    return {"account": api.provider_json(tenant)}
