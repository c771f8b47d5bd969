"""A vLLM-compatible model server (the OpenAI API subset vLLM serves), deterministic and tiny.

What makes it behave like a real model server for our clients:
* a real tokenizer (regex word/punctuation pieces, a fixed vocabulary with stable ids and a byte
  fallback, so /tokenize, /detokenize and `usage` always agree);
* a trigram language model trained at import on a small built-in corpus: temperature 0 is
  deterministic and plausible ("San Francisco is a" -> " city in California known for ...");
  temperature > 0 samples (reproducible with `seed`);
* vLLM's response and error shapes, SSE streaming with `data: [DONE]`, FastAPI's OpenAPI 3.1
  document at /openapi.json.

Settings: `models` (served names), `max_model_len` (4096), `model_token_delay` (seconds per
generated token, 0 by default: lets tests observe streaming). Faults (`ctx.faults.get("model")`):
`delay` (seconds before answering), `down` (the connection is closed without any response, like
a pod that died: clients see a reset / "RemoteDisconnected", APIcast answers 502),
`error_rate` + `error_status` (vLLM-shaped error JSON with that status, default 500).
"""
from __future__ import annotations

import base64
import functools
import json
import logging
import math
import random
import re
import struct
import time
import uuid
import zlib
from collections import Counter, defaultdict
from http import HTTPStatus
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from .context import LabContext
from .httpbase import JSONHandler, LabHTTPServer

LOG = logging.getLogger("maaslab.model")

DEFAULT_MODELS = ["ibm-granite/granite-3.2-8b-instruct", "tinyllama/tinyllama-1.1b-chat-v1.0"]
VLLM_VERSION = "0.8.5"
EMBEDDING_DIM = 384

# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------

# Training text of the toy language model; every word in it is also in the vocabulary.
CORPUS = """\
San Francisco is a city in California known for its hilly terrain, iconic Golden Gate Bridge, and vibrant culture.
The city is a major center of technology, finance and tourism on the west coast of the United States.
Visitors ride the historic cable cars, walk across the bridge and eat fresh seafood near the bay.
Paris is the capital of France and one of the most visited cities in the world.
The river flows through the heart of the city, past museums, gardens and old stone bridges.
Rome is an ancient city with a long history, famous for its ruins, churches and food.
New York is a large city on the east coast, known for its tall buildings, busy streets and many theaters.
A large language model is a neural network trained on a large amount of text to predict the next token.
The model can answer questions, write code, summarize documents and translate between languages.
Models as a Service lets every team use the same models through a secure API gateway.
An API gateway checks the key of each request, counts the usage and forwards the call to the model server.
Each application gets its own key, and the plan of the application sets the limits of its usage.
The developer portal shows the documentation, the endpoint and the key of each application.
OpenShift runs the model server in a container, and the route exposes the service over HTTPS.
The weather today is sunny and warm, with a light wind from the sea.
Good software is simple, tested and easy to change, and it does one thing well.
Python is a popular programming language known for its clear syntax and large community.
Hello, I am a helpful assistant, and I am happy to help you with your question.
The answer depends on the context, but here is a short and clear explanation.
"""

EXTRA_WORDS = """a an the is are was be to of in on at for with by from as and or not no yes it this that
what who how why when where which i you we they he she my your our their me us them do does can will would
should could may might have has had hello hi thanks please ok help tell write explain list give show make
one two three first second next last new old good bad big small more most less many much some any all
time day year world model models token tokens text code data api key service services request response
user users chat completion completions embedding embeddings test example question answer story poem joke
""".split()

SPECIAL_TOKENS = ["<unk>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>"]
EOS_ID = 1
PUNCT = list(".,!?;:'\"()[]{}-/&%$#@*+=<>_`~|\\^")
# Pieces: chat specials, words and single digits with an optional leading space, single
# punctuation with an optional leading space, newlines, any other whitespace char.
PIECE_RE = re.compile(r"<\|[a-z]+\|>| ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]|\n|\s")


def _build_vocab() -> tuple[dict[str, int], list[str]]:
    words = set(re.findall(r"[A-Za-z]+", CORPUS)) | set(EXTRA_WORDS)
    words |= {w.capitalize() for w in words}
    pieces: set[str] = set()
    for w in list(words) + PUNCT + [str(d) for d in range(10)]:
        pieces.update((w, " " + w))
    pieces.update(("\n", " ", "\t"))
    id_to_piece = SPECIAL_TOKENS + [f"<0x{b:02X}>" for b in range(256)] + sorted(pieces)
    return {p: i for i, p in enumerate(id_to_piece)}, id_to_piece


VOCAB, ID_TO_PIECE = _build_vocab()
BYTE_BASE = len(SPECIAL_TOKENS)
FIRST_WORD_ID = BYTE_BASE + 256


def tokenize(text: str) -> list[int]:
    ids: list[int] = []
    for piece in PIECE_RE.findall(text):
        tid = VOCAB.get(piece)
        if tid is not None:
            ids.append(tid)
        else:  # byte fallback keeps every string encodable and decodable
            ids.extend(BYTE_BASE + b for b in piece.encode("utf-8"))
    return ids


def detokenize(ids: list[int], skip_special_tokens: bool = True) -> str:
    out = bytearray()
    for tid in ids:
        if tid < 0 or tid >= len(ID_TO_PIECE):
            raise ValueError(f"token id {tid} is out of vocabulary")
        if tid < BYTE_BASE:
            if not skip_special_tokens:
                out += ID_TO_PIECE[tid].encode()
        elif tid < FIRST_WORD_ID:
            out.append(tid - BYTE_BASE)
        else:
            out += ID_TO_PIECE[tid].encode()
    return out.decode("utf-8", errors="replace")


def chat_prompt(messages: list[dict[str, Any]]) -> str:
    """The chat template (granite-like role markers, which are special tokens)."""
    parts = [f"<|{m['role']}|>\n{_content_text(m.get('content'))}\n" for m in messages]
    return "".join(parts) + "<|assistant|>\n"


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise ValueError("message content must be a string or a list of content parts")


# --------------------------------------------------------------------------------------------
# Language model: word trigrams with back-off, trained on CORPUS
# --------------------------------------------------------------------------------------------

def _norm(piece: str) -> str:
    return piece.strip().lower()


class TrigramLM:
    def __init__(self, corpus: str):
        self.next: dict[tuple[str, ...], Counter] = defaultdict(Counter)
        self.starts: list[list[str]] = []
        for line in corpus.splitlines():
            pieces = [p for p in PIECE_RE.findall(line) if p.strip()]
            if not pieces:
                continue
            pieces[0] = pieces[0].lstrip()
            self.starts.append(pieces)
            seq = ["<s>"] + pieces + ["</s>"]
            for i in range(1, len(seq)):
                nxt = seq[i] if seq[i] == "</s>" or seq[i] in PUNCT else " " + seq[i].lstrip()
                for order in (3, 2, 1):
                    if i - order >= 0:
                        self.next[tuple(_norm(p) for p in seq[i - order:i])][nxt] += 1

    def candidates(self, history: list[str]) -> Counter:
        words = [_norm(p) for p in history if p.strip()]
        for order in (3, 2, 1):
            if len(words) >= order:
                c = self.next.get(tuple(words[-order:]))
                if c:
                    return c
        return Counter()

    def generate(self, context: str, max_tokens: int, temperature: float, seed: int | None,
                 fresh_start: bool) -> tuple[list[str], str]:
        """Return (pieces, finish_reason). Each piece is exactly one vocabulary token."""
        key = zlib.crc32(context.encode())
        rng = random.Random(seed if seed is not None else (key if temperature == 0 else None))
        history = [p for p in PIECE_RE.findall(context) if p.strip()]
        sentences_left = 1 + key % 3  # how long the answer wants to be before end-of-text
        out: list[str] = []
        if fresh_start:  # chat: answer with the corpus sentence sharing most words with the question
            asked = {_norm(p) for p in history if p.strip() and p.strip() not in PUNCT}
            best = max(self.starts, key=lambda s: (len(asked & {_norm(p) for p in s}), -self.starts.index(s)))
            history = ["<s>", best[0]]
            out.append(best[0])
        while len(out) < max_tokens:
            cands = self.candidates(history)
            cands = Counter({p: n for p, n in cands.items() if p != "</s>"}) or cands
            if not cands or list(cands) == ["</s>"]:
                # back to a new sentence, chosen by the context (deterministic at temperature 0)
                piece = " " + self.starts[(key + len(out)) % len(self.starts)][0]
            elif temperature == 0:
                piece = min(cands, key=lambda p: (-cands[p], zlib.crc32((p + str(key)).encode())))
            else:
                items = sorted(cands.items())
                weights = [n ** (1.0 / temperature) for _, n in items]
                piece = rng.choices([p for p, _ in items], weights)[0]
            if not out and fresh_start is False and context.endswith((" ", "\n")):
                piece = piece.lstrip() or piece
            out.append(piece)
            history.append(piece)
            if piece in (".", "!", "?"):
                sentences_left -= 1
                if sentences_left == 0:
                    return out, "stop"
        return out, "length"


LM = TrigramLM(CORPUS)


@functools.lru_cache(maxsize=4096)
def _token_vector(tid: int) -> tuple[float, ...]:
    rng = random.Random(tid * 7919 + 17)
    return tuple(rng.gauss(0.0, 1.0) for _ in range(EMBEDDING_DIM))


def embed(ids: list[int]) -> list[float]:
    """Deterministic bag-of-tokens embedding, L2-normalised (similar texts -> similar vectors)."""
    acc = [0.0] * EMBEDDING_DIM
    for tid in ids:
        for i, v in enumerate(_token_vector(tid)):
            acc[i] += v
    norm = math.sqrt(sum(v * v for v in acc)) or 1.0
    return [v / norm for v in acc]


# --------------------------------------------------------------------------------------------
# HTTP API
# --------------------------------------------------------------------------------------------

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
        faults = model.ctx.faults.get("model") if model.ctx.faults else {}
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
    def __init__(self, ctx: LabContext):
        self.ctx = ctx
        self.names: list[str] = list(ctx.settings.get("models") or DEFAULT_MODELS)
        self.max_model_len = int(ctx.settings.get("max_model_len", 4096))
        self.created = int(time.time())
        self.server: LabHTTPServer | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        port = self.ctx.port("model")
        self.server = LabHTTPServer(("127.0.0.1", port), ModelHandler, component=self)
        self.server.start_background("model-http")
        self.ctx.urls["model"] = f"http://127.0.0.1:{port}"
        LOG.info("model server on %s serving %s", self.ctx.urls["model"], self.names)

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
                _content_text(m.get("content"))
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
        question = next((_content_text(m.get("content")) for m in reversed(msgs) if m["role"] == "user"), "")
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


# --------------------------------------------------------------------------------------------
# /openapi.json as FastAPI (OpenAPI 3.1, JSON Schema 2020-12 idioms) emits it for vLLM
# --------------------------------------------------------------------------------------------

def _opt(schema: dict[str, Any], title: str, default: Any = None) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}], "title": title, "default": default}


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
    text_or_list = {"anyOf": [{"type": "string"}, {"items": {"type": "string"}, "type": "array"},
                              {"items": {"type": "integer"}, "type": "array"}]}
    schemas = {
        "CompletionRequest": {"type": "object", "title": "CompletionRequest", "required": ["prompt"], "properties": {
            "model": _opt({"type": "string"}, "Model"),
            "prompt": {**text_or_list, "title": "Prompt"},
            "max_tokens": _opt({"type": "integer", "exclusiveMinimum": 0}, "Max Tokens", 16),
            "temperature": _opt({"type": "number", "minimum": 0}, "Temperature"),
            "n": {"type": "integer", "title": "N", "default": 1},
            "seed": _opt({"type": "integer"}, "Seed"),
            "stop": _opt({"anyOf": [{"type": "string"}, {"items": {"type": "string"}, "type": "array"}]}, "Stop", []),
            "stream": _opt({"type": "boolean"}, "Stream", False),
            "stream_options": _opt(ref("StreamOptions"), "Stream Options")},
            "additionalProperties": True},
        "ChatCompletionRequest": {"type": "object", "title": "ChatCompletionRequest", "required": ["messages"],
                                  "properties": {
            "messages": {"items": {"type": "object", "additionalProperties": True}, "type": "array",
                         "title": "Messages"},
            "model": _opt({"type": "string"}, "Model"),
            "max_tokens": _opt({"type": "integer"}, "Max Tokens"),
            "max_completion_tokens": _opt({"type": "integer"}, "Max Completion Tokens"),
            "temperature": _opt({"type": "number"}, "Temperature"),
            "n": _opt({"type": "integer"}, "N", 1),
            "seed": _opt({"type": "integer", "maximum": 9223372036854775807,
                          "minimum": -9223372036854775808}, "Seed"),
            "stream": _opt({"type": "boolean"}, "Stream", False),
            "stream_options": _opt(ref("StreamOptions"), "Stream Options")},
            "additionalProperties": True},
        "StreamOptions": {"type": "object", "title": "StreamOptions", "properties": {
            "include_usage": _opt({"type": "boolean"}, "Include Usage", True),
            "continuous_usage_stats": _opt({"type": "boolean"}, "Continuous Usage Stats", False)},
            "additionalProperties": True},
        "EmbeddingCompletionRequest": {"type": "object", "title": "EmbeddingCompletionRequest", "required": ["input"],
                                       "properties": {
            "model": _opt({"type": "string"}, "Model"),
            "input": {**text_or_list, "title": "Input"},
            "encoding_format": {"type": "string", "enum": ["float", "base64"], "title": "Encoding Format",
                                "default": "float"},
            "dimensions": _opt({"type": "integer"}, "Dimensions")}, "additionalProperties": True},
        "TokenizeCompletionRequest": {"type": "object", "title": "TokenizeCompletionRequest", "required": ["prompt"],
                                      "properties": {"model": _opt({"type": "string"}, "Model"),
                                                     "prompt": {"type": "string", "title": "Prompt"},
                                                     "add_special_tokens": {"type": "boolean", "default": True,
                                                                            "title": "Add Special Tokens"}},
                                      "additionalProperties": True},
        "DetokenizeRequest": {"type": "object", "title": "DetokenizeRequest", "required": ["tokens"], "properties": {
            "model": _opt({"type": "string"}, "Model"),
            "tokens": {"items": {"type": "integer"}, "type": "array", "title": "Tokens"}},
            "additionalProperties": True},
        "ValidationError": {"type": "object", "title": "ValidationError", "required": ["loc", "msg", "type"],
                            "properties": {
            "loc": {"items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}, "type": "array",
                    "title": "Location"},
            "msg": {"type": "string", "title": "Message"}, "type": {"type": "string", "title": "Error Type"}}},
        "HTTPValidationError": {"type": "object", "title": "HTTPValidationError", "properties": {
            "detail": {"items": ref("ValidationError"), "type": "array", "title": "Detail"}}},
    }

    def op(op_id: str, summary: str, body: str | None = None) -> dict[str, Any]:
        o: dict[str, Any] = {"summary": summary, "operationId": op_id, "responses": {
            "200": {"description": "Successful Response", "content": {"application/json": {"schema": {}}}}}}
        if body:
            o["requestBody"] = {"content": {"application/json": {"schema": ref(body)}}, "required": True}
            o["responses"]["422"] = {"description": "Validation Error", "content": {
                "application/json": {"schema": ref("HTTPValidationError")}}}
        return o

    paths = {
        "/health": {"get": op("health_health_get", "Health")},
        "/tokenize": {"post": op("tokenize_tokenize_post", "Tokenize", "TokenizeCompletionRequest")},
        "/detokenize": {"post": op("detokenize_detokenize_post", "Detokenize", "DetokenizeRequest")},
        "/v1/models": {"get": op("show_available_models_v1_models_get", "Show Available Models")},
        "/version": {"get": op("show_version_version_get", "Show Version")},
        "/v1/chat/completions": {"post": op("create_chat_completion_v1_chat_completions_post",
                                            "Create Chat Completion", "ChatCompletionRequest")},
        "/v1/completions": {"post": op("create_completion_v1_completions_post", "Create Completion",
                                       "CompletionRequest")},
        "/v1/embeddings": {"post": op("create_embedding_v1_embeddings_post", "Create Embedding",
                                      "EmbeddingCompletionRequest")},
    }
    return {"openapi": "3.1.0", "info": {"title": "FastAPI", "version": "0.1.0"}, "paths": paths,
            "components": {"schemas": schemas}}
