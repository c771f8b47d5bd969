# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""Who and what a request is about, resolved once for threescale_application and threescale_subscription:
developer accounts given by id, username or email (option ``account_lookup``), a product's
application or service plan, and whether a product can rotate user keys.

Every function reads through the collection's admin API client (``ThreescaleClient``) and raises
:class:`ResolveError` with a message that names the value, what it was read as and the fix; callers add
"nothing was changed" (nothing is written before resolution ends).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from xml.etree import ElementTree

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.maas.threescale.plugins.module_utils.threescale_api import (
    MAX_PER_PAGE, ThreescaleError, account_lookup_kind, unwrap)

# The choices of every module's account_lookup option.
LOOKUPS = ("auto", "id", "username", "email", "username_or_email")
KIND_TEXT = dict(id="an account id", username="a username", email="an email")
XML_LIST_MIN = 4  # from this many usernames/emails on, one account list page beats one find each


class ResolveError(Exception):
    def __init__(self, message, missing=None):
        super(ResolveError, self).__init__(message)
        self.message = message
        self.missing = missing or []


def lookup_kind(ident, lookup):
    """``id``, ``username`` or ``email``: how ``ident`` is looked up under ``account_lookup``."""
    if lookup == "username_or_email":
        return "email" if "@" in to_text(ident) else "username"
    return account_lookup_kind(ident, lookup)


def unique_idents(accounts):
    """The given accounts, stripped, without repeats, in order."""
    seen, out = set(), []
    for ident in accounts:
        ident = to_text(ident).strip()
        if ident and ident not in seen:
            seen.add(ident)
            out.append(ident)
    return out


def parse_accounts_xml(body):
    """``(accounts, total_pages)`` from porta's ``accounts.xml``: each account as ``{id, org_name, state,
    usernames, emails}`` (Account#to_xml lists every user of the account)."""
    root = ElementTree.fromstring(body)
    accounts = []
    for node in root.findall("account"):
        accounts.append(dict(id=int(node.findtext("id")), org_name=node.findtext("org_name"), state=node.findtext("state"),
                             usernames=[u.findtext("username") for u in node.findall("users/user")],
                             emails=[u.findtext("email") for u in node.findall("users/user")]))
    return accounts, int(root.attrib.get("total_pages") or 1)


def list_accounts_xml(client, kinds, wanted):
    """Resolve ``wanted`` idents from the paginated XML account list, the only list that shows usernames and
    emails. Reads a further page only while fewer pages remain than idents unresolved (a find each would be
    cheaper otherwise). Returns ``(found, complete)``; ``complete`` when every page was read (what is not
    in the list does not exist). ``(None, False)`` when the XML list is not offered (HTTP 404/406)."""
    found, page, by = {}, 1, dict(id={}, username={}, email={})
    while True:
        try:
            body = client.request("GET", "/accounts.xml", params=dict(page=page, per_page=MAX_PER_PAGE), raw=True)
            accounts, pages = parse_accounts_xml(body)
        except ThreescaleError as exc:
            if exc.status in (404, 406) and page == 1:
                return None, False
            raise
        except ElementTree.ParseError:
            if page == 1:
                return None, False
            raise
        for acc in accounts:
            by["id"][to_text(acc["id"])] = acc
            for name in acc.pop("usernames"):
                by["username"].setdefault(name, acc)
            for email in acc.pop("emails"):
                by["email"].setdefault(email, acc)
        for ident in wanted:
            if ident not in found and ident in by[kinds[ident]]:
                found[ident] = by[kinds[ident]][ident]
        left = len(wanted) - len(found)
        if page >= pages:
            return found, True
        if not left or pages - page >= left:
            return found, False
        page += 1


def find_accounts(client, idents, lookup, run_all=None):
    """Account of each ident: ``{ident: account or None}``.

    From 4 usernames/emails on: the XML account list (``accounts.xml``, per_page 500), which shows every
    user's username and email and every id. Otherwise, or for what a partly read list left: two ids or more
    from one paginated JSON account list, a single id with ``accounts/{id}``; usernames and emails one
    ``accounts/find`` each (the JSON list carries neither); the single reads run by ``run_all`` (a map,
    e.g. over a bounded pool; default one after the other).
    Nothing is read twice.
    """
    run_all = run_all or (lambda func, items: [func(i) for i in items])
    kinds = dict((i, lookup_kind(i, lookup)) for i in idents)
    found = {}
    named = [i for i in idents if kinds[i] != "id"]
    complete = False
    if len(named) >= XML_LIST_MIN:
        listed, complete = list_accounts_xml(client, kinds, idents)
        found.update(listed or {})
    if not complete:
        ids = [i for i in idents if kinds[i] == "id" and i not in found]
        if len(ids) > 1:
            by_id = dict((to_text(a.get("id")), a) for a in client.paginate("/accounts.json", "accounts", "account"))
            for i in ids:
                found[i] = by_id.get(i) if i.isdigit() else None
        one_each = [i for i in idents if i not in found]

        def find(ident):
            if kinds[ident] == "id":
                data = client.get("/accounts/%s.json" % ident, expected_404=True) if ident.isdigit() else None
                account = unwrap(data, "account") if data else None
                # porta reads the id as a number ("008" finds account 8): only the exact id is that account
                return account if account and to_text(account.get("id")) == ident else None
            else:
                data = client.get("/accounts/find.json", params={kinds[ident]: ident}, expected_404=True)
            return unwrap(data, "account") if data else None

        for ident, account in zip(one_each, run_all(find, one_each)):
            found[ident] = account
    return dict((i, found.get(i)) for i in idents)


def resolve_accounts(client, idents, lookup, run_all=None):
    """``find_accounts``, but every ident must be found: ``{ident: account}``, else ResolveError naming each
    one missing and what it was read as."""
    kinds = dict((i, lookup_kind(i, lookup)) for i in idents)
    bad = [i for i in idents if kinds[i] == "id" and not to_text(i).isdigit()]
    if bad:
        raise ResolveError("account_lookup is id but these are not numeric account ids: %s (set account_lookup to "
                           "username, email, username_or_email or auto)" % ", ".join(bad), bad)
    found = find_accounts(client, idents, lookup, run_all)
    missing = [i for i in idents if not found.get(i)]
    if missing:
        hint = ""
        if lookup == "auto" and any(kinds[i] == "id" for i in missing):
            hint = "; all-digit values were read as account ids: set account_lookup: username if they are usernames"
        raise ResolveError("%d of %d accounts not found: %s (%s)%s. Give usernames, emails or ids, or create the "
                           "accounts first with maas.threescale.threescale_account" % (
                               len(missing), len(idents), ", ".join(missing),
                               ", ".join("%r as %s" % (i, KIND_TEXT[kinds[i]]) for i in missing), hint), missing)
    return found


def find_product(client, ident):
    product = client.find_product(ident)
    if not product:
        raise ResolveError("Product %r not found; give its system_name or numeric id (see threescale_product_info)" % ident)
    return product


PLAN_KINDS = dict(application=("application_plans", "application_plan", "system_name", "Application plan"),
                  service=("service_plans", "service_plan", "name", "Service plan"))


def list_plans(client, product, kind="application"):
    path, entity = PLAN_KINDS[kind][:2]
    return client.list("/services/%s/%s.json" % (product["id"], path), "plans", entity)


def pick_plan(plans, product, ident, kind="application"):
    """The plan named ``ident`` among ``plans``: application plans by system_name or id, service plans by
    name or id."""
    key, label = PLAN_KINDS[kind][2:]
    wanted = to_text(ident).strip()
    plan = next((x for x in plans if x.get(key) == wanted or to_text(x.get("id")) == wanted), None)
    if not plan:
        raise ResolveError("%s %r not found in product %s; available: %s" % (
            label, wanted, product.get("system_name"), ", ".join(sorted(x.get(key) or "" for x in plans)) or "none"))
    return plan


def find_plan(client, product, ident, kind="application"):
    return pick_plan(list_plans(client, product, kind), product, ident, kind)


def check_rotate_key(product):
    """Key rotation needs a product that authenticates with user keys (backend_version 1)."""
    if to_text(product.get("backend_version")) != "1":
        raise ResolveError("rotate_key needs a product that authenticates with user keys (backend_version 1); "
                           "%s uses %s" % (product.get("system_name"), product.get("backend_version")))
