"""The tokenizer: regex word/punctuation pieces, a fixed vocabulary with stable ids and a byte
fallback (so /tokenize, /detokenize and `usage` always agree), and the chat template."""
from __future__ import annotations

import re
from typing import Any


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
    parts = [f"<|{m['role']}|>\n{content_text(m.get('content'))}\n" for m in messages]
    return "".join(parts) + "<|assistant|>\n"


def content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise ValueError("message content must be a string or a list of content parts")
