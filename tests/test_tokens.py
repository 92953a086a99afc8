"""Every token kind trains, saves and translates end to end (G2P: characters in, words out)."""

import pytest

from tandem import Translator
from tandem.cli import main
from tandem.config import Config
from tandem.evaluation import evaluate
from tandem.training import train

G2P_PAIRS = [
    ("CAT", "K AE T"),
    ("BAT", "B AE T"),
    ("TAB", "T AE B"),
    ("ACT", "AE K T"),
    ("CAB", "K AE B"),
    ("TACT", "T AE K T"),
] * 3
SENTENCES = [
    ("the cat is red", "le chat est rouge"),
    ("the dog is big", "le chien est grand"),
    ("the cat is big", "le chat est grand"),
    ("the dog is red", "le chien est rouge"),
] * 3


@pytest.mark.slow
@pytest.mark.parametrize(
    "pairs, source_tokens, target_tokens",
    [(G2P_PAIRS, "char", "word"), (SENTENCES, "spm", "spm"), (SENTENCES, "word", "char")],
)
def test_token_kinds_end_to_end(tmp_path, capsys, pairs, source_tokens, target_tokens):
    spm = "spm" in (source_tokens, target_tokens)
    config = Config().replace(
        "data",
        source_tokens=source_tokens,
        target_tokens=target_tokens,
        spm_vocab_size=30 if spm else None,  # None: left as it is
    )
    config = config.replace("model", latent_dim=8, embedding_dim=8, attention="dot")
    config = config.replace("train", epochs=1, batch_size=4, validation_split=0.0)
    if target_tokens == "word":  # long enough to write phonemes, scored below
        config = config.replace("train", epochs=40, optimizer="adam", learning_rate=0.05)
    train(pairs, config, tmp_path / "model", verbose=0)
    translator = Translator.from_dir(tmp_path / "model")
    assert translator.source_vocab.kind == source_tokens
    assert translator.target_vocab.kind == target_tokens
    [translation] = translator.translate([pairs[0][0]])
    assert isinstance(translation, str)
    if target_tokens == "word":  # phonemes come back as space-separated words
        assert all(token in translator.target_vocab.stoi for token in translation.split())
        # References spaced otherwise score as the single spaces the model writes.
        sources = sorted({source for source, _ in pairs})
        rows = [
            f"{source}\t  {'   '.join(output.split())} \n"
            for source, output in zip(sources, translator.translate(sources), strict=True)
            if output.strip()
        ]
        assert rows, "the model wrote nothing for any source"
        (tmp_path / "spaced.tsv").write_text("".join(rows), encoding="utf-8")
        report = evaluate(translator, tmp_path / "spaced.tsv")
        assert report["exact_match"] == 100.0 and report["chrf"] == 100.0 and report["wer"] == 0
        # Several references in one line's columns: the output is right if it is any of them.
        rows = [f"{row.split(chr(9))[0]}\tZZ\t{row.split(chr(9))[1]}" for row in rows]
        (tmp_path / "multi.tsv").write_text("".join(rows), encoding="utf-8")
        assert evaluate(translator, tmp_path / "multi.tsv")["wer"] == 100.0  # ZZ alone
        report = evaluate(translator, tmp_path / "multi.tsv", multi_reference=True)
        assert report["wer"] == 0 and report["n_pairs"] == 2 * len(rows)
        code = main(["evaluate", str(tmp_path / "model"), str(tmp_path / "multi.tsv"),
                     "--multi-reference"])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 0 and "\nWER      0.00% " in out and "\nPER      0.00% " in out
        with pytest.raises(TypeError, match="translator must be a tandem.Translator"):
            evaluate(str(tmp_path / "model"), tmp_path / "spaced.tsv")
