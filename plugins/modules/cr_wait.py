#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cr_wait
short_description: Wait for 3scale operator CRs to be ready, watching them
version_added: 1.0.0
description:
  - Waits until every CR of a list (one or many; mixed kinds and namespaces) is ready as the 3scale
    operator defines it, or has failed for good, and returns each one's outcome.
  - Ready means the CR's condition (C(Synced) for Backend and Product, C(Ready) for the other kinds) is
    C(True) for the current spec, that is C(status.observedGeneration) equals C(metadata.generation)
    (a ProxyConfigPromote has no observedGeneration and is judged on its condition alone).
  - A CR is failed for good when C(Invalid=True), or C(Failed=True) with a message matching
    O(terminal_failure_regex). Other C(Failed=True) states are retried by the operator, so the wait goes on.
  - Lists each (api_version, kind, namespace) once, then watches it from the list's resourceVersion
    and evaluates every CR on every event, so it returns within milliseconds of the last CR becoming
    ready. A watch that the server ends is resumed from its last resourceVersion; HTTP 410 Gone, a
    broken connection or a server error makes it list again. 429 (honouring Retry-After), 5xx and
    dropped connections are retried until O(timeout).
  - Changes nothing. In check mode it returns at once with state C(skipped) unless O(wait_in_check_mode=true).
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
requirements:
  - kubernetes >= 24.2.0 (Python)
  - the kubernetes.core collection (its client and authentication code is reused)
options:
  resources:
    description:
      - The CRs to wait for.
    type: list
    elements: dict
    required: true
    suboptions:
      kind:
        description: Kind of the CR, for example C(Product).
        type: str
        required: true
      name:
        description: C(metadata.name) of the CR.
        type: str
        required: true
      namespace:
        description: Namespace of the CR.
        type: str
        required: true
      api_version:
        description: apiVersion of the CR.
        type: str
        default: capabilities.3scale.net/v1beta1
      condition:
        description:
          - Condition type that must be C(True). Default C(Synced) for Backend and Product, C(Ready) otherwise.
        type: str
      absent_ok:
        description:
          - The CR being gone counts as success (state C(absent)); for a ProxyConfigPromote with
            C(deleteCR=true), which deletes itself in the reconcile that makes it Ready.
        type: bool
        default: false
      tolerate_message_regex:
        description:
          - A C(Failed=True) message matching this regular expression ends the wait for that CR with
            state C(tolerated), for example a Product whose removed method is still used by the
            latest gateway configuration until the next promotion.
        type: str
  timeout:
    description: Seconds to wait for all the CRs together.
    type: float
    default: 300
  terminal_failure_regex:
    description: Regular expression on C(Failed=True) messages that will never heal by retrying.
    type: str
    default: "no product changes detected|code: 422"
  fail_on_error:
    description:
      - V(true) fails the task as soon as any CR has failed for good, with the operator's message, and
        on timeout.
      - V(false) waits for every CR to be final (or the timeout) and reports each; the task then
        fails only when the API cannot be used at all.
    type: bool
    default: true
  wait_in_check_mode:
    description: Wait in check mode too (by default check mode returns at once with state C(skipped)).
    type: bool
    default: false
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    support: full
    description: Changes nothing; returns at once with state C(skipped), unless O(wait_in_check_mode=true).
  diff_mode:
    support: none
    description: Read-only module, nothing to diff.
  action_group:
    description: Use C(group/maas.threescale.k8s) in C(module_defaults) to set the connection options.
    support: full
    membership:
      - maas.threescale.k8s
notes:
  - The connection options are those of kubernetes.core (same names, same environment variables);
    set them for both with C(module_defaults) of C(group/maas.threescale.k8s), which extends C(group/kubernetes.core.k8s).
seealso:
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Wait for a model's Backend and Product
  maas.threescale.cr_wait:
    resources:
      - {kind: Backend, name: tinyllama, namespace: 3scale}
      - {kind: Product, name: tinyllama, namespace: 3scale}
    timeout: 300

- name: Wait for a promotion that deletes itself on success, report instead of failing
  maas.threescale.cr_wait:
    resources:
      - kind: ProxyConfigPromote
        name: tinyllama-0a1b2c3d-1
        namespace: 3scale
        absent_ok: true
    fail_on_error: false
  register: promotion

- name: Show each CR's outcome
  ansible.builtin.debug:
    msg: "{{ promotion.resources | map(attribute='state') }}"
"""

RETURN = r"""
resources:
  description: One entry per requested CR, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: Kind.
      type: str
    name:
      description: Name.
      type: str
    namespace:
      description: Namespace.
      type: str
    api_version:
      description: apiVersion.
      type: str
    condition:
      description: The condition type that meant ready.
      type: str
    state:
      description:
        - C(ready), C(absent) (gone, with absent_ok), C(tolerated) (Failed with a tolerated message),
          C(failed) (failed for good), C(timeout), or C(skipped) (check mode).
      type: str
      sample: ready
    message:
      description: The operator's message for C(failed)/C(tolerated); for C(timeout) what was last seen.
      type: str
    conditions:
      description: C(status.conditions) as last seen.
      type: list
      elements: dict
    generation:
      description: C(metadata.generation) as last seen.
      type: int
    observed_generation:
      description: C(status.observedGeneration) as last seen (null for a ProxyConfigPromote).
      type: int
    annotations:
      description: C(metadata.annotations) as last seen.
      type: dict
    ready_at:
      description: Epoch seconds when the wait saw the CR final (null if it never was).
      type: float
    waited:
      description: Seconds from the start of the wait until the CR was final (or until the end).
      type: float
failed_resources:
  description:
    - The entries of RV(resources) that did not succeed (state C(failed) or C(timeout)).
    - Not called C(failed), which Ansible reads as the task's own failure flag.
  returned: always
  type: list
  elements: dict
elapsed:
  description: Seconds the module waited.
  returned: always
  type: float
api:
  description: Requests made (lists, watches, 410 Gone re-lists, retried errors).
  returned: always
  type: dict
"""

import gc
import json
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.maas.threescale.plugins.module_utils.k8s_cr_wait import (
    DEFAULT_TERMINAL_FAILURE_REGEX,
    Fatal,
    Gone,
    Target,
    Transient,
    Waiter,
)

from ansible_collections.maas.threescale.plugins.module_utils import k8s_connection


class KubeSource(object):
    """list/watch of one (api_version, kind, namespace) over the collection's Kubernetes connection."""

    def __init__(self, conn):
        self.conn = conn

    @staticmethod
    def _error(exc):
        """The waiter's view of a failed request: list again, retry, or give up."""
        if exc.gone:
            return Gone(exc.message)
        if exc.transient:
            return Transient(exc.message, exc.retry_after)
        return Fatal(exc.message)

    def _path(self, group):
        api_version, kind, namespace = group
        try:
            return self.conn.resource_path(api_version, kind, namespace)
        except k8s_connection.ApiError as exc:
            raise self._error(exc)

    def list(self, group):
        try:
            _status, body, _headers = self.conn.request("GET", self._path(group), timeout=(10, 60))
        except k8s_connection.ApiError as exc:
            raise self._error(exc)
        if not isinstance(body, dict):
            raise Transient("list answer unreadable: %r" % (body,))
        return body.get("items") or [], (body.get("metadata") or {}).get("resourceVersion")

    def watch(self, group, resource_version, timeout):
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", int(timeout))]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        try:
            resp = self.conn.request("GET", self._path(group), query=query, timeout=(10, timeout + 30), stream=True)
        except k8s_connection.ApiError as exc:
            raise self._error(exc)
        buf = b""
        try:
            for chunk in resp.stream(65536, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line.decode("utf-8"))
                    etype, obj = event.get("type"), event.get("object") or {}
                    if etype == "ERROR":
                        if obj.get("code") == 410:
                            raise Gone(obj.get("message"))
                        raise Transient("watch error %s: %s" % (obj.get("code"), obj.get("message")))
                    yield etype, obj
        except (Gone, Transient):
            raise
        except Exception as exc:
            raise Transient("watch broken: %s: %s" % (type(exc).__name__, exc))
        finally:
            try:
                resp.release_conn()
            except Exception:
                pass


def _fast_exit():
    """Skip the collection of every object at interpreter shutdown: the kubernetes client's thousands of
    model classes take 0.1-0.2 s to tear down, a delay added to every wait. gc.freeze() (Python 3.7+)
    moves them out of the collector's reach; the process ends right after anyway."""
    if hasattr(gc, "freeze"):
        gc.freeze()


def main():
    k8s_connection.require(AnsibleModule)
    resource_spec = dict(
        kind=dict(type="str", required=True),
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        api_version=dict(type="str", default="capabilities.3scale.net/v1beta1"),
        condition=dict(type="str"),
        absent_ok=dict(type="bool", default=False),
        tolerate_message_regex=dict(type="str"),
    )
    module = AnsibleModule(
        argument_spec=dict(
            resources=dict(type="list", elements="dict", required=True, options=resource_spec),
            timeout=dict(type="float", default=300),
            terminal_failure_regex=dict(type="str", default=DEFAULT_TERMINAL_FAILURE_REGEX),
            fail_on_error=dict(type="bool", default=True),
            wait_in_check_mode=dict(type="bool", default=False),
            **k8s_connection.auth_argument_spec()
        ),
        supports_check_mode=True,
    )
    p = module.params
    targets = [Target(r["kind"], r["name"], r["namespace"], r["api_version"], r["condition"], r["absent_ok"],
                      r["tolerate_message_regex"]) for r in p["resources"]]
    if module.check_mode and not p["wait_in_check_mode"]:
        module.exit_json(changed=False, failed_resources=[], elapsed=0.0, api={},
                         resources=[{"kind": t.kind, "name": t.name, "namespace": t.namespace, "api_version": t.api_version,
                                     "condition": t.condition, "state": "skipped", "message": "check mode: not waited",
                                     "conditions": [], "generation": None, "observed_generation": None,
                                     "annotations": {}, "ready_at": None, "waited": 0.0} for t in targets])
    k8s_connection.require_client(module)
    conn = k8s_connection.Connection(module)
    try:
        conn.check()  # credentials checked before any wait
    except k8s_connection.ApiError as exc:
        if not exc.transient:
            module.fail_json(msg=exc.message)

    t0 = time.time()
    waiter = Waiter(KubeSource(conn), targets, p["timeout"], p["terminal_failure_regex"], p["fail_on_error"])
    results = waiter.run()
    elapsed = round(time.time() - t0, 3)
    bad = [r for r in results if r["state"] in ("failed", "timeout")]
    out = dict(changed=False, resources=results, elapsed=elapsed, api=waiter.stats)
    out["failed_resources"] = bad
    _fast_exit()
    if waiter.fatal:
        module.fail_json(msg="Cannot watch the CRs: %s" % waiter.fatal, **out)
    if p["fail_on_error"] and bad:
        failed = [r for r in bad if r["state"] == "failed"]
        if failed:
            msg = "; ".join("The 3scale operator rejected %s %s/%s: %s" % (r["kind"], r["namespace"], r["name"], r["message"])
                            for r in failed)
        else:
            msg = "; ".join(r["message"] for r in bad)
        module.fail_json(msg=msg, **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
