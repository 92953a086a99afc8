"""Attention heatmaps of a few fixed validation sentences, drawn at every validation scoring."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import keras

from tandem.config import Config
from tandem.data.vocabulary import Vocabulary
from tandem.explain.graphs import handoff_map
from tandem.explain.render import attention_png
from tandem.explain.trace import Runner, greedy_trace, source_array
from tandem.files import write_atomically
from tandem.model_dir import LoadedModel, attention_path
from tandem.models import EncoderDecoder
from tandem.translator import Translator


def has_attention(model: EncoderDecoder) -> bool:
    """Whether the decoder step graph also outputs attention weights (after its states)."""
    return len(model.decoder_model.outputs) > len(model.decoder_model.inputs)


class AttentionMaps(keras.callbacks.Callback):
    """Every `every` epochs, draw `validations/epoch-N-attention-K.png` for each source K.

    Each source is greedy-decoded one step at a time through the encoder and decoder graphs,
    as `tandem explain` traces it, and its attention weights drawn as `tandem explain` draws
    them. A drawing that fails is a warning: it never stops training.

    Args:
        model: the layer owner being trained (an attention model: see `has_attention`).
        sources: the sentences to draw, in order (K = 1, 2, ...).
        source_vocab: encodes them.
        target_vocab: names the generated tokens.
        config: the run's config (how sources are padded).
        model_dir: where `validations/` goes.
        every: draw after every `every`-th epoch.
    """

    def __init__(
        self,
        model: EncoderDecoder,
        sources: Sequence[str],
        source_vocab: Vocabulary,
        target_vocab: Vocabulary,
        config: Config,
        model_dir: str | Path,
        every: int,
    ):
        super().__init__()
        loaded = LoadedModel(model, source_vocab, target_vocab, config, {}, Path(model_dir))
        self.translator = Translator(loaded)
        self.runner = Runner(self.translator, handoff_map(model.encoder_model, model.decoder_model))
        self.sources = list(sources)
        self.model_dir = Path(model_dir)
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        try:
            for number, text in enumerate(self.sources, start=1):
                self.draw(text, attention_path(self.model_dir, epoch + 1, number))
        except Exception as exc:  # matplotlib's errors are many; the maps are a convenience
            warnings.warn(
                f"cannot draw the attention maps of epoch {epoch + 1}: {exc}", stacklevel=2
            )

    def draw(self, text: str, path: Path) -> None:
        """Trace the greedy decode of `text` and draw its attention weights into `path`."""
        translator = self.translator
        steps, _, _, attention = greedy_trace(
            translator, self.runner, text, translator.max_target_length
        )
        if attention is None:
            return
        _, source_ids = source_array(translator, text)
        tokens = [translator.source_vocab.itos[i] for i in source_ids]
        png = attention_png(tokens, [step.chosen for step in steps], attention)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda temporary: temporary.write_bytes(png))
