"""Tokenizers: split text into tokens and join tokens back into text."""

from __future__ import annotations

import io
from collections.abc import Iterable

from tandem.errors import TandemError


class CharTokenizer:
    """Every character is a token; joining is concatenation, so round trips are exact."""

    kind = "char"

    def tokenize(self, text: str) -> list[str]:
        return list(text)

    def is_token(self, token: str) -> bool:
        """Whether `tokenize` can produce `token`: one character."""
        return len(token) == 1

    def detokenize(self, tokens: list[str]) -> str:
        return "".join(tokens)


class WordTokenizer:
    """Whitespace-separated words (phoneme strings in G2P); joined with single spaces."""

    kind = "word"

    def tokenize(self, text: str) -> list[str]:
        return text.split()

    def is_token(self, token: str) -> bool:
        """Whether `tokenize` can produce `token`: a word, without whitespace."""
        return token.split() == [token]

    def detokenize(self, tokens: list[str]) -> str:
        return " ".join(tokens)


# SentencePiece's mark for a space inside pieces ("▁").
SPACE_MARK = "\u2581"
# SentencePiece's default longest training sentence, in bytes.
SPM_SENTENCE_BYTES = 4192


class SentencePieceTokenizer:
    """Subword pieces from a SentencePiece model trained on the training data.

    Args:
        model_proto: the serialized SentencePiece model (kept inside the vocabulary file).
    """

    kind = "spm"

    def __init__(self, model_proto: bytes):
        import sentencepiece

        self.model_proto = model_proto
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, model_type: str = "unigram", side: str = ""
    ):
        """Train on `texts`; `vocab_size` is an upper bound (small data gets fewer pieces).
        `side` ("source", "target") names the texts in errors."""
        import sentencepiece

        texts = list(texts)
        for number, text in enumerate(texts, 1):
            if SPACE_MARK in text:
                name = f"{side} sentence" if side else "sentence"
                raise TandemError(
                    f"{name} {number} holds {SPACE_MARK} (U+2581), which SentencePiece writes "
                    f"for spaces, so it would come back as a space: {text[:40]!r}; replace it, "
                    "or split this side into char or word tokens"
                )
        model = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(texts),
                model_writer=model,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=1.0,
                hard_vocab_limit=False,
                # Keep text as it is, so decoding gives back exactly what was encoded.
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                # Learn from every sentence: by default longer ones (4,192 bytes) are left
                # out, and data of only such sentences fails.
                max_sentence_length=max(
                    SPM_SENTENCE_BYTES, 1 + max((len(t.encode()) for t in texts), default=0)
                ),
                minloglevel=2,
            )
        except RuntimeError as exc:
            # Every character is a piece, and so are the word boundary and unk, <s>, </s>.
            least = len(set("".join(texts)) - {" "}) + 4
            if vocab_size < least:
                raise TandemError(
                    f"data.spm_vocab_size {vocab_size} is too small for these texts: "
                    f"SentencePiece needs at least {least} pieces (one per character, and 4 "
                    "of its own); raise --spm-vocab-size"
                ) from None
            raise TandemError(f"SentencePiece could not be trained: {exc}") from None
        return cls(model.getvalue())

    def tokenize(self, text: str) -> list[str]:
        return self.processor.encode(text, out_type=str)

    def is_token(self, token: str) -> bool:
        """Whether `tokenize` can produce `token`: any non-empty string (a character the model
        never saw, in a sentence too long for SentencePiece's training, comes out as itself)."""
        return token != ""

    def detokenize(self, tokens: list[str]) -> str:
        return self.processor.decode(tokens)


_TOKENIZERS = {"char": CharTokenizer, "word": WordTokenizer}


def make_tokenizer(kind: str, model_proto: bytes | None = None):
    """The tokenizer for a config's `source_tokens` / `target_tokens` value."""
    if kind == "spm":
        if model_proto is None:
            raise ValueError("a SentencePiece tokenizer needs its trained model")
        return SentencePieceTokenizer(model_proto)
    try:
        return _TOKENIZERS[kind]()
    except KeyError:
        choices = ", ".join([*_TOKENIZERS, "spm"])
        raise ValueError(f"unknown token kind {kind!r}; choose one of {choices}") from None
