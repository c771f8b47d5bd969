# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""The Kubernetes API statuses worth another try, in one place and free of imports: the transport
(k8s_connection) retries them, and the k8s_retry_pattern filter turns them into the pattern the
playbooks test kubernetes.core's messages with. A filter plugin is loaded in every task's worker
process, so it must not pull in the kubernetes client (about 0.4 s per task)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Rate limiting (429, with Retry-After) and the server-side errors a restarting or overloaded API
# server answers (client-go rest/request.go retries the same set).
TRANSIENT_STATUS = (429, 500, 502, 503, 504)
