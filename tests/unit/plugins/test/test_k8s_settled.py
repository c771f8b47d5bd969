"""The k8s_settled test (plugins/test/k8s_retry.py), the until of every retried kubernetes.core task:
a success or a refusal is final, a transient answer is tried again."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ansible_collections.maas.threescale.plugins.test.k8s_retry import TestModule, k8s_settled


@pytest.mark.parametrize("result", [
    {"changed": True, "result": {}},
    {"failed": False, "msg": "Module failed: 503"},  # a message is not a failure
    {"failed": True, "msg": "Failed to create object: Module failed: 422"},
    {"failed": True, "msg": "(403) Reason: Forbidden"},
    {"failed": True},
    "not a result",
])
def test_success_and_refusals_are_final(result):
    assert k8s_settled(result)


@pytest.mark.parametrize("message", [
    "Failed to create object: Module failed: 500",
    "(429) Reason: Too Many Requests",
    "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))",
])
def test_transient_failures_are_tried_again(message):
    assert not k8s_settled({"failed": True, "msg": message})


def test_registered_under_its_name():
    assert TestModule().tests()["k8s_settled"] is k8s_settled


def test_does_not_import_the_kubernetes_client():
    # Test plugins load in every task's worker process, as filters do.
    code = ("import sys; import ansible_collections.maas.threescale.plugins.test.k8s_retry; "
            "print('kubernetes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path)}).stdout
    assert out.strip() == "False"
