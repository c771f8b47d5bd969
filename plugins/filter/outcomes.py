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

from ansible_collections.maas.threescale.plugins.filter.k8s_retry import k8s_retry_pattern
from ansible_collections.maas.threescale.plugins.plugin_utils import outcomes as _o


def _plain(value):
    """Ansible's lazy containers and AnsibleUnsafe strings as plain dicts, lists and strings."""
    if isinstance(value, dict):
        return dict((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def k8s_access_problem(failed, namespace, host=None):
    return _o.k8s_access_problem(_plain(failed), namespace, host)


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


def onboard_summary(onboarded, show_keys=False):
    return _o.onboard_summary(_plain(onboarded), bool(show_keys))


def lease_summary(lease):
    return _o.lease_summary(_plain(lease))


def lease_problem(lease, namespace, timeout):
    return _o.lease_problem(_plain(lease), namespace, timeout)


def smoke_test_result(response, models, operation, endpoint, model_id):
    return _o.smoke_test_result(_plain(response), _plain(models), operation, endpoint, model_id)


def verify_result(target, product, status, latency_ms, check_mode=False, slow_ms=2000):
    return _o.verify_result(_plain(target), _plain(product), status, latency_ms, bool(check_mode), slow_ms)


def k8s_apply_results(registered):
    return _o.k8s_apply_results(_plain(registered))


def k8s_apply_retryable(result, pattern=None):
    return _o.k8s_apply_retryable(_plain(result), pattern or k8s_retry_pattern())


def k8s_apply_refusals(definitions, results, namespace, label="maas.threescale/model"):
    return _o.k8s_apply_refusals(_plain(definitions), _plain(results), namespace, label)


def usage_products(given, product_crs):
    return _o.usage_products(_plain(given), _plain(product_crs))


def usage_rows(results):
    return _o.usage_rows(_plain(results))


def usage_csv(rows, period=None):
    return _o.usage_csv(_plain(rows), _plain(period))


def prune_targets(crs):
    return _o.prune_targets(_plain(crs))


def verify_targets(crs):
    return _o.verify_targets(_plain(crs))


def application_keys(applications):
    return _o.application_keys(_plain(applications))


def object_refs(names, kind, namespace, api_version="v1"):
    return _o.object_refs(_plain(names), kind, namespace, api_version)


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
            "smoke_test_result": smoke_test_result,
            "lease_summary": lease_summary,
            "lease_problem": lease_problem,
            "verify_result": verify_result,
            "k8s_apply_results": k8s_apply_results,
            "k8s_apply_retryable": k8s_apply_retryable,
            "k8s_apply_refusals": k8s_apply_refusals,
            "usage_products": usage_products,
            "usage_rows": usage_rows,
            "usage_csv": usage_csv,
            "prune_targets": prune_targets,
            "verify_targets": verify_targets,
            "application_keys": application_keys,
            "object_refs": object_refs,
        }
