# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Connection options shared by every threescale_* module.
    DOCUMENTATION = r"""
options:
  admin_url:
    description:
      - Base URL of the 3scale tenant admin portal, for example C(https://3scale-admin.apps.example.com).
      - The modules append C(/admin/api/...) themselves.
      - If not set, the value of the E(THREESCALE_ADMIN_URL) environment variable is used.
    type: str
    required: true
  access_token:
    description:
      - 3scale access token with the C(account_management) scope (read-write for changes).
      - Sent as the HTTP Basic password, never in the URL, and never logged or returned.
      - On OpenShift the tenant token is the C(ADMIN_ACCESS_TOKEN) key of the C(system-seed) Secret,
        see the P(maas.threescale.secret_lookup#lookup) lookup.
      - If not set, the value of the E(THREESCALE_ACCESS_TOKEN) environment variable is used.
    type: str
    required: true
  validate_certs:
    description:
      - Whether to verify the TLS certificate of O(admin_url).
      - If not set, the value of the E(THREESCALE_VALIDATE_CERTS) environment variable is used.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file with the CA certificate(s) used to verify O(admin_url) (for example the cluster ingress CA).
      - When set, only these CAs are trusted, not the system trust store.
      - If not set, the value of the E(THREESCALE_CA_BUNDLE) environment variable is used.
    type: path
  request_timeout:
    description:
      - Timeout in seconds of each HTTP request.
    type: int
    default: 30
  retries:
    description:
      - How many times a failed request is retried, with exponential backoff (1, 2, 4... seconds, at most 30,
        or the server's C(Retry-After)).
      - Any request is retried when the connection was refused (nothing was sent) or the answer is HTTP 429 or 503
        (the server did not process it).
      - HTTP 502, 504, timeouts and reset connections are retried for GET, PUT, PATCH and DELETE. A POST
        (a create) that got no answer this way may have been committed by 3scale, so it is never resent
        blindly; the module reads back what it was creating (the account by username, the subscription of
        the account to the product, the application by name on the account), adopts it when 3scale had
        created it, and sends the POST again only when nothing was written.
    type: int
    default: 3
  allow_insecure_http:
    description:
      - Send the access token to a plain C(http://) O(admin_url). Without it such a URL is refused before any
        request, because the token (HTTP Basic) would cross the network unencrypted; with it each task warns.
      - For throwaway test tenants only.
      - If not set, the value of the E(THREESCALE_ALLOW_INSECURE_HTTP) environment variable is used.
    type: bool
    default: false
notes:
  - A refused token (HTTP 401, or 403 C(Access denied)), an unreachable O(admin_url) and a failed TLS
    verification fail the task with a message naming the setting to fix, before the module writes anything.
  - The modules talk to the 3scale Account Management API (porta) over HTTPS only from the host
    that runs the module, usually C(localhost).
  - Set the connection options once for a play with C(module_defaults) and the
    C(group/maas.threescale.threescale) action group.
"""

    ATTRIBUTES = r"""
attributes:
  check_mode:
    support: full
    description: In check mode the module reads from 3scale but sends no write request.
  diff_mode:
    support: full
    description: Returns before/after of what changed.
  action_group:
    description: Use C(group/maas.threescale.threescale) in C(module_defaults) to set the connection options.
    support: full
    membership:
      - maas.threescale.threescale
"""

    INFO_ATTRIBUTES = r"""
attributes:
  check_mode:
    support: full
    description: Read-only module; it runs normally in check mode.
  diff_mode:
    support: none
    description: Read-only module, nothing to diff.
  action_group:
    description: Use C(group/maas.threescale.threescale) in C(module_defaults) to set the connection options.
    support: full
    membership:
      - maas.threescale.threescale
"""

    ACCOUNT_LOOKUP = r"""
options:
  account_lookup:
    description:
      - How the account identifiers (C(account) or each of C(accounts)) are read, the same way in every
        module that takes accounts (module_utils/threescale_accounts.py).
      - V(auto) treats an all-digit value as an account id, a value with C(@) as an email, anything else as
        a username; 3scale allows all-digit usernames (and C(@) in usernames), so V(auto) can mistake
        them.
      - V(id) a numeric account id; V(username) a username (also an all-digit one); V(email) an email;
        V(username_or_email) an email when the value has C(@), else a username (never an id).
      - From 4 usernames or emails on, one list of the accounts (C(accounts.xml), the only list that shows
        them) replaces one lookup each.
      - Every account is resolved before anything is written; the task fails naming each one not found and
        what it was read as.
    type: str
    choices: [auto, id, username, email, username_or_email]
    default: auto
"""
