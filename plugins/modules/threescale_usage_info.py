#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: threescale_usage_info
short_description: Read 3scale analytics of a product, per application, account and method
version_added: 1.0.0
description:
  - Reads the traffic that the 3scale gateway reported for a product (service) through the
    3scale Analytics API (C(/stats/services/{id}/usage.json) and C(/stats/applications/{id}/usage.json)).
  - Returns hits per method (operation), per application and per developer account, totals and
    values by granularity, for a predefined O(period) or a O(since)/O(until) range.
  - "Requests: 1 for the product (by system name: 1 per 500 products), 1 for its methods, 1 per 500
    applications; then the product's C(hits) and 1 per method (product totals), 1 per application for its
    C(hits), and 1 per method that has traffic for each application that has traffic. The Analytics API
    takes one C(metric_name) per request, so this is the fewest requests that give every (application,
    method) count; an idle application or an idle method costs one request, not one per method."
  - A product that does not exist is not an error; RV(exists) is V(false).
  - The access token needs the C(stats) (Analytics API) scope besides C(account_management).
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
options:
  product:
    description:
      - System name or numeric id of the product.
    type: str
    required: true
  period:
    description:
      - Predefined period ending now. 3scale picks the granularity (V(day) by hour, V(week) by 6 hours,
        V(month) by day, V(year) by month).
      - Defaults to V(month) when O(since) is not given. With O(since), the period that starts at O(since).
    type: str
    choices: [day, week, month, year]
  since:
    description:
      - Start of the range, C(YYYY-MM-DD) or C(YYYY-MM-DD HH:MM:SS), in the tenant time zone (or O(timezone)).
      - Without O(period), O(granularity) is required.
    type: str
  until:
    description:
      - End of the range started by O(since); 3scale uses the end of the granularity step that contains it.
      - In a playbook task, prefer the alias O(to), because ansible-lint reads a key named C(until) as the task's
        retry condition.
    type: str
    aliases: [to]
  granularity:
    description:
      - Granularity of RV(methods[].values) for a O(since)/O(until) range.
    type: str
    choices: [hour, day, month]
  timezone:
    description:
      - Time zone name for the range (for example C(Europe/Madrid)); the tenant's time zone when omitted.
    type: str
  methods:
    description:
      - Only these methods (system names, for example C(chat/completions)); all methods of the product when omitted.
    type: list
    elements: str
extends_documentation_fragment:
  - maas.threescale.threescale
  - maas.threescale.threescale.INFO_ATTRIBUTES
"""

EXAMPLES = r"""
- name: Calls per account and operation this month
  maas.threescale.threescale_usage_info:
    product: granite-3dot2-8b-instruct
    period: month
  register: usage

- name: Show who called what
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.methods | dict2items | map(attribute='value.total') | sum }} calls"
  loop: "{{ usage.accounts }}"

- name: Daily values for November
  maas.threescale.threescale_usage_info:
    product: "7"
    since: "2026-11-01"
    to: "2026-11-30"
    granularity: day
"""

RETURN = r"""
exists:
  description: Whether the product exists. The other keys are empty when it does not.
  returned: always
  type: bool
  sample: true
product:
  description: The product read.
  returned: always
  type: dict
  sample: {"id": 7, "name": "Granite 3.2 8B", "system_name": "granite-3dot2-8b-instruct"}
period:
  description: The period 3scale actually covered (from the first answer), with its granularity and time zone.
  returned: always
  type: dict
  sample: {"name": "month", "since": "2026-11-01T00:00:00Z", "until": "2026-11-30T23:59:59Z",
           "granularity": "day", "timezone": "Etc/UTC"}
hits:
  description: All calls to the product in the period (metric C(hits)), C(total) and C(values) by granularity.
  returned: always
  type: dict
  sample: {"total": 12, "values": [0, 12]}
methods:
  description: Calls per method (operation) of the product, all applications together.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Method id.
      type: int
    system_name:
      description: Method system name, the operation (for example C(chat/completions)).
      type: str
    friendly_name:
      description: Method name.
      type: str
    total:
      description: Calls in the period.
      type: int
    values:
      description: Calls by granularity step.
      type: list
      elements: int
applications:
  description: Calls per application of the product.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Application id.
      type: int
    name:
      description: Application name.
      type: str
    account_id:
      description: Id of the developer account that owns the application.
      type: int
    account_name:
      description: Organization name of that account.
      type: str
    plan:
      description: Application plan name.
      type: str
    total:
      description: All calls of the application (C(hits)).
      type: int
    methods:
      description: Per method system name, C(total) and C(values); only methods with traffic are queried, the others are 0.
      type: dict
accounts:
  description: Calls per developer account (sum of its applications).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Account id.
      type: int
    name:
      description: Organization name.
      type: str
    total:
      description: All calls of the account's applications.
      type: int
    methods:
      description: Per method system name, the total calls.
      type: dict
requests:
  description: Number of HTTP requests this module sent to 3scale.
  returned: always
  type: int
  sample: 14
"""

from ansible_collections.maas.threescale.plugins.module_utils.threescale_api import (
    ThreescaleError, ThreescaleModule, unwrap)

NO_STATS_SCOPE = "does not have the correct permissions"


def usage_query(params, metric):
    """Query string of one Analytics API usage request (porta Stats::Data::BaseController#usage_params)."""
    query = dict(metric_name=metric, skip_change="true")
    for key in ("period", "since", "until", "granularity", "timezone"):
        if params.get(key):
            query[key] = params[key]
    if not params.get("period") and not params.get("since"):
        query["period"] = "month"
    return query


def series(answer):
    """``(total, values)`` of one usage answer; ``values`` may hold nulls for steps 3scale has no data for."""
    values = [int(v or 0) for v in (answer or {}).get("values") or []]
    total = (answer or {}).get("total")
    return (int(total) if total is not None else sum(values)), values


def aggregate(methods, service_answers, app_hits, app_answers, applications):
    """Build the result from the usage answers (pure: unit-tested without HTTP).

    ``methods``: list of method dicts (id, system_name, friendly_name); ``service_answers``: system_name ->
    service usage answer; ``app_hits``: app id -> application usage answer for ``hits``; ``app_answers``:
    (app id, system_name) -> application usage answer (absent = not queried because 0); ``applications``:
    application dicts of the admin API (id, name, user_account_id / account_id).
    """
    out_methods = []
    for m in methods:
        total, values = series(service_answers.get(m["system_name"]))
        out_methods.append(dict(id=m.get("id"), system_name=m["system_name"], friendly_name=m.get("friendly_name"),
                                total=total, values=values))
    apps, accounts = [], {}
    for app in applications:
        hits = app_hits.get(app["id"]) or {}
        info = hits.get("application") or {}
        account = info.get("account") or {}
        account_id = account.get("id") or app.get("user_account_id") or app.get("account_id")
        per_method = {}
        for m in methods:
            total, values = series(app_answers.get((app["id"], m["system_name"])))
            per_method[m["system_name"]] = dict(total=total, values=values)
        entry = dict(id=app["id"], name=info.get("name") or app.get("name"), account_id=account_id,
                     account_name=account.get("name"), plan=(info.get("plan") or {}).get("name"),
                     total=series(hits)[0], methods=per_method)
        apps.append(entry)
        acc = accounts.setdefault(account_id, dict(id=account_id, name=account.get("name"), total=0,
                                                   methods=dict((m["system_name"], 0) for m in methods)))
        acc["name"] = acc["name"] or account.get("name")
        acc["total"] += entry["total"]
        for name, value in per_method.items():
            acc["methods"][name] += value["total"]
    return dict(methods=out_methods, applications=apps,
                accounts=sorted(accounts.values(), key=lambda a: (a["name"] or "", a["id"] or 0)))


def product_methods(client, service_id, wanted):
    """The product's ``hits`` metric and its methods (children of ``hits``), from one metrics list."""
    items = client.paginate("/services/%s/metrics.json" % service_id, "metrics", "metric")
    items = [unwrap(unwrap(i, "metric"), "method") for i in items]
    hits = next((i for i in items if i.get("system_name") == "hits"), None)
    methods = [i for i in items if hits and i.get("parent_id") == hits.get("id")]
    if wanted:
        known = set(m["system_name"] for m in methods)
        missing = [w for w in wanted if w not in known]
        if missing:
            raise ValueError("methods %s are not methods of the product (it has: %s)"
                             % (", ".join(missing), ", ".join(sorted(known)) or "none"))
        methods = [m for m in methods if m["system_name"] in wanted]
    return hits, sorted(methods, key=lambda m: m["system_name"])


def read_usage(module):
    try:
        return read_usage_unchecked(module)
    except ThreescaleError as exc:
        # porta checks the token's scopes per controller: an account_management-only token reads the product,
        # then the Analytics API (scope "stats") refuses it with this 403 (porta ApiAuthentication::ByAccessToken).
        if exc.status == 403 and (exc.path or "").startswith("/stats/") and NO_STATS_SCOPE in (exc.message or ""):
            exc.message = ("the access token may read the Account Management API but not the Analytics API: give a "
                           "token with the Analytics API (stats) scope, for example the operator's system-seed "
                           "ADMIN_ACCESS_TOKEN (%s)" % exc.message)
        raise


def read_usage_unchecked(module):
    client, params = module.client, module.params
    empty = dict(changed=False, exists=False, product={}, period={}, hits=dict(total=0, values=[]), methods=[],
                 applications=[], accounts=[], requests=0)
    if not params["period"] and params["since"] and not params["granularity"]:
        module.fail_json(msg="since without period needs granularity (hour, day or month)")
    if params["until"] and not params["since"]:
        module.fail_json(msg="until needs since")
    service = client.find_product(params["product"])
    if not service:
        return dict(empty, requests=client.request_count)
    sid = service["id"]
    try:
        hits, methods = product_methods(client, sid, params["methods"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    applications = client.paginate("/applications.json", "applications", "application", params={"service_id": sid})
    applications = [a for a in applications if a.get("service_id") in (None, sid)]
    hits_answer = client.get("/stats/services/%s/usage.json" % sid, params=usage_query(params, "hits"))
    service_answers = {}
    for m in methods:
        service_answers[m["system_name"]] = client.get("/stats/services/%s/usage.json" % sid,
                                                       params=usage_query(params, m["system_name"]))
    busy_methods = [m for m in methods if series(service_answers[m["system_name"]])[0] > 0]
    app_hits, app_answers = {}, {}
    for app in applications:
        app_hits[app["id"]] = client.get("/stats/applications/%s/usage.json" % app["id"],
                                         params=usage_query(params, "hits"))
        if series(app_hits[app["id"]])[0] == 0:
            continue
        for m in busy_methods:
            app_answers[(app["id"], m["system_name"])] = client.get(
                "/stats/applications/%s/usage.json" % app["id"], params=usage_query(params, m["system_name"]))
    result = aggregate(methods, service_answers, app_hits, app_answers, applications)
    total, values = series(hits_answer)
    result.update(changed=False, exists=True, hits=dict(total=total, values=values),
                  product=dict(id=sid, name=service.get("name"), system_name=service.get("system_name")),
                  period=(hits_answer or {}).get("period") or {}, requests=client.request_count)
    return result


def main():
    module = ThreescaleModule(argument_spec=dict(
        product=dict(type="str", required=True),
        period=dict(type="str", choices=["day", "week", "month", "year"]),
        since=dict(type="str"),
        until=dict(type="str", aliases=["to"]),
        granularity=dict(type="str", choices=["hour", "day", "month"]),
        timezone=dict(type="str"),
        methods=dict(type="list", elements="str"),
    ))
    module.run(lambda: read_usage(module))


if __name__ == "__main__":
    main()
