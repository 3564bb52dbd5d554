"""Getting every run's sample into one ``samples.jsonl``, whatever Locust's mode.

* **One process** (plain ``locust --headless``): the process writes
  ``DIR/samples.jsonl`` itself as runs finish.
* **Master and workers** (``--processes N`` on one machine, or ``--master`` /
  ``--worker`` on several): each worker sends its samples to the master over
  Locust's own message channel (``parabench_samples`` messages, batched every
  half second), and only the master writes ``DIR/samples.jsonl``. Nothing has
  to be copied back from worker machines, and workers need no ``--samples-dir``.

A worker announces itself when the test starts. When the test ends, the
master first asks every worker to drain (``parabench_drain``): the worker stops
its users — each finishes the run it is in, within Locust's ``--stop-timeout``
— flushes its buffer and answers ``done`` with its count. The master waits
(bounded) for every announced worker's ``done`` before it quits, so neither a
run in flight nor a sample in a worker's buffer is lost. (Locust's own
headless shutdown would tell workers to quit and give them half a second.)

The master stamps each sample with the target user count in force when it
was sent (``concurrency``), from its own record of the shape's levels.

Imported only by the locustfile (it needs gevent and a Locust runner).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from harness.load.samples import ConcurrencyTimeline, SampleFile

__all__ = ["SampleSink"]

log = logging.getLogger("parabench.load")

MESSAGE = "parabench_samples"
DRAIN = "parabench_drain"
_BATCH_INTERVAL_S = 0.5
_BATCH_MAX = 500
_DONE_WAIT_S = 15.0


class SampleSink:
    """Where this Locust process's samples go: a file, or the master."""

    def __init__(self, environment: Environment, samples_dir: str | None) -> None:
        self.environment = environment
        runner = environment.runner
        assert runner is not None, "the sink is made on Locust's init event, after the runner"
        self.runner = runner
        self.is_worker = isinstance(runner, WorkerRunner)
        self.is_master = isinstance(runner, MasterRunner)
        self.worker_id = runner.client_id if isinstance(runner, WorkerRunner) else "local"
        self.timeline = ConcurrencyTimeline()
        self._buffer: list[dict[str, Any]] = []
        self._sent = 0
        self._file: SampleFile | None = None
        self._samples_dir = samples_dir
        self._announced: set[str] = set()
        self._done: dict[str, int] = {}
        self._received: dict[str, int] = {}
        self._greenlets: list[gevent.Greenlet] = []
        if self.is_master:
            runner.register_message(MESSAGE, self._on_message)
        if self.is_worker:
            # concurrent: stopping the users blocks until their runs end.
            runner.register_message(DRAIN, self._on_drain, concurrent=True)
        events = environment.events
        events.test_start.add_listener(self._on_test_start)
        events.test_stopping.add_listener(self._on_test_stopping)
        events.test_stop.add_listener(self._on_test_stop)
        events.quitting.add_listener(self._on_quitting)

    @property
    def path(self) -> Path | None:
        return self._file.path if self._file else None

    def add(self, sample: dict[str, Any]) -> None:
        """Record one run's sample (called by a user greenlet when its run ends)."""
        if self.is_worker:
            sample["worker"] = self.worker_id
            self._buffer.append(sample)
            if len(self._buffer) >= _BATCH_MAX:
                self._flush()
            return
        sample["worker"] = "local"
        if self._file is not None:
            self._file.write([sample])

    # -- lifecycle ---------------------------------------------------------

    def _open_file(self) -> None:
        if self._file is None and self._samples_dir:
            self._file = SampleFile(Path(self._samples_dir) / "samples.jsonl")

    def _on_test_start(self, environment: Environment, **_: Any) -> None:
        if self.is_worker:
            self._send({"hello": True})
            self._greenlets.append(gevent.spawn(self._flush_forever))
            return
        self._announced.clear()
        self._done.clear()
        self._received.clear()
        self._open_file()
        self._greenlets.append(gevent.spawn(self._watch_target))

    def _on_test_stopping(self, environment: Environment, **_: Any) -> None:
        if self.is_master and self._announced:
            self.runner.send_message(DRAIN, None)
            self._wait_for_workers(environment.stop_timeout or 0.0)

    def _on_test_stop(self, environment: Environment, **_: Any) -> None:
        if self.is_worker:
            self._flush()
            self._send({"done": True, "sent": self._sent})

    def _on_quitting(self, environment: Environment, **_: Any) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- worker side -------------------------------------------------------

    def _send(self, data: dict[str, Any]) -> None:
        try:
            self.runner.send_message(MESSAGE, {"worker": self.worker_id, **data})
        except Exception:  # the master went away: log and drop, never kill the user
            log.exception("could not send samples to the Locust master")

    def _on_drain(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.runner.stop()  # fires test_stop, which sends the rest and "done"

    def _flush(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer[:_BATCH_MAX], self._buffer[_BATCH_MAX:]
            self._sent += len(batch)
            self._send({"samples": batch})

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(_BATCH_INTERVAL_S)
            self._flush()

    # -- master and single-process side -----------------------------------

    def _watch_target(self) -> None:
        while True:
            self.timeline.record(time.time(), int(self.runner.target_user_count or 0))
            gevent.sleep(0.05)

    def concurrency_at(self, send_time_unix_s: float) -> int | None:
        """The target user count when a sample was sent (master and single process)."""
        return self.timeline.at(send_time_unix_s)

    def _on_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data or {}
        worker = str(data.get("worker") or msg.node_id)
        self._announced.add(worker)
        samples = data.get("samples") or []
        if samples:
            self._open_file()
            for sample in samples:
                if sample.get("concurrency") is None:
                    sample["concurrency"] = self.timeline.at(sample.get("send_time_unix_s", 0.0))
            if self._file is not None:
                self._file.write(samples)
            self._received[worker] = self._received.get(worker, 0) + len(samples)
        if data.get("done"):
            self._done[worker] = int(data.get("sent", 0))

    def _wait_for_workers(self, stop_timeout_s: float) -> None:
        deadline = time.monotonic() + stop_timeout_s + _DONE_WAIT_S
        while time.monotonic() < deadline:
            if self._announced <= set(self._done):
                break
            gevent.sleep(0.1)
        missing = self._announced - set(self._done)
        if missing:
            log.warning("no final samples from worker(s) %s; their last runs may be lost", missing)
        for worker, sent in self._done.items():
            got = self._received.get(worker, 0)
            if got < sent:
                log.warning("worker %s sent %d samples but %d arrived", worker, sent, got)
