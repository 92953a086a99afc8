"""Beam search in numpy over `decoder_model`, step by step, with the rules of
`tandem.decoding.beam` (so its best equals `Translator`'s beam output)."""

from __future__ import annotations

import math

import numpy as np

from tandem.data.vocabulary import END_ID, PAD_ID, START_ID
from tandem.explain.trace import NEVER_OUTPUT, BeamStep, Runner, source_array
from tandem.translator import Translator


def _penalty(length: int, alpha: float) -> float:
    return float(np.power(np.float32((5.0 + length) / 6.0), np.float32(alpha)))


def _number(value) -> float | None:
    """A score for JSON: None for -inf (a beam slot that holds no hypothesis)."""
    return float(value) if np.isfinite(value) else None


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest, lower index first on ties (as `top_k`)."""
    return np.argsort(-values, kind="stable")[:k]


def beam_trace(
    translator: Translator, runner: Runner, text: str, beam: int, max_length: int, alpha=0.0
):
    """Beam search of `text` -> (its steps, the best hypothesis's ids)."""
    vocab = translator.target_vocab
    source, _ = source_array(translator, text)
    states = [np.repeat(s, beam, axis=0) for s in runner.encode(source)]
    open_scores = np.where(np.arange(beam) == 0, 0.0, -np.inf).astype("float32")
    open_tokens = [[] for _ in range(beam)]
    last = np.full(beam, START_ID, dtype="int32")
    finished: list[tuple[float, list[int]]] = []
    final_penalty = math.exp(alpha * math.log((5.0 + max_length) / 6.0))
    steps = []
    for index in range(max_length):
        if not np.any(open_scores > -np.inf):
            break
        probs, states, _ = runner.step(last, states)  # (beam, vocab)
        log_probs = np.log(np.maximum(probs, np.float32(1e-30)))
        log_probs[:, list(NEVER_OUTPUT)] = -np.inf
        scores = (open_scores[:, None] + log_probs).reshape(-1)  # (beam * vocab,)
        vocab_size = log_probs.shape[1]
        flat = _top(scores, min(2 * beam, scores.size))
        parents, tokens = flat // vocab_size, flat % vocab_size
        new_finished = []
        for rank, (parent, token) in enumerate(zip(parents, tokens, strict=True)):
            if token == END_ID and rank < beam and np.isfinite(scores[flat[rank]]):
                score = float(
                    np.float32(scores[flat[rank]]) / np.float32(_penalty(index + 1, alpha))
                )
                new_finished.append((score, open_tokens[parent] + [END_ID]))
        # pooled first, so on equal scores the hypothesis already kept stays (stable sort)
        finished = sorted(finished + new_finished, key=lambda f: -f[0])[:1]
        keep = [r for r in range(len(flat)) if tokens[r] != END_ID][:beam]
        open_scores = np.array([scores[flat[r]] for r in keep], dtype="float32")
        open_tokens = [open_tokens[parents[r]] + [int(tokens[r])] for r in keep]
        last = np.array([tokens[r] for r in keep], dtype="int32")
        states = [s[[parents[r] for r in keep]] for s in states]
        steps.append(
            BeamStep(
                index=index,
                open=[
                    (vocab.decode(t), _number(v))
                    for t, v in zip(open_tokens, open_scores, strict=True)
                ],
                finished=[(vocab.decode(t), v) for v, t in new_finished],
                parents=[int(parents[r]) for r in keep],
            )
        )
        if finished and open_scores.max() / final_penalty <= finished[0][0]:
            open_scores[:] = -np.inf  # no open beam can beat the pooled one: stop
    ends = zip(open_scores, open_tokens, strict=True)
    pool = finished + [(float(v / final_penalty), t) for v, t in ends if np.isfinite(v)]
    best = sorted(pool, key=lambda f: -f[0])[0][1]
    return steps, [i for i in best if i != PAD_ID]
