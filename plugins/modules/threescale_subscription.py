#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: threescale_subscription
short_description: Subscribe developer accounts to a 3scale product (service plan)
version_added: 1.0.0
description:
  - Ensures developer accounts are subscribed (or not) to a product with a given service plan,
    the "Service Subscriptions > Subscribe" step of the 3scale admin portal. Works for accounts
    created in the developer portal or through SSO, which have no custom resource.
  - Uses the C(service_subscriptions) API of 3scale 2.16 and later. On older tenants (the list
    endpoint answers 404) it falls back to C(service_plans/{id}/buy) and C(service_contracts).
  - All accounts, the product and the plan are resolved before the first write; an unknown
    account, product or plan fails the task with nothing changed.
  - "Cost: one request per account to resolve a username or email (C(accounts/find); account
    objects carry no usernames), one to read its subscriptions, one per change; numeric ids are
    resolved together with a single paginated account list."
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
options:
  accounts:
    description:
      - Accounts to handle, each given by username, email or numeric account id (see O(account_lookup)).
    type: list
    elements: str
    required: true
  product:
    description:
      - System name or numeric id of the product.
    type: str
    required: true
  plan:
    description:
      - Name (or numeric id) of the product's service plan. Every product has one named C(Default).
      - With O(state=present), an account subscribed with another plan is moved to this plan
        (3scale 2.16 and later; older tenants only get a warning).
      - Ignored with O(state=absent).
    type: str
    default: Default
  state:
    description:
      - V(present) subscribes, V(absent) unsubscribes.
      - Unsubscribing deletes the account's applications of this product; 3scale refuses it while
        any of them is not suspended, see O(suspend_applications) and O(delete_pending_applications).
    type: str
    choices: [present, absent]
    default: present
  suspend_applications:
    description:
      - With O(state=absent), suspend the account's C(live) applications of the product first so the
        subscription (and those applications) can be deleted.
      - When false and such applications exist, the task fails before changing anything and names them.
      - Only C(live) applications can be suspended; C(pending) ones (waiting for approval) also block
        unsubscribing, see O(delete_pending_applications).
    type: bool
    default: false
  delete_pending_applications:
    description:
      - With O(state=absent), delete the account's C(pending) applications of the product (waiting for
        approval, never used) before unsubscribing. 3scale cannot suspend them, and unsubscribing would
        delete them anyway.
      - When false and such applications exist, the task fails before changing anything, names them and
        says what to do (accept them and suspend them, or delete them).
    type: bool
    default: false
extends_documentation_fragment:
  - maas.threescale.threescale
  - maas.threescale.threescale.ACCOUNT_LOOKUP
  - maas.threescale.threescale.ATTRIBUTES
"""

EXAMPLES = r"""
- name: Subscribe the workshop users to the model product
  maas.threescale.threescale_subscription:
    accounts: "{{ range(1, 51) | map('regex_replace', '^', 'user') | list }}"
    product: granite-3dot2-8b-instruct
    plan: Default

- name: Unsubscribe an account, deleting its applications of the product
  maas.threescale.threescale_subscription:
    accounts: [user7]
    product: granite-3dot2-8b-instruct
    state: absent
    suspend_applications: true
    delete_pending_applications: true

- name: Subscribe accounts whose usernames are all digits (employee numbers)
  maas.threescale.threescale_subscription:
    accounts: ["100234", "100235"]
    account_lookup: username
    product: granite-3dot2-8b-instruct
"""

RETURN = r"""
subscriptions:
  description: One entry per distinct account.
  returned: always
  type: list
  elements: dict
  contains:
    account:
      description: The account as given in O(accounts).
      type: str
    account_id:
      description: Account id.
      type: int
    subscription_id:
      description: Id of the subscription (service contract); null when not subscribed after the task or in check mode.
      type: int
    plan_id:
      description: Service plan id after the task (null when unsubscribed).
      type: int
    state:
      description: Subscription state (C(live), C(pending) when the plan needs approval, C(suspended)), null when unsubscribed.
      type: str
    action:
      description: C(subscribed), C(changed_plan), C(unsubscribed) or C(none).
      type: str
product_id:
  description: Id of the product.
  returned: always
  type: int
  sample: 7
plan_id:
  description: Id of the requested service plan (null with O(state=absent)).
  returned: always
  type: int
  sample: 12
api:
  description: Which subscription API the tenant offered, C(service_subscriptions) (2.16+) or C(service_contracts).
  returned: always
  type: str
  sample: service_subscriptions
recovered_writes:
  description:
    - Creates whose answer was lost (connection closed, timeout, HTTP 502/504) and whose object the module
      found in 3scale and adopted instead of creating it again.
  returned: when a create lost its answer
  type: list
  elements: str
api_requests:
  description: Number of HTTP requests sent to the admin API.
  returned: always
  type: int
  sample: 403
"""

from ansible_collections.maas.threescale.plugins.module_utils import threescale_accounts as resolve
from ansible_collections.maas.threescale.plugins.module_utils.threescale_api import ThreescaleError, ThreescaleModule
from ansible.module_utils.common.text.converters import to_text

NEW_API = "service_subscriptions"
OLD_API = "service_contracts"


def fail(module, msg):
    module.fail_json(msg=msg + "; nothing was changed")


def read_subscriptions(client, account_id, api):
    """(api, subscriptions) of one account; ``api`` None means: detect it with this call."""
    if api in (None, NEW_API):
        data = client.get("/accounts/%s/service_subscriptions.json" % account_id, expected_404=api is None)
        if data is not None:
            return NEW_API, [s.get("service_subscription", s) for s in data.get("service_subscriptions") or []]
    data = client.get("/accounts/%s/service_contracts.json" % account_id) or {}
    return OLD_API, [s.get("service_contract", s) for s in data.get("service_contracts") or []]


def blocking_apps(client, account_id, product_id):
    """The account's applications of the product that block unsubscribing, by state (live, pending, ...)."""
    apps = client.list("/accounts/%s/applications.json" % account_id, "applications", "application")
    by_state = {}
    for app in apps:
        if app.get("service_id") == product_id and app.get("state") != "suspended":
            by_state.setdefault(app.get("state") or "unknown", []).append(app)
    return by_state


def names(apps):
    return ", ".join(to_text(a.get("name") or a["id"]) for a in apps)


def check_unsubscribe(module, client, work, pid):
    """Fail before any write when an account's applications would make 3scale refuse to unsubscribe."""
    params, blocked, found = module.params, [], {}
    for ident, account, current in work:
        if not current:
            continue
        by_state = found[account["id"]] = blocking_apps(client, account["id"], pid)
        if by_state.get("live") and not params["suspend_applications"]:
            blocked.append("%s has live applications (%s): set suspend_applications: true to suspend and delete them, "
                           "or remove them with threescale_application first" % (ident, names(by_state["live"])))
        if by_state.get("pending") and not params["delete_pending_applications"]:
            blocked.append("%s has applications waiting for approval (%s), which 3scale cannot suspend: set "
                           "delete_pending_applications: true to delete them, or accept them in the admin portal "
                           "(then suspend_applications: true applies), or delete them with threescale_application "
                           "state=absent" % (ident, names(by_state["pending"])))
        other = [s for s in by_state if s not in ("live", "pending")]
        if other:
            blocked.append("%s has applications in state %s (%s) that cannot be suspended; delete them with "
                           "threescale_application state=absent" % (
                               ident, ", ".join(other), names(sum((by_state[s] for s in other), []))))
    if blocked:
        fail(module, "3scale deletes a subscription only when all the account's applications of the product are "
                     "suspended. " + "; ".join(blocked))
    return found


def ensure_subscriptions(module):
    client, params = module.client, module.params
    idents = [to_text(a).strip() for a in params["accounts"]]
    if not idents or any(not i for i in idents):
        fail(module, "accounts must be a non-empty list of usernames, emails or numeric ids")
    try:
        product = resolve.find_product(client, params["product"])
        plans = resolve.list_plans(client, product, kind="service")
        plan = resolve.pick_plan(plans, product, params["plan"], kind="service") if params["state"] == "present" else None
        accounts = resolve.resolve_accounts(client, resolve.unique_idents(idents), params["account_lookup"])
    except resolve.ResolveError as exc:
        module.fail_json(msg=exc.message + "; nothing was changed", missing_accounts=exc.missing)
    pid = product["id"]
    plan_ids = set(p["id"] for p in plans)

    # Read phase: current subscription of every distinct account (no writes yet).
    api, work, seen = None, [], set()
    for ident, account in accounts.items():
        if account["id"] in seen:
            continue
        seen.add(account["id"])
        api, subs = read_subscriptions(client, account["id"], api)
        current = next((s for s in subs if s.get("service_id") == pid or
                        (s.get("service_id") is None and s.get("plan_id") in plan_ids)), None)
        work.append((ident, account, current))

    apps = check_unsubscribe(module, client, work, pid) if params["state"] == "absent" else {}

    results, before, after, warnings = [], {}, {}, []
    for ident, account, current in work:
        aid = account["id"]
        entry = dict(account=ident, account_id=aid, subscription_id=(current or {}).get("id"),
                     plan_id=(current or {}).get("plan_id"), state=(current or {}).get("state"), action="none")
        if params["state"] == "present" and not current:
            entry.update(action="subscribed", plan_id=plan["id"], state=None)
            if not module.check_mode:
                entry.update(subscribe(client, api, aid, plan["id"], pid))
        elif params["state"] == "present" and current.get("plan_id") != plan["id"]:
            if api == NEW_API:
                entry.update(action="changed_plan", plan_id=plan["id"])
                if not module.check_mode:
                    client.put("/accounts/%s/service_subscriptions/%s/change_plan.json" % (aid, current["id"]),
                               data={"plan_id": plan["id"]})
            else:
                warnings.append("%s is subscribed with service plan %s, not %s; this 3scale version has no API to "
                                "change it" % (ident, current.get("plan_id"), plan["id"]))
        elif params["state"] == "absent" and current:
            entry.update(action="unsubscribed", subscription_id=None, plan_id=None, state=None)
            if not module.check_mode:
                unsubscribe(module, client, api, ident, aid, apps.get(aid, {}), current["id"])
        if entry["action"] != "none":
            before[ident] = dict(subscribed=current is not None, plan_id=(current or {}).get("plan_id"))
            after[ident] = dict(subscribed=entry["action"] != "unsubscribed", plan_id=entry["plan_id"])
        results.append(entry)
    for w in warnings:
        module.warn(w)
    changed = bool(before)
    result = dict(changed=changed, subscriptions=results, product_id=pid, plan_id=plan["id"] if plan else None,
                  api=api, api_requests=client.request_count)
    if changed:
        result["diff"] = dict(before=before, after=after)
    return result


def subscribe(client, api, account_id, plan_id, product_id):
    """Subscribe once: a POST that lost its answer is followed by a read-back of the account's subscriptions."""
    def find():
        _api, subs = read_subscriptions(client, account_id, OLD_API if api == OLD_API else NEW_API)
        return next((s for s in subs if s.get("service_id") == product_id or
                     (s.get("service_id") is None and s.get("plan_id") == plan_id)), None)

    if api == NEW_API:
        path, data = "/accounts/%s/service_subscriptions.json" % account_id, {"plan_id": plan_id}
    else:
        path, data = "/accounts/%s/service_plans/%s/buy.json" % (account_id, plan_id), {}
    try:
        body, adopted = client.create(path, data, find=find, what="subscription of account %s" % account_id)
    except ThreescaleError as exc:
        # Subscribed meanwhile by someone else: the wanted end state holds.
        if exc.status != 422 or "already subscribed" not in exc.message:
            raise
        body, adopted = None, False
    if adopted:
        sub = body
    elif api == NEW_API and body:
        sub = body.get("service_subscription") or {}
    else:  # buy answers with the service plan; or subscribed meanwhile: read it back
        sub = find() or {}
    return dict(subscription_id=sub.get("id"), state=sub.get("state"))


def suspended(client, app_path):
    body = client.get(app_path + ".json")
    return body if (body or {}).get("application", {}).get("state") == "suspended" else None


def unsubscribe(module, client, api, ident, account_id, by_state, sub_id):
    base = "/accounts/%s/applications/%s" % (account_id, "%s")
    if module.params["suspend_applications"]:
        for app in by_state.get("live", []):  # only live applications can be suspended
            app_path = base % app["id"]
            client.transition(app_path + "/suspend.json", done=lambda path=app_path: suspended(client, path))
    if module.params["delete_pending_applications"]:
        for app in by_state.get("pending", []):
            client.delete((base % app["id"]) + ".json")
    try:
        client.delete("/accounts/%s/%s/%s.json" % (account_id, api, sub_id))
    except ThreescaleError as exc:
        if exc.status == 403 and "unsuspended" in exc.message:
            module.fail_json(msg="3scale refused to unsubscribe %s: %s. Suspend (suspend_applications: true) or delete "
                                 "its live applications of the product, and accept or delete its pending ones "
                                 "(delete_pending_applications: true)" % (ident, exc.message),
                             **dict((k, v) for k, v in exc.to_result().items() if k != "msg"))
        raise


def main():
    spec = dict(
        accounts=dict(type="list", elements="str", required=True),
        product=dict(type="str", required=True),
        plan=dict(type="str", default="Default"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        suspend_applications=dict(type="bool", default=False),
        delete_pending_applications=dict(type="bool", default=False),
        account_lookup=dict(type="str", choices=list(resolve.LOOKUPS), default="auto"),
    )
    module = ThreescaleModule(argument_spec=spec)
    module.run(lambda: ensure_subscriptions(module))


if __name__ == "__main__":
    main()
