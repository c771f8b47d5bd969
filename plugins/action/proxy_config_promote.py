# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""maas.threescale.proxy_config_promote (documented in plugins/modules/proxy_config_promote.py).

An action plugin, not a module: the promotion needs both the Kubernetes connection options
(kubernetes.core's, with validate_certs, ca_cert, ...) and the 3scale admin ones (also with
validate_certs), which one argument spec cannot hold. So the state machine
(plugin_utils/promotion.py Promotion) runs here, on the controller, and each of its calls is the module a
task would run, with that module's own options: kubernetes.core.k8s (create, delete),
maas.threescale.cr_wait (wait) and maas.threescale.threescale_product_info (versions). ``_execute_module``
does not apply module_defaults, so they are resolved here for each of those modules, with the play's
action groups, exactly as for a task of that module: the connection settings of the playbooks'
``module_defaults`` (group/kubernetes.core.k8s, group/maas.threescale.k8s, group/maas.threescale.threescale)
and the K8S_AUTH_* / THREESCALE_* environment reach each call, and never this task's arguments or result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleActionFail
from ansible.executor import module_common
from ansible.plugins.action import ActionBase

from ansible_collections.maas.threescale.plugins.filter.k8s_retry import k8s_retry_pattern
from ansible_collections.maas.threescale.plugins.plugin_utils import promotion as _p
from ansible_collections.maas.threescale.plugins.plugin_utils.omit import omitted
from ansible_collections.maas.threescale.plugins.plugin_utils.outcomes import k8s_apply_results, k8s_apply_retryable

# How ansible-core completes a task's arguments with module_defaults (its action groups included):
# _apply_action_arg_defaults from 2.19 on (gather_facts, package and service use it for the modules they
# run), get_action_args_with_defaults before.
_APPLY_DEFAULTS = getattr(module_common, "_apply_action_arg_defaults", None)
_ARGS_WITH_DEFAULTS = getattr(module_common, "get_action_args_with_defaults", None)

K8S = "kubernetes.core.k8s"
CR_WAIT = "maas.threescale.cr_wait"
PRODUCT_INFO = "maas.threescale.threescale_product_info"

ARGUMENT_SPEC = dict(
    models=dict(type="list", elements="dict", required=True),
    promoted=dict(type="dict", default={}),
    namespace=dict(type="str", required=True),
    api_version=dict(type="str", default="capabilities.3scale.net/v1beta1"),
    attempts=dict(type="int", default=3),
    timeout=dict(type="float", default=300),
    terminal_failure_regex=dict(type="str", default="no product changes detected|code: 422"),
    k8s_retries=dict(type="int", default=5),
    k8s_retry_delay=dict(type="float", default=2),
)


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        for m in args["models"]:
            missing = [k for k in ("name", "system_name", "config_hash") if not m.get(k)]
            if missing:
                raise AnsibleActionFail("models: every entry needs name, system_name and config_hash; %r lacks %s"
                                        % (m.get("name"), ", ".join(missing)))
        if args["attempts"] < 1:
            raise AnsibleActionFail("attempts must be 1 or more")
        executor = Executor(self, task_vars or {}, args)
        machine = _p.Promotion(executor, args["models"], args["promoted"],
                               {"api_version": args["api_version"], "namespace": args["namespace"]},
                               attempts=args["attempts"], timeout=args["timeout"], check_mode=self._task.check_mode)
        try:
            out = machine.run()
        except _p.PromotionError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        finally:
            if executor.warnings:
                result.setdefault("warnings", []).extend(executor.warnings)
        diff = out.pop("diff")
        if self._task.diff and diff:
            result["diff"] = diff
        result.update(out)
        lines = _p.summary(out)
        result["msg"] = "; ".join(lines) if lines else "no ProxyConfigPromote needed"
        # A promotion that took more than one attempt, or failed, is shown without -v (as each attempt's
        # task was when the promotion was YAML).
        if any(m["attempts"] > 1 or m["outcome"] == _p.FAILED for m in out["models"]):
            result["_ansible_verbose_always"] = True
        return result

    # ---------------------------------------------------------------------------------- sub-modules
    def module_args(self, action, args, task_vars):
        """``args`` completed with the module_defaults a task of ``action`` would get (its action groups
        included), minus omitted values."""
        fqcn = self._shared_loader_obj.module_loader.find_plugin_with_context(
            action, collection_list=self._task.collections).resolved_fqcn or action
        if _APPLY_DEFAULTS is not None:
            full = _APPLY_DEFAULTS(fqcn, self._task, dict(args), self._templar)
        else:
            full = _ARGS_WITH_DEFAULTS(fqcn, dict(args), self._task.module_defaults, self._templar,
                                       action_groups=self._task._parent._play._action_groups)
        omit = task_vars.get("omit")
        return dict((k, v) for k, v in full.items() if not omitted(v, omit))

    def call(self, action, args, task_vars):
        res = self._execute_module(module_name=action, module_args=self.module_args(action, args, task_vars),
                                   task_vars=task_vars)
        res.pop("invocation", None)  # never carried on: the module's own arguments (censored or not)
        if res.get("failed") and res.get("module_stderr"):
            # A module that did not answer (no interpreter, a crash): what ansible-core shows for a task of it.
            res["msg"] = "%s: %s" % (res.get("msg"), str(res["module_stderr"]).strip()[-1000:])
        return res


class Executor(object):
    """The calls of :class:`Promotion`, each a module run with its own options (see the module docstring)."""

    def __init__(self, action, task_vars, args):
        self.action = action
        self.task_vars = task_vars
        self.args = args
        self.transient = k8s_retry_pattern()
        self.warnings = []

    def _run(self, action, args):
        res = self.action.call(action, args, self.task_vars)
        self.warnings.extend(res.get("warnings") or [])
        return res

    def _retried(self, call, retryable):
        return _p.retried(call, retryable, self.args["k8s_retries"], self.args["k8s_retry_delay"])

    def product_info(self, system_names):
        res = self._run(PRODUCT_INFO, {"products": list(system_names)})
        if res.get("failed"):
            raise _p.PromotionError("Reading the products' configuration versions failed: %s" % res.get("msg"))
        return res.get("products") or []

    def create(self, definitions):
        if not definitions:
            return []
        res = self._retried(
            lambda: self._run(K8S, {"state": "present", "apply": True, "continue_on_error": True, "definition": definitions}),
            lambda r: k8s_apply_retryable(r, self.transient))
        if res.get("failed"):
            raise _p.PromotionError("Creating the ProxyConfigPromotes failed: %s" % res.get("msg"))
        return k8s_apply_results(res)

    def wait(self, resources):
        res = self._run(CR_WAIT, {"resources": resources, "timeout": self.args["timeout"], "fail_on_error": False,
                                  "terminal_failure_regex": self.args["terminal_failure_regex"]})
        if res.get("failed"):
            raise _p.PromotionError("Waiting for the ProxyConfigPromotes failed: %s" % res.get("msg"))
        return res.get("resources") or []

    def delete(self, definitions):
        res = self._retried(
            lambda: self._run(K8S, {"state": "absent", "definition": definitions, "wait": True, "wait_sleep": 1,
                                    "wait_timeout": int(self.args["timeout"])}),
            lambda r: bool(r.get("failed")) and bool(_search(self.transient, r.get("msg"))))
        if res.get("failed"):
            raise _p.PromotionError("Removing the Failed ProxyConfigPromotes failed: %s" % res.get("msg"))
        return bool(res.get("changed"))


def _search(pattern, text):
    return re.search(pattern, str(text or ""))
