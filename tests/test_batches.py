"""Training batches: every pair once per epoch, length-bucketed when padding is masked."""

import numpy as np

from tandem.data.batching import encode_pairs
from tandem.data.vocabulary import PAD_ID, Vocabulary
from tandem.training.batches import STEP_BUCKET, TrainingBatches


def make_pairs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    pairs = [("a" * int(rng.integers(1, 30)), "b" * int(rng.integers(1, 40))) for _ in range(n)]
    source, target = Vocabulary.build(["a"]), Vocabulary.build(["b"])
    return pairs, encode_pairs(pairs, source, target, 30, 42)


def test_masked_batches_cover_every_pair_once_and_are_trimmed():
    pairs, encoded = make_pairs()
    batches = TrainingBatches(encoded, batch_size=16, mask_padding=True)
    seen = []
    for index in range(len(batches)):
        (source, decoder_inputs), targets, weights = batches[index]
        rows = batches.batches[index]
        seen += rows.tolist()
        longest_target = max(len(pairs[r][1]) + 2 for r in rows)  # start + text + end
        assert decoder_inputs.shape[1] % STEP_BUCKET == 0 or decoder_inputs.shape[1] == 42
        assert longest_target <= decoder_inputs.shape[1] < longest_target + STEP_BUCKET
        assert source.shape[1] >= max(len(pairs[r][0]) for r in rows)
        np.testing.assert_array_equal(weights, targets != PAD_ID)
    assert sorted(seen) == list(range(len(pairs)))


def test_length_bucketing_saves_padding():
    _, encoded = make_pairs()
    batches = TrainingBatches(encoded, batch_size=16, mask_padding=True)
    real_steps = int((encoded.decoder_input_ids != PAD_ID).sum())
    padded_steps = sum(batches[i][0][1].size for i in range(len(batches)))
    full_width_padding = encoded.decoder_input_ids.size - real_steps
    assert padded_steps - real_steps < 0.35 * full_width_padding


def test_unmasked_batches_keep_the_full_width():
    _, encoded = make_pairs(40)
    batches = TrainingBatches(encoded, batch_size=16, mask_padding=False)
    (source, decoder_inputs), targets = batches[0]
    assert source.shape == (16, 30) and decoder_inputs.shape == targets.shape == (16, 42)


def test_state_round_trip_repeats_the_next_epoch():
    _, encoded = make_pairs()
    first = TrainingBatches(encoded, batch_size=16, mask_padding=True, seed=3)
    state = first.get_state()
    second = TrainingBatches(encoded, batch_size=16, mask_padding=True, seed=9)
    second.set_state(state)
    first.on_epoch_end()
    second.on_epoch_end()
    assert [b.tolist() for b in first.batches] == [b.tolist() for b in second.batches]
