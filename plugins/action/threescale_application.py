# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    """Runs the threescale_application module and censors the task's displayed result whenever it
    carries an API key (or, with ``accounts``, a list of keys): the key reaches ``register`` but never the callback output or logs.
    (A module cannot do this itself: ansible-core drops ``_ansible_no_log`` from module returns.)"""

    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        result.update(self._execute_module(module_name=self._task.resolved_action or "maas.threescale.threescale_application",
                                           module_args=self._task.args, task_vars=task_vars))
        if carries_key(result):
            result["_ansible_no_log"] = True
        return result


def carries_key(result):
    """True when the result holds a key: ``user_key``, or any ``applications[].user_key`` (bulk mode)."""
    if result.get("user_key"):
        return True
    apps = result.get("applications")
    return isinstance(apps, list) and any(isinstance(a, dict) and a.get("user_key") for a in apps)
