"""Data-parallel training: Keras's distribution API over the devices JAX sees.

`tandem train --devices N` replicates the model on N devices and splits every batch between
them (`keras.distribution.DataParallel`); gradients are averaged across the replicas by the
compiled train step, so a run computes what one device would, `batch_size` pairs per step.
The saved model holds ordinary weights and loads on one device.

Across several hosts, each process runs the same `tandem train` command with the
`KERAS_DISTRIBUTION_*` environment variables set (see docs/distributed.md); `initialize()`
then joins the processes before JAX runs anything, and each process feeds its share of the
rows of every batch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import keras

from tandem.errors import TandemError


@dataclass(frozen=True)
class Replicas:
    """How a batch is split: `count` model replicas in all; this process feeds the rows
    `process::processes` of every (padded) batch."""

    count: int = 1
    process: int = 0
    processes: int = 1


ONE_DEVICE = Replicas()


def parse_devices(value: str | int | None) -> int | str | None:
    """`--devices` as given: a positive count, "all", or None (one device, no distribution)."""
    if value is None or value == "all":
        return value
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        raise TandemError(f"--devices must be a positive number or 'all', got {value!r}")
    return count


def initialize() -> None:
    """Join the other processes of a multi-host run, when the environment describes one.

    `keras.distribution.initialize()` reads KERAS_DISTRIBUTION_JOB_ADDRESSES,
    KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID.
    """
    value = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "").strip()
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise TandemError(
            f"KERAS_DISTRIBUTION_NUM_PROCESSES must be a positive number, got {value!r}"
        )
    if int(value) == 1:
        return
    try:
        keras.distribution.initialize()
    except Exception as exc:  # JAX raises several kinds for a bad address or an absent peer
        raise TandemError(f"cannot join the other training processes: {exc}") from None


@contextlib.contextmanager
def data_parallel(devices: int | str | None, batch_size: int) -> Iterator[Replicas]:
    """Within this context, models built and trained are replicated on `devices` devices.

    Args:
        devices: a device count, "all", or None / 1 for plain single-device training.
        batch_size: pairs per step; it must split evenly between the devices.

    Yields:
        The Replicas the batches must be cut for.

    Raises:
        TypeError: `devices` is none of those.
        TandemError: not the JAX backend, fewer devices than asked for, or a batch size the
            devices cannot share.
    """
    counted = isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1
    if not (devices is None or devices == "all" or counted):
        raise TypeError(f"devices must be a positive int, 'all' or None, got {devices!r}")
    if devices is None or devices == 1:
        yield ONE_DEVICE
        return
    if keras.backend.backend() != "jax":
        raise TandemError(
            f"--devices needs the JAX backend (KERAS_BACKEND=jax), not {keras.backend.backend()}"
        )
    import jax

    available = keras.distribution.list_devices()
    count = len(available) if devices == "all" else devices
    if count > len(available):
        raise TandemError(
            f"--devices {count}: only {len(available)} device(s) available ({', '.join(available)})"
        )
    if batch_size % count:
        raise TandemError(
            f"--batch-size {batch_size} does not split evenly between {count} devices; "
            f"use a multiple of {count}"
        )
    distribution = keras.distribution.DataParallel(devices=available[:count])
    with distribution.scope():
        yield Replicas(count, jax.process_index(), jax.process_count())
