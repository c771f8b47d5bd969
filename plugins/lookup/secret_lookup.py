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
    M(kubernetes.core.k8s); the client code of kubernetes.core is reused.
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
  kubeconfig:
    description: Path to a kubeconfig file.
    type: path
    env:
      - name: K8S_AUTH_KUBECONFIG
  context:
    description: Context of the kubeconfig to use.
    type: str
    env:
      - name: K8S_AUTH_CONTEXT
  host:
    description: URL of the Kubernetes API server.
    type: str
    env:
      - name: K8S_AUTH_HOST
  api_key:
    description: Bearer token for the API server.
    type: str
    env:
      - name: K8S_AUTH_API_KEY
  validate_certs:
    description: Whether to verify the API server's TLS certificate.
    type: bool
    aliases: [verify_ssl]
    env:
      - name: K8S_AUTH_VERIFY_SSL
  ca_cert:
    description: CA certificate(s) that signed the API server's certificate.
    type: path
    aliases: [ssl_ca_cert]
    env:
      - name: K8S_AUTH_SSL_CA_CERT
  client_cert:
    description: Client certificate for TLS client authentication.
    type: path
    aliases: [cert_file]
    env:
      - name: K8S_AUTH_CERT_FILE
  client_key:
    description: Key of O(client_cert).
    type: path
    aliases: [key_file]
    env:
      - name: K8S_AUTH_KEY_FILE
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

try:
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    IMPORT_ERROR = None
except ImportError as exc:  # reported when the lookup is used, not at load time
    IMPORT_ERROR = exc

CONNECTION_OPTIONS = ("kubeconfig", "context", "host", "api_key", "validate_certs", "ca_cert", "client_cert", "client_key")


def decode(name, key, value):
    try:
        return to_text(base64.b64decode(value, validate=True), errors="surrogate_or_strict")
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise AnsibleError("Key %r of Secret %s is not valid base64-encoded text: %s" % (key, name, to_native(exc)))


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        if IMPORT_ERROR is not None:
            raise AnsibleError("secret_lookup needs the kubernetes Python package and the kubernetes.core collection: %s"
                               % to_native(IMPORT_ERROR))
        self.set_options(var_options=variables, direct=kwargs)
        namespace, key = self.get_option("namespace"), self.get_option("key")
        conn = dict((opt, self.get_option(opt)) for opt in CONNECTION_OPTIONS if self.get_option(opt) is not None)
        try:
            api = CoreV1Api(get_api_client(**conn).client.client)
        except Exception as exc:
            raise AnsibleError("Cannot configure the Kubernetes client (check kubeconfig/context/host or the K8S_AUTH_* "
                               "variables): %s" % to_native(exc))
        results = []
        for name in terms:
            where = "%s/%s" % (namespace, name)
            try:
                secret = api.read_namespaced_secret(name, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    raise AnsibleError("Secret %s not found: check the Secret name and the namespace (3scale keeps the "
                                       "tenant token in Secret system-seed of the APIManager namespace)" % where)
                if exc.status in (401, 403):
                    raise AnsibleError("Not allowed to read Secret %s (HTTP %s): the Kubernetes credentials need 'get' on "
                                       "secrets in namespace %s" % (where, exc.status, namespace))
                raise AnsibleError("Reading Secret %s failed: HTTP %s %s" % (where, exc.status, exc.reason))
            except Exception as exc:
                raise AnsibleError("Reading Secret %s failed: %s" % (where, to_native(exc)))
            data = secret.data or {}
            if key is None:
                results.append(dict((k, decode(where, k, v)) for k, v in data.items()))
            elif key not in data:
                raise AnsibleError("Secret %s has no key %r; keys present: %s. Fix the key name (for 3scale: "
                                   "ADMIN_ACCESS_TOKEN)" % (where, key, ", ".join(sorted(data)) or "none"))
            else:
                results.append(decode(where, key, data[key]))
        return results
