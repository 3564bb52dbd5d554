"""Prometheus metrics of the metrics contract (DESIGN.md), on a registry the caller owns.

Usage::

    from prometheus_client import CollectorRegistry
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.prepare(scenario)          # pre-initialise known label sets
    ...                                # the executor records into it

Classic histograms with explicit buckets (``extra_buckets`` adds budget
thresholds), no ``_created`` series, exemplars carrying the trace id on the
duration histograms (visible in the OpenMetrics exposition). Recording never
raises: a bad label or value is logged and dropped.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from harness.scenario import Scenario

__all__ = ["DURATION_BUCKETS_S", "Metrics"]

_log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Seconds; dense where agent runs live (1–30 s), and sub-second for time-scaled runs.
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    1.5,
    2,
    3,
    4,
    5,
    6,
    8,
    10,
    12,
    15,
    20,
    25,
    30,
    45,
    60,
    90,
    120,
    300,
)
# GenAI semconv's advisory buckets for token usage.
TOKEN_BUCKETS: tuple[float, ...] = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
# GenAI semconv's advisory buckets for operation duration, in seconds.
GENAI_DURATION_BUCKETS_S: tuple[float, ...] = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)

OUTCOMES = ("completed", "partial", "failed", "cancelled")


def _safe(method: Callable[P, R]) -> Callable[P, R | None]:
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return method(*args, **kwargs)
        except Exception:  # telemetry never crashes the code it observes
            _log.exception("dropping a metric update in %s", method.__name__)
            return None

    return wrapper


def _buckets(base: Iterable[float], extra: Iterable[float]) -> list[float]:
    return sorted({float(b) for b in (*base, *extra) if b > 0})


def _exemplar(trace_id: str | None) -> dict[str, str] | None:
    return {"trace_id": trace_id} if trace_id else None


class Metrics:
    """Every metric of the contract, registered on ``registry``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        extra_buckets_s: Iterable[float] = (),
    ) -> None:
        # The _created series double every counter and histogram and no panel reads them.
        prometheus_client.disable_created_metrics()
        self.registry = registry
        buckets = _buckets(DURATION_BUCKETS_S, extra_buckets_s)
        r = registry
        self.run_duration = Histogram(
            "parabench_run_duration_seconds",
            "End-to-end duration of an agent run (run span start to end).",
            ["scenario", "variant", "outcome"],
            buckets=buckets,
            registry=r,
        )
        self.run_ttfc = Histogram(
            "parabench_run_time_to_first_card_seconds",
            "Time from the start of a run to its first card (progressive result).",
            ["scenario", "variant"],
            buckets=buckets,
            registry=r,
        )
        self.runs_in_flight = Gauge(
            "parabench_runs_in_flight",
            "Agent runs currently executing.",
            ["scenario", "variant"],
            registry=r,
        )
        self.step_duration = Histogram(
            "parabench_step_duration_seconds",
            "Duration of a step, from ready (dependencies done) to finished, queue included.",
            ["scenario", "variant", "step", "kind"],
            buckets=buckets,
            registry=r,
        )
        self.step_queue = Histogram(
            "parabench_step_queue_seconds",
            "Time a ready step waited for a concurrency slot or a rate limit.",
            ["scenario", "variant", "step"],
            buckets=buckets,
            registry=r,
        )
        self.cost = Counter(
            "parabench_cost_usd",
            "Money spent, in US dollars.",
            ["scenario", "variant", "step", "model"],
            registry=r,
        )
        self.tokens = Counter(
            "parabench_llm_tokens",
            "LLM tokens used.",
            ["model", "type"],
            registry=r,
        )
        self.llm_errors = Counter(
            "parabench_llm_errors",
            "Failed LLM call attempts, 429s included.",
            ["model", "error_type"],
            registry=r,
        )
        self.branch_saved = Counter(
            "parabench_branch_saved_seconds",
            "Seconds of run time a parallel branch saved (replayed against waiting for its "
            "fork siblings).",
            ["scenario", "variant", "step"],
            registry=r,
        )
        self.branch_extra_cost = Counter(
            "parabench_branch_extra_cost_usd",
            "Extra dollars a parallel branch cost compared with the baseline variant.",
            ["scenario", "variant", "step"],
            registry=r,
        )
        self.telemetry_exported = Counter(
            "parabench_telemetry_spans_exported",
            "Spans written by an exporter (file: the spans file; otlp: a collector).",
            ["exporter"],
            registry=r,
        )
        self.telemetry_dropped = Counter(
            "parabench_telemetry_spans_dropped",
            "Spans lost on the way to an exporter, by reason: queue_full, export_failed, "
            "shutdown_timeout, after_shutdown.",
            ["exporter", "reason"],
            registry=r,
        )
        self.genai_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration (OpenTelemetry GenAI semantic conventions).",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"],
            buckets=GENAI_DURATION_BUCKETS_S,
            registry=r,
        )
        self.genai_tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per GenAI operation (OpenTelemetry GenAI semantic conventions).",
            [
                "gen_ai_operation_name",
                "gen_ai_provider_name",
                "gen_ai_request_model",
                "gen_ai_token_type",
            ],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )

    @_safe
    def prepare(self, scenario: Scenario, provider_name: str = "parabench.simulated") -> None:
        """Create every known label set at 0 so a panel never shows "No data"."""
        from harness.dag import forks

        name = scenario.name
        for variant in scenario.variants:
            plan = scenario.plan(variant)
            for outcome in OUTCOMES:
                self.run_duration.labels(name, variant, outcome)
            self.run_ttfc.labels(name, variant)
            self.runs_in_flight.labels(name, variant)
            for sid, step in plan.steps.items():
                self.step_duration.labels(name, variant, sid, step.kind)
                self.step_queue.labels(name, variant, sid)
                self.cost.labels(name, variant, sid, self.cost_model_label(plan, sid))
                if step.kind == "llm":
                    model = plan.model_of(step)
                    self.tokens.labels(model, "input")
                    self.tokens.labels(model, "output")
                    self.genai_duration.labels("chat", provider_name, model, "")
                    for token_type in ("input", "output"):
                        self.genai_tokens.labels("chat", provider_name, model, token_type)
            for _, branch in forks(plan.deps):
                for sid in branch:
                    self.branch_saved.labels(name, variant, sid)
                    self.branch_extra_cost.labels(name, variant, sid)

    @staticmethod
    def cost_model_label(plan: Any, step_id: str) -> str:
        step = plan.steps[step_id]
        return plan.model_of(step) if step.kind == "llm" else f"tool:{step.tool_name}"

    @_safe
    def run_started(self, scenario: str, variant: str) -> None:
        self.runs_in_flight.labels(scenario, variant).inc()

    @_safe
    def run_finished(
        self,
        scenario: str,
        variant: str,
        outcome: str,
        duration_s: float,
        ttfc_s: float | None,
        trace_id: str | None,
    ) -> None:
        self.runs_in_flight.labels(scenario, variant).dec()
        ex = _exemplar(trace_id)
        self.run_duration.labels(scenario, variant, outcome).observe(duration_s, ex)
        if ttfc_s is not None:
            self.run_ttfc.labels(scenario, variant).observe(ttfc_s, ex)

    @_safe
    def step_finished(
        self,
        scenario: str,
        variant: str,
        step: str,
        kind: str,
        duration_s: float,
        queue_s: float,
        cost_usd: float | None,
        model_label: str,
        trace_id: str | None,
    ) -> None:
        ex = _exemplar(trace_id)
        self.step_duration.labels(scenario, variant, step, kind).observe(duration_s, ex)
        self.step_queue.labels(scenario, variant, step).observe(queue_s)
        if cost_usd:
            self.cost.labels(scenario, variant, step, model_label).inc(cost_usd)

    @_safe
    def llm_attempt(
        self,
        provider: str,
        model: str,
        duration_s: float,
        input_tokens: int,
        output_tokens: int,
        error_type: str | None,
        trace_id: str | None,
    ) -> None:
        self.genai_duration.labels("chat", provider, model, error_type or "").observe(
            duration_s, _exemplar(trace_id)
        )
        if error_type:
            self.llm_errors.labels(model, error_type).inc()
            return
        self.tokens.labels(model, "input").inc(input_tokens)
        self.tokens.labels(model, "output").inc(output_tokens)
        self.genai_tokens.labels("chat", provider, model, "input").observe(input_tokens)
        self.genai_tokens.labels("chat", provider, model, "output").observe(output_tokens)

    @_safe
    def prepare_exporter(self, exporter: str) -> None:
        """Create the span-count series of ``exporter`` at zero."""
        from harness.telemetry.processor import DROP_REASONS

        self.telemetry_exported.labels(exporter)
        for reason in DROP_REASONS:
            self.telemetry_dropped.labels(exporter, reason)

    @_safe
    def spans_exported(self, exporter: str, count: int) -> None:
        self.telemetry_exported.labels(exporter).inc(count)

    @_safe
    def spans_dropped(self, exporter: str, count: int, reason: str) -> None:
        self.telemetry_dropped.labels(exporter, reason).inc(count)

    @_safe
    def branch(
        self, scenario: str, variant: str, step: str, saved_s: float, extra_cost_usd: float
    ) -> None:
        if saved_s > 0:
            self.branch_saved.labels(scenario, variant, step).inc(saved_s)
        if extra_cost_usd > 0:
            self.branch_extra_cost.labels(scenario, variant, step).inc(extra_cost_usd)
