# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""maas.threescale.workshop_credentials (documented in plugins/modules/workshop_credentials.py).

An action plugin, not a module: its result carries the workshop passwords, and a module's
AnsibleModule would mask in its own result every value of a no_log option (the given password, the
chosen ones), so they could not reach the account creation. Here a result that holds passwords (the
first step's) is marked no_log whatever the task says, so no callback prints it at any verbosity; a
failure's message and the second step's result (passwords masked in its diff) hold none and are shown.
The file work is plugin_utils/credentials_file.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.maas.threescale.plugins.plugin_utils import credentials_file as _c

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    users=dict(type="list", elements="str", required=True),
    password=dict(type="str", default="", no_log=True),
    password_length=dict(type="int", default=24, no_log=False),
    models=dict(type="list", elements="dict"),
    created=dict(type="list", elements="raw", default=[]),
    chosen=dict(type="dict", default={}, no_log=True),
)


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if args["password_length"] < 8:
            result.update(failed=True, msg="password_length must be at least 8 (it is %d)." % args["password_length"])
            return result
        try:
            if args["models"] is None:
                result.update(_c.plan(args["path"], args["users"], args["password"], args["password_length"]))
                result["_ansible_no_log"] = True
            else:
                outcome = _c.update(args["path"], args["users"], args["models"], args["chosen"], args["created"],
                                    check_mode=self._task.check_mode)
                diff = outcome.pop("diff")
                result.update(outcome)
                if self._task.diff:
                    result["diff"] = diff
        except _c.CredentialsError as exc:
            result.update(failed=True, msg=str(exc))
        return result
