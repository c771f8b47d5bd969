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

:class:`Promotion` runs those transitions in order against an executor (the action plugin
maas.threescale.proxy_config_promote, which calls kubernetes.core.k8s, cr_wait and threescale_product_info;
a fake one in the unit tests), so the whole state machine is plain Python.

Why: a ProxyConfigPromote is one-shot on master (any error leaves it Failed for good) and retried with
backoff on 3scale 2.14's operator; a Failed one is replaced, and a failure with production already
equal to staging means there was nothing (left) to promote (3scale-operator
controllers/capabilities/proxyconfigpromote_controller.go).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.maas.threescale.plugins.plugin_utils.catalog import promote_requests
from ansible_collections.maas.threescale.plugins.plugin_utils.outcomes import k8s_apply_refusals

UNREADY = ("failed", "timeout")
# The Product annotation that records the config hash last promoted to production.
PROMOTED_ANNOTATION = "maas.threescale/promoted-config"


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
                                 "annotations": {settings.get("annotation") or PROMOTED_ANNOTATION: m.get("config_hash")}}})
    return out


def promoted_state(models, seen, annotation=PROMOTED_ANNOTATION):
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


# ------------------------------------------------------------------------------------ the state machine
class PromotionError(Exception):
    """A call the promotion cannot go on without failed (the Kubernetes or admin API refused to work at
    all, after its retries): the task fails with this message."""


def retried(call, retryable, retries, delay, sleep=time.sleep):
    """``call()`` again while ``retryable(result)`` says the answer is worth another try, at most
    ``retries`` more times, ``delay`` seconds apart (what ``until``/``retries``/``delay`` did in YAML)."""
    result = call()
    for _n in range(max(int(retries), 0)):
        if not retryable(result):
            break
        sleep(delay)
        result = call()
    return result


# The outcome of each model, in the result's ``models``.
PROMOTED = "promoted"                       # a ProxyConfigPromote succeeded
NOTHING = "nothing_to_promote"              # not due, or a failed attempt found production == staging
FAILED = "failed"                           # every attempt failed, or the API refused the PCP
WOULD = "would_promote"                     # check mode: the first attempt's PCP, created as a dry run


class Promotion(object):
    """The ProxyConfigPromote state machine of one task.

    ``executor`` does the calls, each one the module a task would run:

    - ``product_info(system_names)`` -> the threescale_product_info ``products`` (versions, promotion_due)
    - ``create(definitions)`` -> one kubernetes.core.k8s outcome per definition (``error`` when refused;
      ``changed``, ``diff``); a server-side dry run in check mode
    - ``wait(resources)`` -> the cr_wait ``resources`` (state absent/ready/failed/timeout, message)
    - ``delete(definitions)`` -> the Failed PCPs removed (waiting until they are gone)

    and raises :class:`PromotionError` when a call cannot be done at all.

    ``models``: ``{name, system_name, config_hash}`` (other keys ignored); ``promoted``: per model name
    the config hash the Product's annotation records (``{'promoted_config': hash}`` or the hash);
    ``settings``: ``{api_version, namespace}``.
    """

    def __init__(self, executor, models, promoted, settings, attempts=3, timeout=300, check_mode=False):
        self.ex = executor
        self.models = list(models or [])
        self.state = dict((k, v if isinstance(v, dict) else {"promoted_config": v}) for k, v in (promoted or {}).items())
        self.settings = settings
        self.attempts = max(int(attempts), 1)
        self.timeout = timeout
        self.check_mode = bool(check_mode)

    def run(self):
        by_name = dict((m["name"], m) for m in self.models)
        report = dict((m["name"], {"name": m["name"], "system_name": m["system_name"], "outcome": NOTHING,
                                   "attempts": 0, "pcps": [], "messages": []}) for m in self.models)
        changed, diffs, attempts, refused = False, [], [], []
        infos = self.ex.product_info([m["system_name"] for m in self.models]) if self.models else []
        due = promotion_due(self.models, infos, self.state)
        pending, errors = list(due), {}
        for attempt in range(1, (1 if self.check_mode else self.attempts) + 1):
            if not pending:
                break
            pcps = promote_requests([by_name[n] for n in pending], attempt, self.settings)
            outcomes = self.ex.create([p["definition"] for p in pcps])
            changed = changed or any(isinstance(o, dict) and o.get("changed") for o in outcomes)
            diffs.extend(_diffs(pcps, outcomes))
            for p in pcps:
                report[p["model"]]["attempts"] = attempt
                report[p["model"]]["pcps"].append(p["name"])
            # A PCP the API refused (a 4xx: invalid, forbidden) is no promotion error to retry.
            refusals = k8s_apply_refusals([p["definition"] for p in pcps], outcomes, self.settings["namespace"])
            refused_names = set(r["name"] for r in refusals)
            refused.extend(refusals)
            pcps = [p for p in pcps if p["model"] not in refused_names]
            step = {"attempt": attempt, "created": [p["name"] for p in pcps],
                    "refused": sorted(refused_names), "failed": [], "pending": []}
            attempts.append(step)
            if self.check_mode:
                # Nothing to wait for: the dry run shows the promotion; a real one may still fail.
                pending = [n for n in pending if n not in refused_names]
                break
            resources = self.ex.wait([p["wait"] for p in pcps]) if pcps else []
            failed = failed_promotions(pcps, resources)
            step["failed"] = [p["name"] for p in failed]
            failed_models = set(p["model"] for p in failed)
            for p in pcps:
                if p["model"] not in failed_models:
                    report[p["model"]]["outcome"] = PROMOTED
            if not failed:
                pending = []
                break
            self.ex.delete([p["definition"] for p in failed])
            changed = True
            outcome = promotion_outcome(failed, resources, self.ex.product_info([p["system_name"] for p in failed]),
                                        self.timeout)
            errors = merge_errors(errors, outcome["errors"])
            pending = outcome["pending"]
            step["pending"] = list(pending)

        failures = list(refused)
        if not self.check_mode:
            failures.extend(unpromoted_failures(pending, errors, self.attempts))
        failed_names = set(f["name"] for f in failures)
        for name in due:
            r = report[name]
            r["messages"] = _distinct(errors.get(name, []) + [f["message"] for f in failures if f["name"] == name])
            if name in failed_names:
                r["outcome"] = FAILED
            elif self.check_mode:
                r["outcome"] = WOULD
            # else PROMOTED (set when its PCP succeeded) or NOTHING: an attempt failed and production
            # already ran the staging configuration
        return {
            "changed": changed,
            "models": [report[m["name"]] for m in self.models],
            "promoted": [n for n in due if n not in failed_names],
            "failures": failures,  # not "failed": a non-empty list there would fail the task
            "attempts": attempts,
            "max_attempts": 1 if self.check_mode else self.attempts,
            "diff": diffs,
        }


def _distinct(items):
    out = []
    for i in items:
        if i not in out:
            out.append(i)
    return out


def _diffs(pcps, outcomes):
    """The diff kubernetes.core returns per object (with --diff), headed with the object it is of."""
    out = []
    for p, o in zip(pcps, outcomes):
        d = o.get("diff") if isinstance(o, dict) else None
        if isinstance(d, dict) and ("before" in d or "after" in d):
            where = "ProxyConfigPromote %s/%s" % (p["definition"]["metadata"]["namespace"], p["name"])
            out.append({"before": d.get("before") or {}, "after": d.get("after") or {},
                        "before_header": where, "after_header": where})
    return out


def summary(result):
    """One line per model that needed a ProxyConfigPromote, for the task's message."""
    lines = []
    for m in result.get("models") or []:
        if not m.get("attempts"):
            continue
        what = {PROMOTED: "promoted", NOTHING: "nothing left to promote", FAILED: "not promoted",
                WOULD: "would be promoted"}[m["outcome"]]
        lines.append("%s: %s at attempt %s of %s (%s)%s" % (
            m["name"], what, m["attempts"], result.get("max_attempts", "?"), ", ".join(m["pcps"]),
            (": " + "; ".join(m["messages"])) if m["messages"] else ""))
    return lines
