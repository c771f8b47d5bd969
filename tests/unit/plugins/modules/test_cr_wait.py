"""cr_wait without a cluster: check mode returns at once, API errors are sorted into retry / list again / stop.

Upstream: kubernetes apiserver staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/writers.go
(429 + Retry-After), client-go tools/cache/reflector.go (410 Expired: list again; other 4xx final).
"""
from __future__ import annotations

import pytest

from ansible_collections.maas.threescale.plugins.module_utils.k8s_connection import ApiError
from ansible_collections.maas.threescale.plugins.module_utils.k8s_cr_wait import Fatal, Gone, Transient
from ansible_collections.maas.threescale.plugins.modules import cr_wait


def test_check_mode_returns_at_once_with_skipped(run_module):
    res = run_module(cr_wait, {"resources": [{"kind": "Product", "name": "p", "namespace": "ns"},
                                             {"kind": "ActiveDoc", "name": "p", "namespace": "ns"}],
                               "_ansible_check_mode": True})
    assert not res.get("failed") and res["changed"] is False
    assert [(r["state"], r["condition"]) for r in res["resources"]] == [("skipped", "Synced"), ("skipped", "Ready")]


def api_error(status, body="", headers=None):
    return ApiError.from_response(status, body, headers)


@pytest.mark.parametrize("status,headers,cls,retry", [
    (429, {"Retry-After": "3"}, Transient, 3.0),
    (503, {"Retry-After": "1"}, Transient, 1.0),
    (500, {}, Transient, None),
    (504, {}, Transient, None),
    (410, {}, Gone, None),
    (403, {}, Fatal, None),
    (404, {}, Fatal, None),
])
def test_api_errors_are_sorted(status, headers, cls, retry):
    exc = cr_wait.KubeSource._error(api_error(status, b'{"kind": "Status", "message": "said the server"}', headers))
    assert isinstance(exc, cls)
    assert "said the server" in str(exc)
    if cls is Transient:
        assert exc.retry_after == retry


def test_no_answer_is_transient_and_an_untrusted_certificate_is_not():
    assert isinstance(cr_wait.KubeSource._error(ApiError("No answer from the Kubernetes API server: reset")), Transient)
    assert isinstance(cr_wait.KubeSource._error(ApiError("certificate not trusted", fatal=True)), Fatal)
