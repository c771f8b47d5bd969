# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: admin_connection
short_description: Resolve the 3scale admin API URL, access token and CA bundle of a cluster
version_added: 1.1.0
description:
  - Returns how to reach the 3scale admin API (Account Management API) of a cluster, each value
    from the first place that has it.
  - The URL from O(admin_url), else the environment variable C(THREESCALE_ADMIN_URL), else key
    C(adminURL) of the Secret C(threescale-provider-account) (the one the 3scale operator itself uses).
  - The token from O(access_token), else C(THREESCALE_ACCESS_TOKEN), else key C(ADMIN_ACCESS_TOKEN)
    of the Secret C(system-seed), which the workshop reads by hand.
  - The CA bundle from O(ca_path), else C(THREESCALE_CA_BUNDLE), else none (the system trust store).
  - An empty value counts as not given. The Secrets are read only when needed, in O(namespace), with
    kubernetes.core's connection options and C(K8S_AUTH_*) environment variables.
  - Fails, naming each setting and the fix, when the URL is not an http(s) URL or no token was found.
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
requirements:
  - kubernetes (Python) >= 24.2.0 and the kubernetes.core collection, when a Secret must be read
options:
  admin_url:
    description: The admin portal's URL, for example C(https://3scale-admin.apps.example.com).
    type: str
  access_token:
    description: An access token with read-write Account Management API scope.
    type: str
  ca_path:
    description: PEM file of the CA that signed the admin portal's certificate.
    type: str
  namespace:
    description: Namespace of the APIManager, where the Secrets are.
    type: str
    default: 3scale
  fail_on_error:
    description:
      - V(false) returns the problem as C(error) in the result instead of failing. A task that stores the
        result with C(no_log) (it holds the token) would hide the message; a later task can show it.
    type: bool
    default: true
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
notes:
  - The result holds the access token; use it in tasks with C(no_log).
"""

EXAMPLES = r"""
- name: Resolve the admin API connection of the cluster
  ansible.builtin.set_fact:
    admin: "{{ lookup('maas.threescale.admin_connection', admin_url=maas_admin_url | default(''), fail_on_error=false) }}"
  no_log: true

- name: Say what is missing (the message holds no secret)
  ansible.builtin.assert:
    that: admin.error is not defined
    fail_msg: "{{ admin.error | default('') }}"

- name: Use it for every 3scale module of the play
  maas.threescale.threescale_product_info:
    admin_url: "{{ admin.admin_url }}"
    access_token: "{{ admin.access_token }}"
    product: tinyllama
"""

RETURN = r"""
_raw:
  description:
    - One dictionary - C(admin_url), C(access_token), C(ca_path) (empty for the system trust store) and
      C(sources), where each of the three came from (C(variable), C(environment), C(Secret <ns>/<name>), C(none)).
    - With O(fail_on_error=false) and a problem, only C(error), the message (it never holds a secret).
  type: list
  elements: dict
"""

import os

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.lookup import LookupBase

from ansible_collections.maas.threescale.plugins.plugin_utils import k8s_secrets
from ansible_collections.maas.threescale.plugins.plugin_utils.omit import omitted

# value: (option, environment variable, Secret, key in the Secret)
SOURCES = (
    ("admin_url", "THREESCALE_ADMIN_URL", "threescale-provider-account", "adminURL"),
    ("access_token", "THREESCALE_ACCESS_TOKEN", "system-seed", "ADMIN_ACCESS_TOKEN"),
    ("ca_path", "THREESCALE_CA_BUNDLE", None, None),
)


def resolve(options, environ, read_secret):
    """``{admin_url, access_token, ca_path, sources}`` from the options, then the environment, then
    ``read_secret(name, key)``; raises AnsibleError naming what to set when no usable one is found."""
    out, sources = {}, {}
    for option, env, secret, key in SOURCES:
        if options.get(option):
            out[option], sources[option] = options[option], "variable"
        elif environ.get(env):
            out[option], sources[option] = environ[env], "environment"
        elif secret:
            out[option] = read_secret(secret, key)
            sources[option] = "Secret %s/%s" % (options["namespace"], secret)
        else:
            out[option], sources[option] = "", "none"
    url = (out["admin_url"] or "").strip()
    if not url.lower().startswith(("https://", "http://")) or not out["access_token"]:
        raise AnsibleError(
            "No usable 3scale admin API connection (URL %r from %s%s). Set maas_admin_url and maas_admin_access_token "
            "(or THREESCALE_ADMIN_URL / THREESCALE_ACCESS_TOKEN), or make the threescale-provider-account and "
            "system-seed Secrets readable in namespace %s." % (
                url, sources["admin_url"], "" if out["access_token"] else ", no access token", options["namespace"]))
    out["admin_url"] = url
    out["sources"] = sources
    return out


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        # A value left out with default(omit) (the playbooks' module_defaults dict, given here too) is not set:
        # ansible-core 2.19 passes its Omit sentinel, earlier versions the omit placeholder string.
        omit = (variables or {}).get("omit")
        self.set_options(var_options=variables, direct=dict(
            (k, v) for k, v in kwargs.items() if not omitted(v, omit)))
        options = dict((name, self.get_option(name)) for name in ("admin_url", "access_token", "ca_path", "namespace"))
        conn = []

        def read_secret(name, key):
            if not conn:  # only when a value is not given otherwise
                auth = dict((opt, self.get_option(opt)) for opt in k8s_secrets.k8s_connection.auth_options())
                conn.append(k8s_secrets.connect(auth))
            return k8s_secrets.read_secret(conn[0], options["namespace"], name, key)

        try:
            return [resolve(options, os.environ, read_secret)]
        except AnsibleError as exc:
            if self.get_option("fail_on_error"):
                raise
            return [{"error": to_native(exc)}]
