"""What a model's graphs and decoding look like, read from the graphs themselves.

`explain(translator, text, beam=None)` returns an `Explanation`: the three graphs, what they
share, the hand-off map between them, the decode of `text` unrolled in time and this model's
`decode_sequence` loop as source text. It lives here, not on `Translator`: the facade does not
import the rooms above it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tandem.explain.beam import beam_trace
from tandem.explain.code import decode_sequence_code
from tandem.explain.graphs import Graphs, read_graphs
from tandem.explain.trace import Runner, Trace, greedy_trace, source_array, teacher_forcing
from tandem.translator import Translator

__all__ = ["Explanation", "explain"]


@dataclass(frozen=True)
class Explanation:
    """Everything `tandem explain` shows, as JSON-serialisable data (`to_dict`)."""

    model_dir: str
    family: str
    graphs: Graphs
    trace: Trace
    code: str

    def to_dict(self) -> dict:
        return asdict(self)


def explain(
    translator: Translator,
    text: str,
    beam: int | None = None,
    alpha: float = 0.0,
    models=None,
) -> Explanation:
    """Explain how `translator`'s model decodes `text`.

    Args:
        translator: a loaded model.
        text: the source to trace; not empty.
        beam: also trace a beam search of this size (its best is `Translator`'s beam output).
        alpha: the beam's length-normalisation strength.
        models: (training, encoder, decoder) graphs to read instead of the translator's
            (graphs wired differently, e.g. with the states in another order).

    Example:
        >>> explanation = explain(Translator.from_dir("runs/demo/attention"), "twenty-one")  # doctest: +SKIP
        >>> explanation.trace.output  # doctest: +SKIP
        'vingt et un'
    """
    if not text.strip():
        raise ValueError("the text to explain is empty")
    training, encoder, decoder = models or (
        translator.training_model,
        translator.encoder_model,
        translator.decoder_model,
    )
    graphs = read_graphs(training, encoder, decoder)
    runner = Runner(translator, graphs.handoff, encoder, decoder)
    max_length = translator.max_target_length
    steps, output_ids, stop, attention = greedy_trace(translator, runner, text, max_length)
    vocab = translator.target_vocab
    _, source_ids = source_array(translator, text)
    trace = Trace(
        source=text,
        source_tokens=[translator.source_vocab.itos[i] for i in source_ids],
        output=vocab.decode(output_ids),
        output_ids=output_ids,
        stop=stop,
        steps=steps,
        attention=attention,
        teacher_forcing=teacher_forcing(translator, text, output_ids, steps),
    )
    if beam:
        beam_steps, best = beam_trace(translator, runner, text, beam, max_length, alpha)
        trace = Trace(**{**trace.__dict__, "beam": beam_steps, "beam_output": vocab.decode(best)})
    return Explanation(
        model_dir=str(translator.path),
        family=translator.config.model.family,
        graphs=graphs,
        trace=trace,
        code=decode_sequence_code(translator, graphs.handoff, decoder, encoder),
    )
