# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: secret_lookup
short_description: Read a decoded value (or all values) of a Kubernetes Secret
version_added: 1.0.0
description:
  - Reads a Secret through the Kubernetes API and returns the base64-decoded value of one key,
    or the whole decoded C(data) as a dictionary when O(key) is not given.
  - Typical use is the 3scale tenant token, key C(ADMIN_ACCESS_TOKEN) of Secret C(system-seed).
  - Connection options and C(K8S_AUTH_*) environment variables are the ones of
    M(kubernetes.core.k8s); the client code of kubernetes.core is reused (through the collection's one
    Kubernetes connection, shared with M(maas.threescale.cr_wait) and M(maas.threescale.k8s_lease)).
  - Unlike C(kubernetes.core.k8s) this lookup fails (instead of returning nothing) when the Secret
    or the key is missing, and says which.
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
requirements:
  - kubernetes (Python) >= 24.2.0
  - the kubernetes.core collection
options:
  _terms:
    description: Name(s) of the Secret(s).
    required: true
    type: list
    elements: str
  namespace:
    description: Namespace of the Secret.
    type: str
    required: true
  key:
    description: Key inside the Secret's C(data). Omit to get every key as a dictionary.
    type: str
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
notes:
  - Decoded values are secrets; use them in tasks with C(no_log) or module options marked C(no_log).
"""

EXAMPLES = r"""
- name: Use the 3scale tenant token without ever printing it
  ansible.builtin.set_fact:
    threescale_token: "{{ lookup('maas.threescale.secret_lookup', 'system-seed', namespace='3scale', key='ADMIN_ACCESS_TOKEN') }}"
  no_log: true

- name: Every key of a Secret as a dictionary
  ansible.builtin.set_fact:
    seed: "{{ lookup('maas.threescale.secret_lookup', 'system-seed', namespace='3scale') }}"
  no_log: true
"""

RETURN = r"""
_raw:
  description:
    - The decoded value of O(key), or a dictionary of every decoded key when O(key) is omitted.
  type: list
  elements: raw
"""

from ansible.plugins.lookup import LookupBase

from ansible_collections.maas.threescale.plugins.plugin_utils import k8s_secrets


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        namespace, key = self.get_option("namespace"), self.get_option("key")
        conn = k8s_secrets.connect(dict((opt, self.get_option(opt)) for opt in k8s_secrets.k8s_connection.auth_options()))
        return [k8s_secrets.read_secret(conn, namespace, name, key) for name in terms]
