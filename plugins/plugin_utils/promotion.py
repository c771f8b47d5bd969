# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""The decisions of the maas_product role's promotion (roles/maas_product/tasks/promote*.yml), one
function per transition; the role runs the Kubernetes and admin API calls between them.

    due      = promotion_due(models, infos, state)          which models need a promotion at all
    (attempt n: create a ProxyConfigPromote per pending model, cr_wait them)
    failed   = failed_promotions(pcps, wait_resources)      the PCPs the operator marked Failed (or timed out)
    (delete those PCPs, read the products' versions)
    outcome  = promotion_outcome(failed, wait_resources, infos, timeout)
               -> errors (the operator's message per model, with the versions) and pending (still behind)
    (repeat while pending, at most N attempts)
    unpromoted_failures(pending, errors, attempts)           the models set aside, with every message
    promoted_annotations(models, promoted, settings)          the promoted-config hash written on each Product

Why: a ProxyConfigPromote is one-shot on master (any error leaves it Failed for good) and retried with
backoff on 3scale 2.14's operator; a Failed one is replaced, and a failure with production already
equal to staging means there was nothing (left) to promote (3scale-operator
controllers/capabilities/proxyconfigpromote_controller.go).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

UNREADY = ("failed", "timeout")


def _by(items, key):
    return dict((i.get(key), i) for i in items or [])


def promotion_due(models, infos, state):
    """Names of the models whose configuration is not in production: staging ahead of production, no
    production configuration yet, or specs never promoted (their hash differs from the annotation the
    role writes after each promotion; the versions alone miss a change an interrupted run applied)."""
    state = state or {}
    due = []
    for m, info in zip(models or [], infos or []):
        promoted = (state.get(m["name"]) or {}).get("promoted_config")
        if info.get("promotion_due") or info.get("production_version") is None or promoted != m.get("config_hash"):
            due.append(m["name"])
    return due


def failed_promotions(pcps, wait_resources):
    """The ProxyConfigPromote requests whose wait ended failed or timed out."""
    bad = set(r.get("name") for r in wait_resources or [] if r.get("state") in UNREADY)
    return [p for p in pcps or [] if p.get("name") in bad]


def promotion_outcome(failed, wait_resources, infos, timeout):
    """After the failed PCPs were removed and the versions read again: ``{'errors': {model: [message]},
    'pending': [model]}``. A model whose production version now equals staging is done (nothing was left
    to promote, or the promotion happened and its answer was lost); the others are still behind."""
    seen = _by(wait_resources, "name")
    info_of = _by(infos, "product")
    errors, pending = {}, []
    for pcp in failed or []:
        r = seen.get(pcp["name"]) or {}
        info = info_of.get(pcp["system_name"]) or {}
        what = r.get("message") if r.get("state") == "failed" else (
            "ProxyConfigPromote %s was not Ready after %s s" % (pcp["name"], timeout))
        errors.setdefault(pcp["model"], []).append("%s (production version %s, staging %s)" % (
            what, info.get("production_version"), info.get("staging_version")))
        if info.get("production_version") is None or info.get("production_version") != info.get("staging_version"):
            pending.append(pcp["model"])
    return {"errors": errors, "pending": pending}


def merge_errors(errors, new):
    """The messages of every attempt, per model, in order."""
    out = dict((k, list(v)) for k, v in (errors or {}).items())
    for k, v in (new or {}).items():
        out.setdefault(k, []).extend(v)
    return out


def unpromoted_failures(pending, errors, attempts):
    """The models every attempt failed for, as failures (name, phase, message with each distinct message)."""
    out = []
    for name in pending or []:
        seen = []
        for m in (errors or {}).get(name, []):
            if m not in seen:
                seen.append(m)
        out.append({"name": name, "phase": "ProxyConfigPromote",
                    "message": "The 3scale operator could not promote %s after %s ProxyConfigPromote attempt(s): %s"
                               % (name, attempts, "; ".join(seen))})
    return out


def promoted_annotations(models, promoted, settings, check_mode=False):
    """Patches that record each promoted model's config hash on its Product (the next run compares it).
    In check mode a new model has no Product to annotate yet."""
    promoted = set(promoted or [])
    out = []
    for m in models or []:
        if m["name"] not in promoted or (check_mode and not m.get("exists")):
            continue
        out.append({"apiVersion": settings["api_version"], "kind": "Product",
                    "metadata": {"name": m["name"], "namespace": settings["namespace"],
                                 "labels": {"maas.threescale/model": m["name"]},
                                 "annotations": {settings["annotation"]: m.get("config_hash")}}})
    return out


def promoted_state(models, seen, annotation):
    """Per model name, ``{'promoted_config': hash}`` from its Product as last seen: a cr_wait result
    (``name``, ``annotations``) or, in check mode, the dry-run object (``metadata``)."""
    by_name = {}
    for obj in seen or []:
        if not isinstance(obj, dict):
            continue
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else None
        name = meta.get("name") if meta else obj.get("name")
        annotations = (meta or {}).get("annotations") if meta else obj.get("annotations")
        if name is not None and name not in by_name:
            by_name[name] = annotations or {}
    return dict((m["name"], {"promoted_config": by_name.get(m["name"], {}).get(annotation, "")}) for m in models or [])


def production_behind(models, infos):
    """The models whose production configuration is still not the latest staging one after promotion."""
    info_of = _by(infos, "product")
    out = []
    for m in models or []:
        info = info_of.get(m["system_name"]) or {}
        prod, staging = info.get("production_version"), info.get("staging_version")
        if prod is None or prod != staging:
            out.append({"name": m["name"], "phase": "promotion",
                        "message": "Product %s: production configuration version %s differs from staging %s after "
                                   "promotion." % (m["system_name"], prod, staging)})
    return out
