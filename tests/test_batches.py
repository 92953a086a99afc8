"""Training batches: every pair once per epoch, length-bucketed when padding is masked."""

import numpy as np
import pytest

from tandem.data.batching import encode_pairs
from tandem.data.vocabulary import END_ID, PAD_ID, START_ID, Vocabulary
from tandem.training.batches import STEP_BUCKET, TrainingBatches, bucket_widths


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
        # The narrowest of the batches' widths that holds the longest row.
        fits = [w for w in batches.target_widths if w >= longest_target]
        assert decoder_inputs.shape[1] == fits[0]
        assert source.shape[1] in batches.source_widths
        assert source.shape[1] >= max(len(pairs[r][0]) for r in rows)
        np.testing.assert_array_equal(weights, targets != PAD_ID)
    assert sorted(seen) == list(range(len(pairs)))


def test_length_bucketing_saves_padding():
    _, encoded = make_pairs()
    batches = TrainingBatches(encoded, batch_size=16, mask_padding=True)
    _, decoder_input_ids, _ = encoded.padded()
    real_steps = int((decoder_input_ids != PAD_ID).sum())
    padded_steps = sum(batches[i][0][1].size for i in range(len(batches)))
    full_width_padding = decoder_input_ids.size - real_steps
    assert padded_steps - real_steps < 0.35 * full_width_padding


def test_widths_are_few_multiples_of_the_step_and_cost_little_padding():
    pairs, encoded = make_pairs(2000)
    batches = TrainingBatches(encoded, batch_size=16, mask_padding=True)
    for widths, limit in ((batches.source_widths, 30), (batches.target_widths, 42)):
        assert widths[-1] == limit and list(widths) == sorted(set(widths))
        assert all(w % STEP_BUCKET == 0 for w in widths[:-1])
    # Fewer widths than multiples of 8, for at most 3% more padded steps.
    longest = [int(encoded.target_lengths[rows].max()) for rows in batches.batches]
    rounded = [min(42, -(-n // STEP_BUCKET) * STEP_BUCKET) for n in longest]
    assert len(batches.target_widths) < len(set(rounded))
    padded = sum(next(w for w in batches.target_widths if w >= n) for n in longest)
    assert padded <= 1.03 * sum(rounded)


def test_bucket_widths():
    assert bucket_widths([10, 12, 20, 20, 20, 41, 50], limit=59) == (16, 24, 48, 59)
    assert bucket_widths([16] * 100, limit=16) == (16,)
    assert bucket_widths([3], limit=16) == (8, 16)  # the full width is always one
    # No tolerance: every multiple needed is kept.
    assert bucket_widths([9, 17, 25, 33], limit=40, tolerance=0) == (16, 24, 32, 40)
    # Any tolerance: one width.
    assert bucket_widths([9, 17, 25, 33], limit=40, tolerance=10) == (40,)


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


def test_pairs_are_kept_unpadded_and_padded_as_the_example_lays_them_out():
    source, target = Vocabulary.build(["abc"]), Vocabulary.build(["xyz"])
    pairs = [("ab", "xyz"), ("c", "y"), ("abca", "")]
    encoded = encode_pairs(pairs, source, target)
    a, b, c = (source.stoi[ch] for ch in "abc")
    x, y, z = (target.stoi[ch] for ch in "xyz")
    # Only the tokens are stored: 7 source ids, and each target framed by start and end.
    assert encoded.source_ids.tolist() == [a, b, c, a, b, c, a]
    assert encoded.target_ids.tolist() == [
        *(START_ID, x, y, z, END_ID),
        *(START_ID, y, END_ID),
        *(START_ID, END_ID),
    ]
    assert encoded.source_lengths.tolist() == [2, 1, 4]
    assert encoded.target_lengths.tolist() == [5, 3, 2]
    assert (encoded.max_encoder_seq_length, encoded.max_decoder_seq_length) == (4, 5)

    source_ids, decoder_inputs, targets = encoded.padded()
    assert source_ids.tolist() == [[a, b, 0, 0], [c, 0, 0, 0], [a, b, c, a]]
    assert decoder_inputs.tolist() == [
        [START_ID, x, y, z, END_ID],
        [START_ID, y, END_ID, 0, 0],
        [START_ID, END_ID, 0, 0, 0],
    ]
    assert targets.tolist() == [[x, y, z, END_ID, 0], [y, END_ID, 0, 0, 0], [END_ID, 0, 0, 0, 0]]
    assert source_ids.dtype == decoder_inputs.dtype == targets.dtype == np.int32
    # Some rows, in any order, cut to fewer steps.
    source_ids, decoder_inputs, targets = encoded.padded(np.array([2, 0]), 3, 2)
    assert source_ids.tolist() == [[a, b, c], [a, b, 0]]
    assert decoder_inputs.tolist() == [[START_ID, END_ID], [START_ID, x]]
    assert targets.tolist() == [[END_ID, 0], [x, y]]


@pytest.mark.parametrize(
    "index", [slice(1, 4), slice(3, None), slice(5, 2), np.array([4, 0, 2]), "mask"]
)
def test_take_selects_the_same_pairs_as_the_padded_arrays(index):
    pairs, encoded = make_pairs(6)
    if isinstance(index, str):
        index = np.array([True, False, False, True, True, False])
    taken = encoded.take(index)
    full = encoded.padded()
    for whole, part in zip(full, taken.padded(), strict=True):
        np.testing.assert_array_equal(part, whole[index])
    assert (taken.max_encoder_seq_length, taken.max_decoder_seq_length) == (30, 42)
    assert len(taken) == len(full[0][index])
