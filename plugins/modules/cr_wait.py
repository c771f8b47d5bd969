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
  kubeconfig:
    description:
      - Path to a kubeconfig file, or its content as a dictionary. Default C(~/.kube/config), or
        the in-cluster service account. Can be set with E(K8S_AUTH_KUBECONFIG).
    type: raw
  context:
    description: The kubeconfig context to use. Can be set with E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description: URL of the Kubernetes API server. Can be set with E(K8S_AUTH_HOST).
    type: str
  api_key:
    description: Bearer token for the API server. Can be set with E(K8S_AUTH_API_KEY).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's certificate. Can be set with E(K8S_AUTH_VERIFY_SSL).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - CA certificate file that signed the API server's certificate. Can be set with E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
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
    set them for both with C(module_defaults) of C(group/kubernetes.core.k8s) and C(group/maas.threescale.k8s).
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
import threading
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.maas.threescale.plugins.module_utils.k8s_cr_wait import (
    DEFAULT_TERMINAL_FAILURE_REGEX,
    Fatal,
    Gone,
    Target,
    Transient,
    Waiter,
)

KUBERNETES_IMPORT_ERROR = None
try:
    import kubernetes  # noqa: F401 pylint: disable=unused-import
    from kubernetes.dynamic.exceptions import DynamicApiError
except ImportError:
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

K8S_CORE_IMPORT_ERROR = None
try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
except ImportError:
    K8S_CORE_IMPORT_ERROR = traceback.format_exc()

AUTH_OPTIONS = ("kubeconfig", "context", "host", "api_key", "validate_certs", "ca_cert")
TRANSIENT_STATUS = (429, 500, 502, 503, 504)


def _status_message(body):
    try:
        return json.loads(body).get("message") or body
    except (TypeError, ValueError, AttributeError):
        return body


class KubeSource(object):
    """list/watch of one (api_version, kind, namespace) with the kubernetes DynamicClient."""

    def __init__(self, k8s):
        self.k8s = k8s                 # kubernetes.core K8SClient
        self.dynamic = k8s.client      # kubernetes.dynamic.DynamicClient
        self.paths = {}
        self.lock = threading.Lock()  # discovery (and its cache file) is not meant for concurrent use

    def _path(self, group):
        with self.lock:
            return self._resolve(group)

    def _resolve(self, group):
        if group not in self.paths:
            api_version, kind, namespace = group
            try:
                resource = self.k8s.resource(kind, api_version)
            except DynamicApiError as exc:
                raise self._error(exc)
            except Exception as exc:  # ResourceNotFoundError and discovery failures
                if "NotFound" in type(exc).__name__:
                    raise Fatal("the API server does not serve %s %s" % (api_version, kind))
                raise Transient("discovery of %s %s failed: %s" % (api_version, kind, exc))
            self.paths[group] = resource.path(namespace=namespace)
        return self.paths[group]

    @staticmethod
    def _error(exc):
        status = getattr(exc, "status", None)
        body = getattr(exc, "body", None)
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        msg = "HTTP %s: %s" % (status, _status_message(body) or getattr(exc, "reason", ""))
        if status == 410:
            return Gone(msg)
        if status in TRANSIENT_STATUS or not status:
            headers = getattr(exc, "headers", None) or {}
            retry = headers.get("Retry-After") if hasattr(headers, "get") else None
            try:
                retry = float(retry) if retry is not None else None
            except ValueError:
                retry = None
            return Transient(msg, retry)
        return Fatal(msg)

    def _request(self, path, query, timeout):
        try:
            return self.dynamic.request("GET", path, query_params=query, serialize=False,
                                        _preload_content=False, _request_timeout=timeout)
        except DynamicApiError as exc:
            raise self._error(exc)
        except Exception as exc:  # urllib3 / ssl / socket errors: the connection is what failed
            raise Transient("%s: %s" % (type(exc).__name__, exc))

    def list(self, group):
        resp = self._request(self._path(group), [], (10, 60))
        try:
            body = json.loads(resp.data.decode("utf-8"))
        except Exception as exc:
            raise Transient("list answer unreadable: %s" % exc)
        return body.get("items") or [], (body.get("metadata") or {}).get("resourceVersion")

    def watch(self, group, resource_version, timeout):
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", int(timeout))]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        resp = self._request(self._path(group), query, (10, timeout + 30))
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
            kubeconfig=dict(type="raw", no_log=True),
            context=dict(type="str"),
            host=dict(type="str"),
            api_key=dict(type="str", no_log=True),
            validate_certs=dict(type="bool", aliases=["verify_ssl"]),
            ca_cert=dict(type="path", aliases=["ssl_ca_cert"]),
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
    if KUBERNETES_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    if K8S_CORE_IMPORT_ERROR:
        module.fail_json(msg="the kubernetes.core collection is required (its client and authentication code is reused)",
                         exception=K8S_CORE_IMPORT_ERROR)
    auth = dict((k, p[k]) for k in AUTH_OPTIONS if p[k] is not None)
    try:
        k8s = get_api_client(**auth)
    except Exception as exc:
        module.fail_json(msg="Could not create a Kubernetes API client: %s" % exc)

    t0 = time.time()
    waiter = Waiter(KubeSource(k8s), targets, p["timeout"], p["terminal_failure_regex"], p["fail_on_error"])
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
