# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""The collection's one Kubernetes connection: cr_wait, k8s_lease and secret_lookup use it.

Authentication is kubernetes.core's own: its argument spec (``AUTH_ARG_SPEC``, documented by the
``kubernetes.core.k8s_auth_options`` fragment), its ``K8S_AUTH_*`` environment fallbacks and its
client (``get_api_client``), so a task connects exactly as ``kubernetes.core.k8s`` does with the same
``module_defaults``. On top of it, one transport: :meth:`Connection.request` answers
``(status, body, headers)`` or raises :class:`ApiError`, which says once which failures are worth
retrying (:data:`TRANSIENT_STATUS`, or no answer at all), which mean "list again" (410) and which
no retry will fix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import ssl
import threading
import traceback

from ansible_collections.maas.threescale.plugins.module_utils.k8s_status import TRANSIENT_STATUS

# kubernetes.core's argument spec needs only the collection; its client needs the kubernetes package.
COLLECTION_IMPORT_ERROR = None
try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
except ImportError:
    COLLECTION_IMPORT_ERROR = traceback.format_exc()
    AUTH_ARG_SPEC = {}
IMPORT_ERROR = COLLECTION_IMPORT_ERROR
try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from kubernetes.dynamic.exceptions import DynamicApiError
    import urllib3.exceptions
except ImportError:
    IMPORT_ERROR = IMPORT_ERROR or traceback.format_exc()

MAX_RETRY_AFTER = 30.0
REQUIREMENT = "the kubernetes.core collection and the kubernetes Python package (>= 24.2.0)"


def auth_argument_spec():
    """kubernetes.core's connection options (a copy: callers may add their own)."""
    return copy.deepcopy(AUTH_ARG_SPEC)


def auth_options():
    return tuple(AUTH_ARG_SPEC)


def missing_requirement():
    """None when kubernetes.core and the kubernetes client import, else the traceback."""
    return IMPORT_ERROR


def require(module_class):
    """For a module's main(), before its AnsibleModule: without kubernetes.core its argument spec
    cannot be built, so fail at once (every parameter given accepted as is and hidden, no_log, in what
    the failure reports)."""
    if COLLECTION_IMPORT_ERROR:
        from ansible.module_utils.basic import _load_params, missing_required_lib
        given = [k for k in _load_params() or {} if not k.startswith("_ansible")]
        module = module_class(argument_spec=dict((k, dict(type="raw", no_log=True)) for k in given),
                              supports_check_mode=True)
        module.fail_json(msg=missing_required_lib(REQUIREMENT), exception=COLLECTION_IMPORT_ERROR)


def require_client(module):
    """For a module, once created: fail with the usual missing-library message without the client."""
    if IMPORT_ERROR:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib(REQUIREMENT), exception=IMPORT_ERROR)


def status_message(body):
    """The `message` of a Kubernetes Status body, else the body as text."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, dict):
        return body.get("message") or json.dumps(body, sort_keys=True)
    try:
        return json.loads(body).get("message") or body
    except (TypeError, ValueError, AttributeError):
        return body or ""


def retry_after(headers):
    """Retry-After in seconds (bounded), None when absent or not a number."""
    for key, value in (dict(headers) if headers else {}).items():
        if str(key).lower() == "retry-after":
            try:
                return min(max(float(value), 0.0), MAX_RETRY_AFTER)
            except (TypeError, ValueError):
                return None
    return None


class ApiError(Exception):
    """A request that failed: `status` is the HTTP status, None when no answer came (connection refused,
    reset, timed out: the request may or may not have been processed)."""

    def __init__(self, message, status=None, body=None, headers=None, fatal=False):
        super(ApiError, self).__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self._fatal = fatal

    @property
    def gone(self):
        return self.status == 410

    @property
    def transient(self):
        return not self._fatal and (self.status is None or self.status in TRANSIENT_STATUS)

    @property
    def retry_after(self):
        return retry_after(self.headers)

    @classmethod
    def from_response(cls, status, body, headers=None):
        return cls("HTTP %s: %s" % (status, status_message(body)), status, body, headers)


def _untrusted(exc):
    cause = getattr(exc, "reason", exc)
    return isinstance(exc, ssl.SSLError) or isinstance(cause, ssl.SSLError) or (
        IMPORT_ERROR is None and isinstance(cause, urllib3.exceptions.SSLError))


class Connection(object):
    """kubernetes.core's client for one module or lookup run, made on the first request (so the
    caller's retry loop covers an API server that is not answering yet)."""

    def __init__(self, module=None, **options):
        """From a module's parameters (the options of auth_argument_spec()) or from options given."""
        if module is not None:
            options = dict((k, module.params.get(k)) for k in auth_options())
        self.options = dict((k, v) for k, v in options.items() if v is not None)
        self._k8s = None
        self._paths = {}
        self._lock = threading.Lock()  # discovery (and its cache file) is not meant for concurrent use

    @property
    def k8s(self):
        """kubernetes.core's K8SClient (``.client`` is the DynamicClient)."""
        if self._k8s is None:
            if IMPORT_ERROR:
                raise ApiError("%s is needed: %s" % (REQUIREMENT, IMPORT_ERROR.strip().splitlines()[-1]), fatal=True)
            try:
                self._k8s = get_api_client(**self.options)  # K8S_AUTH_* fill in what is not given
            except DynamicApiError as exc:
                raise ApiError.from_response(exc.status, exc.body, exc.headers)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise self._no_answer(exc)
            except Exception as exc:  # kubeconfig or credentials unusable: CoreException, ConfigException
                raise ApiError("Could not create the Kubernetes API client (check kubeconfig, context, host or the "
                               "K8S_AUTH_* variables): %s" % exc, fatal=True)
        return self._k8s

    def check(self):
        """Make the client now (reads the kubeconfig, discovers the API): raises ApiError."""
        return self.k8s is not None

    @staticmethod
    def _no_answer(exc):
        if _untrusted(exc):
            return ApiError("The Kubernetes API server's certificate is not trusted (set ca_cert or "
                            "K8S_AUTH_SSL_CA_CERT): %s" % exc, fatal=True)
        return ApiError("No answer from the Kubernetes API server: %s: %s" % (type(exc).__name__, exc))

    def resource_path(self, api_version, kind, namespace=None):
        """The collection path of a kind (discovery, cached per run)."""
        key = (api_version, kind, namespace)
        with self._lock:
            if key not in self._paths:
                try:
                    resource = self.k8s.resource(kind, api_version)
                except ApiError:
                    raise
                except DynamicApiError as exc:
                    raise ApiError.from_response(exc.status, exc.body, exc.headers)
                except Exception as exc:  # ResourceNotFoundError, discovery failures
                    if "NotFound" in type(exc).__name__:
                        raise ApiError("the API server does not serve %s %s" % (api_version, kind), fatal=True)
                    raise ApiError("discovery of %s %s failed: %s" % (api_version, kind, exc))
                self._paths[key] = resource.path(namespace=namespace)
            return self._paths[key]

    def request(self, method, path, body=None, query=None, content_type=None, timeout=60, stream=False):
        """One API request. Returns (status, decoded JSON body, headers), or with stream=True the raw
        urllib3 response to read (and release) yourself. Raises ApiError."""
        client = self.k8s.client
        kwargs = dict(query_params=list(query or []), _request_timeout=timeout)
        if stream:
            kwargs.update(serialize=False, _preload_content=False)
        else:
            kwargs.update(body=body, serializer=lambda _client, obj: obj)
            if content_type:
                kwargs["content_type"] = content_type
        try:
            data = client.request(method, path, **kwargs)
        except DynamicApiError as exc:
            raise ApiError.from_response(exc.status, exc.body, exc.headers)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._no_answer(exc)
        if stream:
            return data
        if hasattr(data, "to_dict"):
            data = data.to_dict()
        return (201 if method == "POST" else 200), data, {}
