"""model_endpoint_info against scripted vLLM servers on 127.0.0.1: a model id served, one that is not
(the ids served listed, nothing else decided), and endpoints that cannot be asked (left to the smoke
test with a warning, never a failure)."""
from __future__ import annotations

import socket

from ansible_collections.maas.threescale.plugins.modules import model_endpoint_info as mei

TINY = "tinyllama/tinyllama-1.1b-chat-v1.0"


def vllm(*ids, status=200, body=None):
    def app(method, path, query, form, headers):
        if (method, path) != ("GET", "/v1/models"):
            return 404, {"detail": "Not Found"}, None
        return status, body if body is not None else {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]}, None
    return app


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_unserved_and_unreachable_endpoints_in_one_run(serve, run_module, monkeypatch):
    warned = []
    monkeypatch.setattr(mei.AnsibleModule, "warn", lambda self, msg: warned.append(msg))
    good = serve(vllm(TINY, "granite"))
    other = serve(vllm(*["m%02d" % i for i in range(12)]))
    dead = "http://127.0.0.1:%d" % closed_port()
    res = run_module(mei, {"models": [
        {"name": "tiny", "endpoint": good.url + "/", "model_id": TINY, "accounts": ["ignored"]},
        {"name": "granite", "endpoint": good.url, "model_id": "granite"},
        {"name": "typo", "endpoint": other.url, "model_id": "m-99"},
        {"name": "away", "endpoint": dead, "model_id": TINY},
    ], "request_timeout": 5})
    assert not res.get("failed") and res["changed"] is False
    by = {m["name"]: m for m in res["models"]}
    assert [m["name"] for m in res["models"]] == ["tiny", "granite", "typo", "away"]
    assert by["tiny"]["serves_model_id"] is True and by["tiny"]["served"] == [TINY, "granite"]
    assert by["granite"]["serves_model_id"] is True
    # Each endpoint is asked once, even when several models share it.
    assert len(good.log) == 1 and good.log[0]["path"] == "/v1/models"
    # The unserved id: the message names the model, the id, what is served (ten, then a count) and the fix.
    assert [m["name"] for m in res["unserved"]] == ["typo"]
    msg = res["unserved"][0]["message"]
    assert "typo:" in msg and "does not serve model_id m-99" in msg and "m00, m01" in msg and "m09 and 2 more" in msg
    assert "nothing was changed" in msg and "--served-model-name" in msg
    assert len(by["typo"]["served"]) == 12
    # The unreachable endpoint: not checked, a warning says the smoke test is what checks it.
    assert [m["name"] for m in res["unchecked"]] == ["away"] and by["away"]["serves_model_id"] is None
    assert warned == [by["away"]["message"]] and "away: could not ask GET %s/v1/models" % dead in warned[0]
    assert "smoke test" in warned[0]


def test_answers_that_are_not_a_model_list_leave_the_model_unchecked(serve, run_module):
    locked = serve(vllm(status=401, body={"error": "Unauthorized"}))  # vLLM started with --api-key
    html = serve(vllm(body="<html>a login page</html>"))
    res = run_module(mei, {"models": [{"name": "a", "endpoint": locked.url, "model_id": TINY},
                                      {"name": "b", "endpoint": html.url, "model_id": TINY}]})
    assert res["unserved"] == [] and [m["name"] for m in res["unchecked"]] == ["a", "b"]
    assert "it answered HTTP 401" in res["models"][0]["message"]
    assert "not a model list" in res["models"][1]["message"]


def test_bad_input_is_named(run_module):
    res = run_module(mei, {"models": [{"name": "a", "endpoint": "ftp://x", "model_id": "m"}]})
    assert res["failed"] and "models[].endpoint of a is not an http(s) URL" in res["msg"]
    res = run_module(mei, {"models": [{"name": "a", "endpoint": "http://x"}]})
    assert res["failed"] and "models[0] (a) has no model_id" in res["msg"]
    assert run_module(mei, {"models": []})["models"] == []


def test_listed_ids_reads_only_an_openai_model_list():
    assert mei.listed_ids('{"data": [{"id": "a"}, {"id": 7}, {"x": 1}, "junk"]}') == ["a", "7"]
    assert mei.listed_ids('{"data": {}}') is None and mei.listed_ids("[]") is None and mei.listed_ids("no") is None
