"""Learning-rate schedules that step with the optimizer (saved with it in checkpoints)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tandem")
class InverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak` over `warmup_steps`, then decay as 1 / sqrt(step).

    The Transformer's schedule (Vaswani et al., 2017), with the peak given directly:
    rate(step) = peak * min(step / warmup, sqrt(warmup / step)), steps counted from 1.

    Args:
        peak: the rate reached at the end of the warm-up.
        warmup_steps: optimizer steps of the warm-up.

    Example:
        >>> schedule = InverseSqrt(1e-3, warmup_steps=100)
        >>> [round(float(schedule(step)), 6) for step in (0, 99, 399)]
        [1e-05, 0.001, 0.0005]
    """

    def __init__(self, peak: float, warmup_steps: int):
        self.peak = peak
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0  # the optimizer counts from 0
        warmup = float(self.warmup_steps)
        return self.peak * ops.minimum(step / warmup, ops.sqrt(warmup / step))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps}
