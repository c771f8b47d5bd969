# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""Filters of the model catalog: one implementation (plugins/plugin_utils/catalog.py) behind
every playbook and role that reads, checks or publishes a model. Each filter is documented in
the sidecar file of its name (plugins/filter/<name>.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.maas.threescale.plugins.plugin_utils import catalog as _catalog


def _models(value, what):
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise AnsibleFilterError("%s: expected a list of models (dicts), got %s" % (what, type(value).__name__))
    for item in value:
        if not isinstance(item, Mapping):
            raise AnsibleFilterError("%s: expected a list of models (dicts), got an item of type %s"
                                     % (what, type(item).__name__))
    return [dict(item) for item in value]


def model_catalog_input(models, single=None):
    """maas_models when given, else the single-model maas_model_* form, else []."""
    return _catalog.select_input(models, dict(single or {}))


def model_catalog_conflict(models, single=None):
    """The error when maas_models and the single-model maas_model_* form are both given, else ""."""
    return _catalog.input_conflict(models, dict(single or {}))


def model_catalog(models, operations=None, auth_mode=None, limits=None, openapi_url=None, accounts=None):
    """Normalised models and the problems found: {'models': [...], 'errors': [...]}."""
    return _catalog.catalog(_models(models, "model_catalog"), operations=operations, auth_mode=auth_mode,
                            limits=limits, openapi_url=openapi_url, accounts=accounts)


def offboard_catalog(models, single=None):
    """The models to offboard, names checked: {'models': [...], 'errors': [...]}."""
    return _catalog.offboard_catalog(models, dict(single or {}))


def model_product_specs(models):
    """The keys of each model that the maas_product role takes."""
    return [_catalog.product_spec(m) for m in _models(models, "model_product_specs")]


def smoke_test_operation(operations):
    """The operation a smoke test calls: completions, else chat, else embeddings, else tokenize."""
    return _catalog.smoke_test_operation(operations)


def model_operations(_value=None):
    """The operations a model can expose, in mapping-rule order (method, path, system_name, friendly_name)."""
    return [dict(op) for op in _catalog.OPERATIONS]


def inference_service_models(isvcs, accounts=None, allow_endpoint=False):
    """KServe InferenceServices as discovered models: ready, namespace, reason, source, model."""
    try:
        return [_catalog.inference_service_model(dict(i), accounts, bool(allow_endpoint))
                for i in _models(isvcs, "inference_service_models")]
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


def discovered_models(listings, accounts=None, allow_endpoint=False):
    """The models of the InferenceServices k8s_info listed; those not Ready, unreadable or untrusted set aside."""
    return _catalog.discovered_models([dict(r) for r in listings or []], accounts, bool(allow_endpoint))


def discovery_accounts_check(discovery, account_result):
    """The discovery without the models whose accounts annotation names an account that does not exist."""
    return _catalog.discovery_accounts_check(dict(discovery or {}), dict(account_result or {}))


def product_resources(models, settings, products=None, current=None):
    """Backend, Product, ActiveDoc and OpenAPI Secret of each normalised model, as data.
    ``current``: the live Product CRs (k8s_info resources), by metadata.name."""
    exists = dict((p.get("product"), p.get("exists")) for p in products or [])
    live = dict(((c.get("metadata") or {}).get("name"), c) for c in current or [] if isinstance(c, dict))
    try:
        return [_catalog.product_resources(m, dict(settings), exists.get(m["system_name"], False), live.get(m["name"]))
                for m in _models(models, "product_resources")]
    except KeyError as exc:
        raise AnsibleFilterError("product_resources: missing %s (models must come from model_catalog, settings"
                                 " need api_version, namespace, the plan, upstream_timeout, cors_allow_origin,"
                                 " activedoc_published and provider_account_ref)" % exc)


def stale_openapi_secrets(secrets, items, namespace):
    """References of the OpenAPI Secrets no ActiveDoc of these models uses any more."""
    return _catalog.stale_openapi_secrets(list(secrets or []), list(items or []), namespace)


def promote_requests(items, attempt, settings):
    """One ProxyConfigPromote per model item for a promotion attempt, with its cr_wait reference."""
    return _catalog.promote_requests(_models(items, "promote_requests"), attempt, dict(settings))


class FilterModule(object):
    def filters(self):
        return {
            "model_catalog_input": model_catalog_input,
            "model_catalog_conflict": model_catalog_conflict,
            "model_catalog": model_catalog,
            "offboard_catalog": offboard_catalog,
            "model_product_specs": model_product_specs,
            "model_operations": model_operations,
            "smoke_test_operation": smoke_test_operation,
            "inference_service_models": inference_service_models,
            "discovered_models": discovered_models,
            "discovery_accounts_check": discovery_accounts_check,
            "product_resources": product_resources,
            "promote_requests": promote_requests,
            "stale_openapi_secrets": stale_openapi_secrets,
        }
