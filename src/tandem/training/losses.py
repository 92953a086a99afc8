"""The training loss: sparse cross-entropy, optionally label-smoothed."""

from __future__ import annotations

import keras
from keras import ops


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


def training_loss(label_smoothing: float):
    """The loss `fit` minimises: Keras's own sparse cross-entropy unless smoothing is asked for."""
    if label_smoothing == 0.0:
        return "sparse_categorical_crossentropy"
    return SparseLabelSmoothingCrossentropy(label_smoothing)
