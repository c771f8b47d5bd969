"""The language model: word trigrams with back-off, trained at import on the tokenizer's corpus
(temperature 0 deterministic, > 0 sampled, reproducible with `seed`), and the embeddings."""
from __future__ import annotations

import functools
import math
import random
import zlib
from collections import Counter, defaultdict

from .tokenizer import CORPUS, PIECE_RE, PUNCT

EMBEDDING_DIM = 384


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
