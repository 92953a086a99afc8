"""Token <-> id mapping with reserved ids for padding, start, end and unknown."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from tandem.data.reading import text_problem
from tandem.data.tokenizers import SentencePieceTokenizer, make_tokenizer
from tandem.errors import ModelDirError

PAD_ID, START_ID, END_ID, UNK_ID = 0, 1, 2, 3
RESERVED = ("<pad>", "<s>", "</s>", "<unk>")


class Vocabulary:
    """Maps the tokens of one side (source or target) to ids.

    Ids 0-3 are reserved (padding, start, end, unknown); real tokens follow in sorted order,
    so the same data always gives the same ids. A token never seen in training maps to
    `UNK_ID` instead of failing. The reserved ids' names (`RESERVED`) are not tokens: a word
    `</s>` in the data is a real token with its own id, never the end.

    Args:
        tokens: the real tokens, without the reserved ones.
        kind: the tokenizer, "char", "word" or "spm".
        spm_model: the SentencePiece model, for kind "spm".

    Example:
        >>> vocab = Vocabulary.build(["Go.", "Hi."])
        >>> vocab.decode(vocab.encode("Hi!"))
        'Hi<unk>'
    """

    def __init__(self, tokens: Sequence[str], kind: str = "char", spm_model: bytes | None = None):
        self.tokens = list(tokens)
        self.kind = kind
        self.spm_model = spm_model
        self.tokenizer = make_tokenizer(kind, spm_model)
        for token in self.tokens:
            if not isinstance(token, str):
                raise ValueError(f"tokens must be strings, got {token!r}")
            if not self.tokenizer.is_token(token):
                raise ValueError(f"token {token!r} is not a {kind} token")
        self.itos = list(RESERVED) + self.tokens
        self.stoi = {token: index for index, token in enumerate(self.tokens, len(RESERVED))}
        if len(self.stoi) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        kind: str = "char",
        min_count: int = 1,
        spm_vocab_size: int = 8000,
        side: str = "",
    ) -> Vocabulary:
        """Collect every token that occurs at least `min_count` times in `texts`.

        For kind "spm", a SentencePiece model of at most `spm_vocab_size` pieces is trained
        on `texts` first, and the vocabulary holds its pieces. `side` ("source", "target")
        names the texts in errors.
        """
        texts = list(texts)
        spm_model = None
        if kind == "spm":
            trained = SentencePieceTokenizer.train(texts, spm_vocab_size, side=side)
            spm_model = trained.model_proto
        tokenizer = make_tokenizer(kind, spm_model)
        counts = Counter(token for text in texts for token in tokenizer.tokenize(text))
        kept = sorted(t for t, n in counts.items() if n >= min_count)
        return cls(kept, kind, spm_model)

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and (self.kind, self.itos, self.spm_model) == (
            other.kind,
            other.itos,
            other.spm_model,
        )

    def tokenize(self, text: str) -> list[str]:
        return self.tokenizer.tokenize(text)

    def encode(self, text: str, add_start: bool = False, add_end: bool = False) -> list[int]:
        """Text -> ids; unknown tokens become UNK_ID."""
        ids = [self.stoi.get(token, UNK_ID) for token in self.tokenizer.tokenize(text)]
        return ([START_ID] if add_start else []) + ids + ([END_ID] if add_end else [])

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, stopping at the first END_ID and dropping padding and start ids."""
        tokens = []
        for index in ids:
            index = int(index)
            if index == END_ID:
                break
            if index in (PAD_ID, START_ID):
                continue
            tokens.append(self.itos[index] if 0 <= index < len(self.itos) else RESERVED[UNK_ID])
        return self.tokenizer.detokenize(tokens)

    def unknown_tokens(self, text: str) -> list[str]:
        """The tokens of `text` that this vocabulary does not know."""
        return [token for token in self.tokenizer.tokenize(text) if token not in self.stoi]

    def covers(self, text: str, max_tokens: int) -> bool:
        """True when every token of `text` is known and there are at most `max_tokens`."""
        tokens = self.tokenizer.tokenize(text)
        return len(tokens) <= max_tokens and all(token in self.stoi for token in tokens)

    def to_dict(self) -> dict:
        data = {"kind": self.kind, "reserved": list(RESERVED), "tokens": self.tokens}
        if self.spm_model is not None:
            data["spm_model"] = base64.b64encode(self.spm_model).decode("ascii")
        return data

    def save(self, path: str | Path) -> None:
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1)
        Path(path).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            if raw.get("reserved") != list(RESERVED):
                raise ValueError("reserved tokens differ from this version of tandem")
            spm_model = base64.b64decode(raw["spm_model"]) if "spm_model" in raw else None
            vocab = cls(raw["tokens"], raw["kind"], spm_model)
            for token in vocab.tokens:
                problem = text_problem(token)
                if problem:  # no line of training text holds it: a damaged file
                    raise ValueError(f"token {token!r} holds {problem}")
            return vocab
        except FileNotFoundError:
            raise ModelDirError(f"{path}: missing vocabulary file") from None
        except (
            OSError,
            UnicodeDecodeError,
            json.JSONDecodeError,
            KeyError,
            TypeError,
            AttributeError,
            ValueError,
            RuntimeError,  # a damaged SentencePiece model
        ) as exc:
            raise ModelDirError(f"{path}: malformed vocabulary: {exc}") from None
