"""The training loss and how it is reported: cross-entropy per real target token.

Padded target steps have sample weight 0 (see `tandem.training.batches`). Keras's default
reduction would still divide a batch's sum by batch x steps, padding included, and its `loss`
log averages the batches' means by their rows; here a batch's loss is its weighted sum over
its sample weights (`mean_with_sample_weight`), so every real token weighs the same in every
step, and the logged `loss`/`val_loss` are the mean over the epoch's real target tokens
(`TokenMean`), whatever the batching. Unmasked models (the seed's) carry no weights: every
step counts, padding included, as the example trains.
"""

from __future__ import annotations

import keras
from keras import ops

# A batch's loss: the weighted sum over the sum of the weights (the real tokens).
REDUCTION = "mean_with_sample_weight"


@keras.saving.register_keras_serializable(package="tandem")
class SparseLabelSmoothingCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer targets against a target distribution smoothed toward uniform.

    Equals `keras.losses.CategoricalCrossentropy(label_smoothing=...)` on one-hot targets,
    without building them: with smoothing s and V classes, the target puts 1 - s + s/V on the
    true id and s/V on every other, so the loss is (1 - s) * -log p(true) + s * mean(-log p).

    Args:
        label_smoothing: s, in [0, 1).

    Example:
        >>> loss = SparseLabelSmoothingCrossentropy(0.1)
        >>> round(float(loss([[0]], [[[0.5, 0.5]]])), 4)
        0.6931
    """

    def __init__(
        self,
        label_smoothing: float = 0.1,
        name: str = "sparse_label_smoothing_crossentropy",
        reduction: str = "sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        # y_true: (batch, steps) ids; y_pred: (batch, steps, vocab) probabilities.
        # Normalised and clipped as Keras's cross-entropies do, so s = 0 gives the same values.
        probs = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
        epsilon = keras.config.epsilon()
        log_probs = ops.log(ops.clip(probs, epsilon, 1.0 - epsilon))  # (batch, steps, vocab)
        ids = ops.expand_dims(ops.cast(y_true, "int32"), axis=-1)  # (batch, steps, 1)
        true_log_probs = ops.squeeze(ops.take_along_axis(log_probs, ids, axis=-1), axis=-1)
        mean_log_probs = ops.mean(log_probs, axis=-1)  # (batch, steps)
        smoothing = self.label_smoothing
        return -((1.0 - smoothing) * true_log_probs + smoothing * mean_log_probs)

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def training_loss(label_smoothing: float) -> keras.losses.Loss:
    """The loss `fit` minimises, per real target token: sparse cross-entropy, label-smoothed
    when asked for."""
    if label_smoothing == 0.0:
        return keras.losses.SparseCategoricalCrossentropy(reduction=REDUCTION)
    return SparseLabelSmoothingCrossentropy(label_smoothing, reduction=REDUCTION)


@keras.saving.register_keras_serializable(package="tandem")
class TokenMean(keras.metrics.Metric):
    """The mean of a per-token value over every weighted token seen: sum(value x weight) /
    sum(weight), over the whole epoch.

    Keras's `Mean` reduces 2-D sample weights to one weight per row, the mean over the steps,
    so batches of different widths (length-bucketed ones) would not weigh their tokens alike.

    Args:
        fn: (y_true (batch, steps), y_pred (batch, steps, vocab)) -> (batch, steps) values.
        name: the metric's name in the logs.

    Example:
        >>> metric = TokenMean(keras.metrics.sparse_categorical_accuracy, "accuracy")
        >>> metric.update_state([[0, 1]], [[[0.9, 0.1], [0.8, 0.2]]], [[1.0, 0.0]])
        >>> float(metric.result())
        1.0
    """

    def __init__(self, fn, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.fn = fn
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = ops.cast(self.fn(y_true, y_pred), self.dtype)  # (batch, steps)
        weights = (
            ops.ones_like(values)
            if sample_weight is None
            else ops.broadcast_to(ops.cast(sample_weight, self.dtype), ops.shape(values))
        )
        self.total.assign_add(ops.sum(values * weights))
        self.count.assign_add(ops.sum(weights))

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def result(self):
        return ops.divide_no_nan(self.total, self.count)


# The name the loss per token is logged under, until `PerTokenLoss` makes it `loss`.
TOKEN_LOSS = "token_loss"


def token_metrics(label_smoothing: float) -> list[TokenMean]:
    """The weighted metrics `compile` takes: the loss and the accuracy per real target token
    (the accuracy counts the tokens whose most probable id is the target)."""
    loss = training_loss(label_smoothing)
    per_token = (
        loss.call  # (batch, steps)
        if isinstance(loss, SparseLabelSmoothingCrossentropy)
        else keras.losses.sparse_categorical_crossentropy
    )
    return [
        TokenMean(per_token, TOKEN_LOSS),
        TokenMean(keras.metrics.sparse_categorical_accuracy, "accuracy"),
    ]


class PerTokenLoss(keras.callbacks.Callback):
    """Logs the loss per real token (`token_loss`, `val_token_loss`) as `loss` and `val_loss`,
    in place of Keras's mean of the batches' losses. First among the callbacks, so that every
    other one (early stopping, the checkpointer's history, the progress line) reads it."""

    def on_train_batch_end(self, batch, logs=None):
        _rename(logs)

    def on_test_batch_end(self, batch, logs=None):
        _rename(logs)

    def on_epoch_end(self, epoch, logs=None):
        _rename(logs)
        _rename(logs, prefix="val_")


def _rename(logs: dict | None, prefix: str = "") -> None:
    if logs is not None and prefix + TOKEN_LOSS in logs:
        logs[prefix + "loss"] = logs.pop(prefix + TOKEN_LOSS)
