# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""Reading a Kubernetes Secret for the controller-side plugins (lookups secret_lookup and
admin_connection), once: the request, the decoding and an error message that names the fix."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native, to_text

from ansible_collections.maas.threescale.plugins.module_utils import k8s_connection


def connect(options):
    """A k8s_connection.Connection from kubernetes.core's auth options (a dict, None values ignored)."""
    if k8s_connection.missing_requirement():
        problem = to_native(k8s_connection.missing_requirement())
        raise AnsibleError("reading a Secret needs %s: %s" % (k8s_connection.REQUIREMENT, problem))
    return k8s_connection.Connection(**dict((opt, options.get(opt)) for opt in k8s_connection.auth_options()))


def decode(where, key, value):
    try:
        return to_text(base64.b64decode(value, validate=True), errors="surrogate_or_strict")
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise AnsibleError("Key %r of Secret %s is not valid base64-encoded text: %s" % (key, where, to_native(exc)))


HINT = "3scale keeps the tenant token in Secret system-seed of the APIManager namespace"


def read_secret(conn, namespace, name, key=None, hint=HINT):
    """The decoded value of ``key`` in Secret ``namespace/name``, or every key as a dict when ``key`` is None."""
    where = "%s/%s" % (namespace, name)
    try:
        _status, secret, _headers = conn.request("GET", "/api/v1/namespaces/%s/secrets/%s" % (namespace, name))
    except k8s_connection.ApiError as exc:
        if exc.status == 404:
            raise AnsibleError("Secret %s not found: check the Secret name and the namespace (%s)" % (where, hint))
        if exc.status in (401, 403):
            raise AnsibleError("Not allowed to read Secret %s (HTTP %s): the Kubernetes credentials need 'get' on "
                               "secrets in namespace %s" % (where, exc.status, namespace))
        if exc.status is None and not exc.transient:  # client configuration, untrusted certificate
            raise AnsibleError(exc.message)
        raise AnsibleError("Reading Secret %s failed: %s" % (where, exc.message))
    data = (secret or {}).get("data") or {}
    if key is None:
        return dict((k, decode(where, k, v)) for k, v in data.items())
    if key not in data:
        raise AnsibleError("Secret %s has no key %r; keys present: %s. Fix the key name (for 3scale: "
                           "ADMIN_ACCESS_TOKEN)" % (where, key, ", ".join(sorted(data)) or "none"))
    return decode(where, key, data[key])
