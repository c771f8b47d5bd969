"""Issue 19 item 5: the access token goes to a plain http:// admin_url of another host only with
allow_insecure_http, and then with a warning; without it the module fails before any request, naming
the fix. Loopback (the unit tests' fake porta) never crosses the network, so it needs neither."""
from __future__ import annotations

import pytest

from ansible_collections.maas.threescale.plugins.module_utils.threescale_api import (
    ThreescaleModule, insecure_url_problem, plain_http_remote)
from ansible_collections.maas.threescale.plugins.modules import threescale_portal

TOKEN = "secret-token-0123456789"
REMOTE = "http://192.0.2.1:9"  # TEST-NET-1: nothing answers there


def test_http_admin_url_of_another_host_is_refused_before_any_request(run_module, monkeypatch):
    monkeypatch.delenv("THREESCALE_ALLOW_INSECURE_HTTP", raising=False)
    res = run_module(threescale_portal, dict(admin_url=REMOTE, access_token=TOKEN, retries=0, request_timeout=1))
    assert res["failed"] and "is plain http" in res["msg"] and "nothing was sent and nothing was changed" in res["msg"]
    assert "allow_insecure_http" in res["msg"] and TOKEN not in str(res)
    assert "api_requests" not in res and "cannot reach" not in res["msg"]  # refused, not tried


@pytest.mark.parametrize("how", ["option", "environment"])
def test_allowed_http_is_tried_with_a_warning(run_module, monkeypatch, how):
    monkeypatch.delenv("THREESCALE_ALLOW_INSECURE_HTTP", raising=False)
    args = dict(admin_url=REMOTE, access_token=TOKEN, retries=0, request_timeout=1)
    if how == "option":
        args["allow_insecure_http"] = True
    else:
        monkeypatch.setenv("THREESCALE_ALLOW_INSECURE_HTTP", "true")
    warned = []
    monkeypatch.setattr(ThreescaleModule, "warn", lambda self, msg: warned.append(msg))
    res = run_module(threescale_portal, args)
    assert res["failed"] and "is plain http" not in res["msg"]  # tried: nothing answers at TEST-NET
    assert len(warned) == 1 and "plain http" in warned[0] and TOKEN not in str(res)


@pytest.mark.parametrize("url,remote", [
    ("https://3scale-admin.apps.example.com", False), ("http://3scale-admin.apps.example.com", True),
    ("HTTP://10.0.0.5:8080", True), ("http://127.0.0.1:3000", False), ("http://localhost:3000", False),
    ("http://[::1]:3000", False),
])
def test_only_plain_http_to_another_host_needs_the_option(url, remote):
    assert plain_http_remote(url) is remote
    assert bool(insecure_url_problem(url, False)) is remote and insecure_url_problem(url, True) == ""
