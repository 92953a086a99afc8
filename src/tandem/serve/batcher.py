"""Micro-batching: one worker thread decodes the requests that arrive together as one batch."""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

# (model name, decoding options, texts sorted longest first) -> one result per text, in order.
TranslateFn = Callable[[str, Hashable, list[str]], Sequence]


class QueueFull(Exception):
    """The batcher holds its most requests (or is shutting down): try again later."""


@dataclass
class Job:
    """One request: its texts, for one model and one set of decoding options."""

    model: str
    options: Hashable
    texts: list[str]
    future: Future = field(default_factory=Future)
    work: Callable[[], object] | None = None  # run alone instead of translating (`call`)


_STOP = object()  # queued by close(): everything queued before it is decoded first


class Batcher:
    """Group the requests waiting into batches of up to `max_batch_size` sentences, decoded
    by one worker thread that alone calls `translate`.

    The worker takes what is queued when it is free and decodes it at once: one request alone
    waits for nothing, and those that arrive during a decode form the next batch, so batches
    grow with the load. With `max_wait_ms` above 0, a batch that is not full first waits that
    long for more requests (larger batches, at the cost of latency).

    Args:
        translate: `(model, options, texts) -> results`, called once per (model, options)
            group of a batch, with its texts sorted by length, longest first.
        max_batch_size: sentences per batch (a larger request is a batch of its own).
        max_wait_ms: how long a batch that is not full waits for more requests (0: none).
        max_queue: requests waiting at most; `submit` refuses more with QueueFull.

    Example:
        >>> batcher = Batcher(lambda model, options, texts: texts, 8, 5.0, 16).start()
        >>> batcher.submit("m", None, ["Go."]).result()
        ['Go.']
        >>> batcher.close()
    """

    def __init__(
        self, translate: TranslateFn, max_batch_size: int, max_wait_ms: float, max_queue: int
    ):
        self.translate = translate
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.max_queue = max_queue
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._closed = False
        self._carry: Job | None = None  # a job that did not fit in the last batch
        self._thread = threading.Thread(target=self._run, name="tandem-batcher", daemon=True)

    def start(self) -> Batcher:
        self._thread.start()
        return self

    def submit(self, model: str, options: Hashable, texts: list[str]) -> Future:
        """Queue one request; its future gets the results in order, or the batch's error."""
        if self._closed:
            raise QueueFull("the server is shutting down")
        job = Job(model, options, list(texts))
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"{self.max_queue} requests are waiting (--max-queue)") from None
        return job.future

    def call(self, work: Callable[[], object], *args) -> Future:
        """Run `work(*args)` on the worker between batches (warm-up); its future gets the
        result. Waits while the queue is full."""
        job = Job("", None, [], work=functools.partial(work, *args))
        self._queue.put(job)
        return job.future

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, decode those queued, and stop the worker."""
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(_STOP)  # blocks while the queue is full: the worker is draining it
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            jobs, stop = self._next_batch()
            if jobs:
                self.decode(jobs)
            if stop:
                return

    def _next_batch(self) -> tuple[list[Job], bool]:
        """The jobs of the next batch, and whether close() was called behind them."""
        first = self._carry if self._carry is not None else self._queue.get()
        self._carry = None
        if first is _STOP:
            return [], True
        jobs, sentences = [first], len(first.texts)
        deadline = time.monotonic() + self.max_wait_ms / 1000
        while sentences < self.max_batch_size:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is _STOP:
                return jobs, True
            if sentences + len(job.texts) > self.max_batch_size:
                self._carry = job
                break
            jobs.append(job)
            sentences += len(job.texts)
        return jobs, False

    def decode(self, jobs: list[Job]) -> None:
        """Decode a batch: one `translate` call per (model, options) group; a group's error
        fails that group's requests only."""
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        groups: dict[tuple, list[Job]] = {}
        for job in jobs:
            if job.work is not None:
                _run(job)
                continue
            groups.setdefault((job.model, job.options), []).append(job)
        for (model, options), group in groups.items():
            texts = [
                (text, number, row)
                for number, job in enumerate(group)
                for row, text in enumerate(job.texts)
            ]
            texts.sort(key=lambda item: -len(item[0]))  # similar lengths end at similar steps
            answers: list[list] = [[None] * len(job.texts) for job in group]
            try:
                results = self.translate(model, options, [text for text, _, _ in texts])
                for (_, number, row), result in zip(texts, results, strict=True):
                    answers[number][row] = result
            except Exception as exc:  # noqa: BLE001 - handed to the requests that caused it
                for job in group:
                    job.future.set_exception(exc)
                continue
            for job, answer in zip(group, answers, strict=True):
                job.future.set_result(answer)


def _run(job: Job) -> None:
    try:
        job.future.set_result(job.work())
    except Exception as exc:  # noqa: BLE001 - handed to whoever asked for the work
        job.future.set_exception(exc)
