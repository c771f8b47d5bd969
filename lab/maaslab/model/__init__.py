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

Modules: `tokenizer` (vocabulary, tokenize/detokenize, chat template), `lm` (trigram model,
embeddings), `openapi` (the /openapi.json document), `server` (ModelServer and its handler).
"""
from .server import ModelServer

__all__ = ["ModelServer"]
