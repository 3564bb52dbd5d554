"""A batching span processor that never loses a span without counting it.

The SDK's ``BatchSpanProcessor`` drops spans silently (one WARNING log line,
rate-limited) when its queue is full, and every span that ends after its
shutdown. For the spans file — the record the analysis counts runs and steps
from — neither is acceptable: under load the step spans would no longer add up
to the steps executed, and nothing would say so. ``QueuedSpanProcessor``:

* exports on a worker thread, in batches of ``max_export_batch_size``, every
  ``schedule_delay_s`` or as soon as a batch is full;
* bounds its queue at ``max_queue_size`` spans. When the queue is full,
  ``when_full="block"`` (the spans file) makes the thread that ends a span
  export a batch itself: nothing is lost, memory stays bounded, and the code
  being observed pays the time of one write only when the exporter has fallen
  that far behind. ``when_full="drop"`` (a remote collector, which can be down
  for minutes) drops the span and counts it;
* counts spans exported and spans dropped by reason (``queue_full``,
  ``export_failed``, ``shutdown_timeout``, ``after_shutdown``), and tells the
  optional callbacks (``Telemetry`` turns them into the
  ``parabench_telemetry_spans_*`` metrics);
* exports everything queued on ``force_flush`` and ``shutdown`` (within their
  timeouts: an exporter that hangs cannot hold a shutdown for ever).

It never raises into the code that ends a span: a failing exporter or
callback is logged and counted.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["DROP_REASONS", "QueuedSpanProcessor"]

_log = logging.getLogger(__name__)

#: Why a span can be lost: the queue was full (``drop`` policy), the exporter
#: failed (a full disk, a collector that refused), it was still queued when
#: shutdown timed out (an exporter that hangs), or it ended after shutdown.
DROP_REASONS = ("queue_full", "export_failed", "shutdown_timeout", "after_shutdown")

WhenFull = Literal["block", "drop"]


class QueuedSpanProcessor(SpanProcessor):
    """Batch spans to ``exporter`` on a worker thread; count every span exported or dropped."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int = 200_000,
        max_export_batch_size: int = 2048,
        schedule_delay_s: float = 0.5,
        when_full: WhenFull = "block",
        on_export: Callable[[int], None] | None = None,
        on_drop: Callable[[int, str], None] | None = None,
    ) -> None:
        if max_queue_size < 1 or max_export_batch_size < 1:
            raise ValueError("max_queue_size and max_export_batch_size must be ≥ 1")
        if when_full not in ("block", "drop"):
            raise ValueError(f"when_full must be 'block' or 'drop', not {when_full!r}")
        self.exporter = exporter
        self.max_queue_size = max_queue_size
        self.max_export_batch_size = min(max_export_batch_size, max_queue_size)
        self.schedule_delay_s = schedule_delay_s
        self.when_full = when_full
        self.exported = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self._on_export = on_export
        self._on_drop = on_drop
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._lock = threading.Lock()  # the queue, ``_closed`` and the counters
        self._export_lock = threading.Lock()  # one export at a time, in order
        self._wake = threading.Event()
        self._closed = False
        self._stopping = False
        self._worker = threading.Thread(
            target=self._work, name="parabench-span-export", daemon=True
        )
        self._worker.start()

    # SpanProcessor

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        try:
            context = span.context
            if context is None or not context.trace_flags.sampled:
                return
            with self._lock:
                if self._closed:
                    dropped = "after_shutdown"
                else:
                    dropped = None
                    self._queue.append(span)
                    size = len(self._queue)
                    if size > self.max_queue_size and self.when_full == "drop":
                        self._queue.pop()
                        dropped = "queue_full"
            if dropped is not None:
                self._drop(1, dropped)
                return
            if size >= self.max_export_batch_size:
                self._wake.set()
            if size > self.max_queue_size:
                self._export_batch()  # block: the producer writes a batch itself
        except Exception:  # telemetry never crashes the code it observes
            _log.exception("could not queue a span")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Hand the spans queued to the exporter; False if some are still queued at the timeout.

        A failed export is counted (``export_failed``), not retried.
        """
        return self._flush(time.monotonic() + timeout_millis / 1000)

    def shutdown(self, timeout_millis: int = 30_000) -> None:
        """Export everything queued, stop the worker, shut the exporter down; safe twice.

        What is still queued at the timeout (an exporter that hangs) is counted
        as ``shutdown_timeout``; a span ending after this is ``after_shutdown``.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True  # from here on a span that ends is counted, not queued
        deadline = time.monotonic() + timeout_millis / 1000
        self._stopping = True
        self._wake.set()
        self._worker.join(timeout=max(deadline - time.monotonic(), 0.0))
        self._flush(deadline)
        with self._lock:
            left = len(self._queue)
            self._queue.clear()
        if left:
            self._drop(left, "shutdown_timeout")
        try:
            self.exporter.shutdown()
        except Exception:
            _log.exception("shutting down the span exporter failed")

    # Internals

    def _work(self) -> None:
        while not self._stopping:
            self._wake.wait(self.schedule_delay_s)
            self._wake.clear()
            try:
                self._flush(None)
            except Exception:  # never let the worker die: on_end would carry the load alone
                _log.exception("the span export worker failed")

    def _flush(self, deadline: float | None) -> bool:
        """Export batches until the queue is empty (True) or the deadline or shutdown comes."""
        while deadline is None or time.monotonic() < deadline:
            if deadline is None and self._stopping:
                return False  # the worker yields to shutdown, which flushes with its deadline
            if not self._export_batch():
                return True
        return not self._queue

    def _export_batch(self) -> int:
        """Export up to one batch from the head of the queue; the number of spans taken."""
        with self._export_lock:
            with self._lock:
                count = min(len(self._queue), self.max_export_batch_size)
                batch = [self._queue.popleft() for _ in range(count)]
            if not batch:
                return 0
            try:
                ok = self.exporter.export(batch) == SpanExportResult.SUCCESS
            except Exception:
                _log.exception("exporting %d spans failed", len(batch))
                ok = False
        if ok:
            with self._lock:
                self.exported += len(batch)
            self._tell(self._on_export, len(batch))
        else:
            self._drop(len(batch), "export_failed")
        return len(batch)

    def _drop(self, count: int, reason: str) -> None:
        with self._lock:
            first = not self.dropped[reason]
            self.dropped[reason] += count
        if first and reason != "export_failed":  # the exporter logs its own failures
            # Once per reason: the counters (and the metric) tell how many since.
            _log.warning("dropped %d span(s): %s (further drops are only counted)", count, reason)
        self._tell(self._on_drop, count, reason)

    @staticmethod
    def _tell(callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            _log.exception("a span-count callback failed")
