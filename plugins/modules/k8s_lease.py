#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: k8s_lease
short_description: Acquire, renew or release several Kubernetes Leases in one task
version_added: 1.1.0
description:
  - Serialises runs with C(coordination.k8s.io/v1) Leases, the way client-go's leader election does
    (C(tools/leaderelection)), for a whole list of Lease names in one module run.
  - "O(state=acquired): each name, in sorted order (two runs asking for overlapping lists never deadlock),
    is created (an C(AlreadyExists) answer means another run was first: read again), or, when it exists
    and is free, expired (C(renewTime) + C(leaseDurationSeconds) in the past) or held by O(holder),
    updated at the C(resourceVersion) read (a C(Conflict) answer means another run was first: read again).
    A Lease held by another live holder is polled inside this module run until it is released or
    expires, for at most O(wait_timeout) seconds; Leases already taken are renewed meanwhile when half
    their duration has passed. When one name cannot be had, the Leases this run took are released and
    the task fails naming the holder."
  - "O(state=renewed): sets C(renewTime) of each Lease in O(held) with a merge patch carrying the
    C(resourceVersion) this run last saw (a precondition); after a C(Conflict) the Lease is read, and renewed
    at the version read when it still has the C(uid) of O(held) and O(holder) (the keeper below renewed it
    meanwhile): the task fails when another run took a Lease over."
  - "O(state=released): deletes each Lease in O(held) with C(uid) and C(resourceVersion) preconditions,
    read again after a C(Conflict) the same way, so a Lease that expired and was taken by another run is left
    alone (reported, not an error)."
  - "O(state=kept): renews each Lease in O(held) every third of O(lease_duration) for as long as the process
    O(watch_pid) (the C(ansible-playbook) run that took them, see the C(maas.threescale.run_pid) lookup) is
    alive, and ends when that process is gone, when the Leases are released, or when another holder has one.
    Meant to run in the background (C(async), C(poll: 0)): a run keeps short Leases however long it waits, and
    a run killed with C(-9) stops renewing them, so the next run takes them over one O(lease_duration) later."
  - Answers 429 (waiting for C(Retry-After)), 500, 502, 503, 504 and requests that got no answer are
    retried O(retries) times.
  - "Cost: acquiring N free names takes 2 requests per name (read, create); renewing and releasing 1 each."
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
requirements:
  - kubernetes.core collection (its API client and kubeconfig handling)
  - kubernetes >= 24.2.0 (Python)
options:
  names:
    description:
      - Names of the Leases to acquire. With O(state=renewed) or O(state=released), names of the Leases of
        O(held) to handle (default all of them).
    type: list
    elements: str
    default: []
  namespace:
    description:
      - Namespace of the Leases.
    type: str
    required: true
  state:
    description:
      - V(acquired) takes the Leases, V(renewed) renews the ones this run holds, V(released) deletes them,
        V(kept) renews them for as long as O(watch_pid) lives.
    type: str
    choices: [acquired, renewed, released, kept]
    default: acquired
  holder:
    description:
      - C(holderIdentity) this run writes. A Lease already held by this identity is taken over at once, so
        give each run its own identity unless it must take over the Lease of a killed run of the same job.
      - Required with O(state=acquired), O(state=renewed) and O(state=kept); with O(state=released), lets a
        Lease renewed since O(held) was written be released (it is read and checked to be this holder's).
    type: str
  lease_duration:
    description:
      - C(leaseDurationSeconds) written to the Leases; another run takes a Lease over once it was not renewed
        for that long.
    type: int
    default: 900
  wait_timeout:
    description:
      - Seconds to wait, in all, for Leases held by other live holders (O(state=acquired)).
    type: float
    default: 900
  poll_interval:
    description:
      - Seconds between two reads of a Lease held by another holder (shorter when it expires sooner).
    type: float
    default: 1.0
  held:
    description:
      - The Leases this run holds, as returned in RV(held) by the acquiring task (O(state=renewed) and
        O(state=released)).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Lease name.
        type: str
        required: true
      uid:
        description: C(metadata.uid) of the Lease this run wrote.
        type: str
      resource_version:
        description: C(metadata.resourceVersion) of the Lease this run last wrote.
        type: str
        required: true
  watch_pid:
    description:
      - With O(state=kept), the process whose life the Leases are kept for (the C(ansible-playbook) process).
    type: int
  retries:
    description:
      - How many times one request is retried after a 429, 500, 502, 503, 504 or no answer.
    type: int
    default: 5
  retry_delay:
    description:
      - Seconds between two attempts of one request (a C(Retry-After) header wins, up to 30 seconds).
    type: float
    default: 2.0
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
notes:
  - The connection options are those of kubernetes.core's modules, with the same E(K8S_AUTH_*) fallbacks;
    the module uses kubernetes.core's API client. In the action group C(maas.threescale.k8s), so
    C(module_defaults) for C(group/maas.threescale.k8s) apply.
  - Check mode reads the Leases and reports in RV(leases) what a real run would do; it writes nothing.
attributes:
  check_mode:
    support: full
    description: Reads only; RV(leases) says what would be done.
  diff_mode:
    support: none
    description: Not supported.
"""

EXAMPLES = r"""
- name: Take the onboarding Leases of ten models in one task
  maas.threescale.k8s_lease:
    names: "{{ models | map(attribute='name') | map('regex_replace', '^', 'maas-onboard-') | list }}"
    namespace: 3scale
    holder: "maas.threescale/{{ tower_job_id | default('cli') }}"
    lease_duration: 900
    wait_timeout: 600
  register: locks

- name: Renew them before a long phase
  maas.threescale.k8s_lease:
    state: renewed
    namespace: 3scale
    holder: "maas.threescale/{{ tower_job_id | default('cli') }}"
    held: "{{ locks.held }}"
  register: locks

- name: Release them
  maas.threescale.k8s_lease:
    state: released
    namespace: 3scale
    held: "{{ locks.held }}"
"""

RETURN = r"""
held:
  description:
    - The Leases this run holds after the task, for O(held) of the next task (empty after O(state=released)).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "maas-onboard-granite", "uid": "5c1f...", "resource_version": "1234"}]
leases:
  description:
    - One entry per Lease handled, in the order handled. C(action) is V(create), V(take_free),
      V(take_expired) or V(take_own) (acquired, or in check mode would be), V(wait) (in check mode, held
      by another live holder), V(renewed), V(released), V(gone) (already deleted) or V(not_ours)
      (not released, another run holds it now).
    - C(holder_seen) is the holder found before writing, C(waited) the seconds waited for it, C(lease)
      the Lease as written.
  returned: always
  type: list
  elements: dict
stopped:
  description:
    - With O(state=kept), why the keeping ended, V(ended) (the process O(watch_pid) is gone), V(released) (the
      Leases were deleted) or V(lost) (another holder has one).
  returned: when O(state=kept), not in check mode
  type: str
waited:
  description: Seconds spent waiting for Leases held by others.
  returned: always
  type: float
requests:
  description: Kubernetes API requests made by this task (retries included, connection set-up excluded).
  returned: always
  type: int
retried:
  description: One line per request retried after a 429, a 5xx or no answer (also shown as a warning).
  returned: always
  type: list
  elements: str
reason:
  description:
    - Why the task failed, V(held_by_other) (a Lease stayed held by another live holder), V(lost) (a Lease
      to renew was taken over or deleted) or V(error).
  returned: failure
  type: str
holder_seen:
  description: The holder of the Lease that made the task fail, when known.
  returned: failure
  type: str
lease_name:
  description: The name of the Lease that made the task fail, when known.
  returned: failure
  type: str
"""

import errno
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.maas.threescale.plugins.module_utils import k8s_connection
from ansible_collections.maas.threescale.plugins.module_utils.k8s_lease import (
    LeaseApi,
    LeaseError,
    LeaseLocker,
    TransientError,
    held_entry,
)

REQUEST_TIMEOUT = 60


def argument_spec():
    return dict(
        names=dict(type="list", elements="str", default=[]),
        namespace=dict(type="str", required=True),
        state=dict(type="str", choices=["acquired", "renewed", "released", "kept"], default="acquired"),
        holder=dict(type="str"),
        lease_duration=dict(type="int", default=900),
        wait_timeout=dict(type="float", default=900),
        poll_interval=dict(type="float", default=1.0),
        held=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True), uid=dict(type="str"),
            resource_version=dict(type="str", required=True))),
        watch_pid=dict(type="int"),
        retries=dict(type="int", default=5),
        retry_delay=dict(type="float", default=2.0),
        **k8s_connection.auth_argument_spec()
    )


class Transport:
    """(method, path, body, content type) -> (status, body, headers) over the collection's Kubernetes
    connection; an HTTP error is an answer here (LeaseApi decides), no answer raises TransientError."""

    def __init__(self, module):
        self.conn = k8s_connection.Connection(module)

    def __call__(self, method, path, body, content_type):
        try:
            return self.conn.request(method, path, body=body, content_type=content_type, timeout=REQUEST_TIMEOUT)
        except k8s_connection.ApiError as e:
            if e.status is not None:
                try:
                    data = json.loads(e.body)
                except (TypeError, ValueError):
                    data = e.body
                return e.status, data, e.headers
            if e.transient:
                raise TransientError(e.message)
            raise LeaseError(e.message)


def pid_alive(pid):
    """Whether the process ``pid`` still exists (a zombie counts as gone)."""
    try:
        os.kill(int(pid), 0)
    except OSError as e:
        if e.errno == errno.ESRCH:
            return False
        if e.errno != errno.EPERM:
            raise
    try:
        with open("/proc/%d/stat" % int(pid)) as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (IOError, OSError, IndexError):
        return True


def main():
    k8s_connection.require(AnsibleModule)
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("state", "acquired", ("holder",)), ("state", "renewed", ("holder",)),
                                        ("state", "kept", ("holder", "watch_pid"))])
    k8s_connection.require_client(module)
    p = module.params
    api = LeaseApi(Transport(module), p["namespace"], retries=p["retries"], retry_delay=p["retry_delay"])
    locker = LeaseLocker(api, p["holder"], p["lease_duration"])
    held = p["held"]
    if p["names"] and p["state"] != "acquired":
        held = [h for h in held if h["name"] in p["names"]]
    result = dict(changed=False, held=[], leases=[], waited=0.0, requests=0, retried=[])

    def finish(failure=None, **extra):
        result["requests"] = api.requests
        result["retried"] = api.retry_log
        result["waited"] = round(sum(e.get("waited", 0.0) for e in result["leases"]), 3)
        for line in api.retry_log:
            module.warn("Kubernetes API request retried: " + line)
        if failure:
            module.fail_json(msg=failure, **dict(result, **extra))
        module.exit_json(**result)

    try:
        if p["state"] == "acquired" and module.check_mode:
            result["leases"] = locker.plan(p["names"])
            result["changed"] = any(e["action"] != "wait" for e in result["leases"])
        elif p["state"] == "acquired":
            try:
                result["leases"] = locker.acquire(p["names"], p["wait_timeout"], p["poll_interval"])
            except LeaseError as e:
                if not e.details.get("holder"):
                    raise
                released = [entry["name"] for entry in locker.report]
                result["leases"] = locker.report
                finish("%s This task holds no Lease now%s. Fix: wait for that run to end and run again, or raise "
                       "wait_timeout (now %s s)." % (e.msg, " (it released %s)" % ", ".join(released) if released else "",
                                                     p["wait_timeout"]),
                       reason="held_by_other", holder_seen=e.details.get("holder"), lease_name=e.details.get("name"))
            result["changed"] = bool(result["leases"])
            result["held"] = [held_entry(e["lease"]) for e in result["leases"]]
        elif p["state"] == "kept" and module.check_mode:
            result["leases"] = [{"name": h["name"], "action": "kept"} for h in held]
        elif p["state"] == "kept":
            result["stopped"] = locker.keep(held, lambda: pid_alive(p["watch_pid"]))
            result["held"] = held if result["stopped"] == "ended" else []
        elif module.check_mode:
            result["leases"] = [{"name": h["name"], "action": p["state"]} for h in held]
            result["changed"] = bool(held)
            result["held"] = held if p["state"] == "renewed" else [h for h in p["held"] if h not in held]
        elif p["state"] == "renewed":
            result["leases"] = locker.renew(held)
            result["held"] = [held_entry(e["lease"]) for e in result["leases"]]
            result["changed"] = bool(result["leases"])
            if locker.lost:
                finish(" ".join(e.msg for e in locker.lost) + (
                    " Fix: run again (the run converges); raise lease_duration when one run needs longer than %s s."
                    % p["lease_duration"]), reason="lost", holder_seen=locker.lost[0].details.get("holder"),
                    lease_name=locker.lost[0].details.get("name"))
        else:
            result["leases"] = locker.release(held)
            result["changed"] = any(e["action"] == "released" for e in result["leases"])
            done = set(e["name"] for e in result["leases"])
            result["held"] = [h for h in p["held"] if h["name"] not in done]
    except LeaseError as e:
        finish(e.msg, reason="error", holder_seen=e.details.get("holder"), lease_name=e.details.get("name"))
    finish()


if __name__ == "__main__":
    main()
