"""How well a model predicts the references under teacher forcing: cross-entropy, perplexity."""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np

from tandem.data.batching import encode_pairs
from tandem.data.vocabulary import PAD_ID


def teacher_forced_cross_entropy(
    translator, pairs: Sequence[tuple[str, str]], batch_size: int = 64
) -> dict:
    """The mean negative log-likelihood of the references' tokens, fed the reference so far.

    Every (source, reference) pair counts, as training counts them (a source with three
    references counts three times), and every token of a reference counts, its end token
    included: the tokens a masked training run counts, so that on the run's validation pairs
    this is the history's `val_loss` (without label smoothing, which that loss includes). An
    unmasked model (the seed's) reads the padding as training does, but only the references'
    own tokens count here, not the padding its `val_loss` counts. Sources and references are
    cut to the model's longest training ones, as decoding cuts sources. Each batch is padded
    to `batch_size` rows of the model's full widths, so the figures do not depend on it.

    Args:
        translator: a `tandem.Translator`.
        pairs: (source, reference) pairs.
        batch_size: pairs scored together.

    Returns:
        {"cross_entropy": nats per reference token, "perplexity": its exp, "tokens": how many
        tokens were counted}.

    Example:
        >>> teacher_forced_cross_entropy(translator, [("Go.", "Va !")])  # doctest: +SKIP
        {'cross_entropy': 0.61, 'perplexity': 1.84, 'tokens': 5}
    """
    model = translator.model
    dims = model.dims
    encoded = encode_pairs(
        pairs,
        translator.source_vocab,
        translator.target_vocab,
        dims.max_encoder_seq_length,
        dims.max_decoder_seq_length,
    )
    total, tokens = 0.0, 0
    epsilon = keras.config.epsilon()  # Keras's cross-entropy clips probabilities so
    for start in range(0, len(encoded), batch_size):
        rows = np.arange(start, min(start + batch_size, len(encoded)))
        # (rows, source steps), (rows, target steps), (rows, target steps), full widths
        source, decoder_inputs, targets = encoded.padded(rows)
        filler = batch_size - len(rows)  # rows of padding: one batch shape is compiled
        if filler:
            source, decoder_inputs, targets = (
                np.pad(array, ((0, filler), (0, 0))) for array in (source, decoder_inputs, targets)
            )
        probs = np.asarray(model.fit_model.predict_on_batch([source, decoder_inputs]))
        true = np.take_along_axis(probs, targets[..., None], axis=-1)[..., 0]  # (batch, steps)
        nll = -np.log(np.clip(true.astype(np.float64), epsilon, 1.0 - epsilon))
        counted = targets != PAD_ID  # (batch, steps): the references' tokens and end tokens
        total += float(nll[counted].sum())
        tokens += int(counted.sum())
    cross_entropy = total / tokens if tokens else math.nan
    return {"cross_entropy": cross_entropy, "perplexity": math.exp(cross_entropy), "tokens": tokens}
