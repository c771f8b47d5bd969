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

import base64
import binascii

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.plugins.lookup import LookupBase

from ansible_collections.maas.threescale.plugins.module_utils import k8s_connection


def decode(name, key, value):
    try:
        return to_text(base64.b64decode(value, validate=True), errors="surrogate_or_strict")
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise AnsibleError("Key %r of Secret %s is not valid base64-encoded text: %s" % (key, name, to_native(exc)))


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        if k8s_connection.missing_requirement():
            raise AnsibleError("secret_lookup needs %s: %s" % (k8s_connection.REQUIREMENT,
                                                               to_native(k8s_connection.missing_requirement())))
        self.set_options(var_options=variables, direct=kwargs)
        namespace, key = self.get_option("namespace"), self.get_option("key")
        conn = k8s_connection.Connection(**dict((opt, self.get_option(opt)) for opt in k8s_connection.auth_options()))
        results = []
        for name in terms:
            where = "%s/%s" % (namespace, name)
            try:
                _status, secret, _headers = conn.request("GET", "/api/v1/namespaces/%s/secrets/%s" % (namespace, name))
            except k8s_connection.ApiError as exc:
                if exc.status == 404:
                    raise AnsibleError("Secret %s not found: check the Secret name and the namespace (3scale keeps the "
                                       "tenant token in Secret system-seed of the APIManager namespace)" % where)
                if exc.status in (401, 403):
                    raise AnsibleError("Not allowed to read Secret %s (HTTP %s): the Kubernetes credentials need 'get' on "
                                       "secrets in namespace %s" % (where, exc.status, namespace))
                if exc.status is None and not exc.transient:  # client configuration, untrusted certificate
                    raise AnsibleError(exc.message)
                raise AnsibleError("Reading Secret %s failed: %s" % (where, exc.message))
            data = (secret or {}).get("data") or {}
            if key is None:
                results.append(dict((k, decode(where, k, v)) for k, v in data.items()))
            elif key not in data:
                raise AnsibleError("Secret %s has no key %r; keys present: %s. Fix the key name (for 3scale: "
                                   "ADMIN_ACCESS_TOKEN)" % (where, key, ", ".join(sorted(data)) or "none"))
            else:
                results.append(decode(where, key, data[key]))
        return results
