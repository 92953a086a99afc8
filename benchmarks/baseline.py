"""A faithful re-implementation of the classic Keras example's inference loop (the baseline).

One sentence at a time, one `encoder_model.predict` call, then one `decoder_model.predict` call
per generated character, feeding the sampled character and the states back in.
"""

from __future__ import annotations

import numpy as np

from tandem.data.vocabulary import END_ID, PAD_ID, START_ID


def decode_sequence(
    input_seq,
    encoder_model,
    decoder_model,
    num_decoder_tokens,
    max_decoder_seq_length,
    reverse_target_char_index,
):
    """The example's decode_sequence, with tandem's start/end ids in place of '\\t' / '\\n'."""
    # Encode the input as state vectors.
    states_value = encoder_model.predict(input_seq, verbose=0)

    # Generate empty target sequence of length 1, populated with the start character.
    target_seq = np.zeros((1, 1, num_decoder_tokens))
    target_seq[0, 0, START_ID] = 1.0

    # Sampling loop for a batch of sequences (to simplify, here we assume a batch of size 1).
    stop_condition = False
    decoded_sentence = ""
    decoded_length = 0  # characters sampled; reserved ids render as "" but still count
    while not stop_condition:
        output_tokens, h, c = decoder_model.predict([target_seq] + states_value, verbose=0)

        # Sample a token
        sampled_token_index = np.argmax(output_tokens[0, -1, :])
        sampled_char = reverse_target_char_index[sampled_token_index]
        decoded_sentence += sampled_char
        decoded_length += 1

        # Exit condition: either hit max length or find stop character.
        if sampled_token_index == END_ID or decoded_length > max_decoder_seq_length:
            stop_condition = True

        # Update the target sequence (of length 1).
        target_seq = np.zeros((1, 1, num_decoder_tokens))
        target_seq[0, 0, sampled_token_index] = 1.0

        # Update states
        states_value = [h, c]
    return decoded_sentence


def translate_one_by_one(translator, sources: list[str]) -> list[str]:
    """Decode `sources` with the example's loop on the translator's own graphs and weights."""
    dims = translator.model.dims
    vocab = translator.target_vocab
    # Reserved ids render as "" so decoded strings carry no end marker (the example's "\n").
    reverse_target_char_index = {
        i: ("" if i in (PAD_ID, START_ID, END_ID) else t) for i, t in enumerate(vocab.itos)
    }
    results = []
    for source in sources:
        ids = translator.source_vocab.encode(source)[: dims.max_encoder_seq_length]
        input_seq = np.zeros((1, dims.max_encoder_seq_length, dims.num_encoder_tokens), "float32")
        input_seq[0, np.arange(dims.max_encoder_seq_length), 0] = 1.0  # padding id 0
        input_seq[0, np.arange(len(ids)), 0] = 0.0
        input_seq[0, np.arange(len(ids)), ids] = 1.0
        results.append(
            decode_sequence(
                input_seq,
                translator.encoder_model,
                translator.decoder_model,
                dims.num_decoder_tokens,
                dims.max_decoder_seq_length,
                reverse_target_char_index,
            )
        )
    return results
