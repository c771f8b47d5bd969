# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""Locking with coordination.k8s.io/v1 Leases, for several Leases in one module run.

The rules are client-go's leader election (tools/leaderelection/leaderelection.go tryAcquireOrRenew,
resourcelock/leaselock.go): a Lease is held while renewTime + leaseDurationSeconds is in the future;
a free name is taken with a create (a 409 AlreadyExists means another run was first); a Lease with no
holder, an expired one or one held by our own identity is taken with an update at the
resourceVersion read (a 409 Conflict means another run was first); a holder that finds its own
identity keeps acquireTime and leaseTransitions, any other take-over adds one transition.

This file has no Ansible or Kubernetes client calls: the module gives it a transport
(method, path, body, content type) -> (status, decoded body, headers) and a clock, so the
decisions are unit-tested without a cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import time

from ansible_collections.maas.threescale.plugins.module_utils import k8s_connection
from ansible_collections.maas.threescale.plugins.module_utils.k8s_status import TRANSIENT_STATUS

MICRO_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
MANAGED_BY = {"app.kubernetes.io/managed-by": "maas.threescale"}


class TransientError(Exception):
    """The request got no answer (connection refused, reset or cut off): it may or may not have happened."""


class LeaseError(Exception):
    def __init__(self, msg, **details):
        super(LeaseError, self).__init__(msg)
        self.msg = msg
        self.details = details


def micro_time(now):
    """metav1.MicroTime as the API server writes it (RFC 3339, microseconds, UTC)."""
    return now.astimezone(UTC).strftime(MICRO_TIME_FORMAT)


class _Utc(datetime.tzinfo):
    def utcoffset(self, dt):
        return datetime.timedelta(0)

    def dst(self, dt):
        return datetime.timedelta(0)

    def tzname(self, dt):
        return "UTC"


UTC = _Utc()


def parse_time(value):
    """A MicroTime or Time string as datetime in UTC, None when empty or unreadable."""
    if not value:
        return None
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    main, sep, rest = text.partition(".")
    offset = ""
    frac = ""
    if sep:
        digits = ""
        for i, ch in enumerate(rest):
            if not ch.isdigit():
                offset = rest[i:]
                break
            digits += ch
        frac = (digits + "000000")[:6]
    else:
        if len(main) > 19:
            main, offset = main[:19], main[19:]
    try:
        when = datetime.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    if frac:
        when = when.replace(microsecond=int(frac))
    delta = datetime.timedelta(0)
    if offset:
        sign = -1 if offset[0] == "-" else 1
        try:
            hours, minutes = offset[1:].split(":")
            delta = sign * datetime.timedelta(hours=int(hours), minutes=int(minutes))
        except ValueError:
            return None
    return (when - delta).replace(tzinfo=UTC)


def expires_at(lease):
    """When the Lease stops being held: (renewTime or acquireTime) + leaseDurationSeconds.
    None for a Lease with no time or no duration: it holds nothing (stale)."""
    spec = (lease or {}).get("spec") or {}
    since = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds")
    if since is None or not isinstance(duration, int) or duration <= 0:
        return None
    return since + datetime.timedelta(seconds=duration)


def decide(lease, holder, now):
    """What to do with one Lease as read (None: absent):
    create | take_own | take_free | take_expired | wait."""
    if not lease:
        return "create"
    seen = ((lease.get("spec") or {}).get("holderIdentity")) or ""
    if seen == holder:
        return "take_own"
    if not seen:
        return "take_free"
    until = expires_at(lease)
    if until is None or until <= now:
        return "take_expired"
    return "wait"


def lease_body(name, namespace, holder, duration, now, old=None):
    """The Lease this run writes: a new one, or the take-over of `old` at its resourceVersion."""
    stamp = micro_time(now)
    metadata = {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)}
    spec = {"holderIdentity": holder, "leaseDurationSeconds": int(duration), "acquireTime": stamp,
            "renewTime": stamp, "leaseTransitions": 0}
    if old:
        omd = old.get("metadata") or {}
        ospec = old.get("spec") or {}
        labels = dict(omd.get("labels") or {})
        labels.update(MANAGED_BY)
        metadata["labels"] = labels
        metadata["resourceVersion"] = omd.get("resourceVersion")
        transitions = ospec.get("leaseTransitions") if isinstance(ospec.get("leaseTransitions"), int) else 0
        if (ospec.get("holderIdentity") or "") == holder:
            # leaderelection.go: the holder renewing keeps acquireTime and the transition count
            spec["acquireTime"] = ospec.get("acquireTime") or stamp
            spec["leaseTransitions"] = transitions
        else:
            spec["leaseTransitions"] = transitions + 1
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}


def held_entry(lease):
    md = lease.get("metadata") or {}
    return {"name": md.get("name"), "uid": md.get("uid"), "resource_version": md.get("resourceVersion")}


def status_reason(body):
    return (body or {}).get("reason") if isinstance(body, dict) else None


def status_message(status, body):
    if isinstance(body, dict) and body.get("message"):
        return "HTTP %s %s: %s" % (status, body.get("reason") or "", body["message"])
    return "HTTP %s: %s" % (status, str(body)[:300])


def retry_after(headers, default):
    """Seconds from a Retry-After header (capped), else the default delay."""
    value = k8s_connection.retry_after(headers)
    return default if value is None else value


class LeaseApi:
    """Lease requests with transient errors retried (429 with Retry-After, 5xx, no answer)."""

    def __init__(self, transport, namespace, retries=5, retry_delay=2.0, sleep=time.sleep):
        self.transport = transport
        self.namespace = namespace
        self.retries = max(int(retries), 0)
        self.retry_delay = float(retry_delay)
        self.sleep = sleep
        self.requests = 0
        self.writes = 0
        self.retried = 0
        self.retry_log = []

    def path(self, name=None):
        base = "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % self.namespace
        return base + ("/" + name if name else "")

    def call(self, method, path, body=None, content_type=None):
        """(status, body, ambiguous): ambiguous is True when an earlier attempt of this request got
        no answer or a 5xx, so it may have been carried out. Every retry is noted in self.retry_log."""
        ambiguous = False
        what = "%s %s" % (method, path)
        if method == "POST" and isinstance(body, dict):
            what += " (Lease %s)" % ((body.get("metadata") or {}).get("name"))
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            if method != "GET":
                self.writes += 1
            try:
                status, data, headers = self.transport(method, path, body, content_type)
            except TransientError as e:
                if attempt > self.retries:
                    raise LeaseError("The Kubernetes API did not answer %s %s after %d attempts: %s"
                                     % (method, path, attempt, e))
                ambiguous = True
                self.retried += 1
                self.retry_log.append("%s got no answer (%s); retried (attempt %d of %d)"
                                      % (what, e, attempt + 1, self.retries + 1))
                self.sleep(self.retry_delay)
                continue
            if status in TRANSIENT_STATUS and attempt <= self.retries:
                ambiguous = ambiguous or status != 429
                self.retried += 1
                delay = retry_after(headers, self.retry_delay)
                self.retry_log.append("%s answered %s; retried in %s s (attempt %d of %d)"
                                      % (what, status_message(status, data), delay, attempt + 1, self.retries + 1))
                self.sleep(delay)
                continue
            return status, data, ambiguous

    def get(self, name):
        status, data, _amb = self.call("GET", self.path(name))
        if status == 404:
            return None
        if status != 200:
            raise LeaseError("Cannot read the Lease %s/%s: %s" % (self.namespace, name, status_message(status, data)))
        return data


class LeaseLocker:
    """Acquire, renew and release a list of Leases for one holder."""

    def __init__(self, api, holder, duration, clock=None, sleep=time.sleep, monotonic=time.monotonic):
        self.api = api
        self.ns = api.namespace
        self.holder = holder
        self.duration = int(duration)
        self.clock = clock or (lambda: datetime.datetime.now(UTC))
        self.sleep = sleep
        self.monotonic = monotonic
        self.held = {}       # name -> Lease as last written by this run
        self.renewed_at = {}  # name -> monotonic time of the last write
        self.report = []
        self.wait_timeout = 0
        self.lost = []

    # -- acquire -------------------------------------------------------------------------------
    def plan(self, names):
        """Check mode: read each Lease, say what a real run would do, write nothing."""
        now = self.clock()
        out = []
        for name in sorted(set(names)):
            lease = self.api.get(name)
            action = decide(lease, self.holder, now)
            seen = ((lease or {}).get("spec") or {}).get("holderIdentity")
            entry = {"name": name, "action": action, "holder_seen": seen}
            if action == "wait":
                entry["expires"] = micro_time(expires_at(lease))
            out.append(entry)
        return out

    def acquire(self, names, wait_timeout, poll_interval):
        self.wait_timeout = wait_timeout
        deadline = self.monotonic() + float(wait_timeout)
        for name in sorted(set(names)):
            try:
                self._acquire_one(name, deadline, float(poll_interval))
            except LeaseError:
                self.release_all_taken()
                raise
        return self.report

    def _acquire_one(self, name, deadline, poll):
        waited_from = None
        last_seen = None
        conflicts = 0
        while True:
            if conflicts > 20:
                raise LeaseError("Lease %s/%s: %d write conflicts in a row; another client keeps writing it."
                                 % (self.ns, name, conflicts), name=name)
            lease = self.api.get(name)
            now = self.clock()
            action = decide(lease, self.holder, now)
            if action == "wait":
                last_seen = lease
                left = deadline - self.monotonic()
                if left <= 0:
                    spec = lease.get("spec") or {}
                    raise LeaseError(
                        "Lease %s/%s is held by %s (renewed %s, for %s s); it was not released nor expired within "
                        "%s s." % (self.ns, name, spec.get("holderIdentity"), spec.get("renewTime") or spec.get("acquireTime"),
                                   spec.get("leaseDurationSeconds"), self.wait_timeout),
                        name=name, holder=spec.get("holderIdentity"))
                if waited_from is None:
                    waited_from = self.monotonic()
                until_expiry = (expires_at(lease) - now).total_seconds()
                self.renew_due()
                self.sleep(max(0.05, min(poll, left, until_expiry + 0.05)))
                continue
            if action == "create":
                status, data, _amb = self.api.call("POST", self.api.path(), lease_body(name, self.ns, self.holder, self.duration, now))
                if status == 409:
                    conflicts += 1
                    continue   # AlreadyExists: another run (or our own unanswered attempt) created it: read again
                if status != 201:
                    raise LeaseError("Cannot create the Lease %s/%s: %s" % (self.ns, name, status_message(status, data)), name=name)
            else:
                body = lease_body(name, self.ns, self.holder, self.duration, now, old=lease)
                status, data, _amb = self.api.call("PUT", self.api.path(name), body)
                if status in (409, 404):
                    conflicts += 1
                    continue   # Conflict: someone wrote it since our read (or deleted it): read again
                if status not in (200, 201):
                    raise LeaseError("Cannot take over the Lease %s/%s: %s" % (self.ns, name, status_message(status, data)),
                                     name=name)
            self.held[name] = data
            self.renewed_at[name] = self.monotonic()
            seen = ((lease or last_seen or {}).get("spec") or {}).get("holderIdentity")
            self.report.append({"name": name, "action": action, "holder_seen": seen,
                                "waited": round(self.monotonic() - waited_from, 3) if waited_from is not None else 0.0,
                                "lease": data})
            return

    def renew_due(self):
        """While waiting for a later Lease, keep the ones taken from expiring (renew at half their duration)."""
        for name in sorted(self.held):
            if self.monotonic() - self.renewed_at[name] >= self.duration / 2.0:
                self.held[name] = self.renew_one(name, held_entry(self.held[name]))
                self.renewed_at[name] = self.monotonic()

    # -- renew ---------------------------------------------------------------------------------
    def _still_ours(self, name, held):
        """The Lease as read now when it is still the one this run took (same uid, this holder), else None.
        Its resourceVersion may have moved on: the run's background keeper (state kept) renews it too."""
        cur = self.api.get(name)
        md, spec = (cur or {}).get("metadata") or {}, (cur or {}).get("spec") or {}
        if cur and md.get("uid") == held.get("uid") and spec.get("holderIdentity") == self.holder:
            return cur
        return None

    def renew_one(self, name, held):
        """Merge-patch renewTime at the resourceVersion this run last saw (a precondition: 409 when the
        Lease changed since). On a 409 the Lease is read: still this run's (same uid and holder, renewed
        meanwhile by its keeper, or by our own unanswered attempt), it is renewed at the version read;
        otherwise it was lost."""
        for _attempt in range(5):
            stamp = micro_time(self.clock())
            patch = {"metadata": {"resourceVersion": held.get("resource_version")},
                     "spec": {"renewTime": stamp, "holderIdentity": self.holder}}
            status, data, _ambiguous = self.api.call("PATCH", self.api.path(name), patch, "application/merge-patch+json")
            if status == 200:
                return data
            if status != 409:
                break
            cur = self._still_ours(name, held)
            if cur is None:
                break
            held = held_entry(cur)
        seen, cur = None, None
        if status in (404, 409):
            cur = self.api.get(name)
            seen = ((cur or {}).get("spec") or {}).get("holderIdentity")
        raise LeaseError("Lease %s/%s is no longer held by %s (%s; holder now %s)."
                         % (self.ns, name, self.holder, status_message(status, data), seen or "none"),
                         name=name, holder=seen, gone=cur is None and status == 404)

    def renew(self, held_list):
        """Renew every Lease of held_list; the ones lost are listed in self.lost (not raised) so the
        caller still knows which ones it holds."""
        out = []
        self.lost = []
        for held in sorted(held_list, key=lambda h: h["name"]):
            try:
                lease = self.renew_one(held["name"], held)
            except LeaseError as e:
                self.lost.append(e)
                continue
            self.held[held["name"]] = lease
            out.append({"name": held["name"], "action": "renewed", "lease": lease})
        return out

    # -- release -------------------------------------------------------------------------------
    def release_one(self, held):
        """DELETE with uid and resourceVersion preconditions: after an expiry another run may hold it.
        On a 409 the Lease is read: still this run's (renewed meanwhile by its keeper), it is deleted at
        the version read; otherwise it is another run's and left alone."""
        name = held["name"]
        for _attempt in range(5):
            options = {"kind": "DeleteOptions", "apiVersion": "v1",
                       "preconditions": {"uid": held.get("uid"), "resourceVersion": held.get("resource_version")}}
            status, data, ambiguous = self.api.call("DELETE", self.api.path(name), options)
            if status in (200, 202):
                return "released"
            if status == 404:
                return "released" if ambiguous else "gone"
            if status != 409:
                break
            cur = self._still_ours(name, held) if self.holder else None
            if cur is None:
                return "not_ours"
            held = held_entry(cur)
        if status == 409:
            return "not_ours"
        raise LeaseError("Cannot release the Lease %s/%s: %s" % (self.ns, name, status_message(status, data)), name=name)

    def release(self, held_list):
        out = []
        for held in sorted(held_list, key=lambda h: h["name"], reverse=True):
            result = self.release_one(held)
            entry = {"name": held["name"], "action": result}
            if result == "not_ours":
                cur = self.api.get(held["name"])
                entry["holder_seen"] = ((cur or {}).get("spec") or {}).get("holderIdentity")
            out.append(entry)
            self.held.pop(held["name"], None)
        return out

    # -- keep -----------------------------------------------------------------------------------
    def keep(self, held_list, alive, every=None, tick=1.0):
        """Renew every Lease of held_list each ``every`` seconds (a third of the duration) for as long as
        ``alive()`` is true: the run that took them is still running. Returns why it stopped: ``ended``
        (the run is gone: the Leases expire one duration after the last renewal, so a killed run's
        successor goes on within about a minute), ``released`` (the run deleted them) or ``lost``
        (another holder has one). Never deletes anything."""
        every = float(every or max(1.0, self.duration / 3.0))
        held = dict((h["name"], dict(h)) for h in held_list)
        due = self.monotonic()  # at once: the keeper's own start-up may have taken part of the duration
        while True:
            if not alive():
                return "ended"
            if self.monotonic() >= due:
                for name in sorted(held):
                    try:
                        held[name] = held_entry(self.renew_one(name, held[name]))
                    except LeaseError as e:
                        return "released" if e.details.get("gone") else "lost"
                due = self.monotonic() + every
            self.sleep(tick)

    def release_all_taken(self):
        """After a failed acquire: give back what this run took, best effort."""
        taken = [held_entry(lease) for lease in self.held.values()]
        try:
            self.release(taken)
        except LeaseError:
            pass
