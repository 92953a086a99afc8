"""This model's `decode_sequence`: the classic example's loop, written with its real input and
output names and state layout, as runnable source text."""

from __future__ import annotations

from tandem.data.vocabulary import END_ID, PAD_ID, START_ID
from tandem.translator import SOURCE_BUCKET, Translator

TEMPLATE = '''\
import numpy as np


def decode_sequence(text, encoder_model, decoder_model, source_vocab, target_vocab):
    """Greedy decoding of one text with {family}'s encoder_model and decoder_model."""
    ids = source_vocab.encode(text)[:{max_source}]
    steps = {steps}
    source = np.full((1, steps), {pad}, dtype="int32")
    source[0, : len(ids)] = ids
    encoder_outputs = encoder_model({encode_source})
    encoder_outputs = [np.asarray(x) for x in encoder_outputs]
    # encoder output -> decoder state input:
{encoder_lines}
    states_value = [encoder_outputs[i] for i in {from_encoder}]
    token, decoded = {start}, []
    for _ in range({max_length}):
        target_seq = np.array([[token]], dtype="int32")  # (1, 1): the last choice
        outputs = decoder_model([{encode_target}] + states_value)
        probs = np.asarray(outputs[0])[0, -1].copy()  # (vocab,): {probs_name}
        probs[[{pad}, {start}]] = -1.0  # padding and start are never output
        token = int(np.argmax(probs))
        if token == {end}:
            break
        decoded.append(token)
        # decoder output -> its state input at the next step:
{decoder_lines}
        states_value = [np.asarray(outputs[k]) for k in {from_decoder}]{attention}
    return target_vocab.decode(decoded)
'''


def _one_hot(spec, name: str) -> str:
    if len(spec.shape) == 3:  # the seed's graphs read one-hot rows
        return f'np.eye({spec.shape[-1]}, dtype="float32")[{name}]'
    return name


def decode_sequence_code(translator: Translator, handoff, decoder=None, encoder=None) -> str:
    """The source of `decode_sequence(text, encoder_model, decoder_model, source_vocab,
    target_vocab) -> str` for this model, following the hand-off map."""
    decoder = decoder or translator.decoder_model
    encoder = encoder or translator.encoder_model
    encoder_handoff = [h for h in handoff if h.source == "encoder_model"]
    decoder_handoff = [h for h in handoff if h.source == "decoder_model" and h.input > 0]
    by_input = lambda hs: [h.output for h in sorted(hs, key=lambda h: h.input)]  # noqa: E731
    steps = str(translator.max_source_length)
    if translator.config.model.mask_padding:
        steps = f"min({steps}, -(-max(1, len(ids)) // {SOURCE_BUCKET}) * {SOURCE_BUCKET})"
    attention = ""
    if len(decoder.outputs) > len(decoder.inputs):
        attention = "\n        # outputs[-1]: attention weights (1, 1, source steps)"
    return TEMPLATE.format(
        family=translator.config.model.family,
        max_source=translator.max_source_length,
        steps=steps,
        pad=PAD_ID,
        start=START_ID,
        end=END_ID,
        encode_source=_one_hot(encoder.inputs[0], "source"),
        encode_target=_one_hot(decoder.inputs[0], "target_seq"),
        encoder_lines="\n".join(
            f"    #   {h.output} {h.output_name} -> {h.input_name}" for h in encoder_handoff
        ),
        decoder_lines="\n".join(
            f"        #   {h.output} {h.output_name} -> {h.input_name}" for h in decoder_handoff
        ),
        from_encoder=by_input(encoder_handoff),
        from_decoder=by_input(decoder_handoff),
        max_length=translator.max_target_length,
        probs_name=decoder.outputs[0]._keras_history[0].name,
        attention=attention,
    )
