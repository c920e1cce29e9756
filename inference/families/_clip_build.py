"""Build a random-weight CLIP and its tokenizer offline (``CLIPConfig`` + a generated BPE vocabulary).

The vocabulary follows OpenAI's layout (the 256 byte symbols, the same with ``</w>``, the merges,
then ``<|startoftext|>`` and ``<|endoftext|>``), with merges learnt from the texts the model will
see, so the tokenizer splits those words into few tokens. The text config's bos/eos/pad ids are set
to the tokenizer's: CLIP pools the text at the first eos token, so wrong ids would pool every prompt
to the same position and give every label the same vector.
"""

from __future__ import annotations

import heapq
import itertools
import json
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
_WORD = re.compile(r"[a-z]+|[0-9]|[^\sa-z0-9]+")
#: (text hidden, text layers, text heads, vision hidden, vision layers, vision heads, projection)
_SIZES = {
    "small": (64, 2, 2, 64, 2, 2, 64),
    "base": (256, 4, 4, 256, 4, 4, 256),
    "vit_b32": (512, 12, 8, 768, 12, 12, 512),
}


def bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable character table of GPT-2 and CLIP tokenizers (their vocabulary's alphabet).

    Written out here because transformers moves it between releases.

    >>> table = bytes_to_unicode()
    >>> table[ord("a")], table[ord(" ")], len(set(table.values()))
    ('a', 'Ġ', 256)
    """
    printable = (*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1))
    table = {byte: chr(byte) for byte in (*printable, *range(ord("®"), ord("ÿ") + 1))}
    for extra, byte in enumerate(b for b in range(256) if b not in table):
        table[byte] = chr(256 + extra)
    return table


def learn_merges(texts: Sequence[str], max_merges: int = 2000) -> list[tuple[str, str]]:
    """Byte-pair merges learnt from ``texts`` (lowercased words, end-of-word marked with ``</w>``).

    >>> learn_merges(["aa aa b"], max_merges=1)
    [('a', 'a</w>')]
    """
    byte_symbol = bytes_to_unicode()
    words: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        for word in _WORD.findall(text.lower()):
            symbols = [byte_symbol[b] for b in word.encode("utf-8")]
            symbols[-1] += "</w>"
            words[tuple(symbols)] += 1
    vocabulary = list(words.items())
    pairs: Counter[tuple[str, str]] = Counter()
    where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)  # pair -> indices of words holding it
    for index, (word, count) in enumerate(vocabulary):
        for pair in itertools.pairwise(word):
            pairs[pair] += count
            where[pair].add(index)
    heap = [(-count, pair) for pair, count in pairs.items()]  # lazy max-heap: stale entries skipped
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    while len(merges) < max_merges and heap:
        negative, best = heapq.heappop(heap)
        if pairs.get(best, 0) != -negative:
            continue
        merges.append(best)
        for index in where.pop(best, set()):
            word, count = vocabulary[index]
            for pair in itertools.pairwise(word):
                pairs[pair] -= count
                if pairs[pair] <= 0:
                    del pairs[pair]
                elif pair != best:
                    heapq.heappush(heap, (-pairs[pair], pair))
            word = _merge(word, best)
            vocabulary[index] = (word, count)
            for pair in itertools.pairwise(word):
                pairs[pair] += count
                where[pair].add(index)
                heapq.heappush(heap, (-pairs[pair], pair))
        pairs.pop(best, None)
    return merges


def _merge(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out: list[str] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def write_vocab(directory: Path, merges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Write ``vocab.json`` and ``merges.txt`` (OpenAI's CLIP layout) and return the vocabulary."""

    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return vocab


def save_random_clip(
    directory: Path,
    texts: Sequence[str],
    *,
    image_size: int = 224,
    small: bool = True,
    size: str | None = None,
    seed: int = 0,
) -> None:
    """Save a random CLIP, its tokenizer and image-processor config to ``directory``.

    Args:
        directory: the ``save_pretrained`` directory to create.
        texts: texts the tokenizer should handle well (the prompts filled with the labels).
        image_size: vision input side (a multiple of 32).
        small: the tiny size (else ``"base"``); ``size`` overrides it.
        size: ``"small"``, ``"base"`` or ``"vit_b32"``.
        seed: torch seed.
    """
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    size = size or ("small" if small else "base")
    t_hidden, t_layers, t_heads, v_hidden, v_layers, v_heads, projection = _SIZES[size]
    directory = Path(directory)
    vocab = write_vocab(directory, learn_merges(texts))
    tokenizer = CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"))
    ids = {"bos_token_id": vocab[BOS], "eos_token_id": vocab[EOS], "pad_token_id": tokenizer.pad_token_id}
    if tokenizer.bos_token_id != ids["bos_token_id"] or tokenizer.eos_token_id != ids["eos_token_id"]:
        raise RuntimeError("tokenizer special-token ids disagree with the generated vocabulary")
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": t_hidden,
            "intermediate_size": 4 * t_hidden,
            "num_hidden_layers": t_layers,
            "num_attention_heads": t_heads,
            "max_position_embeddings": 77,
            **ids,
        },
        vision_config={
            "image_size": image_size,
            "patch_size": 32,
            "hidden_size": v_hidden,
            "intermediate_size": 4 * v_hidden,
            "num_hidden_layers": v_layers,
            "num_attention_heads": v_heads,
        },
        projection_dim=projection,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(directory)
