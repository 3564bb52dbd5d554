"""The asyncio executor: runs a scenario variant's DAG and streams its cards.

Scheduling (the same policy ``harness.dag.replay`` models):

* ``sequential`` — one step at a time in topological order (declared order
  breaks ties). A step's turn comes when the previous step ends, so it
  records no queue time: in a sequential design waiting is the design.
* ``parallel`` — each step starts the moment its dependencies finish.
* ``parallel`` with ``max_concurrency: N`` — at most N steps at once; a ready
  step waiting for a slot records that wait as ``parabench.step.queue_ms``.
  When slots are short the step with the longest remaining path (median
  durations) goes first.

Failure policy: a step that fails after its last attempt fails its
dependents (they are skipped, never started); independent branches finish;
the run ends ``completed``, ``partial`` (something failed but a card was
shown) or ``failed`` (nothing to show). Cancelling the run cancels every
step task and ends it ``cancelled``.

Every run, step and attempt emits spans per DESIGN.md's span contract, and
metrics when a ``Metrics`` is attached. Telemetry never raises into a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from harness import dag
from harness.clock import monotonic_s, now_ns
from harness.errors import ProviderError, RateLimitedError
from harness.latency import rng_for
from harness.pricing import cost_usd
from harness.providers.base import LlmCall, LlmProvider, ToolCall, ToolRunner
from harness.providers.limits import ClientLimiter
from harness.providers.simulated import SimulatedProvider, SimulatedTools
from harness.scenario import Plan, Scenario, Step
from harness.telemetry import Telemetry

__all__ = ["Card", "Executor", "RetryPolicy", "RunResult", "StepResult"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Card:
    """A progressive result: a card step finished and the user can see it."""

    run_id: str
    step_id: str
    index: int
    at_s: float  # seconds since the run started


@dataclass(slots=True)
class StepResult:
    """What happened to one step of one run (times: seconds since run start)."""

    step_id: str
    kind: str
    status: str = "pending"  # ok | failed | skipped | cancelled
    ready_s: float | None = None
    start_s: float | None = None
    end_s: float | None = None
    attempts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    error_type: str | None = None

    @property
    def queue_s(self) -> float:
        if self.ready_s is None or self.start_s is None:
            return 0.0
        return max(self.start_s - self.ready_s, 0.0)

    @property
    def service_s(self) -> float:
        if self.start_s is None or self.end_s is None:
            return 0.0
        return max(self.end_s - self.start_s, 0.0)


@dataclass(slots=True)
class RunResult:
    """The outcome of one run."""

    run_id: str
    trace_id: str
    scenario: str
    variant: str
    outcome: str
    e2e_s: float
    ttfc_s: float | None
    cost_usd: float
    unpriced: bool
    steps: dict[str, StepResult]
    cards: list[Card] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter; a Retry-After from the provider wins.

    ``max_retry_after_s`` caps a provider's Retry-After (real seconds): a run
    must end in bounded time even when an endpoint asks for an hour.
    """

    base_s: float = 0.5
    max_s: float = 20.0
    max_retry_after_s: float = 60.0

    def delay_s(
        self, attempt: int, error: ProviderError, rng: random.Random, time_scale: float = 1.0
    ) -> float:
        """Real seconds to wait before the next attempt.

        Our own backoff is in scenario time (scaled like every simulated wait); a
        provider's Retry-After is real time already and is honoured as given, up
        to ``max_retry_after_s``.
        """
        if isinstance(error, RateLimitedError) and error.retry_after_s is not None:
            return min(max(error.retry_after_s, 0.0), self.max_retry_after_s)
        return rng.uniform(0, min(self.max_s, self.base_s * 2**attempt)) * time_scale


class Executor:
    """Runs variants of one scenario against a provider, with telemetry.

    >>> executor = Executor(scenario, telemetry=Telemetry(spans_path="out/spans.jsonl"))
    >>> result = await executor.run("parallel", seed=1)
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        telemetry: Telemetry,
        provider: LlmProvider | None = None,
        tools: ToolRunner | None = None,
        time_scale: float = 1.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.scenario = scenario
        self.telemetry = telemetry
        self.tracer = telemetry.tracer
        self.metrics = telemetry.metrics
        self.provider: LlmProvider = provider or SimulatedProvider(scenario.latency_overrides)
        self.tools: ToolRunner = tools or SimulatedTools()
        self.time_scale = time_scale
        self.retry = retry or RetryPolicy()
        self._priorities: dict[str, dict[str, float]] = {}
        #: The runs in progress (their tasks), for ``cancel_runs``.
        self._runs: set[asyncio.Task[None]] = set()
        self._cancelling = False
        if self.metrics is not None:
            self.metrics.prepare(scenario, self.provider.name)

    def cancel_runs(self) -> int:
        """Cancel every run in progress, and every run started from now on, once begun.

        For a service shutting down: each run ends ``cancelled`` (its spans
        ended, its result yielded) while a run that has already finished keeps
        its outcome, so what a stream tells its client is what the trace says.
        Returns how many runs were in progress.
        """
        self._cancelling = True
        running = [task for task in self._runs if not task.done()]
        for task in running:
            task.cancel()
        return len(running)

    @property
    def runs_in_progress(self) -> int:
        """How many runs (of ``stream`` or ``run``) have not ended yet."""
        return sum(not task.done() for task in self._runs)

    def _priority(self, plan: Plan) -> dict[str, float]:
        if plan.variant not in self._priorities:
            medians = {sid: plan.median_duration_s(s) for sid, s in plan.steps.items()}
            self._priorities[plan.variant] = dag.bottom_levels(plan.deps, medians)
        return self._priorities[plan.variant]

    async def run(
        self,
        variant: str,
        *,
        seed: int = 0,
        run_index: int = 0,
        run_id: str | None = None,
        parent: Context | None = None,
        on_card: Callable[[Card], None] | None = None,
    ) -> RunResult:
        """Run one variant to the end and return its result."""
        result: RunResult | None = None
        async for item in self.stream(
            variant, seed=seed, run_index=run_index, run_id=run_id, parent=parent
        ):
            if isinstance(item, Card):
                if on_card is not None:
                    on_card(item)
            else:
                result = item
        assert result is not None
        return result

    async def stream(
        self,
        variant: str,
        *,
        seed: int = 0,
        run_index: int = 0,
        run_id: str | None = None,
        parent: Context | None = None,
    ) -> AsyncIterator[Card | RunResult]:
        """Yield each ``Card`` as its step completes, then the ``RunResult``.

        Closing the iterator early (a client went away) cancels the run.
        """
        plan = self.scenario.plan(variant)
        queue: asyncio.Queue[Card | RunResult | None] = asyncio.Queue()
        task = asyncio.create_task(
            self._run(plan, seed, run_index, run_id or uuid.uuid4().hex, parent, queue.put_nowait)
        )
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        if self._cancelling:
            # After its first step (the run span started), so it is recorded as cancelled.
            asyncio.get_running_loop().call_soon(task.cancel)
        # A run that dies before its result (a bug, a raising span processor) must not
        # leave the consumer waiting forever: the end of the task is an item too.
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while True:
                item = await queue.get()
                if item is None:
                    task.result()  # raises what ended the run
                    raise RuntimeError("the run ended without a result")
                yield item
                if isinstance(item, RunResult):
                    break
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(
        self,
        plan: Plan,
        seed: int,
        run_index: int,
        run_id: str,
        parent: Context | None,
        emit: Callable[[Card | RunResult], None],
    ) -> None:
        scenario = self.scenario
        run_span = self.tracer.start_span(
            f"invoke_agent {scenario.name}",
            context=parent,
            kind=SpanKind.INTERNAL,
            start_time=now_ns(),
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": scenario.name,
                "parabench.run.id": run_id,
                "parabench.run.index": run_index,
                "parabench.scenario": scenario.name,
                "parabench.variant": plan.variant,
                "parabench.variant.mode": plan.mode,
                "parabench.variant.max_concurrency": plan.max_concurrency or 0,
                "parabench.baseline_variant": scenario.baseline_variant,
                "parabench.value_of_time_usd_per_s": scenario.value_of_time_usd_per_s,
                "parabench.seed": seed,
                "parabench.time_scale": self.time_scale,
            },
        )
        trace_id = format(run_span.get_span_context().trace_id, "032x")
        run_ctx = trace.set_span_in_context(run_span)
        t0 = monotonic_s()
        results = {sid: StepResult(sid, s.kind) for sid, s in plan.steps.items()}
        cards: list[Card] = []
        if self.metrics is not None:
            self.metrics.run_started(scenario.name, plan.variant)

        def card_done(sid: str) -> None:
            card = Card(run_id, sid, len(cards), monotonic_s() - t0)
            cards.append(card)
            _safe_event(
                run_span,
                "parabench.card",
                {
                    "parabench.step.id": sid,
                    "parabench.card.index": card.index,
                },
            )
            emit(card)

        cancelled = False
        try:
            await self._schedule(plan, seed, run_index, t0, run_ctx, results, card_done, trace_id)
        except asyncio.CancelledError:
            cancelled = True
        end_s = monotonic_s() - t0
        outcome = _outcome(results, cards, cancelled)
        priced = [r.cost_usd for r in results.values() if r.status == "ok"]
        unpriced = any(c is None for c in priced)
        total_cost = sum(c for c in priced if c is not None)
        # Failed attempts may have cost too; they are priced on their own spans.
        ttfc = cards[0].at_s if cards else None
        _safe_attrs(
            run_span,
            {
                "parabench.cost_usd": total_cost,
                "parabench.cost.unpriced": unpriced,
                "parabench.outcome": outcome,
                "parabench.cards": len(cards),
            },
        )
        if outcome != "completed":
            _safe_status(run_span, Status(StatusCode.ERROR, outcome))
            if outcome != "cancelled":
                _safe_attrs(run_span, {"error.type": "step_failed"})
        _safe_end(run_span)
        if self.metrics is not None:
            self.metrics.run_finished(scenario.name, plan.variant, outcome, end_s, ttfc, trace_id)
            if outcome == "completed":
                self._record_branches(plan, results)
        result = RunResult(
            run_id,
            trace_id,
            scenario.name,
            plan.variant,
            outcome,
            end_s,
            ttfc,
            total_cost,
            unpriced,
            results,
            cards,
        )
        emit(result)
        if cancelled:
            raise asyncio.CancelledError

    async def _schedule(
        self,
        plan: Plan,
        seed: int,
        run_index: int,
        t0: float,
        run_ctx: Context,
        results: dict[str, StepResult],
        card_done: Callable[[str], None],
        trace_id: str,
    ) -> None:
        order = plan.order
        position = {sid: i for i, sid in enumerate(order)}
        sequential = plan.mode == "sequential"
        cap = plan.max_concurrency or len(order)
        priority = self._priority(plan)
        remaining = {sid: len(plan.deps[sid]) for sid in order}
        children: dict[str, list[str]] = {sid: [] for sid in order}
        for sid, parents in plan.deps.items():
            for p in parents:
                children[p].append(sid)
        ready: list[tuple[float, int, str]] = []
        spans: dict[str, Span] = {}

        def make_ready(sid: str) -> None:
            results[sid].ready_s = monotonic_s() - t0
            if not sequential:
                # The step span starts when the step could start: queue time is inside it.
                spans[sid] = self._start_step_span(plan, sid, run_ctx)
            heapq.heappush(ready, (-priority[sid], position[sid], sid))

        def skip(sid: str, because: str) -> None:
            if results[sid].status != "pending":
                return
            results[sid].status = "skipped"
            results[sid].error_type = "dependency_failed"
            self._skipped_span(plan, sid, run_ctx, because)
            for child in children[sid]:
                skip(child, sid)

        if sequential:
            for sid in order:
                if results[sid].status != "pending":
                    continue
                results[sid].ready_s = monotonic_s() - t0
                spans[sid] = self._start_step_span(plan, sid, run_ctx)
                await self._run_step(
                    plan, sid, seed, run_index, t0, spans[sid], results[sid], trace_id
                )
                if results[sid].status == "ok":
                    if plan.steps[sid].card:
                        card_done(sid)
                else:
                    for child in children[sid]:
                        skip(child, sid)
            return

        for sid in order:
            if remaining[sid] == 0:
                make_ready(sid)
        running: dict[asyncio.Task[None], str] = {}
        try:
            while ready or running:
                while ready and len(running) < cap:
                    _, _, sid = heapq.heappop(ready)
                    task = asyncio.create_task(
                        self._run_step(
                            plan, sid, seed, run_index, t0, spans[sid], results[sid], trace_id
                        )
                    )
                    running[task] = sid
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    sid = running.pop(task)
                    task.result()
                    if results[sid].status == "ok":
                        if plan.steps[sid].card:
                            card_done(sid)
                        for child in children[sid]:
                            remaining[child] -= 1
                            if remaining[child] == 0 and results[child].status == "pending":
                                make_ready(child)
                    else:
                        for child in children[sid]:
                            skip(child, sid)
        except asyncio.CancelledError:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            for sid in [s for _, _, s in ready]:
                # Never started: all of its time was queue time, and the span says so.
                result = results[sid]
                result.start_s = result.end_s = monotonic_s() - t0
                result.status = result.error_type = "cancelled"
                self._end_step_span(plan, plan.steps[sid], spans[sid], result, trace_id)
            raise

    def _start_step_span(self, plan: Plan, sid: str, run_ctx: Context) -> Span:
        step = plan.steps[sid]
        return self.tracer.start_span(
            f"step {sid}",
            context=run_ctx,
            kind=SpanKind.INTERNAL,
            start_time=now_ns(),
            attributes={
                "parabench.step.id": sid,
                "parabench.step.kind": step.kind,
                "parabench.step.depends_on": list(step.depends_on),
                "parabench.step.card": step.card,
                # The scheduling priority (longest remaining path at median durations, s),
                # so a replay of these spans can follow the executor's own policy.
                "parabench.step.priority_s": self._priority(plan)[sid],
            },
        )

    def _skipped_span(self, plan: Plan, sid: str, run_ctx: Context, because: str) -> None:
        span = self._start_step_span(plan, sid, run_ctx)
        _safe_attrs(
            span,
            {
                "parabench.step.status": "skipped",
                "parabench.step.attempts": 0,
                "parabench.step.queue_ms": 0.0,
                "parabench.step.skipped_because": because,
                "error.type": "dependency_failed",
            },
        )
        _safe_status(span, Status(StatusCode.ERROR, f"dependency '{because}' failed"))
        _safe_end(span)

    async def _run_step(
        self,
        plan: Plan,
        sid: str,
        seed: int,
        run_index: int,
        t0: float,
        span: Span,
        result: StepResult,
        trace_id: str,
    ) -> None:
        step = plan.steps[sid]
        result.start_s = monotonic_s() - t0
        if plan.mode == "sequential":
            result.ready_s = result.start_s  # its turn has come: no queue (see module doc)
        step_ctx = trace.set_span_in_context(span)
        draw = rng_for(seed, run_index, sid, 0)
        model = plan.model_of(step) if step.kind == "llm" else None
        input_tokens = output_tokens = 0
        if step.kind == "llm":
            assert step.input_tokens is not None and step.output_tokens is not None
            input_tokens = max(round(step.input_tokens.sample(draw)), 1)
            output_tokens = max(round(step.output_tokens.sample(draw)), 1)
        backoff_rng = random.Random(f"{seed}:{run_index}:{sid}")
        limiter: ClientLimiter | None = getattr(self.provider, "limiter", None)
        status = "failed"
        error_type: str | None = None
        cost: float | None = 0.0
        try:
            for attempt in range(step.max_attempts):
                result.attempts = attempt + 1
                try:
                    if step.kind == "llm":
                        assert model is not None
                        async with _slot(limiter, input_tokens + output_tokens):
                            if attempt == 0 and limiter is not None:
                                # Waiting for a client-side slot or budget is queue time.
                                result.start_s = monotonic_s() - t0
                            used_in, used_out, cost = await self._llm_attempt(
                                plan,
                                step,
                                model,
                                input_tokens,
                                output_tokens,
                                seed,
                                run_index,
                                attempt,
                                step_ctx,
                                trace_id,
                            )
                        result.input_tokens, result.output_tokens = used_in, used_out
                    else:
                        await self._tool_attempt(step, seed, run_index, attempt, step_ctx)
                        cost = step.cost_usd
                    status, error_type = "ok", None
                    break
                except ProviderError as exc:
                    error_type = exc.error_type
                    if not exc.retryable or attempt + 1 >= step.max_attempts:
                        break
                    await asyncio.sleep(
                        self.retry.delay_s(attempt, exc, backoff_rng, self.time_scale)
                    )
        except asyncio.CancelledError:
            status, error_type = "cancelled", "cancelled"
            raise
        finally:
            result.end_s = monotonic_s() - t0
            result.status = status
            result.error_type = error_type
            result.cost_usd = cost if status == "ok" else 0.0
            self._end_step_span(plan, step, span, result, trace_id)

    def _end_step_span(
        self, plan: Plan, step: Step, span: Span, result: StepResult, trace_id: str
    ) -> None:
        attrs: dict[str, Any] = {
            "parabench.step.status": result.status,
            "parabench.step.attempts": result.attempts,
            "parabench.step.queue_ms": result.queue_s * 1000.0,
            "parabench.cost_usd": result.cost_usd or 0.0,
        }
        if result.cost_usd is None:
            attrs["parabench.cost.unpriced"] = True
        if step.kind == "llm":
            attrs["gen_ai.request.model"] = plan.model_of(step)
            attrs["gen_ai.usage.input_tokens"] = result.input_tokens
            attrs["gen_ai.usage.output_tokens"] = result.output_tokens
        else:
            attrs["gen_ai.tool.name"] = step.tool_name
        if result.error_type:
            attrs["error.type"] = result.error_type
        _safe_attrs(span, attrs)
        if result.status != "ok":
            _safe_status(span, Status(StatusCode.ERROR, result.error_type or result.status))
        _safe_end(span)
        if self.metrics is not None and result.ready_s is not None and result.end_s is not None:
            self.metrics.step_finished(
                self.scenario.name,
                plan.variant,
                step.id,
                step.kind,
                result.end_s - result.ready_s,
                result.queue_s,
                result.cost_usd,
                self.metrics.cost_model_label(plan, step.id),
                trace_id,
            )

    async def _llm_attempt(
        self,
        plan: Plan,
        step: Step,
        model: str,
        input_tokens: int,
        output_tokens: int,
        seed: int,
        run_index: int,
        attempt: int,
        step_ctx: Context,
        trace_id: str,
    ) -> tuple[int, int, float | None]:
        provider = self.provider
        span = self.tracer.start_span(
            f"chat {model}",
            context=step_ctx,
            kind=SpanKind.CLIENT,
            start_time=now_ns(),
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider.name,
                "gen_ai.request.model": model,
                "gen_ai.request.max_tokens": output_tokens,
                "parabench.attempt": attempt + 1,
            },
        )
        started = monotonic_s()
        call = LlmCall(
            step_id=step.id,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            seed=seed,
            run_index=run_index,
            attempt=attempt,
            time_scale=self.time_scale,
            fail_rate=step.fail_rate,
            timeout_s=step.timeout_s,
            latency_profile=self.scenario.latency_profile(model),
            prompt=step.prompt,
            capture_content=self.telemetry.capture_content,
        )
        if self.telemetry.capture_content and step.prompt is not None:
            _safe_attrs(span, {"gen_ai.input.messages": _messages_json("user", step.prompt)})
        try:
            if step.timeout_s is not None:
                async with asyncio.timeout(step.timeout_s * self.time_scale):
                    response = await provider.chat(call)
            else:
                response = await provider.chat(call)
        except TimeoutError:
            err = ProviderError(
                f"step '{step.id}' timed out after {step.timeout_s} s", error_type="timeout"
            )
            self._fail_attempt(span, provider.name, model, started, err, trace_id)
            raise err from None
        except ProviderError as exc:
            self._fail_attempt(span, provider.name, model, started, exc, trace_id)
            raise
        except asyncio.CancelledError:
            # Counted like a failure (error_type "cancelled"), so metrics and spans agree.
            err = ProviderError("cancelled", error_type="cancelled", retryable=False)
            self._fail_attempt(span, provider.name, model, started, err, trace_id)
            raise
        except Exception as exc:  # a provider bug fails the attempt, not the run
            _log.exception("provider %s raised unexpectedly", provider.name)
            err = ProviderError(
                f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__, retryable=False
            )
            self._fail_attempt(span, provider.name, model, started, err, trace_id)
            raise err from exc
        cost = cost_usd(
            response.response_model if response.response_model else model,
            response.input_tokens,
            response.output_tokens,
            self.scenario.price_overrides,
        )
        if cost is None:  # the endpoint named a model we cannot price: try the requested one
            cost = cost_usd(
                model, response.input_tokens, response.output_tokens, self.scenario.price_overrides
            )
        attrs: dict[str, Any] = {
            "gen_ai.response.model": response.response_model,
            "gen_ai.usage.input_tokens": response.input_tokens,
            "gen_ai.usage.output_tokens": response.output_tokens,
            "gen_ai.response.finish_reasons": [response.finish_reason],
            "parabench.cost_usd": cost or 0.0,
        }
        if response.ttft_s is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = response.ttft_s
        if cost is None:
            attrs["parabench.cost.unpriced"] = True
        if not response.usage_reported:
            attrs["parabench.usage.estimated"] = True
        if self.telemetry.capture_content and response.content is not None:
            attrs["gen_ai.output.messages"] = _messages_json(
                "assistant", response.content, response.finish_reason
            )
        _safe_attrs(span, attrs)
        _safe_end(span)
        if self.metrics is not None:
            self.metrics.llm_attempt(
                provider.name,
                model,
                monotonic_s() - started,
                response.input_tokens,
                response.output_tokens,
                None,
                trace_id,
            )
        return response.input_tokens, response.output_tokens, cost

    def _fail_attempt(
        self,
        span: Span,
        provider: str,
        model: str,
        started: float,
        exc: ProviderError,
        trace_id: str,
    ) -> None:
        _safe_attrs(span, {"error.type": exc.error_type})
        _safe_status(span, Status(StatusCode.ERROR, exc.what))
        _safe_end(span)
        if self.metrics is not None:
            self.metrics.llm_attempt(
                provider, model, monotonic_s() - started, 0, 0, exc.error_type, trace_id
            )

    async def _tool_attempt(
        self, step: Step, seed: int, run_index: int, attempt: int, step_ctx: Context
    ) -> None:
        span = self.tracer.start_span(
            f"execute_tool {step.tool_name}",
            context=step_ctx,
            kind=SpanKind.INTERNAL,
            start_time=now_ns(),
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": step.tool_name,
                "parabench.attempt": attempt + 1,
            },
        )
        rng = rng_for(seed, run_index, step.id, attempt + 1)
        assert step.latency_ms is not None
        latency_s = step.latency_ms.sample(rng) / 1000.0
        fail = step.fail_rate > 0 and rng.random() < step.fail_rate
        call = ToolCall(step.id, step.tool_name, latency_s, fail, self.time_scale)
        try:
            if step.timeout_s is not None:
                async with asyncio.timeout(step.timeout_s * self.time_scale):
                    await self.tools.run(call)
            else:
                await self.tools.run(call)
        except TimeoutError:
            err = ProviderError(
                f"tool step '{step.id}' timed out after {step.timeout_s} s", error_type="timeout"
            )
            _safe_attrs(span, {"error.type": "timeout"})
            _safe_status(span, Status(StatusCode.ERROR, err.what))
            _safe_end(span)
            raise err from None
        except ProviderError as exc:
            _safe_attrs(span, {"error.type": exc.error_type})
            _safe_status(span, Status(StatusCode.ERROR, exc.what))
            _safe_end(span)
            raise
        except asyncio.CancelledError:
            _safe_attrs(span, {"error.type": "cancelled"})
            _safe_status(span, Status(StatusCode.ERROR, "cancelled"))
            _safe_end(span)
            raise
        except Exception as exc:  # a tool bug fails the attempt, not the run
            _log.exception("tool %s raised unexpectedly", step.tool_name)
            _safe_attrs(span, {"error.type": type(exc).__name__})
            _safe_status(span, Status(StatusCode.ERROR, str(exc)))
            _safe_end(span)
            raise ProviderError(
                f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__, retryable=False
            ) from exc
        _safe_attrs(span, {"parabench.cost_usd": step.cost_usd})
        _safe_end(span)

    def _record_branches(self, plan: Plan, results: dict[str, StepResult]) -> None:
        """Live ``branch_saved``/``branch_extra_cost`` metrics for a completed run."""
        if plan.mode == "sequential" or self.metrics is None:
            return
        try:
            durations = {sid: r.service_s for sid, r in results.items()}
            as_run = dag.replay(plan.deps, durations, plan.max_concurrency).makespan
            baseline = self.scenario.plan(self.scenario.baseline_variant)
            for _, branch in dag.forks(plan.deps):
                for sid in branch:
                    forced = dag.force_after_siblings(plan.deps, sid, branch)
                    saved = dag.replay(forced, durations, plan.max_concurrency).makespan - as_run
                    base_cost = baseline.expected_cost_usd(sid) if sid in baseline.steps else 0.0
                    extra = (results[sid].cost_usd or 0.0) - base_cost
                    self.metrics.branch(self.scenario.name, plan.variant, sid, saved, extra)
        except Exception:  # telemetry never crashes the run
            _log.exception("could not record branch metrics")


@contextlib.asynccontextmanager
async def _slot(limiter: ClientLimiter | None, tokens: int) -> AsyncIterator[None]:
    if limiter is None:
        yield
        return
    async with limiter.slot(tokens):
        yield


def _outcome(results: dict[str, StepResult], cards: list[Card], cancelled: bool) -> str:
    if cancelled:
        return "cancelled"
    if all(r.status == "ok" for r in results.values()):
        return "completed"
    return "partial" if cards else "failed"


def _messages_json(role: str, text: str, finish_reason: str | None = None) -> str:
    """One message in the GenAI semconv's ``gen_ai.{input,output}.messages`` JSON shape."""
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return json.dumps([message], ensure_ascii=False)


def _safe_attrs(span: Span, attrs: dict[str, Any]) -> None:
    try:
        span.set_attributes(attrs)
    except Exception:
        _log.exception("dropping span attributes")


def _safe_status(span: Span, status: Status) -> None:
    try:
        span.set_status(status)
    except Exception:
        _log.exception("dropping span status")


def _safe_end(span: Span) -> None:
    try:
        span.end(end_time=now_ns())
    except Exception:  # a failing span processor must not end the run
        _log.exception("dropping a span end")


def _safe_event(span: Span, name: str, attrs: dict[str, Any]) -> None:
    try:
        span.add_event(name, attrs, timestamp=now_ns())
    except Exception:
        _log.exception("dropping span event")
