# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""The Kubernetes API answers worth another try, as the regular expression the playbooks and roles
test a failed kubernetes.core task's message with (the k8s_settled test, ``until: r is
maas.threescale.k8s_settled``). Built from the statuses the collection's own Kubernetes transport retries
(module_utils/k8s_status.py TRANSIENT_STATUS), so the list exists once. Documented in
plugins/filter/k8s_retry_pattern.yml."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.maas.threescale.plugins.module_utils.k8s_status import TRANSIENT_STATUS

# Reason phrases of those statuses, and a connection closed with no answer (urllib3 / http.client).
REASONS = ("Too Many Requests", "Service Unavailable", "Internal Server Error", "Gateway Timeout")
DROPPED = ("Connection aborted", "RemoteDisconnected", "Connection reset", "ConnectionResetError", "Read timed out")


def k8s_retry_pattern(_value=None):
    """kubernetes.core puts the status in msg as "Module failed: <code>", in a Status body as
    "code": <code>, or JSON-escaped inside a per-object error (\\"code\\": <code>). A 4xx
    validation error (400, 403, 404, 409, 422) never matches: it is not retried."""
    codes = "|".join(str(code) for code in TRANSIENT_STATUS)
    return "|".join([
        r'(Module failed: |"code": ?|\\"code\\": ?)(%s)\b' % codes,
        r"\b(%s)\b" % "|".join(REASONS),
        "|".join(DROPPED),
    ])


class FilterModule(object):
    def filters(self):
        return {"k8s_retry_pattern": k8s_retry_pattern}
