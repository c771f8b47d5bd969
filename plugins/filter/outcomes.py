# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""Filters of what the playbooks and roles report (plugins/plugin_utils/outcomes.py): results,
reports, summaries and failure explanations as data. Each filter is documented in the sidecar file
of its name (plugins/filter/<name>.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.maas.threescale.plugins.filter.k8s_retry import k8s_retry_pattern
from ansible_collections.maas.threescale.plugins.plugin_utils import outcomes as _o
from ansible_collections.maas.threescale.plugins.plugin_utils.omit import omitted


def _plain(value):
    """Ansible's lazy containers and AnsibleUnsafe strings as plain dicts, lists and strings."""
    if isinstance(value, dict):
        return dict((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def k8s_access_problem(failed, namespace, host=None):
    # host: the API server URL, or the connection options (their host). Not given, or omitted (the Omit
    # sentinel of ansible-core 2.19, the placeholder string before): the one kubernetes.core takes from the
    # environment, if any (else the kubeconfig's).
    if isinstance(host, Mapping):
        host = host.get("host")
    if omitted(host) or not isinstance(host, str):
        host = None
    return _o.k8s_access_problem(_plain(failed), namespace, host or os.environ.get("K8S_AUTH_HOST") or None)


def admin_access_problem(failed, admin_url, namespace):
    return _o.admin_access_problem(_plain(failed), admin_url, namespace)


def cr_rejections(resources, timeout):
    return _o.cr_rejections(_plain(resources), timeout)


def product_results(items, infos, failed, plan, promote):
    return _o.product_results(_plain(items), _plain(infos), _plain(failed), plan, bool(promote))


def account_specs(accounts, email_domain, passwords=None, default_password=""):
    return _o.account_specs(_plain(accounts), email_domain, _plain(passwords), default_password)


def onboard_report(onboarded):
    return _o.onboard_report(_plain(onboarded))


def onboard_summary(onboarded, show_keys=False, pruned=None, check_mode=False):
    return _o.onboard_summary(_plain(onboarded), boolean(show_keys, strict=False), _plain(pruned), bool(check_mode))


def lease_summary(lease):
    return _o.lease_summary(_plain(lease))


def lease_problem(lease, namespace, timeout):
    return _o.lease_problem(_plain(lease), namespace, timeout)


def smoke_test_result(response, models, operation=None, endpoint=None, model_id=None):
    return _o.smoke_test_result(_plain(response), _plain(models), operation, endpoint, model_id)


def verify_result(target, product, status, latency_ms=0, check_mode=False, slow_ms=2000):
    return _o.verify_result(_plain(target), _plain(product), _plain(status), latency_ms, bool(check_mode), slow_ms)


def k8s_apply_results(registered):
    return _o.k8s_apply_results(_plain(registered))


def k8s_apply_retryable(result, pattern=None):
    return _o.k8s_apply_retryable(_plain(result), pattern or k8s_retry_pattern())


def k8s_apply_refusals(definitions, results, namespace, label="maas.threescale/model"):
    return _o.k8s_apply_refusals(_plain(definitions), _plain(results), namespace, label)


def usage_products(given, product_crs):
    return _o.usage_products(_plain(given), _plain(product_crs))


def usage_window(period=None, since=None, until=None, granularity=None):
    return _o.usage_window(period, since, until, granularity)


def usage_rows(results):
    return _o.usage_rows(_plain(results))


def usage_csv(rows, period=None):
    return _o.usage_csv(_plain(rows), _plain(period))


def prune_targets(crs):
    return _o.prune_targets(_plain(crs))


def onboard_record(published, applications, smoke_test=None, smoke_enabled=True):
    return _o.onboard_record(_plain(published), _plain(applications), _plain(smoke_test), smoke_enabled)


def access_preview(published, accounts):
    return _o.access_preview(_plain(published), _plain(accounts))


def failed_model(name, phase, failed_result):
    return _o.failed_model(name, phase, _plain(failed_result))


def onboard_failures(failed, total, note=""):
    return _o.onboard_failures(_plain(failed), total, note)


def prune_plan(crs, models, allow_empty=False):
    return _o.prune_plan(_plain(crs), _plain(models), bool(allow_empty))


def verify_targets(crs):
    return _o.verify_targets(_plain(crs))


def existing_accounts(accounts, account_result, check_mode=False):
    return _o.existing_accounts(_plain(accounts), _plain(account_result), check_mode)


def verify_report(results, cluster):
    return _o.verify_report(_plain(results), cluster)


def application_keys(applications):
    return _o.application_keys(_plain(applications))


def object_refs(names, kind, namespace, api_version="v1"):
    return _o.object_refs(_plain(names), kind, namespace, api_version)


def lease_holder(stable=None):
    return _o.lease_holder(stable)


def custom_policy_problem(models, cpds, namespace):
    return _o.custom_policy_problem(_plain(models), _plain(cpds), namespace)


def offboard_objects(pcps, secrets, name, namespace):
    return _o.offboard_objects(_plain(pcps), _plain(secrets), name, namespace)


def access_products(products):
    try:
        return _o.access_products(_plain(products))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


def access_items(published, models):
    return _o.access_items(_plain(published), _plain(models))


def access_accounts(products, accounts=None):
    try:
        return _o.access_accounts(_plain(products), _plain(accounts))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


def access_results(registered):
    return _o.access_results(_plain(registered))


def smoke_test_results(registered, models_registered=None):
    return _o.smoke_test_results(_plain(registered), _plain(models_registered))


def smoke_test_report(results):
    return _o.smoke_test_report(_plain(results))


def smoke_test_targets(published, access, models):
    return _o.smoke_test_targets(_plain(published), _plain(access), _plain(models))


def onboard_batch(published, access, smoke, smoke_enabled=True):
    return _o.onboard_batch(_plain(published), _plain(access), _plain(smoke), boolean(smoke_enabled, strict=False))


class FilterModule(object):
    def filters(self):
        return {
            "k8s_access_problem": k8s_access_problem,
            "admin_access_problem": admin_access_problem,
            "cr_rejections": cr_rejections,
            "product_results": product_results,
            "account_specs": account_specs,
            "onboard_report": onboard_report,
            "onboard_summary": onboard_summary,
            "onboard_record": onboard_record,
            "onboard_failures": onboard_failures,
            "failed_model": failed_model,
            "access_preview": access_preview,
            "smoke_test_result": smoke_test_result,
            "lease_summary": lease_summary,
            "lease_problem": lease_problem,
            "lease_holder": lease_holder,
            "verify_result": verify_result,
            "verify_report": verify_report,
            "k8s_apply_results": k8s_apply_results,
            "k8s_apply_retryable": k8s_apply_retryable,
            "k8s_apply_refusals": k8s_apply_refusals,
            "usage_products": usage_products,
            "usage_rows": usage_rows,
            "usage_window": usage_window,
            "usage_csv": usage_csv,
            "prune_targets": prune_targets,
            "prune_plan": prune_plan,
            "verify_targets": verify_targets,
            "application_keys": application_keys,
            "existing_accounts": existing_accounts,
            "object_refs": object_refs,
            "offboard_objects": offboard_objects,
            "custom_policy_problem": custom_policy_problem,
            "access_products": access_products,
            "access_accounts": access_accounts,
            "access_items": access_items,
            "access_results": access_results,
            "smoke_test_results": smoke_test_results,
            "smoke_test_targets": smoke_test_targets,
            "smoke_test_report": smoke_test_report,
            "onboard_batch": onboard_batch,
        }
