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
    Management API. Each account gets an admin user with the given username.
  - The admin user is C(active) when a password is given. 3scale leaves a user created without a
    password C(pending) (it cannot log in to the developer portal); the module then warns, or
    activates it with O(activate_user=true).
  - Accounts are found by username, or by email when no username is given, so accounts created in
    the developer portal or through SSO are recognised too. A username is always looked up as a
    username, also when it is all digits.
  - Existing accounts are not modified (except that O(activate_user) activates a pending admin user);
    O(org_name), O(email) and O(password) are used only when the account is created.
  - Many accounts can be handled in one task with O(accounts). Every entry is checked and every
    account looked up before the first write, so a bad entry fails the task with nothing changed.
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
options:
  username:
    description:
      - Username of the account's admin user. Mutually exclusive with O(accounts).
      - 3 to 40 characters, starting with a letter, digit or C(_), then letters, digits and C(_.-+)
        (3scale's rule; this module does not allow C(@) in usernames).
    type: str
  email:
    description:
      - Email of the admin user. 3scale does not require it through the API, but it is how the user
        resets a password, so give it.
    type: str
  org_name:
    description:
      - Organization name of the account. Defaults to the username when creating.
    type: str
  password:
    description:
      - Password of the admin user, used only when the account is created. Never returned.
      - 3scale 2.17 and later (porta master since February 2026) refuse passwords shorter than 15
        characters; 3scale 2.16 has no such rule. A refused password fails the task and names the rule.
      - Without it 3scale leaves the admin user C(pending), see O(activate_user).
    type: str
  activate_user:
    description:
      - Activate the admin user of an account that has no password, with the user C(activate) call of
        the API, so the user can log in after setting a password with "forgot password" (or through SSO).
      - Applies to accounts created by the task and to existing accounts whose admin user is C(pending).
      - Reading the users of an account needs the tenant's C(multiple_users) feature; without it 3scale
        answers HTTP 403 and the task fails, naming the account.
      - When false (the default), an admin user created without a password stays C(pending) and the
        task warns.
    type: bool
    default: false
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
        description: Email of the admin user.
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

- name: Create an account without a password; its admin user can log in after a password reset
  maas.threescale.threescale_account:
    username: sso-user
    email: sso-user@example.com
    activate_user: true

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
      description: C(created), C(activated) (existing account whose pending admin user was activated), C(deleted) or C(none).
      type: str
    user_state:
      description:
        - State of the admin user, C(active) or C(pending) (cannot log in until activated).
        - Read from 3scale after creating an account, predicted in check mode (C(active) with a password
          or O(activate_user), else C(pending)), and predicted the same way when the tenant does not let the module
          list users; for existing accounts only with O(activate_user); otherwise null.
      type: str
      sample: active
account:
  description: The entry of RV(accounts) when a single account was given with O(username)/O(email).
  returned: when O(accounts) is not used
  type: dict
recovered_writes:
  description:
    - Creates whose answer was lost (connection closed, timeout, HTTP 502/504) and whose object the module
      found in 3scale and adopted instead of creating it again.
  returned: when a create lost its answer
  type: list
  elements: str
api_requests:
  description: Number of HTTP requests sent to the admin API (for capacity planning).
  returned: always
  type: int
  sample: 3
"""

import re

from ansible_collections.maas.threescale.plugins.module_utils.threescale_api import (
    ThreescaleError, ThreescaleModule, error_summary)

FIELDS = ("username", "email", "org_name", "password", "state")
# porta app/lib/authentication.rb RE_LOGIN_OK (ASCII \w) minus "@", length 3..40 (app/models/user.rb)
USERNAME_RE = re.compile(r"\w[\w.\-+]{2,39}", re.ASCII)
PENDING_HINT = ("set activate_user: true to activate it, or create the account with a password; the user can then "
                "log in after a password reset")


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
        elif entry.get("username") and not USERNAME_RE.fullmatch(entry["username"]):
            problems.append("account %s: 3scale needs a username of 3 to 40 characters: a letter, digit or _ first, "
                            "then letters, digits and _.-+" % label)
        key = (entry.get("username") or entry.get("email")).lower()
        if key in seen:
            problems.append("account %s is listed twice" % label)
        seen.add(key)
    if problems:
        module.fail_json(msg="Invalid input, nothing was changed: " + "; ".join(problems))


def lookup(client, entry):
    if entry.get("username"):
        return client.find_account(entry["username"], lookup="username")
    return client.find_account(entry["email"], lookup="email")


def plan_changes(module, entries):
    """Look every account up (read-only) and decide what to do; fail before any write."""
    client, problems, plans = module.client, [], []
    for entry in entries:
        found = lookup(client, entry)
        label = entry.get("username") or entry["email"]
        if entry["state"] == "present" and not found:
            if entry.get("username") and entry.get("email"):
                other = client.find_account(entry["email"], lookup="email")
                if other:
                    problems.append("account %s: email %s already belongs to account id %s; use that account's "
                                    "username or another email" % (label, entry["email"], other.get("id")))
            elif not entry.get("username"):
                problems.append("account %s: username is required to create an account" % label)
        plans.append((entry, found))
    if problems:
        module.fail_json(msg="Invalid input, nothing was changed: " + "; ".join(problems))
    return plans


def summary(entry, account, action, user_state=None):
    account = account or {}
    return dict(username=entry.get("username"), email=entry.get("email"), id=account.get("id"),
                org_name=account.get("org_name", entry.get("org_name") or entry.get("username")),
                state=account.get("state"), action=action, user_state=user_state)


def signup_refused(module, exc, label, created):
    """Fail with porta's 422 signup errors, naming each field and how to fix it."""
    errors = (exc.body or {}).get("errors") if isinstance(exc.body, dict) else None
    hints = []
    for message in (errors or {}).get("password") or []:
        minimum = re.search(r"minimum is (\d+)", to_str(message))
        hints.append("password %s: give a password of at least %s characters (3scale 2.17 and porta master refuse "
                     "shorter ones), or leave password out and set activate_user: true"
                     % (message, minimum.group(1) if minimum else "the tenant's minimum of"))
    for field in sorted(set(errors or {}) - set(["password"])):
        hints.append("%s %s" % (field, ", ".join(to_str(m) for m in errors[field])))
    done = ", ".join(created) or "none"
    result = exc.to_result()
    result["msg"] = ("3scale refused to create account %s: %s. Accounts created by this task before it: %s"
                     % (label, "; ".join(hints) or error_summary(exc.body) or exc.message, done))
    module.fail_json(**result)


def to_str(value):
    return value if isinstance(value, str) else "%s" % (value,)


def admin_user(module, account_id, label, need):
    """The account's first admin user, or None when 3scale does not let us list users (403)."""
    try:
        users = module.client.account_users(account_id, role="admin")
    except ThreescaleError as exc:
        if exc.status != 403 or need:
            if exc.status == 403:
                exc.message = ("cannot read the users of account %s to activate its admin user (%s); enable the "
                               "tenant's multiple_users feature, or activate the user in the admin portal"
                               % (label, exc.message))
            raise
        return None
    return users[0] if users else None


def activate(module, account_id, user):
    path = "/accounts/%s/users/%s/activate.json" % (account_id, user["id"])

    def active():  # read back after an activation that lost its answer
        body = module.client.get("/accounts/%s/users/%s.json" % (account_id, user["id"]))
        return body if (body or {}).get("user", {}).get("state") == "active" else None
    return (module.client.transition(path, done=active) or {}).get("user") or dict(user, state="active")


def create(module, entry, label, created):
    client, activate_user = module.client, module.params["activate_user"]
    predicted = "active" if entry.get("password") or activate_user else "pending"
    if module.check_mode:
        return None, predicted
    data = dict(username=entry["username"], org_name=entry.get("org_name") or entry["username"])
    for key in ("email", "password"):
        if entry.get(key):
            data[key] = entry[key]
    try:
        body, adopted = client.create("/signup.json", data, what="account %s" % label,
                                      find=lambda: client.find_account(entry["username"], lookup="username"))
        account = body if adopted else (body or {}).get("account") or {}
    except ThreescaleError as exc:
        if exc.status == 422:
            signup_refused(module, exc, label, created)
        raise
    created.append(label)
    user = admin_user(module, account["id"], label, need=activate_user and not entry.get("password"))
    if user and user.get("state") == "pending" and activate_user:
        user = activate(module, account["id"], user)
    # Without the users list (no multiple_users feature): what 3scale does (contract: no password = pending)
    return account, (user or {}).get("state") or predicted


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
    results, before, after, created = [], {}, {}, []
    for entry, found in plan_changes(module, entries):
        label = entry.get("username") or entry["email"]
        if entry["state"] == "present" and not found:
            account, user_state = create(module, entry, label, created)
            results.append(summary(entry, account, "created", user_state))
            after[label] = dict(org_name=results[-1]["org_name"], email=entry.get("email"), user_state=user_state)
            if user_state == "pending":
                module.warn("account %s: 3scale leaves an admin user created without a password pending: it cannot "
                            "log in to the developer portal; %s" % (label, PENDING_HINT))
        elif entry["state"] == "absent" and found:
            if not module.check_mode:
                client.delete("/accounts/%s.json" % found["id"])
            results.append(summary(entry, None, "deleted"))
            before[label] = dict(id=found["id"], org_name=found.get("org_name"))
        elif entry["state"] == "present" and params["activate_user"]:
            user = admin_user(module, found["id"], label, need=True)
            if user and user.get("state") == "pending":
                if not module.check_mode:
                    user = activate(module, found["id"], user)
                else:
                    user = dict(user, state="active")
                results.append(summary(entry, found, "activated", user.get("state")))
                before[label], after[label] = dict(user_state="pending"), dict(user_state=user.get("state"))
            else:
                results.append(summary(entry, found, "none", (user or {}).get("state")))
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
                accounts=dict(type="list", elements="dict", options=entry_spec),
                activate_user=dict(type="bool", default=False))
    module = ThreescaleModule(argument_spec=spec, mutually_exclusive=[("accounts", "username"), ("accounts", "email")],
                              required_one_of=[("accounts", "username", "email")])
    module.run(lambda: ensure_accounts(module))


if __name__ == "__main__":
    main()
