"""The vLLM-compatible model server, in-process, over real HTTP with `requests`."""
from __future__ import annotations

import base64
import json
import math
import struct
import time

import pytest
import requests

from maaslab.context import Faults, LabContext
from maaslab.model import ModelServer

GRANITE = "ibm-granite/granite-3.2-8b-instruct"
TINY = "tinyllama/tinyllama-1.1b-chat-v1.0"
WORKSHOP = {"model": GRANITE, "prompt": "San Francisco is a", "max_tokens": 15, "temperature": 0}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    ctx = LabContext(dir=d, settings={"max_model_len": 256})
    ctx.faults = Faults(d / "faults.json")
    srv = ModelServer(ctx)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture()
def url(server):
    return server.ctx.urls["model"]


@pytest.fixture()
def faults(server):
    path = server.ctx.faults.path

    def switch(**kw):
        # Clearing removes the file: a rewrite within the same mtime tick could go unnoticed.
        if kw:
            path.write_text(json.dumps({"model": kw}))
        else:
            path.unlink(missing_ok=True)
    yield switch
    path.unlink(missing_ok=True)


def tokens(url, text, model=GRANITE):
    r = requests.post(f"{url}/tokenize", json={"model": model, "prompt": text}, timeout=5)
    assert r.status_code == 200
    return r.json()


def sse(resp):
    """Parse an SSE body into JSON events plus the final [DONE] sentinel."""
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = []
    for line in resp.iter_lines():
        if line:
            assert line.startswith(b"data: ")
            payload = line[len(b"data: "):]
            events.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return events


def test_workshop_completion_shape_and_determinism(url):
    first = requests.post(f"{url}/v1/completions", json=WORKSHOP, timeout=5)
    assert first.status_code == 200
    body = first.json()
    assert body["id"].startswith("cmpl-") and len(body["id"]) > 10
    assert body["object"] == "text_completion" and body["model"] == GRANITE
    choice = body["choices"][0]
    assert choice["text"].startswith(" city in California known for its")
    assert choice["finish_reason"] == "length" and choice["logprobs"] is None
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 15, "total_tokens": 19}
    # usage agrees with the tokenizer; temperature 0 is deterministic (new id, same text)
    assert tokens(url, choice["text"])["count"] == 15
    assert tokens(url, WORKSHOP["prompt"])["count"] == 4
    second = requests.post(f"{url}/v1/completions", json=WORKSHOP, timeout=5).json()
    assert second["choices"][0]["text"] == choice["text"] and second["id"] != body["id"]


def test_short_answer_stops_and_long_prompt_differs(url):
    r = requests.post(f"{url}/v1/completions", json={"model": TINY, "prompt": "Tell me about Rome", "max_tokens": 200,
                                                     "temperature": 0}, timeout=5).json()
    choice = r["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert 0 < r["usage"]["completion_tokens"] < 200
    assert r["usage"]["completion_tokens"] == tokens(url, choice["text"], TINY)["count"]
    workshop = requests.post(f"{url}/v1/completions", json=WORKSHOP, timeout=5).json()
    assert choice["text"] != workshop["choices"][0]["text"]


def test_sampling_seed_is_reproducible_and_stop_strings(url):
    req = {"model": GRANITE, "prompt": "The model", "max_tokens": 30, "temperature": 0.9, "seed": 7}
    a = requests.post(f"{url}/v1/completions", json=req, timeout=5).json()["choices"][0]["text"]
    b = requests.post(f"{url}/v1/completions", json=req, timeout=5).json()["choices"][0]["text"]
    assert a == b
    stopped = requests.post(f"{url}/v1/completions", json={**WORKSHOP, "stop": [","]}, timeout=5).json()
    assert stopped["choices"][0]["text"] == " city in California known for its hilly terrain"
    assert stopped["choices"][0]["finish_reason"] == "stop" and stopped["choices"][0]["stop_reason"] == ","


def test_batch_prompts_and_n(url):
    r = requests.post(f"{url}/v1/completions", json={"model": GRANITE, "prompt": ["San Francisco is a", "Paris is"],
                                                     "max_tokens": 3, "temperature": 0, "n": 2}, timeout=5).json()
    assert [c["index"] for c in r["choices"]] == [0, 1, 2, 3]
    assert r["usage"]["prompt_tokens"] == 4 + 2 and r["usage"]["completion_tokens"] == 12


def test_chat_completion(url):
    req = {"model": TINY, "messages": [{"role": "system", "content": "You are helpful."},
                                       {"role": "user", "content": "What is the capital of France?"}],
           "temperature": 0, "max_tokens": 40}
    body = requests.post(f"{url}/v1/chat/completions", json=req, timeout=5).json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    msg = body["choices"][0]["message"]
    assert msg["role"] == "assistant" and "Paris" in msg["content"]
    prompt_count = requests.post(f"{url}/tokenize", json={"model": TINY, "messages": req["messages"]},
                                 timeout=5).json()["count"]
    assert body["usage"]["prompt_tokens"] == prompt_count
    assert body["usage"]["completion_tokens"] == tokens(url, msg["content"], TINY)["count"]
    assert body["usage"]["total_tokens"] == prompt_count + body["usage"]["completion_tokens"]


def test_chat_stream_with_usage(url):
    req = {"model": GRANITE, "messages": [{"role": "user", "content": "Tell me about San Francisco"}],
           "temperature": 0, "max_tokens": 12, "stream": True, "stream_options": {"include_usage": True}}
    with requests.post(f"{url}/v1/chat/completions", json=req, stream=True, timeout=5) as r:
        assert r.status_code == 200 and r.headers.get("Transfer-Encoding") == "chunked"
        events = sse(r)
    assert events[-1] == "[DONE]"
    chunks, usage = events[:-2], events[-2]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 12 == len(chunks) - 1
    unstreamed = requests.post(f"{url}/v1/chat/completions", json={**req, "stream": False}, timeout=5).json()
    assert unstreamed["choices"][0]["message"]["content"] == text


def test_completion_stream_without_usage(url):
    with requests.post(f"{url}/v1/completions", json={**WORKSHOP, "stream": True}, stream=True, timeout=5) as r:
        events = sse(r)
    assert events[-1] == "[DONE]" and all("usage" not in e for e in events[:-1])
    assert "".join(e["choices"][0]["text"] for e in events[:-1]).startswith(" city in California")
    assert len(events) - 1 == 15


def test_stream_is_incremental(server, url):
    server.ctx.settings["model_token_delay"] = 0.05
    try:
        t0 = time.monotonic()
        with requests.post(f"{url}/v1/completions", json={**WORKSHOP, "stream": True}, stream=True, timeout=5) as r:
            arrivals = [time.monotonic() - t0 for line in r.iter_lines() if line]
    finally:
        server.ctx.settings["model_token_delay"] = 0.0
    assert arrivals[-1] - arrivals[0] >= 14 * 0.05 * 0.8  # spread over the generation, not one burst


def test_embeddings(url):
    req = {"model": GRANITE, "input": ["San Francisco is a city", "San Francisco is a city in California",
                                       "Python is a programming language"]}
    body = requests.post(f"{url}/v1/embeddings", json=req, timeout=5).json()
    assert body["object"] == "list" and [d["index"] for d in body["data"]] == [0, 1, 2]
    vecs = [d["embedding"] for d in body["data"]]
    assert all(len(v) == len(vecs[0]) > 0 for v in vecs)
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-9 for v in vecs)
    cos = [sum(a * b for a, b in zip(vecs[0], v, strict=True)) for v in vecs[1:]]
    assert cos[0] > cos[1]  # related texts are closer
    assert body["usage"]["prompt_tokens"] == sum(tokens(url, t)["count"] for t in req["input"])
    again = requests.post(f"{url}/v1/embeddings", json={**req, "encoding_format": "base64"}, timeout=5).json()
    raw = base64.b64decode(again["data"][0]["embedding"])
    assert [round(x, 5) for x in struct.unpack(f"<{len(vecs[0])}f", raw)] == [round(x, 5) for x in vecs[0]]


def test_models_health_version_openapi(url):
    models = requests.get(f"{url}/v1/models", timeout=5).json()
    assert [m["id"] for m in models["data"]] == [GRANITE, TINY]
    assert all(m["object"] == "model" and m["owned_by"] == "vllm" for m in models["data"])
    health = requests.get(f"{url}/health", timeout=5)
    assert health.status_code == 200 and health.content == b""
    assert requests.get(f"{url}/version", timeout=5).json()["version"]
    doc = requests.get(f"{url}/openapi.json", timeout=5).json()
    assert doc["openapi"].startswith("3.1")  # what FastAPI emits and kin-openapi 3.0 rejects
    assert doc["paths"]["/v1/completions"]["post"]["operationId"] == "create_completion_v1_completions_post"
    assert {"type": "null"} in doc["components"]["schemas"]["CompletionRequest"]["properties"]["model"]["anyOf"]
    assert set(doc["paths"]) >= {"/health", "/tokenize", "/detokenize", "/v1/models", "/version",
                                 "/v1/chat/completions", "/v1/completions", "/v1/embeddings"}


def test_tokenize_detokenize_roundtrip(url):
    text = "Héllo, wörld! 3scale: 42 tokens\n  done."
    tok = tokens(url, text)
    assert tok["count"] == len(tok["tokens"]) and tok["max_model_len"] == 256
    back = requests.post(f"{url}/detokenize", json={"model": GRANITE, "tokens": tok["tokens"]}, timeout=5).json()
    assert back == {"prompt": text}
    assert tokens(url, "San Francisco")["tokens"] == tokens(url, "San Francisco")["tokens"]


@pytest.mark.parametrize("path,body,status,etype,message", [
    ("/v1/completions", {"model": "x", "prompt": "hi"}, 404, "NotFoundError", "The model `x` does not exist."),
    ("/v1/chat/completions", {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, 404,
     "NotFoundError", "The model `gpt-4` does not exist."),
    ("/v1/completions", {"model": GRANITE}, 400, "BadRequestError", "prompt"),
    ("/v1/completions", {"model": GRANITE, "prompt": "hi", "max_tokens": 0}, 400, "BadRequestError", "max_tokens"),
    ("/v1/completions", {"model": GRANITE, "prompt": "hi", "max_tokens": 1000}, 400, "BadRequestError",
     "maximum context length is 256 tokens"),
    ("/v1/completions", {"model": GRANITE, "prompt": "hi", "temperature": -1}, 400, "BadRequestError", "temperature"),
    ("/v1/chat/completions", {"model": GRANITE, "messages": []}, 400, "BadRequestError", "messages"),
    ("/v1/embeddings", {"model": GRANITE, "input": 5}, 400, "BadRequestError", "input"),
    ("/detokenize", {"model": GRANITE, "tokens": [10 ** 9]}, 400, "BadRequestError", "vocabulary"),
])
def test_errors(url, path, body, status, etype, message):
    r = requests.post(url + path, json=body, timeout=5)
    assert r.status_code == status
    err = r.json()
    assert err["object"] == "error" and err["type"] == etype and err["code"] == status and err["param"] is None
    assert message in err["message"]


def test_bad_json_and_unknown_route(url):
    r = requests.post(f"{url}/v1/completions", data=b"{not json", headers={"Content-Type": "application/json"},
                      timeout=5)
    assert r.status_code == 400 and r.json()["type"] == "BadRequestError"
    assert requests.get(f"{url}/nope", timeout=5).status_code == 404
    assert requests.get(f"{url}/v1/completions", timeout=5).status_code == 405


def test_fault_delay(url, faults):
    faults(delay=0.3)
    t0 = time.monotonic()
    assert requests.get(f"{url}/health", timeout=5).status_code == 200
    assert time.monotonic() - t0 >= 0.3


def test_fault_error_rate(url, faults):
    faults(error_rate=1.0, error_status=503)
    r = requests.post(f"{url}/v1/completions", json=WORKSHOP, timeout=5)
    assert r.status_code == 503 and r.json()["code"] == 503 and r.json()["object"] == "error"


def test_fault_down_drops_connection(url, faults):
    faults(down=True)
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{url}/v1/completions", json=WORKSHOP, timeout=5)
    faults()
    assert requests.post(f"{url}/v1/completions", json=WORKSHOP, timeout=5).status_code == 200


def test_no_credential_echo(url):
    r = requests.post(f"{url}/v1/completions", json=WORKSHOP, timeout=5,
                      headers={"Authorization": "Bearer sekrit-key-123"})
    assert "sekrit-key-123" not in r.text and "sekrit" not in str(r.headers)
