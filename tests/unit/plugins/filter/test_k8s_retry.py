"""The one retryable-Kubernetes-error pattern (plugins/filter/k8s_retry.py) on the messages
kubernetes.core writes: transient statuses and dropped connections match, validation errors do not."""
from __future__ import annotations

import re

import pytest

from ansible_collections.maas.threescale.plugins.filter.k8s_retry import FilterModule, k8s_retry_pattern
from ansible_collections.maas.threescale.plugins.module_utils.k8s_status import TRANSIENT_STATUS

PATTERN = re.compile(k8s_retry_pattern())


@pytest.mark.parametrize("message", [
    "Failed to create object: Module failed: 500",
    'b\'{"kind":"Status","status":"Failure","message":"etcd","reason":"InternalError","code": 500}\'',
    '{"kind":"Status","code":503}',
    '{"error": {"msg": "Failed", "status": "{\\"kind\\":\\"Status\\",\\"code\\": 429}"}}',
    "(429) Reason: Too Many Requests",
    "Gateway Timeout",
    "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))",
    "HTTPSConnectionPool(host='x', port=6443): Read timed out. (read timeout=30)",
])
def test_transient_errors_match(message):
    assert PATTERN.search(message)


@pytest.mark.parametrize("message", [
    "Failed to create object: Module failed: 422",
    '{"kind":"Status","code": 409, "reason":"AlreadyExists"}',
    '{"kind":"Status","code": 404}',
    "(403) Reason: Forbidden",
    '{"code": 5000}',  # a longer number is not a status
    "Unprocessable Entity: metadata.name: Invalid value: \"BAD_x\"",
])
def test_validation_and_permission_errors_do_not_match(message):
    assert not PATTERN.search(message)


def test_built_from_the_transport_statuses():
    for status in TRANSIENT_STATUS:
        assert PATTERN.search("Module failed: %d" % status)
    assert FilterModule().filters()["k8s_retry_pattern"](None) == k8s_retry_pattern()
