# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""Filters of the maas_product role's promotion decisions (plugins/plugin_utils/promotion.py). Each filter
is documented in the sidecar file of its name (plugins/filter/<name>.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.maas.threescale.plugins.filter.outcomes import _plain
from ansible_collections.maas.threescale.plugins.plugin_utils import promotion as _p


def promotion_due(models, infos, state):
    return _p.promotion_due(_plain(models), _plain(infos), _plain(state))


def failed_promotions(pcps, wait_resources):
    return _p.failed_promotions(_plain(pcps), _plain(wait_resources))


def promotion_outcome(failed, wait_resources, infos, timeout, errors=None):
    out = _p.promotion_outcome(_plain(failed), _plain(wait_resources), _plain(infos), timeout)
    out["errors"] = _p.merge_errors(_plain(errors), out["errors"])
    return out


def unpromoted_failures(pending, errors, attempts):
    return _p.unpromoted_failures(_plain(pending), _plain(errors), attempts)


def promoted_annotations(models, promoted, settings, check_mode=False):
    return _p.promoted_annotations(_plain(models), _plain(promoted), _plain(settings), bool(check_mode))


def promoted_state(models, seen, annotation=None):
    return _p.promoted_state(_plain(models), _plain(seen), annotation or _p.PROMOTED_ANNOTATION)


def production_behind(models, infos):
    return _p.production_behind(_plain(models), _plain(infos))


class FilterModule(object):
    def filters(self):
        return {
            "promotion_due": promotion_due,
            "failed_promotions": failed_promotions,
            "promotion_outcome": promotion_outcome,
            "unpromoted_failures": unpromoted_failures,
            "promoted_annotations": promoted_annotations,
            "promoted_state": promoted_state,
            "production_behind": production_behind,
        }
