#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: threescale_account
short_description: Ensure 3scale developer accounts are present or absent
version_added: 1.0.0
description:
  - Creates (signs up) or deletes developer accounts of a 3scale tenant through the Account
    Management API. Each account gets an active admin user with the given username.
  - Accounts are found by username, or by email when no username is given, so accounts created in
    the developer portal or through SSO are recognised too.
  - Existing accounts are not modified; O(org_name), O(email) and O(password) are used only when
    the account is created.
  - Many accounts can be handled in one task with O(accounts). Every entry is checked and every
    account looked up before the first write, so a bad entry fails the task with nothing changed.
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
options:
  username:
    description:
      - Username of the account's admin user. Mutually exclusive with O(accounts).
    type: str
  email:
    description:
      - Email of the admin user. Required to create an account.
    type: str
  org_name:
    description:
      - Organization name of the account. Defaults to the username when creating.
    type: str
  password:
    description:
      - Password of the admin user, used only when the account is created. Never returned.
      - Without it the user can only log in after a password reset or through SSO.
    type: str
  state:
    description:
      - V(present) creates missing accounts, V(absent) deletes the account and everything it owns
        (applications, keys, subscriptions).
    type: str
    choices: [present, absent]
    default: present
  accounts:
    description:
      - A list of accounts to handle in one task. Each entry takes the same keys as the top-level
        options; O(accounts[].state) defaults to the top-level O(state).
    type: list
    elements: dict
    suboptions:
      username:
        description: Username of the account's admin user.
        type: str
      email:
        description: Email of the admin user. Required to create an account.
        type: str
      org_name:
        description: Organization name. Defaults to the username.
        type: str
      password:
        description: Password of the admin user, used only at creation. Never returned.
        type: str
      state:
        description: V(present) or V(absent); defaults to the top-level O(state).
        type: str
        choices: [present, absent]
extends_documentation_fragment:
  - maas.threescale.threescale
  - maas.threescale.threescale.ATTRIBUTES
"""

EXAMPLES = r"""
- name: Ensure a developer account exists
  maas.threescale.threescale_account:
    username: user1
    email: user1@example.com
    password: "{{ user1_password }}"

- name: Create a classroom of accounts in one task
  maas.threescale.threescale_account:
    accounts: "{{ students }}"  # [{username: student1, email: student1@example.com, password: ...}, ...]

- name: Remove an account and everything it owns
  maas.threescale.threescale_account:
    username: user9
    state: absent
"""

RETURN = r"""
accounts:
  description: One entry per requested account, in the order given. Passwords are never returned.
  returned: always
  type: list
  elements: dict
  contains:
    username:
      description: Username as requested.
      type: str
    email:
      description: Email as requested.
      type: str
    id:
      description: Account id (null when the account does not exist after the task, or in check mode for a new one).
      type: int
    org_name:
      description: Organization name.
      type: str
    state:
      description: Account state in 3scale, for example C(approved).
      type: str
    action:
      description: C(created), C(deleted) or C(none).
      type: str
account:
  description: The entry of RV(accounts) when a single account was given with O(username)/O(email).
  returned: when O(accounts) is not used
  type: dict
api_requests:
  description: Number of HTTP requests sent to the admin API (for capacity planning).
  returned: always
  type: int
  sample: 3
"""

from ansible_collections.maas.threescale.plugins.module_utils.threescale_api import ThreescaleModule

FIELDS = ("username", "email", "org_name", "password", "state")


def validate(module, entries):
    problems, seen = [], set()
    for idx, entry in enumerate(entries):
        label = entry.get("username") or entry.get("email") or "#%d" % idx
        if not entry.get("username") and not entry.get("email"):
            problems.append("account #%d: set username or email" % idx)
            continue
        if entry.get("email") and "@" not in entry["email"]:
            problems.append("account %s: email %r is not an email address" % (label, entry["email"]))
        if entry.get("username") and "@" in entry["username"]:
            problems.append("account %s: username must not contain '@' (put it in email)" % label)
        key = (entry.get("username") or entry.get("email")).lower()
        if key in seen:
            problems.append("account %s is listed twice" % label)
        seen.add(key)
    if problems:
        module.fail_json(msg="Invalid input, nothing was changed: " + "; ".join(problems))


def plan_changes(module, entries):
    """Look every account up (read-only) and decide what to do; fail before any write."""
    client, problems, plans = module.client, [], []
    for entry in entries:
        found = client.find_account(entry.get("username") or entry["email"])
        label = entry.get("username") or entry["email"]
        if entry["state"] == "present" and not found:
            if entry.get("username") and entry.get("email"):
                other = client.find_account(entry["email"])
                if other:
                    problems.append("account %s: email %s already belongs to account id %s; use that account's "
                                    "username or another email" % (label, entry["email"], other.get("id")))
            elif not entry.get("username"):
                problems.append("account %s: username is required to create an account" % label)
            if not entry.get("email"):
                problems.append("account %s does not exist and email is required to create it" % label)
        plans.append((entry, found))
    if problems:
        module.fail_json(msg="Invalid input, nothing was changed: " + "; ".join(problems))
    return plans


def summary(entry, account, action):
    account = account or {}
    return dict(username=entry.get("username"), email=entry.get("email"), id=account.get("id"),
                org_name=account.get("org_name", entry.get("org_name") or entry.get("username")),
                state=account.get("state"), action=action)


def ensure_accounts(module):
    params = module.params
    if params["accounts"] is not None:
        entries = [dict((k, item.get(k)) for k in FIELDS) for item in params["accounts"]]
    else:
        entries = [dict((k, params.get(k)) for k in FIELDS)]
    for entry in entries:
        entry["state"] = entry.get("state") or params["state"]
    validate(module, entries)
    client = module.client
    results, before, after = [], {}, {}
    for entry, found in plan_changes(module, entries):
        label = entry.get("username") or entry["email"]
        if entry["state"] == "present" and not found:
            account = None
            if not module.check_mode:
                data = dict(username=entry["username"], email=entry["email"],
                            org_name=entry.get("org_name") or entry["username"])
                if entry.get("password"):
                    data["password"] = entry["password"]
                account = (client.post("/signup.json", data=data) or {}).get("account")
            results.append(summary(entry, account, "created"))
            after[label] = dict(org_name=results[-1]["org_name"], email=entry["email"])
        elif entry["state"] == "absent" and found:
            if not module.check_mode:
                client.delete("/accounts/%s.json" % found["id"])
            results.append(summary(entry, None, "deleted"))
            before[label] = dict(id=found["id"], org_name=found.get("org_name"))
        else:
            results.append(summary(entry, found, "none"))
    changed = any(r["action"] != "none" for r in results)
    result = dict(changed=changed, accounts=results, api_requests=client.request_count)
    if params["accounts"] is None:
        result["account"] = results[0]
    if changed:
        result["diff"] = dict(before=before, after=after)
    return result


def main():
    entry_spec = dict(username=dict(type="str"), email=dict(type="str"), org_name=dict(type="str"),
                      password=dict(type="str", no_log=True),
                      state=dict(type="str", choices=["present", "absent"]))
    spec = dict(entry_spec, state=dict(type="str", choices=["present", "absent"], default="present"),
                accounts=dict(type="list", elements="dict", options=entry_spec))
    module = ThreescaleModule(argument_spec=spec, mutually_exclusive=[("accounts", "username"), ("accounts", "email")],
                              required_one_of=[("accounts", "username", "email")])
    module.run(lambda: ensure_accounts(module))


if __name__ == "__main__":
    main()
