"""GET /admin/api/accounts.xml: porta's account list in XML, which, unlike the JSON one, carries each
account's users (username, email) and bought plans (Account#to_xml in porta app/models/account.rb,
User#to_xml in app/models/user.rb, Plan#xml_builder in app/models/plan.rb, ServicePlan#to_xml in
app/models/service_plan.rb; pagination attributes on the root element from
app/lib/three_scale/api/collection.rb, only when there is more than one page).
Lab subset: the fields below; no extra/custom fields, billing address or credit card details."""
from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from .server import A, Reply, Req, paginate_query, xml_route


def _tag(name: str, value) -> str:
    if value is None:
        return f"<{name}/>"
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{escape(str(value))}</{name}>"


def _plan_xml(api, plan: dict) -> str:
    default = plan["type"] == "ServicePlan" and plan.get("default")
    parts = [_tag("id", plan["id"]), _tag("name", plan.get("name")),
             _tag("type", {"AccountPlan": "account_plan", "ServicePlan": "service_plan",
                           "ApplicationPlan": "application_plan"}[plan["type"]]),
             _tag("state", plan.get("state")), _tag("approval_required", bool(plan.get("approval_required")))]
    if plan["type"] in ("ServicePlan", "ApplicationPlan"):
        parts.append(_tag("service_id", plan.get("service_id")))
    return "<plan%s>%s</plan>" % (' default="true"' if default else "", "".join(parts))


def _user_xml(u: dict) -> str:
    return "<user>%s</user>" % "".join((
        _tag("id", u["id"]), _tag("created_at", u["created_at"]), _tag("updated_at", u["updated_at"]),
        _tag("account_id", u["account_id"]), _tag("state", u["state"]), _tag("role", u["role"]),
        _tag("username", u["username"]), _tag("email", u.get("email") or None)))


def _account_xml(api, a: dict, users: list[dict], plans: list[dict]) -> str:
    return "<account>%s</account>" % "".join((
        _tag("id", a["id"]), _tag("created_at", a["created_at"]), _tag("updated_at", a["updated_at"]),
        _tag("state", a["state"]), "<annotations/>", _tag("org_name", a["org_name"]),
        _tag("monthly_billing_enabled", True), _tag("monthly_charging_enabled", True),
        _tag("credit_card_stored", False),
        "<plans>%s</plans>" % "".join(_plan_xml(api, p) for p in plans),
        "<users>%s</users>" % "".join(_user_xml(u) for u in users)))


@xml_route("GET", A + "/accounts")
def accounts_list_xml(api, req: Req):
    st = api.store
    page, meta = paginate_query(st, "account", req, **({"state": req.get("state")} if req.get("state") else {}))
    # the page's users, contracts and plans, one read of each by account id (as porta's eager loading)
    ids = [a["id"] for a in page]
    users: dict[int, list[dict]] = {}
    for u in st.all_in("user", "account_id", ids):
        if not u.get("provider"):
            users.setdefault(u["account_id"], []).append(u)
    bought: dict[int, list[int]] = {}
    contracts = st.all_in("contract", "account_id", ids), st.all_in("application", "account_id", ids)
    for group in contracts:  # service contracts, then application contracts
        for c in group:
            bought.setdefault(c["account_id"], []).append(c["plan_id"])
    wanted = [a.get("account_plan_id") for a in page] + [i for v in bought.values() for i in v]
    plan_by_id = {p["id"]: p for p in st.all_in_ids("plan", wanted)}

    def plans(a: dict) -> list[dict]:
        ids = [a.get("account_plan_id")] + bought.get(a["id"], [])
        return [plan_by_id[i] for i in ids if i in plan_by_id]

    attrs = "".join(f" {k}={quoteattr(str(v))}" for k, v in (meta or {}).items())
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<accounts%s>%s</accounts>' % (
        attrs, "".join(_account_xml(api, a, users.get(a["id"], []), plans(a)) for a in page))
    return Reply(200, body, "application/xml; charset=utf-8")
