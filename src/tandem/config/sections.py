"""The sections a model directory's config.json holds: data, model and train."""

from __future__ import annotations

from dataclasses import dataclass

from tandem.config.checks import (
    ConfigError,
    check_bool,
    check_choice,
    check_count,
    check_fraction,
    check_positive,
    check_seed,
    is_number,
    plain_numbers,
    setting,
)
from tandem.config.flags import option

TOKEN_KINDS = ("char", "word", "spm")
FAMILIES = ("rnn", "transformer")
CELLS = ("lstm", "gru")
INPUTS = ("embedding", "one_hot")
ATTENTIONS = ("none", "dot", "general", "bahdanau")
INITS = ("xavier", "keras")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
LR_SCHEDULES = ("constant", "plateau", "inverse_sqrt")
# Widest layer a config may ask for: a 65,536-wide LSTM's recurrent kernel alone is 64 GiB.
MAX_WIDTH = 2**16
# Deepest stack (recurrent layers or transformer blocks per side); deeper ones took minutes
# to build before the first message.
MAX_LAYERS = 256
# SentencePiece takes a 32-bit size, and near that never ends; a million pieces is already
# far beyond what any data here yields (fewer are kept on small data).
SPM_MOST_PIECES = 1_000_000


@dataclass(frozen=True)
class DataConfig:
    """How parallel data is read and filtered."""

    # Keep the first N pairs, as the example's num_samples.
    max_samples: int | None = option(
        None,
        "--max-samples",
        "the pairs of the first N valid lines (bad lines that --skip-bad-lines skips do not "
        "count; default: all)",
    )
    # Drop training pairs whose source (target) has more tokens.
    max_source_length: int | None = option(
        None, "--max-source-length", "drop pairs with longer sources"
    )
    max_target_length: int | None = option(
        None, "--max-target-length", "drop pairs with longer targets"
    )
    # Skip malformed lines (and report how many) instead of failing.
    skip_bad_lines: bool = option(False, "--skip-bad-lines", "skip malformed lines", switch=True)
    # How the source (target) side is split: char | word | spm (subwords).
    source_tokens: str = option(
        "char", "--source-tokens", "source tokens (default: {default})", choices=TOKEN_KINDS
    )
    target_tokens: str = option(
        "char", "--target-tokens", "target tokens (default: {default})", choices=TOKEN_KINDS
    )
    # Most SentencePiece pieces per spm side (fewer on small data).
    spm_vocab_size: int = option(
        8000,
        "--spm-vocab-size",
        "most SentencePiece pieces per spm side; small data gets fewer (default: {default})",
    )

    def __post_init__(self):
        plain_numbers(self)
        check_positive(self, "spm_vocab_size", most=SPM_MOST_PIECES)
        for name in ("max_samples", "max_source_length", "max_target_length"):
            check_positive(self, name, allow_none=True)
        check_choice(self, "source_tokens", TOKEN_KINDS)
        check_choice(self, "target_tokens", TOKEN_KINDS)
        check_bool(self, "skip_bad_lines")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. `ModelConfig.seed()` is the classic Keras example's model exactly."""

    # rnn (recurrent encoder and decoder) | transformer (pre-norm).
    family: str = option(
        "rnn",
        "--family",
        "rnn: recurrent encoder and decoder (the flags below); transformer: pre-norm "
        "Transformer of width --latent-dim (default: {default})",
        choices=FAMILIES,
    )
    # Recurrent cell of encoder and decoder: lstm | gru.
    cell: str = option("lstm", "--cell", "recurrent cell (default: {default})", choices=CELLS)
    # Size of the recurrent states (the example's latent_dim); transformer: the model width.
    latent_dim: int = option(256, "--latent-dim", "state size (default: {default})")
    # embedding | one_hot (the seed's: tokens as one-hot vectors).
    inputs: str = option(
        "embedding", "--inputs", "token representation (default: {default})", choices=INPUTS
    )
    # Token embedding size (inputs=embedding).
    embedding_dim: int = option(256, "--embedding-dim", "embedding size (default: {default})")
    # Padding neither feeds the recurrent layers nor counts in the loss.
    mask_padding: bool = option(
        True, "--no-masking", "train on padding as the classic example does", switch=False
    )
    # Stacked recurrent layers (transformer: blocks) on each side.
    num_layers: int = option(1, "--layers", "stacked layers per side (default: {default})")
    # The dropout rate wherever dropout acts: between stacked layers (transformer: on attention
    # weights, block outputs and the feed-forward inner layer), and on the embeddings and
    # before the softmax unless embedding_dropout / output_dropout say otherwise.
    dropout: float = option(
        0.0,
        "--dropout",
        "dropout on the embeddings, between layers and before the output softmax; "
        "--embedding-dropout and --output-dropout override it there (default: {default})",
    )
    # Dropout on the token embeddings (with positions) of both sides; None: `dropout`.
    embedding_dropout: float | None = option(
        None,
        "--embedding-dropout",
        "dropout on the token embeddings (default: --dropout's rate)",
        metavar="RATE",
    )
    # Dropout on the decoder's output vectors, before the softmax; None: `dropout`.
    output_dropout: float | None = option(
        None,
        "--output-dropout",
        "dropout before the output softmax (default: --dropout's rate)",
        metavar="RATE",
    )
    # Bidirectional encoder, its states bridged to latent_dim.
    bidirectional: bool = option(False, "--bidirectional", "bidirectional encoder", switch=True)
    # none | dot | general (Luong) | bahdanau (additive).
    attention: str = option(
        "none", "--attention", "attention score (default: {default})", choices=ATTENTIONS
    )
    # Feed the previous attentional vector into the decoder.
    input_feeding: bool = option(
        False, "--input-feeding", "feed attentional vectors back (Luong)", switch=True
    )
    # Initial weights of the rnn family. xavier: Glorot uniform on the embeddings, and on each
    # gate's block of the recurrent layers' kernels (as JoeyNMT does); keras: Keras's defaults
    # (the example's: Glorot over all gates at once, orthogonal recurrent kernels).
    init: str = option(
        "xavier",
        "--init",
        "initial weights of the rnn family: xavier (Glorot on embeddings and on each gate of "
        "the recurrent kernels) or keras (Keras's defaults, the example's) (default: {default})",
        choices=INITS,
    )
    # Transformer: attention heads (latent_dim must divide by it).
    heads: int = option(4, "--heads", "transformer: attention heads (default: {default})")
    # Transformer: inner width of the feed-forward blocks.
    ff_dim: int = option(
        1024, "--ff-dim", "transformer: feed-forward inner width (default: {default})"
    )

    def __post_init__(self):
        plain_numbers(self)
        check_choice(self, "family", FAMILIES)
        check_choice(self, "cell", CELLS)
        check_choice(self, "inputs", INPUTS)
        check_choice(self, "attention", ATTENTIONS)
        check_choice(self, "init", INITS)
        for name in ("latent_dim", "embedding_dim", "ff_dim"):
            check_positive(self, name, most=MAX_WIDTH)
        check_positive(self, "num_layers", most=MAX_LAYERS)
        check_positive(self, "heads", most=MAX_WIDTH)
        check_fraction(self, "dropout")
        for name in ("embedding_dropout", "output_dropout"):
            if getattr(self, name) is not None:
                check_fraction(self, name)
        if self.embedding_dropout and self.inputs != "embedding":
            raise ConfigError(setting(self, "embedding_dropout"), " needs inputs: embedding")
        if self.input_feeding and self.attention == "none":
            raise ConfigError(
                setting(self, "input_feeding"), " needs attention (dot, general or bahdanau)"
            )
        for name in ("mask_padding", "bidirectional", "input_feeding"):
            check_bool(self, name)
        if self.family == "transformer":
            self._check_transformer()

    def _check_transformer(self) -> None:
        rnn_only = {  # settings a transformer cannot honour, when not at their defaults
            "cell": self.cell != "lstm",
            "inputs": self.inputs != "embedding",
            "mask_padding": not self.mask_padding,
            "bidirectional": self.bidirectional,
            "attention": self.attention != "none",
            "input_feeding": self.input_feeding,
            "init": self.init != ModelConfig.init,
        }
        for name, changed in rnn_only.items():
            if changed:
                raise ConfigError(
                    setting(self, name, show_value=True), " applies to the rnn family only"
                )
        if self.embedding_dim != self.latent_dim:
            raise ConfigError(
                setting(self, "family"),
                " transformer: embedding_dim must equal latent_dim (the model width), got "
                f"{self.embedding_dim} and {self.latent_dim}",
            )
        if self.latent_dim % self.heads or (self.latent_dim // self.heads) % 2:
            raise ConfigError(
                setting(self, "latent_dim"),
                f" ({self.latent_dim}) must split into {self.heads} heads of an even size",
            )

    @property
    def embedding_rate(self) -> float:
        """The dropout rate on the embeddings: `embedding_dropout`, or `dropout` when that is
        None (one-hot inputs have no embeddings: 0)."""
        if self.inputs != "embedding":
            return 0.0
        return self.dropout if self.embedding_dropout is None else self.embedding_dropout

    @property
    def output_rate(self) -> float:
        """The dropout rate before the softmax: `output_dropout`, or `dropout` when None."""
        return self.dropout if self.output_dropout is None else self.output_dropout

    @classmethod
    def seed(cls, **changes) -> ModelConfig:
        """The example's model: one-hot inputs, one LSTM layer per side, padding not masked
        (so, as in the example, the loss and the accuracy count the padded target steps)."""
        return cls(**{"inputs": "one_hot", "mask_padding": False, "init": "keras", **changes})


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation; the seed example's values are the defaults."""

    # Passes over the training split.
    epochs: int = option(100, "--epochs", "epochs (default: {default})")
    # Sentence pairs per gradient step.
    batch_size: int = option(64, "--batch-size", "batch size (default: {default})")
    # rmsprop | adam | sgd.
    optimizer: str = option(
        "rmsprop", "--optimizer", "optimizer (default: {default})", choices=OPTIMIZERS
    )
    # adam: decay of the squared-gradient average.
    adam_beta_2: float = option(
        0.999, "--adam-beta-2", "adam: squared-gradient decay (default: {default})", metavar="B"
    )
    # None: the optimizer's Keras default.
    learning_rate: float | None = option(
        None, "--learning-rate", "learning rate (default: Keras's)"
    )
    # Last fraction of the pairs held out, as Keras fit() does.
    validation_split: float = option(
        0.2, "--validation-split", "held-out fraction (default: {default})"
    )
    # Early stopping on val_loss after N flat epochs; None: off.
    patience: int | None = option(
        None,
        "--patience",
        "early stopping after N epochs without a better val_loss; the model keeps the best "
        "epoch's weights (default: off)",
    )
    # Weight initialisation and shuffling.
    seed: int = option(1337, "--seed", "random seed (default: {default})")
    # Clip each gradient tensor to this L2 norm; None: off.
    gradient_clip_norm: float | None = option(
        None,
        "--gradient-clip-norm",
        "clip each gradient tensor to this L2 norm (default: off)",
        metavar="NORM",
    )
    # Share of each target's probability spread over the vocabulary.
    label_smoothing: float = option(
        0.0,
        "--label-smoothing",
        "label smoothing of the loss, in [0, 1) (default: {default})",
        metavar="S",
    )
    # constant | plateau (cut the rate when val_loss stops falling) | inverse_sqrt (warm up
    # linearly to the rate, then decay as 1/sqrt(step)).
    lr_schedule: str = option(
        "constant",
        "--lr-schedule",
        "plateau: cut the learning rate when val_loss stops falling; inverse_sqrt: warm up to "
        "--learning-rate, then decay as 1/sqrt(step) (transformers) (default: {default})",
        choices=LR_SCHEDULES,
    )
    # inverse_sqrt: steps of linear warm-up.
    warmup_steps: int = option(
        1000, "--warmup-steps", "inverse_sqrt: warm-up steps (default: {default})", metavar="N"
    )
    # plateau: flat epochs before the learning rate is cut.
    lr_patience: int = option(
        3, "--lr-patience", "plateau: flat epochs before a cut (default: {default})", metavar="N"
    )
    # plateau: the learning rate is multiplied by this at each cut.
    lr_factor: float = option(
        0.5,
        "--lr-factor",
        "plateau: multiply the learning rate by F at a cut (default: {default})",
        metavar="F",
    )
    # Greedy-decode the validation split every N epochs and log val_chrf (val_wer and val_per
    # for word targets); None: off.
    score_every: int | None = option(
        None,
        "--score-every",
        "greedy-decode the validation split every N epochs and log val_chrf "
        "(val_wer/val_per for word targets); default: off",
        metavar="N",
    )
    # The saved model averages the weights of the N epochs ending at the one it keeps (the
    # best with early stopping, else the last); None: off.
    average_last: int | None = option(
        None,
        "--average-last",
        "save the average of the weights of the N epochs ending at the kept one (the best "
        "with --patience, else the last); may be set when resuming (default: off)",
        metavar="N",
    )
    # Keep the trainable weights of the last N epochs in checkpoints/epochs/ (for `tandem
    # average`, or to go back to an earlier epoch); 0: off.
    keep_checkpoints: int = option(
        0,
        "--keep-checkpoints",
        "keep the weights of the last N epochs in checkpoints/epochs/, beside best and last, "
        "for `tandem average` (default: {default}, off)",
        metavar="N",
    )
    # Write TensorBoard event files (losses, metrics, learning rate, tokens per second, per
    # epoch) into the model directory's tensorboard/.
    tensorboard: bool = option(
        False,
        "--tensorboard",
        "write TensorBoard event files to OUTPUT/tensorboard/ (default: off)",
        switch=True,
    )

    def __post_init__(self):
        plain_numbers(self)
        check_positive(self, "epochs")
        check_positive(self, "batch_size")
        check_choice(self, "optimizer", OPTIMIZERS)
        if self.learning_rate is not None and not is_number(self.learning_rate, low=0.0):
            raise ConfigError(
                setting(self, "learning_rate"),
                f" must be a finite number > 0, got {self.learning_rate!r}",
            )
        check_fraction(self, "validation_split")
        check_positive(self, "patience", allow_none=True)
        check_seed(self)
        if self.gradient_clip_norm is not None and not is_number(self.gradient_clip_norm, 0.0):
            raise ConfigError(
                setting(self, "gradient_clip_norm"),
                f" must be a finite number > 0 or null, got {self.gradient_clip_norm!r}",
            )
        check_fraction(self, "label_smoothing")
        check_choice(self, "lr_schedule", LR_SCHEDULES)
        check_positive(self, "score_every", allow_none=True)
        check_positive(self, "lr_patience")
        check_positive(self, "warmup_steps")
        if not is_number(self.adam_beta_2, low=0.0, high=1.0):
            raise ConfigError(
                setting(self, "adam_beta_2"), f" must be in (0, 1), got {self.adam_beta_2!r}"
            )
        check_positive(self, "average_last", allow_none=True)
        check_count(self, "keep_checkpoints")
        check_bool(self, "tensorboard")
        if not is_number(self.lr_factor, low=0.0, high=1.0):
            raise ConfigError(
                setting(self, "lr_factor"), f" must be in (0, 1), got {self.lr_factor!r}"
            )
