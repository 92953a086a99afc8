"""Tokenizers: split text into tokens and join tokens back into text."""

from __future__ import annotations


class CharTokenizer:
    """Every character is a token; joining is concatenation, so round trips are exact."""

    kind = "char"

    def tokenize(self, text: str) -> list[str]:
        return list(text)

    def detokenize(self, tokens: list[str]) -> str:
        return "".join(tokens)


class WordTokenizer:
    """Whitespace-separated words (phoneme strings in G2P); joined with single spaces."""

    kind = "word"

    def tokenize(self, text: str) -> list[str]:
        return text.split()

    def detokenize(self, tokens: list[str]) -> str:
        return " ".join(tokens)


_TOKENIZERS = {"char": CharTokenizer, "word": WordTokenizer}


def make_tokenizer(kind: str) -> CharTokenizer | WordTokenizer:
    """The tokenizer for a config's `source_tokens` / `target_tokens` value."""
    try:
        return _TOKENIZERS[kind]()
    except KeyError:
        raise ValueError(
            f"unknown token kind {kind!r}; choose one of {', '.join(_TOKENIZERS)}"
        ) from None
