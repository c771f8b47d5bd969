# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""What ``default(omit)`` leaves behind where no module argument strips it: a dict of connection
options given to a lookup or a filter, or module_defaults resolved by an action plugin. One rule for
the lookup admin_connection, the filter k8s_access_problem and the action proxy_config_promote."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

PLACEHOLDER_PREFIX = "__omit_place_holder__"


def omitted(value, omit=None):
    """Whether a value stands for "not set": None, or what default(omit) gave - the Omit sentinel of
    ansible-core 2.19 (or ``omit``, the play's own), the placeholder string of earlier versions."""
    if value is None or type(value).__name__ == "_OmitType" or (omit is not None and value is omit):
        return True
    return isinstance(value, str) and (value.startswith(PLACEHOLDER_PREFIX) or (isinstance(omit, str) and value == omit))
