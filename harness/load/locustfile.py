"""Locust load test of the parabench agent service: one user = one run in flight.

Run it with Locust's own command line (``parabench load`` does this for you)::

    locust -f harness/load/locustfile.py --headless --host http://127.0.0.1:8000 \\
        -u 50 -r 10 -t 60s --scenario research_assistant --variants parallel,sequential \\
        --samples-dir reports/load --csv reports/load/locust --html reports/load/locust.html

Each ``AgentUser`` posts ``POST /v1/runs`` with a fresh W3C ``traceparent`` (so
every client sample joins the server's trace), reads the Server-Sent Events
stream as it arrives, and — as soon as the run ends — starts the next run. It
measures on the client's clock (see ``harness.load.measure``) and reports to
Locust's statistics, per variant:

====================  ===========  ====================================================
name                  type         response time
====================  ===========  ====================================================
``/v1/runs {v}``      ``POST``     request sent → response headers; failure on 503,
                                   other statuses and connection errors
``e2e {v}``           ``SSE``      request sent → final event; failure on
                                   ``run.failed`` or a stream cut short
``ttfc {v}``          ``SSE``      request sent → first ``card`` event
``card_gap {v}``      ``SSE``      time between consecutive cards
``speed_index {v}``   ``SSE``      ∫ (1 − share of cards shown) dt
====================  ===========  ====================================================

and writes one raw sample per run to ``samples.jsonl`` (``harness.load.samples``;
``harness.load.collect`` for how workers' samples reach the master).

Options (Locust custom arguments; each also read from an environment variable):
``--scenario`` (``PARABENCH_SCENARIO``), ``--variants`` (``PARABENCH_VARIANTS``,
``a,b`` for round robin or ``a:3,b:1`` for weights), ``--seed``
(``PARABENCH_SEED``), ``--samples-dir`` (``PARABENCH_SAMPLES_DIR``), and the load
shape: ``--shape`` constant|step|sweep, ``--duration``, ``--levels``, ``--hold``,
``--step-users`` (``harness.load.shapes``).

With ``PARABENCH_API_KEY`` set, every request carries ``Authorization: Bearer
<key>`` (a service started with that key requires it).

After a 503 the user waits the service's ``Retry-After`` (at most 5 s) before
its next run, as a well-behaved client would; after a request that got no
response at all (the service is down) it waits a second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import gevent
from geventhttpclient.response import HTTPConnectionClosed
from locust import FastHttpUser, LoadTestShape, constant, events, task
from locust.env import Environment
from locust.stats import CSV_STATS_INTERVAL_SEC

from harness.errors import ParabenchError
from harness.load.collect import SampleSink
from harness.load.measure import (
    RunRecorder,
    VariantPicker,
    auth_headers,
    new_traceparent,
    parse_variants,
)
from harness.load.samples import SAMPLE_SCHEMA
from harness.load.shapes import SHAPES, LoadSchedule, make_schedule
from harness.sse import SseParser

_RETRY_AFTER_CAP_S = 5.0
_DRAIN_TIMEOUT_S = 5.0
#: Seconds a user waits after a request that got no response at all (service down).
_NO_RESPONSE_PAUSE_S = 1.0


class _Settings:
    """This process's test settings, read from Locust's parsed options at test start."""

    scenario = "research_assistant"
    picker = VariantPicker([("parallel", 1.0)])
    seed: int | None = None
    sink: SampleSink | None = None
    schedule: LoadSchedule | None = None
    worker_index = 0
    runs = 0
    #: ``Authorization`` for a service with an API key (``PARABENCH_API_KEY``).
    auth: Mapping[str, str] = MappingProxyType({})

    def next_seed(self) -> int:
        """Run n of worker w sends seed + w·10⁷ + n: a rerun draws the same durations."""
        assert self.seed is not None
        self.runs += 1
        return (self.seed + self.worker_index * 10_000_000 + self.runs) % 2**32


SETTINGS = _Settings()


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("parabench")
    group.add_argument(
        "--scenario",
        default="research_assistant",
        env_var="PARABENCH_SCENARIO",
        help="Scenario the service runs.",
    )
    group.add_argument(
        "--variants",
        default="parallel",
        env_var="PARABENCH_VARIANTS",
        help="Variants, 'a,b' (round robin) or 'a:3,b:1' (weighted).",
    )
    group.add_argument(
        "--seed", type=int, default=None, env_var="PARABENCH_SEED", help="Seed sent with each run."
    )
    group.add_argument(
        "--samples-dir",
        default=None,
        env_var="PARABENCH_SAMPLES_DIR",
        help="Write DIR/samples.jsonl (master or single process only).",
    )
    group.add_argument(
        "--shape", default="constant", choices=SHAPES, env_var="PARABENCH_SHAPE", help="Load shape."
    )
    group.add_argument(
        "--duration",
        type=float,
        default=None,
        env_var="PARABENCH_DURATION",
        help="Seconds a constant test lasts (fractions allowed; or Locust's --run-time).",
    )
    group.add_argument(
        "--levels", default="", env_var="PARABENCH_LEVELS", help="Sweep levels, e.g. 1,2,4,8."
    )
    group.add_argument(
        "--hold",
        type=float,
        default=None,
        env_var="PARABENCH_HOLD",
        help="Seconds each step or sweep level lasts.",
    )
    group.add_argument(
        "--step-users",
        type=int,
        default=None,
        env_var="PARABENCH_STEP_USERS",
        help="Users added per step (step shape).",
    )


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    options: Any = environment.parsed_options
    SETTINGS.sink = SampleSink(environment, getattr(options, "samples_dir", None))
    if SETTINGS.sink.is_worker:
        return  # the master runs the shape
    try:
        parse_variants(options.variants)
        SETTINGS.schedule = make_schedule(
            options.shape,
            users=options.num_users or 1,
            spawn_rate=options.spawn_rate,
            duration_s=options.duration,
            levels=options.levels,
            hold_s=options.hold,
            step_users=options.step_users,
        )
    except ParabenchError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        sys.exit(2)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    options: Any = environment.parsed_options
    SETTINGS.scenario = options.scenario
    SETTINGS.seed = options.seed
    SETTINGS.runs = 0
    SETTINGS.auth = auth_headers()
    SETTINGS.worker_index = getattr(environment.runner, "worker_index", 0) or 0
    picker_seed = None if options.seed is None else options.seed + SETTINGS.worker_index
    SETTINGS.picker = VariantPicker(parse_variants(options.variants), seed=picker_seed)
    # Workers start their round robin at different points, so variants stay balanced overall.
    for _skip in range(SETTINGS.worker_index):
        SETTINGS.picker()


@events.quitting.add_listener
def _let_the_csv_catch_up(environment: Environment, **_: Any) -> None:
    # Locust rewrites its CSV files once a second and not again at exit, so the
    # runs that ended in the last second (the drain) would be missing from them.
    options: Any = environment.parsed_options
    if getattr(options, "csv_prefix", None) and not getattr(options, "worker", False):
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.2)


class ParabenchShape(LoadTestShape):
    """The load shape named by ``--shape`` (constant, step or sweep); see harness.load.shapes."""

    use_common_options = True  # constant reads --users and --spawn-rate; --run-time ends it

    def tick(self) -> tuple[int, float] | None:
        assert SETTINGS.schedule is not None, "the schedule is made when Locust starts"
        return SETTINGS.schedule.tick(self.get_run_time())


def _body_chunks(raw: Any) -> Any:
    """Yield body bytes as soon as they arrive.

    geventhttpclient's ``read(n)`` waits until ``n`` bytes have arrived (or
    the response ends), which would hold back a small event — the first
    card — until later events fill the block. So read what the socket has.
    """
    while True:
        if raw._body_buffer:
            chunk = bytes(raw._body_buffer)
            del raw._body_buffer[:]
            yield chunk
            continue
        if raw.message_complete:
            return
        sock = raw._sock
        if sock is None:
            raise HTTPConnectionClosed("connection closed before the end of the stream")
        data = sock.recv(raw.block_size)
        raw.feed(data)
        if not data and not raw.message_complete:
            raise HTTPConnectionClosed("connection closed before the end of the stream")


def _abandon(raw: Any) -> None:
    """Close a connection whose response was not read to the end (never reuse it)."""
    sock, pool = getattr(raw, "_sock", None), getattr(raw, "_pool", None)
    if sock is None:
        return
    raw._sock, raw._pool = None, None
    if pool is not None:
        pool.release_socket(sock)
    else:
        sock.close()


class AgentUser(FastHttpUser):
    """Runs one agent run after another against ``POST /v1/runs``, reading the SSE stream."""

    wait_time = constant(0)
    # A read may wait as long as the slowest step; the service sends keep-alives.
    network_timeout = 300.0
    connection_timeout = 30.0

    @task
    def run_once(self) -> None:
        variant = SETTINGS.picker()
        traceparent, trace_id = new_traceparent()
        body: dict[str, Any] = {"scenario": SETTINGS.scenario, "variant": variant}
        if SETTINGS.seed is not None:
            body["seed"] = SETTINGS.next_seed()
        runner = self.environment.runner
        sink = SETTINGS.sink
        # The master knows the whole test's target; a worker leaves it to the master.
        concurrency = None if sink is None or sink.is_worker else int(runner.target_user_count or 0)
        sample: dict[str, Any] = {
            "schema": SAMPLE_SCHEMA,
            "send_time_unix_s": 0.0,
            "scenario": SETTINGS.scenario,
            "variant": variant,
            "outcome": "error",
            "http_status": 0,
            "trace_id": trace_id,
            "concurrency": concurrency,
            "worker_users": runner.user_count,
            "error": None,
        }
        sample["send_time_unix_s"] = round(time.time(), 6)
        sent_s = time.perf_counter()
        response = self.client.request(
            "POST",
            "/v1/runs",
            name=f"/v1/runs {variant}",
            json=body,
            stream=True,
            headers={
                "traceparent": traceparent,
                "Accept": "text/event-stream",
                "Accept-Encoding": "identity",
                **SETTINGS.auth,
            },
        )
        recorder = RunRecorder(sent_s=sent_s)
        status = response.status_code
        sample["http_status"] = status
        retry_after_s = 0.0
        if status == 200:
            self._read_stream(response, recorder, variant, sample)
        elif status == 503:
            sample["outcome"] = "rejected"
            retry_after_s = _retry_after_s(response.headers)
            sample["error"] = f"503 over capacity (Retry-After: {retry_after_s:g} s)"
        else:
            error = getattr(response, "error", None)
            sample["error"] = f"HTTP {status}" if status else f"no response: {error!r}"
            if not status:
                # A refused connection fails in microseconds: without a pause every
                # user would spin, writing thousands of error samples a second.
                retry_after_s = _NO_RESPONSE_PAUSE_S
        raw = getattr(response, "_response", None)
        if raw is not None and status != 200:
            _abandon(raw)
        sample.update(recorder.sample_fields())
        if sink is not None:
            sink.add(sample)
        if retry_after_s > 0:
            gevent.sleep(retry_after_s)

    def _read_stream(
        self, response: Any, recorder: RunRecorder, variant: str, sample: dict[str, Any]
    ) -> None:
        raw = response._response
        parser = SseParser()
        received = 0
        error: str | None = None
        try:
            for chunk in _body_chunks(raw):
                now = time.perf_counter()
                received += len(chunk)
                for event in parser.feed(chunk):
                    kind = recorder.on_event(event, now)
                    if kind == "card":
                        times = recorder.card_times_ms
                        if len(times) == 1:
                            self._report(f"ttfc {variant}", times[0])
                        else:
                            self._report(f"card_gap {variant}", times[-1] - times[-2])
                if recorder.outcome is not None:
                    break
            if recorder.outcome is not None:
                with gevent.Timeout(_DRAIN_TIMEOUT_S, False):
                    for _ in _body_chunks(raw):
                        pass  # the rest of the response, so the connection can be reused
            elif parser.close():
                error = "the stream ended in the middle of an event"
            else:
                error = "the stream ended without a final event"
        except (OSError, HTTPConnectionClosed, gevent.Timeout, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            _abandon(raw)
        if recorder.outcome is not None:
            sample["outcome"] = recorder.outcome
            if recorder.outcome == "failed":
                sample["error"] = "run.failed"
        else:
            sample["outcome"] = "error"
            sample["error"] = error
        e2e_ms = recorder.e2e_ms
        if e2e_ms is None:
            e2e_ms = (time.perf_counter() - recorder.sent_s) * 1000
        failure = None
        if sample["outcome"] in ("failed", "error"):
            failure = RuntimeError(sample["error"] or sample["outcome"])
        self._report(f"e2e {variant}", e2e_ms, length=received, exception=failure)
        speed_index = recorder.speed_index_ms
        if speed_index is not None:
            self._report(f"speed_index {variant}", speed_index)

    def _report(
        self, name: str, ms: float, *, length: int = 0, exception: Exception | None = None
    ) -> None:
        self.environment.events.request.fire(
            request_type="SSE",
            name=name,
            response_time=ms,
            response_length=length,
            exception=exception,
            context={},
        )


def _retry_after_s(headers: Any) -> float:
    value = headers.get("retry-after") if headers is not None else None
    try:
        seconds = float(value) if value is not None else 1.0
    except (TypeError, ValueError):
        seconds = 1.0  # an HTTP date, or garbage: a second is a polite default
    return min(max(seconds, 0.0), _RETRY_AFTER_CAP_S)
