# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""Readiness of 3scale operator CRs and a list+watch engine that waits for many of them at once.

No Kubernetes client is imported here: the engine reads through a *source* object with two methods,
``list(group) -> (objects, resource_version)`` and ``watch(group, resource_version, timeout) ->
iterator of (event_type, object)``, which raise `Gone` (HTTP 410: list again), `Transient` (429,
5xx, connection lost: retry) or `Fatal`. The module cr_wait gives it a source built on the
``kubernetes`` client; the unit tests give it a fake one.

Readiness follows the 3scale operator (3scale-operator apis/capabilities/v1beta1/*_types.go,
controllers/capabilities/*_status_reconciler.go): a CR is ready when its condition (Synced for
Backend and Product, Ready otherwise) is True *for the current spec* (status.observedGeneration ==
metadata.generation; ProxyConfigPromote has no observedGeneration). Invalid=True never heals;
Failed=True heals unless its message matches the terminal regex (porta's 422, a promotion with no
changes). A ProxyConfigPromote with deleteCR: true deletes itself in the same reconcile that makes it
Ready, so "gone" counts as success where the caller says so (absent_ok).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import threading
import time

try:
    import queue
except ImportError:  # pragma: no cover - Python 2 is not supported by the collection
    import Queue as queue  # noqa: N813

DEFAULT_API_VERSION = "capabilities.3scale.net/v1beta1"
DEFAULT_TERMINAL_FAILURE_REGEX = "no product changes detected|code: 422"
SYNCED_KINDS = ("Backend", "Product")
# Kinds whose status carries no observedGeneration (upstream proxyconfigpromote_status_reconciler.go).
NO_GENERATION_KINDS = ("ProxyConfigPromote",)
SUCCESS = ("ready", "absent", "tolerated")
FINAL = SUCCESS + ("failed",)


class Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410 Expired): list again."""


class Transient(Exception):
    """An error worth retrying (429, 5xx, connection lost); retry_after in seconds if the server said."""

    def __init__(self, message, retry_after=None):
        super(Transient, self).__init__(message)
        self.retry_after = retry_after


class Fatal(Exception):
    """An error no retry will fix (401, 403, unknown kind)."""


def default_condition(kind):
    return "Synced" if kind in SYNCED_KINDS else "Ready"


class Target(object):
    """One CR to wait for, with what counts as its success."""

    def __init__(self, kind, name, namespace, api_version=None, condition=None, absent_ok=False,
                 tolerate_message_regex=None):
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.api_version = api_version or DEFAULT_API_VERSION
        self.condition = condition or default_condition(kind)
        self.absent_ok = bool(absent_ok)
        self.tolerate = re.compile(tolerate_message_regex) if tolerate_message_regex else None
        # Filled while waiting.
        self.obj = None
        self.seen = False          # the first list of its group has answered
        self.state = "waiting"
        self.message = ""
        self.ready_at = None

    @property
    def group(self):
        return (self.api_version, self.kind, self.namespace)

    def describe(self):
        return "%s %s/%s" % (self.kind, self.namespace, self.name)


def _true_messages(conditions, ctype):
    return [c.get("message") or "" for c in conditions
            if c.get("type") == ctype and str(c.get("status")) == "True"]


def evaluate(target, obj, terminal_regex):
    """(state, message) of one CR as the operator left it; obj None = not found.

    state: ready | absent | tolerated | failed | waiting. Failed wins over the others (as the role's
    former poll did: an Invalid CR is never "ready"), then ready, then tolerated."""
    if obj is None:
        if target.absent_ok:
            return "absent", "%s is gone (deleted after success)" % target.describe()
        return "waiting", "%s not found" % target.describe()
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if target.kind not in NO_GENERATION_KINDS and observed != generation:
        return "waiting", "status is for generation %s, the spec is at generation %s" % (observed, generation)
    failed = _true_messages(conditions, "Failed")
    errors = [m or "Invalid" for m in _true_messages(conditions, "Invalid")]
    errors += [m for m in failed if re.search(terminal_regex, m)]
    if errors:
        unique = []
        for m in errors:
            if m not in unique:
                unique.append(m)
        return "failed", "; ".join(unique)
    if _true_messages(conditions, target.condition):
        return "ready", ""
    if target.tolerate and any(target.tolerate.search(m) for m in failed):
        return "tolerated", "; ".join(m for m in failed if target.tolerate.search(m))
    pending = [m for t in ("Failed", "Orphan", "Waiting") for m in _true_messages(conditions, t) if m]
    return "waiting", "; ".join(pending) or "%s is not %s=True yet" % (target.describe(), target.condition)


def result_of(target, started, timeout):
    obj = target.obj or {}
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    state, message = target.state, target.message
    if state == "waiting":
        state = "timeout"
        message = "%s was not %s after %s s; last conditions: %s%s" % (
            target.describe(), target.condition, timeout, json.dumps(conditions, sort_keys=True),
            "" if target.obj is not None else " (%s)" % target.message)
    return {
        "kind": target.kind, "name": target.name, "namespace": target.namespace,
        "api_version": target.api_version, "condition": target.condition,
        "state": state, "message": message, "conditions": conditions,
        "generation": meta.get("generation"), "observed_generation": status.get("observedGeneration"),
        "annotations": meta.get("annotations") or {},
        "ready_at": target.ready_at,
        "waited": round((target.ready_at or time.time()) - started, 3),
    }


class Waiter(object):
    """Waits for targets with one list+watch per (api_version, kind, namespace).

    One thread per group lists, then watches from the list's resourceVersion and hands every object
    it sees to the main thread through a queue; the main thread evaluates the targets that object
    concerns and returns as soon as every target is final (or one failed, when fail_on_error)."""

    def __init__(self, source, targets, timeout, terminal_regex=DEFAULT_TERMINAL_FAILURE_REGEX,
                 fail_on_error=True, watch_timeout=60, clock=time.time, sleep=None):
        self.source = source
        self.targets = targets
        self.timeout = timeout
        self.terminal = re.compile(terminal_regex)
        self.fail_on_error = fail_on_error
        self.watch_timeout = watch_timeout
        self.clock = clock
        self.events = queue.Queue()
        self.stop = threading.Event()
        self.sleep = sleep or self.stop.wait
        self.fatal = None
        self.errors = {}           # group -> last transient error (shown on timeout)
        self.stats = {"lists": 0, "watches": 0, "gone": 0, "retries": 0, "events": 0}

    # --- group threads -------------------------------------------------------------------------
    def _pause(self, exc, attempt, deadline):
        """Sleep before retrying a transient error: the server's Retry-After, else capped backoff."""
        self.stats["retries"] += 1
        delay = exc.retry_after if exc.retry_after is not None else min(0.1 * (2 ** attempt), 2.0)
        delay = max(0.0, min(float(delay), deadline - time.monotonic()))
        self.sleep(delay)

    def _follow(self, group, deadline):
        attempt = 0
        rv = None
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                if rv is None:
                    self.stats["lists"] += 1
                    objs, rv = self.source.list(group)
                    self.events.put(("list", group, objs))
                    attempt = 0
                # A watch that ends cleanly (server timeout) resumes from the last resourceVersion,
                # as client-go's reflector does; only 410 Gone makes it list again.
                remaining = max(1, int(min(self.watch_timeout, deadline - time.monotonic() + 1)))
                self.stats["watches"] += 1
                for etype, obj in self.source.watch(group, rv, remaining):
                    if self.stop.is_set():
                        return
                    new_rv = ((obj or {}).get("metadata") or {}).get("resourceVersion")
                    if new_rv:
                        rv = new_rv
                    if etype in ("ADDED", "MODIFIED", "DELETED"):
                        self.events.put(("event", group, (etype, obj)))
                attempt = 0
            except Gone:
                self.stats["gone"] += 1
                rv = None
            except Transient as exc:
                self.events.put(("error", group, str(exc)))
                self._pause(exc, attempt, deadline)
                attempt += 1
                # After a broken list or watch, list again: events may have been missed.
                rv = None
            except Fatal as exc:
                self.events.put(("fatal", group, str(exc)))
                return
            except Exception as exc:  # a bug or an unexpected client error: report, never hang
                self.events.put(("fatal", group, "%s: %s" % (type(exc).__name__, exc)))
                return

    # --- main thread ---------------------------------------------------------------------------
    def _update(self, target, obj):
        target.obj = obj
        target.seen = True
        if target.state in FINAL:
            return  # a CR counts once it has been final (the wait ends for it then)
        state, message = evaluate(target, obj, self.terminal)
        target.message = message
        if state != "waiting":
            target.state = state
            target.ready_at = round(self.clock(), 3)

    def _apply(self, kind, group, payload):
        mine = [t for t in self.targets if t.group == group]
        if kind == "list":
            by_name = dict(((o.get("metadata") or {}).get("name"), o) for o in payload)
            for t in mine:
                self._update(t, by_name.get(t.name))
        elif kind == "event":
            etype, obj = payload
            name = (obj.get("metadata") or {}).get("name")
            for t in mine:
                if t.name == name:
                    self._update(t, None if etype == "DELETED" else obj)
        elif kind == "error":
            self.errors[group] = payload
        elif kind == "fatal":
            self.fatal = "%s %s in %s: %s" % (group[0], group[1], group[2], payload)

    def done(self):
        if self.fatal:
            return True
        if self.fail_on_error and any(t.state == "failed" for t in self.targets):
            return True
        return all(t.state in FINAL for t in self.targets)

    def run(self):
        """Wait; returns the per-target results (in the order given)."""
        started = self.clock()
        deadline = time.monotonic() + self.timeout
        groups = []
        for t in self.targets:
            if t.group not in groups:
                groups.append(t.group)
        threads = [threading.Thread(target=self._follow, args=(g, deadline), name="watch-%s-%s" % (g[1], g[2]))
                   for g in groups]
        for th in threads:
            th.daemon = True
            th.start()
        try:
            while not self.done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    kind, group, payload = self.events.get(timeout=remaining)
                except queue.Empty:
                    break
                self.stats["events"] += 1
                self._apply(kind, group, payload)
                # Drain what already arrived before deciding, so one pass sees a whole list.
                while not self.done():
                    try:
                        kind, group, payload = self.events.get_nowait()
                    except queue.Empty:
                        break
                    self.stats["events"] += 1
                    self._apply(kind, group, payload)
        finally:
            self.stop.set()
        results = [result_of(t, started, self.timeout) for t in self.targets]
        for r, t in zip(results, self.targets):
            if r["state"] == "timeout" and self.errors.get(t.group):
                r["message"] += "; last API error: %s" % self.errors[t.group]
        return results
