"""The decode of one text unrolled in time, by calling `encoder_model` and `decoder_model` in
numpy as the classic example's `decode_sequence` does."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tandem.data.vocabulary import END_ID, PAD_ID, START_ID
from tandem.translator import SOURCE_BUCKET, Translator

NEVER_OUTPUT = (PAD_ID, START_ID)  # as `tandem.decoding.banned`: no search outputs them
TOP_K = 5


@dataclass(frozen=True)
class Step:
    """One greedy step: what went in, what came out, what was chosen."""

    index: int
    token_in: str
    state_norms: dict[str, float]  # decoder input name -> L2 norm of the value fed next step
    top: list[tuple[str, float]]  # the TOP_K next tokens and their probabilities
    chosen: str
    chosen_id: int
    probability: float
    probs: list[float]  # the whole distribution (what replaying must reproduce)


@dataclass(frozen=True)
class BeamStep:
    """One beam step: the open hypotheses after it, and those that finished in it."""

    index: int
    open: list[tuple[str, float | None]]  # text so far, summed log-prob (None: empty slot)
    finished: list[tuple[str, float]]  # text, normalised score, pooled at this step
    parents: list[int]  # the beam slot of the step before that each open hypothesis extends


@dataclass(frozen=True)
class Trace:
    """The decode of `source`, step by step."""

    source: str
    source_tokens: list[str]
    output: str
    output_ids: list[int]
    stop: str  # "end token" or "max length"
    steps: list[Step]
    attention: list[list[float]] | None  # (generated steps, source tokens), or None
    teacher_forcing: dict  # what the training graph is fed vs what inference feeds back
    beam: list[BeamStep] | None = None
    beam_output: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def source_array(translator: Translator, text: str) -> tuple[np.ndarray, list[int]]:
    """Text -> ids (1, steps), padded as `Translator` pads it, and the token ids."""
    ids = translator.source_vocab.encode(text)[: translator.max_source_length]
    steps = translator.max_source_length
    if translator.config.model.mask_padding:
        steps = min(steps, -(-max(1, len(ids)) // SOURCE_BUCKET) * SOURCE_BUCKET)
    source = np.full((1, steps), PAD_ID, dtype="int32")
    source[0, : len(ids)] = ids
    return source, ids


def as_input(tensor_spec, ids: np.ndarray) -> np.ndarray:
    """Ids -> what a graph input reads: the ids, or one-hot rows for the seed's graphs."""
    if len(tensor_spec.shape) == len(ids.shape) + 1:  # (batch, steps, vocab): one-hot
        return np.eye(tensor_spec.shape[-1], dtype="float32")[ids]
    return ids.astype("int32")


class Runner:
    """The two inference graphs as numpy functions, with the hand-off read from the graphs."""

    def __init__(self, translator: Translator, handoff, encoder=None, decoder=None):
        self.encoder = encoder or translator.encoder_model
        self.decoder = decoder or translator.decoder_model
        self.states = len(self.decoder.inputs) - 1
        # decoder input j <- encoder output i, and <- decoder output k at the next step
        self.from_encoder = {h.input: h.output for h in handoff if h.source == "encoder_model"}
        self.from_decoder = {
            h.input: h.output for h in handoff if h.source == "decoder_model" and h.input > 0
        }
        self.names = [t.name for t in self.decoder.inputs]

    def encode(self, source: np.ndarray) -> list[np.ndarray]:
        outputs = self.encoder.predict_on_batch(as_input(self.encoder.inputs[0], source))
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        outputs = [np.asarray(o) for o in outputs]
        return [outputs[self.from_encoder[j]] for j in range(1, self.states + 1)]

    def step(self, tokens: np.ndarray, states: list[np.ndarray]):
        """tokens (batch,), states -> probs (batch, vocab), next states, attention or None."""
        feed = as_input(self.decoder.inputs[0], tokens[:, None])
        outputs = [np.asarray(o) for o in self.decoder.predict_on_batch([feed] + states)]
        attention = outputs[-1][:, -1] if len(outputs) > self.states + 1 else None
        new_states = [outputs[self.from_decoder[j]] for j in range(1, self.states + 1)]
        return outputs[0][:, -1].astype("float32"), new_states, attention


RESERVED_NAMES = {PAD_ID: "<pad>", START_ID: "<start>", END_ID: "<end>"}


def _token(vocab, index: int) -> str:
    return RESERVED_NAMES.get(index) or vocab.decode([index])


def greedy_trace(translator: Translator, runner: Runner, text: str, max_length: int):
    """Greedy decode of `text` -> (steps, output ids, stop reason, attention rows)."""
    vocab = translator.target_vocab
    source, _ = source_array(translator, text)
    states = runner.encode(source)
    token, steps, output, attention, stop = START_ID, [], [], [], "max length"
    for index in range(max_length):
        probs, states, weights = runner.step(np.array([token]), states)
        probs = probs[0]
        allowed = probs.copy()
        allowed[list(NEVER_OUTPUT)] = -1.0
        order = np.argsort(-allowed, kind="stable")
        chosen = int(order[0])
        if weights is not None:
            attention.append([float(w) for w in weights[0]])
        steps.append(
            Step(
                index=index,
                token_in=_token(vocab, token),
                state_norms={
                    runner.names[j + 1]: float(np.linalg.norm(s.astype("float64")))
                    for j, s in enumerate(states)
                },
                top=[(_token(vocab, int(i)), float(probs[i])) for i in order[:TOP_K]],
                chosen=_token(vocab, chosen),
                chosen_id=chosen,
                probability=float(probs[chosen]),
                probs=[float(p) for p in probs],
            )
        )
        output.append(chosen)
        if chosen == END_ID:
            stop = "end token"
            break
        token = chosen
    return steps, output, stop, (attention or None)


def teacher_forcing(translator: Translator, text: str, output_ids: list[int], steps=()) -> dict:
    """The decoder inputs the training graph sees for `text` and its decoded output, beside
    what inference fed back; with the traced `steps`, the largest gap between their
    probabilities and the training graph's fed the same tokens at once."""
    vocab = translator.target_vocab
    target = [i for i in output_ids if i != END_ID]
    teacher = [START_ID] + target + [END_ID]  # the framed target, as training batches it
    fed_back = [START_ID] + output_ids[:-1]  # each step's input: start, then the last choice
    gap = None
    if steps:
        probs = training_probs(translator, text, fed_back)
        gap = float(np.max(np.abs(probs - np.array([step.probs for step in steps]))))
    return {
        "largest_gap_training_vs_steps": gap,
        "training_decoder_inputs": [_token(vocab, i) for i in teacher],
        "training_targets": [_token(vocab, i) for i in teacher[1:]] + ["<pad>"],
        "inference_fed_back": [_token(vocab, i) for i in fed_back],
        "note": "training feeds the reference target shifted right (teacher forcing); "
        "inference feeds back its own previous choice",
    }


def training_probs(translator: Translator, text: str, fed_back: list[int]) -> np.ndarray:
    """The training graph's probabilities (steps, vocab) for `text` fed `fed_back` at once."""
    model = translator.training_model
    source, _ = source_array(translator, text)
    decoder = np.array([fed_back], dtype="int32")
    probs = model([as_input(model.inputs[0], source), as_input(model.inputs[1], decoder)])
    return np.asarray(probs)[0]
