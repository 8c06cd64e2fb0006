"""Learn a CLIP-format byte-level BPE vocabulary (vocab.json + merges.txt) from a corpus.

The files have exactly OpenAI CLIP's layout, so transformers' `CLIPTokenizer` and
`CLIPTokenizerFast` load them like the real ones: the 256 byte symbols of `bytes_to_unicode`, the
same 256 with "</w>", the learned merges in order, then "<|startoftext|>" and "<|endoftext|>".
Text is normalised and split with the same `tokenizers` components the fast CLIP tokenizer uses,
so training sees words exactly as tokenisation later will.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, normalizers, pre_tokenizers

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
END_OF_WORD = "</w>"
# CLIP's split pattern as transformers' CLIPConverter writes it into tokenizer.json.
CLIP_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""

Word = tuple[str, ...]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def _words(corpus: Iterable[str]) -> Counter[str]:
    normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    splitter = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    counts: Counter[str] = Counter()
    for text in corpus:
        for piece, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[piece] += 1
    return counts


def _pair_counts(words: dict[Word, int]) -> Counter[tuple[str, str]]:
    pairs: Counter[tuple[str, str]] = Counter()
    for word, count in words.items():
        for pair in zip(word, word[1:], strict=False):
            pairs[pair] += count
    return pairs


def _merge(word: Word, pair: tuple[str, str]) -> Word:
    out: list[str] = []
    i = 0
    while i < len(word):
        if i < len(word) - 1 and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def learn_merges(corpus: Iterable[str], num_merges: int) -> list[tuple[str, str]]:
    """Plain BPE: repeatedly merge the most frequent adjacent pair (ties: smallest pair)."""
    words: dict[Word, int] = {}
    for piece, count in sorted(_words(corpus).items()):
        symbols = (*piece[:-1], piece[-1] + END_OF_WORD)
        words[symbols] = words.get(symbols, 0) + count
    merges: list[tuple[str, str]] = []
    while len(merges) < num_merges:
        pairs = _pair_counts(words)
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged: dict[Word, int] = {}
        for word, count in words.items():
            new = _merge(word, best) if best[0] in word else word
            merged[new] = merged.get(new, 0) + count
        words = merged
    return merges


def build_clip_vocab(corpus: Iterable[str], out_dir: Path, num_merges: int) -> None:
    """Write `vocab.json` and `merges.txt` in OpenAI CLIP's format into `out_dir`."""
    merges = learn_merges(corpus, num_merges)
    alphabet = list(bytes_to_unicode().values())
    tokens = alphabet + [c + END_OF_WORD for c in alphabet]
    seen = set(tokens)
    for a, b in merges:
        # Two merges can spell the same string ("a"+"bc", "ab"+"c"): one id serves both.
        if a + b not in seen:
            seen.add(a + b)
            tokens.append(a + b)
    tokens += [BOS, EOS]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(tokens)}
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (out_dir / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
