"""ModelServer: vLLM's OpenAI-compatible HTTP API (routing, validation, SSE, errors, faults)."""
from __future__ import annotations

import base64
import json
import logging
import random
import struct
import time
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from ..context import LabContext
from ..httpbase import JSONHandler, LabHTTPServer
from .lm import LM, embed
from .openapi import openapi_document
from .tokenizer import chat_prompt, content_text, detokenize, tokenize

LOG = logging.getLogger("maaslab.model")

DEFAULT_MODELS = ["ibm-granite/granite-3.2-8b-instruct", "tinyllama/tinyllama-1.1b-chat-v1.0"]
VLLM_VERSION = "0.8.5"


class APIError(Exception):
    def __init__(self, status: int, message: str, etype: str | None = None):
        super().__init__(message)
        self.status = status
        self.etype = etype or {400: "BadRequestError", 404: "NotFoundError"}.get(
            status, HTTPStatus(status).phrase.replace(" ", "") + "Error")


def _error_body(e: APIError) -> dict[str, Any]:
    return {"object": "error", "message": str(e), "type": e.etype, "param": None, "code": e.status}


class ModelHandler(JSONHandler):
    def version_string(self):
        return "uvicorn"  # what vLLM's OpenAI server answers with

    def log_message(self, fmt, *args):  # never log query strings (they may carry user_key)
        LOG.debug("%s %s %s", self.command, urlsplit(self.path).path, args[1] if len(args) > 1 else "")

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _dispatch(self):
        try:
            self._handle()
        except (BrokenPipeError, ConnectionResetError):  # the client (or APIcast, on timeout) went away
            self.close_connection = True

    def _handle(self):
        model: ModelServer = self.server.component
        faults = model.faults()
        if faults.get("down"):
            self.close_connection = True  # no response at all: the client sees the connection drop
            return
        self.read_body()
        if faults.get("delay"):
            time.sleep(float(faults["delay"]))
        path = urlsplit(self.path).path
        routes = {
            ("GET", "/health"): model.health, ("GET", "/version"): model.version,
            ("GET", "/v1/models"): model.models, ("GET", "/openapi.json"): model.openapi,
            ("POST", "/v1/completions"): model.completions, ("POST", "/v1/chat/completions"): model.chat,
            ("POST", "/v1/embeddings"): model.embeddings, ("POST", "/tokenize"): model.tokenize,
            ("POST", "/detokenize"): model.detokenize,
        }
        route = routes.get((self.command, path))
        try:
            if route is None:
                if any(p == path for _, p in routes):
                    self.send_json(405, {"detail": "Method Not Allowed"})
                else:
                    self.send_json(404, {"detail": "Not Found"})
                return
            if model.ctx.faults and model.ctx.faults.chance(float(faults.get("error_rate") or 0)):
                raise APIError(int(faults.get("error_status") or 500), "injected fault")
            body = None
            if self.command == "POST":
                try:
                    body = json.loads(self.read_body() or b"null")
                except ValueError as e:
                    raise APIError(400, f"Invalid JSON body: {e}") from None
                if not isinstance(body, dict):
                    raise APIError(400, "The request body must be a JSON object")
            result = route(body) if body is not None else route()
            if result is None:
                self.send_bytes(200, b"", content_type=None)
            elif isinstance(result, Iterator):
                self._stream(result)
            else:
                self.send_json(200, result, content_type="application/json")
        except APIError as e:
            self.send_json(e.status, _error_body(e), content_type="application/json")

    def _stream(self, events: Iterator[dict[str, Any] | str]) -> None:
        delay = float(self.server.component.ctx.settings.get("model_token_delay") or 0)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for i, ev in enumerate(events):
                if delay and i:
                    time.sleep(delay)  # inter-token latency of a real model
                data = b"data: " + (ev if isinstance(ev, str) else json.dumps(ev)).encode() + b"\n\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # client went away mid-stream
            self.close_connection = True


class ModelServer:
    """The lab's model server; `names`/`port_name` let another component (the KServe stand-in) run
    one more instance serving other model ids on its own stable port (`url_key`=None: no ctx.urls entry)."""

    def __init__(self, ctx: LabContext, names: list[str] | None = None, port_name: str = "model",
                 url_key: str | None = "model"):
        self.ctx = ctx
        self.names: list[str] = list(names or ctx.settings.get("models") or DEFAULT_MODELS)
        self.max_model_len = int(ctx.settings.get("max_model_len", 4096))
        self.created = int(time.time())
        self.server: LabHTTPServer | None = None
        self.port_name, self.url_key = port_name, url_key
        self.url: str | None = None

    def faults(self) -> dict[str, Any]:
        """The live fault switches this server obeys (the lab model server: `model`)."""
        return self.ctx.faults.get("model") if self.ctx.faults else {}

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        port = self.ctx.port(self.port_name)
        self.server = LabHTTPServer(("127.0.0.1", port), ModelHandler, component=self)
        self.server.start_background(f"{self.port_name}-http")
        self.url = f"http://127.0.0.1:{port}"
        if self.url_key:
            self.ctx.urls[self.url_key] = self.url
        LOG.info("model server on %s serving %s", self.url, self.names)

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # -- helpers ----------------------------------------------------------------------------
    def _model(self, body: dict[str, Any]) -> str:
        name = body.get("model")
        if name is None:  # vLLM falls back to the first served model
            return self.names[0]
        if name not in self.names:
            raise APIError(404, f"The model `{name}` does not exist.")
        return name

    @staticmethod
    def _num(body: dict[str, Any], key: str, default: Any, kind: type, minimum: float | None = None) -> Any:
        v = body.get(key, default)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
            raise APIError(400, f"{key} must be of type {kind.__name__}, got {v!r}")
        if minimum is not None and v < minimum:
            raise APIError(400, f"{key} must be at least {minimum}, got {v}.")
        return kind(v)

    def _limits(self, body: dict[str, Any], prompt_len: int, default_max: int | None) -> int:
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is None:
            max_tokens = default_max if default_max is not None else self.max_model_len - prompt_len
        max_tokens = self._num({"max_tokens": max_tokens}, "max_tokens", None, int, 1)
        if prompt_len + max_tokens > self.max_model_len:
            raise APIError(400, f"This model's maximum context length is {self.max_model_len} tokens. However, "
                                f"you requested {prompt_len + max_tokens} tokens ({prompt_len} in the messages, "
                                f"{max_tokens} in the completion). Please reduce the length of the messages or "
                                "completion.")
        return max_tokens

    @staticmethod
    def _stops(body: dict[str, Any]) -> list[str]:
        stop = body.get("stop")
        if stop is None:
            return []
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise APIError(400, "stop must be a string or a list of strings")
        return [s for s in stops if s]

    def _run(self, context: str, body: dict[str, Any], max_tokens: int, index: int, fresh: bool):
        """Generate one choice: (text, completion token ids, finish_reason, stop_reason)."""
        temperature = self._num(body, "temperature", 1.0, float, 0)
        seed = body.get("seed")
        if seed is not None:
            seed = self._num(body, "seed", None, int) + index
        elif temperature > 0:
            seed = random.getrandbits(32)
        pieces, finish = LM.generate(context, max_tokens, temperature, seed, fresh)
        text, stop_reason = "".join(pieces), None
        for s in self._stops(body):
            at = text.find(s)
            if at >= 0:
                text, finish, stop_reason = text[:at], "stop", s
        ids = tokenize(text)
        return text, ids, finish, stop_reason

    def _delay_tokens(self, n: int) -> None:
        delay = float(self.ctx.settings.get("model_token_delay") or 0)
        if delay:
            time.sleep(delay * n)  # non-streamed answers take as long as the streamed ones

    @staticmethod
    def _usage(prompt: int, completion: int) -> dict[str, int]:
        return {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion}

    # -- endpoints --------------------------------------------------------------------------
    def health(self):
        return None

    def version(self):
        return {"version": VLLM_VERSION}

    def models(self):
        return {"object": "list", "data": [{
            "id": n, "object": "model", "created": self.created, "owned_by": "vllm", "root": n, "parent": None,
            "max_model_len": self.max_model_len,
            "permission": [{"id": f"modelperm-{uuid.uuid5(uuid.NAMESPACE_URL, n).hex}", "object": "model_permission",
                            "created": self.created, "allow_create_engine": False, "allow_sampling": True,
                            "allow_logprobs": True, "allow_search_indices": False, "allow_view": True,
                            "allow_fine_tuning": False, "organization": "*", "group": None,
                            "is_blocking": False}]} for n in self.names]}

    def tokenize(self, body):
        self._model(body)
        if "messages" in body:
            text = chat_prompt(self._messages(body))
        elif isinstance(body.get("prompt"), str):
            text = body["prompt"]
        else:
            raise APIError(400, "Either prompt (a string) or messages is required")
        ids = tokenize(text)
        return {"count": len(ids), "max_model_len": self.max_model_len, "tokens": ids, "token_strs": None}

    def detokenize(self, body):
        self._model(body)
        ids = body.get("tokens")
        if not isinstance(ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
            raise APIError(400, "tokens must be a list of integers")
        try:
            return {"prompt": detokenize(ids)}
        except ValueError as e:
            raise APIError(400, str(e)) from None

    def _prompts(self, body) -> list[str]:
        p = body.get("prompt")
        if isinstance(p, str):
            return [p]
        if isinstance(p, list) and p:
            if all(isinstance(x, str) for x in p):
                return p
            if all(isinstance(x, int) and not isinstance(x, bool) for x in p):
                return [detokenize(p)]
            if all(isinstance(x, list) for x in p):
                return [detokenize(x) for x in p]
        raise APIError(400, "prompt must be a string, a list of strings or a list of token ids")

    def completions(self, body):
        name = self._model(body)
        prompts = self._prompts(body)
        n = self._num(body, "n", 1, int, 1)
        rid, created = "cmpl-" + uuid.uuid4().hex, int(time.time())
        runs = []
        for pi, prompt in enumerate(prompts):
            plen = len(tokenize(prompt))
            max_tokens = self._limits(body, plen, 16)
            for i in range(n):
                runs.append((pi * n + i, plen) + self._run(prompt, body, max_tokens, i, fresh=False))
        prompt_total = sum(len(tokenize(p)) for p in prompts)
        usage = self._usage(prompt_total, sum(len(r[3]) for r in runs))
        if body.get("stream"):
            return self._completion_stream(name, rid, created, runs, usage, body)
        self._delay_tokens(max((len(r[3]) for r in runs), default=0))
        return {"id": rid, "object": "text_completion", "created": created, "model": name,
                "choices": [{"index": idx, "text": text, "logprobs": None, "finish_reason": fin,
                             "stop_reason": sr, "prompt_logprobs": None}
                            for idx, _, text, _, fin, sr in runs],
                "usage": usage}

    def _completion_stream(self, name, rid, created, runs, usage, body):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": rid, "object": "text_completion", "created": created, "model": name}
        extra = {"usage": None} if include_usage else {}
        for idx, _, _, ids, fin, sr in runs:
            for k, tid in enumerate(ids):
                last = k == len(ids) - 1
                yield {**base, "choices": [{"index": idx, "text": detokenize([tid]), "logprobs": None,
                                            "finish_reason": fin if last else None,
                                            "stop_reason": sr if last else None}], **extra}
            if not ids:
                yield {**base, "choices": [{"index": idx, "text": "", "logprobs": None,
                                            "finish_reason": fin, "stop_reason": sr}], **extra}
        if include_usage:
            yield {**base, "choices": [], "usage": usage}
        yield "[DONE]"

    def _messages(self, body) -> list[dict[str, Any]]:
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise APIError(400, "messages must be a non-empty list")
        for m in msgs:
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool", "developer"):
                raise APIError(400, f"invalid message: {m!r}")
            try:
                content_text(m.get("content"))
            except ValueError as e:
                raise APIError(400, str(e)) from None
        return msgs

    def chat(self, body):
        name = self._model(body)
        msgs = self._messages(body)
        prompt = chat_prompt(msgs)
        plen = len(tokenize(prompt))
        max_tokens = self._limits(body, plen, None)
        n = self._num(body, "n", 1, int, 1)
        question = next((content_text(m.get("content")) for m in reversed(msgs) if m["role"] == "user"), "")
        runs = [self._run(question, body, max_tokens, i, fresh=True) for i in range(n)]
        rid, created = "chatcmpl-" + uuid.uuid4().hex, int(time.time())
        usage = self._usage(plen, sum(len(r[1]) for r in runs))
        if body.get("stream"):
            return self._chat_stream(name, rid, created, runs, usage, body)
        self._delay_tokens(max(len(r[1]) for r in runs))
        return {"id": rid, "object": "chat.completion", "created": created, "model": name,
                "choices": [{"index": i, "message": {"role": "assistant", "reasoning_content": None,
                                                     "content": text, "tool_calls": []},
                             "logprobs": None, "finish_reason": fin, "stop_reason": sr}
                            for i, (text, _, fin, sr) in enumerate(runs)],
                "usage": usage, "prompt_logprobs": None}

    def _chat_stream(self, name, rid, created, runs, usage, body):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name}
        extra = {"usage": None} if include_usage else {}
        for i, (_, ids, fin, sr) in enumerate(runs):
            yield {**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                        "logprobs": None, "finish_reason": None}], **extra}
            for k, tid in enumerate(ids):
                last = k == len(ids) - 1
                yield {**base, "choices": [{"index": i, "delta": {"content": detokenize([tid])}, "logprobs": None,
                                            "finish_reason": fin if last else None,
                                            "stop_reason": sr if last else None}], **extra}
            if not ids:
                yield {**base, "choices": [{"index": i, "delta": {"content": ""}, "logprobs": None,
                                            "finish_reason": fin, "stop_reason": sr}], **extra}
        if include_usage:
            yield {**base, "choices": [], "usage": usage}
        yield "[DONE]"

    def embeddings(self, body):
        name = self._model(body)
        inp = body.get("input")
        if isinstance(inp, str):
            inputs = [tokenize(inp)]
        elif isinstance(inp, list) and inp and all(isinstance(x, str) for x in inp):
            inputs = [tokenize(x) for x in inp]
        elif isinstance(inp, list) and inp and all(isinstance(x, int) and not isinstance(x, bool) for x in inp):
            inputs = [inp]
        elif isinstance(inp, list) and inp and all(isinstance(x, list) for x in inp):
            inputs = inp
        else:
            raise APIError(400, "input must be a string, a list of strings or token ids")
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise APIError(400, f"encoding_format must be 'float' or 'base64', got {fmt!r}")
        data = []
        for i, ids in enumerate(inputs):
            vec = embed(ids)
            emb: Any = vec if fmt == "float" else base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            data.append({"index": i, "object": "embedding", "embedding": emb})
        total = sum(len(ids) for ids in inputs)
        return {"id": "embd-" + uuid.uuid4().hex, "object": "list", "created": int(time.time()), "model": name,
                "data": data, "usage": {"prompt_tokens": total, "total_tokens": total, "completion_tokens": 0,
                                        "prompt_tokens_details": None}}

    def openapi(self):
        return openapi_document()
