# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""The test a task's ``until`` asks of a kubernetes.core result: done (it succeeded, or failed with
an answer not worth another try). The pattern is the collection's one definition of retryable
Kubernetes errors (plugins/filter/k8s_retry.py). Documented in plugins/test/k8s_settled.yml."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.maas.threescale.plugins.filter.k8s_retry import k8s_retry_pattern

_RETRYABLE = re.compile(k8s_retry_pattern())


def k8s_settled(result):
    """True when a registered result needs no other try: it did not fail, or its message is not
    one of the transient answers (429/5xx, a connection closed with no answer)."""
    if not isinstance(result, dict):
        return True
    if not result.get("failed"):
        return True
    return not _RETRYABLE.search(str(result.get("msg", "")))


class TestModule(object):
    def tests(self):
        return {"k8s_settled": k8s_settled}
