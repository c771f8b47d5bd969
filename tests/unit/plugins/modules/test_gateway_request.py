"""gateway_request against a scripted gateway on 127.0.0.1: what it sends, when it waits, when it
stops at once, how it reads each operation's answer, and that the key never comes back."""
from __future__ import annotations

import json

import pytest

from ansible_collections.maas.threescale.plugins.modules import gateway_request as gr

KEY = "k3y-" + "9" * 28
MODEL = "tinyllama/tinyllama-1.1b-chat-v1.0"
COMPLETION = {"choices": [{"text": " a city"}], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}


def script(*answers):
    """Answers (status, body) in order, repeating the last; status None drops the connection."""
    queue = list(answers)

    def app(method, path, query, form, headers):
        status, body = queue.pop(0) if len(queue) > 1 else queue[0]
        return status, body, None
    return app


def args(url, **kw):
    base = dict(endpoint=url + "/", user_key=KEY, model_id=MODEL, delay=0.01, request_timeout=5)
    base.update(kw)
    return base


def test_completion_is_sent_as_the_workshop_curl_and_read(serve, run_module):
    srv = serve(script((200, COMPLETION)))
    res = run_module(gr, args(srv.url))
    req = srv.log[0]
    assert (req["method"], req["path"]) == ("POST", "/v1/completions")
    assert req["headers"]["Authorization"] == "Bearer " + KEY and req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["User-Agent"] == "maas.threescale-ansible-collection"
    assert not res.get("failed") and not res["changed"]
    assert (res["status"], res["text"], res["total_tokens"], res["attempts"]) == (200, " a city", 8, 1)
    assert res["usage"]["completion_tokens"] == 3 and res["latency_ms"] >= 1
    assert res["url"] == srv.url + "/v1/completions"
    assert KEY not in json.dumps(res)


@pytest.mark.parametrize("operation,answer,text,tokens", [
    ("chat/completions", {"choices": [{"message": {"content": "hi"}}], "usage": {"total_tokens": 4}}, "hi", 4),
    ("embeddings", {"data": [{"embedding": [0.1, 0.2, 0.3]}], "usage": {"total_tokens": 2}}, "embedding of 3 dimensions", 2),
    ("tokenize", {"tokens": [1, 2], "count": 2}, "tokens: 1 2", 2),
    ("models", {"data": [{"id": "other"}, {"id": MODEL}]}, "model listed", 0),
])
def test_each_operation_is_read(serve, run_module, operation, answer, text, tokens):
    srv = serve(script((200, answer)))
    res = run_module(gr, args(srv.url, operation=operation))
    assert (res["text"], res["total_tokens"]) == (text, tokens)
    method = "GET" if operation == "models" else "POST"
    assert (srv.log[0]["method"], srv.log[0]["path"]) == (method, gr.PATHS[operation][1])


def test_the_gateway_is_waited_for_until_it_serves(serve, run_module):
    """404 (no mapping rule yet), 403 Authentication failed (key not at the backend yet), 503, then 200."""
    srv = serve(script((404, b"No Mapping Rule matched"), (403, b"Authentication failed"), (503, {}), (200, COMPLETION)))
    res = run_module(gr, args(srv.url, wait_timeout=30))
    assert res["attempts"] == 4 and res["status"] == 200 and res["waited_ms"] >= res["latency_ms"]


def test_without_wait_timeout_one_request_and_a_clear_failure(serve, run_module):
    srv = serve(script((404, b"No Mapping Rule matched")))
    res = run_module(gr, args(srv.url))
    assert res["failed"] and len(srv.log) == 1
    assert "answered 404" in res["msg"] and "no production configuration" in res["msg"]
    assert res["body_excerpt"] == "No Mapping Rule matched"


@pytest.mark.parametrize("status,body", [(403, b"Authentication parameters missing"), (401, b"")])
def test_missing_credentials_stop_at_once(serve, run_module, status, body):
    srv = serve(script((status, body)))
    res = run_module(gr, args(srv.url, wait_timeout=60))
    assert res["failed"] and len(srv.log) == 1
    assert "found no key where the product expects it" in res["msg"] and KEY not in res["msg"]


def test_a_health_probe_never_fails_and_retries_only_what_it_is_told(serve, run_module):
    srv = serve(script((403, b"Authentication failed"), (503, b"down")))
    res = run_module(gr, args(srv.url, operation="models", model_id=None, retry_statuses=[401, 403],
                              wait_timeout=5, expect_success=False))
    assert not res.get("failed") and res["status"] == 503 and res["attempts"] == 2 and res["text"] == ""


def test_a_200_without_a_result_is_not_a_success(serve, run_module):
    srv = serve(script((200, {"choices": []})))
    res = run_module(gr, args(srv.url))
    assert res["failed"] and "no result" in res["msg"]
    srv = serve(script((200, {"data": [{"id": "other"}]})))
    res = run_module(gr, args(srv.url, operation="models"))
    assert res["failed"] and "does not name %s" % MODEL in res["msg"]


def test_no_answer_is_status_minus_one(serve, run_module):
    srv = serve(script((None, None)))
    res = run_module(gr, args(srv.url, expect_success=False))
    assert res["status"] == -1 and res["attempts"] == 1


def test_check_mode_sends_nothing(serve, run_module):
    srv = serve(script((200, COMPLETION)))
    res = run_module(gr, args(srv.url, _ansible_check_mode=True))
    assert res["skipped_reason"] == "check mode sends no request" and srv.log == []
    # What was called is in the result, for the smoke test's report (and no key).
    assert res["endpoint"] == srv.url + "/" and res["operation"] == "completions" and res["model_id"] == MODEL
    assert "user_key" not in res


@pytest.mark.parametrize("bad,message", [
    (dict(endpoint="gateway.example.com"), "is not an http(s) URL"),
    (dict(model_id=None), "model_id is required for operation completions"),
])
def test_bad_input_names_the_field_before_any_request(serve, run_module, bad, message):
    srv = serve(script((200, COMPLETION)))
    res = run_module(gr, args(srv.url, **bad))
    assert res["failed"] and message in res["msg"] and srv.log == []
