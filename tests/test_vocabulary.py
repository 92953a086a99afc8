import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tandem.data.vocabulary import END_ID, PAD_ID, START_ID, UNK_ID, Vocabulary
from tandem.errors import ModelDirError, TandemError


def test_reserved_ids_come_first():
    vocab = Vocabulary.build(["ba", "ab"])
    assert vocab.itos[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert (PAD_ID, START_ID, END_ID, UNK_ID) == (0, 1, 2, 3)
    assert vocab.tokens == ["a", "b"]


@given(st.lists(st.text(min_size=1), min_size=1, max_size=20))
def test_encode_decode_round_trips_known_characters(texts):
    vocab = Vocabulary.build(texts)
    for text in texts:
        assert vocab.decode(vocab.encode(text)) == text
        assert vocab.decode(vocab.encode(text, add_start=True, add_end=True)) == text


def test_unknown_characters_map_to_unk_instead_of_failing():
    vocab = Vocabulary.build(["abc"])
    assert vocab.encode("aZb") == [vocab.stoi["a"], UNK_ID, vocab.stoi["b"]]
    assert vocab.unknown_tokens("aZbY") == ["Z", "Y"]


def test_decode_stops_at_end_and_skips_padding():
    vocab = Vocabulary.build(["ab"])
    a, b = vocab.stoi["a"], vocab.stoi["b"]
    assert vocab.decode([START_ID, a, b, END_ID, a, PAD_ID]) == "ab"


def test_word_tokens():
    vocab = Vocabulary.build(["HH AH0 L OW1", "W ER1 L D"], kind="word")
    assert vocab.decode(vocab.encode("HH ER1 L D")) == "HH ER1 L D"
    assert len(vocab) == 4 + 7


def test_save_and_load(tmp_path):
    vocab = Vocabulary.build(["héllo wörld\t"])
    vocab.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == vocab


@pytest.mark.parametrize("content", ["{", '{"kind": "char"}', '{"reserved": [], "tokens": []}'])
def test_malformed_vocabulary_file(tmp_path, content):
    path = tmp_path / "v.json"
    path.write_text(content)
    with pytest.raises(ModelDirError, match="malformed vocabulary"):
        Vocabulary.load(path)


SPM_TEXTS = [f"the {w} is {c}" for w in ("cat", "dog", "house", "car") for c in ("red", "big")]


def test_sentencepiece_vocabulary_round_trips_and_reloads(tmp_path):
    vocab = Vocabulary.build(SPM_TEXTS * 5, kind="spm", spm_vocab_size=40)
    assert vocab.kind == "spm" and 4 < len(vocab) <= 4 + 40
    for text in SPM_TEXTS + ["the  cat is  red "]:
        assert vocab.decode(vocab.encode(text)) == text
    assert len(vocab.encode("the cat is red")) < len("the cat is red")  # pieces, not characters
    vocab.save(tmp_path / "v.json")
    loaded = Vocabulary.load(tmp_path / "v.json")
    assert loaded == vocab
    assert loaded.encode("the house is big") == vocab.encode("the house is big")


def test_damaged_sentencepiece_model_is_reported(tmp_path):
    vocab = Vocabulary.build(SPM_TEXTS, kind="spm", spm_vocab_size=30)
    data = vocab.to_dict()
    data["spm_model"] = "AAAA"
    (tmp_path / "v.json").write_text(__import__("json").dumps(data))
    with pytest.raises(ModelDirError, match="malformed vocabulary"):
        Vocabulary.load(tmp_path / "v.json")


@pytest.mark.parametrize(
    ("kind", "token", "message"),
    [
        ("char", 5, "tokens must be strings, got 5"),
        ("char", None, "tokens must be strings, got None"),
        ("char", "ab", "token 'ab' is not a char token"),
        ("word", "two words", "token 'two words' is not a word token"),
        ("word", "", "token '' is not a word token"),
        ("spm", "", "token '' is not a spm token"),
        # No line of text holds these, so no tokenizer produces them from a file.
        ("char", "\n", "token '\\n' holds a line break ('\\n') at character 1"),
        ("char", "\0", "token '\\x00' holds a NUL ('\\x00') at character 1"),
        ("word", "a\ud800", "token 'a\\ud800' holds a lone surrogate ('\\ud800') at character 2"),
        ("spm", "x\r", "token 'x\\r' holds a carriage return ('\\r') at character 2"),
    ],
)
def test_a_hand_edited_token_is_refused_when_loaded(tmp_path, kind, token, message):
    texts = SPM_TEXTS * 5 if kind == "spm" else ["ab c"]
    data = Vocabulary.build(texts, kind=kind, spm_vocab_size=40).to_dict()
    data["tokens"][0] = token
    path = tmp_path / "v.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelDirError, match=re.escape(f"{path}: malformed vocabulary: {message}")):
        Vocabulary.load(path)


def test_reserved_names_in_the_data_are_ordinary_words():
    # A word "</s>" is not the end, nor "<pad>" padding: each is a token of its own.
    text = "x <pad> y </s> z <unk> <s>"
    vocab = Vocabulary.build([text], kind="word")
    ids = vocab.encode(text)
    assert len(ids) == 7 and min(ids) >= 4 and len(set(ids)) == 7
    assert vocab.decode(ids) == text
    assert "</s>" not in Vocabulary.build(["a b"], kind="word").stoi  # unseen: unknown
    assert Vocabulary.build(["a b"], kind="word").encode("a </s> b")[1] == UNK_ID


def test_reserved_names_as_tokens_survive_a_reload(tmp_path):
    vocab = Vocabulary.build(["B </s> E"], kind="word")
    vocab.save(tmp_path / "v.json")
    loaded = Vocabulary.load(tmp_path / "v.json")
    assert loaded == vocab and loaded.decode(loaded.encode("B </s> E")) == "B </s> E"


def test_sentencepiece_refuses_its_own_space_mark_in_the_data():
    with pytest.raises(TandemError, match=r"target sentence 2 holds ▁ \(U\+2581\)"):
        Vocabulary.build(["a b", "a\u2581b"], kind="spm", spm_vocab_size=30, side="target")


def test_sentencepiece_learns_from_sentences_beyond_its_default_length():
    # SentencePiece leaves out sentences of over 4,192 bytes, and fails on data of only those.
    long = " ".join(["alpha", "beta"] * 500)
    vocab = Vocabulary.build([long], kind="spm", spm_vocab_size=30)
    assert vocab.decode(vocab.encode(long)) == long
    assert "▁beta" in vocab.tokens  # a piece learnt from it
