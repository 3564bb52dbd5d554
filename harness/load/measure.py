"""Client-side measurement of one run: what the user of the agent service waits for.

:class:`RunRecorder` is fed the events of one run's SSE stream, each with the
monotonic time it arrived, and turns them into one raw sample (see
``harness.load.samples``). Every duration is measured from the moment the
request was sent — the user's clock, not the server's:

* **E2E** — request sent → final event (``run.completed``, ``run.partial`` or
  ``run.failed``) received;
* **TTFC** — request sent → first ``card`` event (a keep-alive comment is not
  a card, and neither is ``run.started``);
* **card gaps** — time between consecutive cards;
* **speed index** — ∫ (1 − share of cards shown) dt from request to last card
  (DESIGN.md): all 5 cards at 10 s → 10 s; one every 2 s → 6 s. The share is
  of the cards the run showed, as in ``harness.analysis.runs.speed_index_s``,
  so client and server figures are comparable.

Pure Python (no Locust, no gevent), so it is tested without a load generator.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import ConfigError
from harness.measures import speed_index
from harness.sse import SseEvent

__all__ = [
    "FINAL_EVENTS",
    "RunRecorder",
    "VariantPicker",
    "auth_headers",
    "new_traceparent",
    "parse_variants",
    "speed_index_ms",
]

FINAL_EVENTS = {"run.completed": "completed", "run.partial": "partial", "run.failed": "failed"}


def speed_index_ms(card_times_ms: Sequence[float]) -> float | None:
    """The speed index of card times in ms (see ``harness.measures.speed_index``)."""
    return speed_index(card_times_ms)


def new_traceparent() -> tuple[str, str]:
    """A fresh W3C ``traceparent`` (sampled) and its trace id, from the OS's randomness."""
    trace_id = os.urandom(16).hex()
    span_id = os.urandom(8).hex()
    # All-zero ids are invalid in W3C trace context; 2^-128 odds, but cheap to rule out.
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return new_traceparent()
    return f"00-{trace_id}-{span_id}-01", trace_id


def parse_variants(spec: str | Sequence[str]) -> list[tuple[str, float]]:
    """Parse ``"parallel,sequential"`` or ``"parallel:3,sequential:1"`` into (variant, weight).

    Without weights every variant weighs 1 and runs take turns (round robin).
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    parsed: list[tuple[str, float]] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        name, colon, weight_text = item.partition(":")
        weight = 1.0
        if colon:
            try:
                weight = float(weight_text)
            except ValueError:
                weight = -1.0
            if not weight > 0:
                raise ConfigError(
                    f"variant weight '{weight_text}' of '{name}' is not a positive number",
                    where="--variants",
                    fix="write variants as name or name:weight, e.g. parallel:3,sequential:1",
                )
        parsed.append((name.strip(), weight))
    if not parsed:
        raise ConfigError(
            "no variant given", where="--variants", fix="name at least one, e.g. parallel"
        )
    return parsed


class VariantPicker:
    """Chooses each run's variant: round robin when weights are equal, else weighted.

    Round robin keeps variants exactly balanced within a process and interleaved
    in time, so drift hits all of them alike. Weighted choice is seeded.
    """

    def __init__(self, variants: Sequence[tuple[str, float]], seed: int | None = None) -> None:
        self._names = [name for name, _ in variants]
        self._weights = [weight for _, weight in variants]
        self._weighted = len(set(self._weights)) > 1
        self._rng = random.Random(seed)
        self._next = 0

    def __call__(self) -> str:
        if self._weighted:
            return self._rng.choices(self._names, weights=self._weights)[0]
        name = self._names[self._next % len(self._names)]
        self._next += 1
        return name


@dataclass
class RunRecorder:
    """Measures one run from the SSE events it receives (times on one monotonic clock).

    Call :meth:`on_event` for every event as it arrives, then :meth:`sample`.
    """

    sent_s: float
    card_times_ms: list[float] = field(default_factory=list)
    run_id: str | None = None
    server_trace_id: str | None = None
    cards_expected: int | None = None
    outcome: str | None = None
    e2e_ms: float | None = None
    final: dict[str, Any] = field(default_factory=dict)
    bad_events: int = 0

    def on_event(self, event: SseEvent, at_s: float) -> str | None:
        """Record one event; returns ``"card"``, ``"final"``, ``"started"`` or ``None``."""
        elapsed_ms = max(at_s - self.sent_s, 0.0) * 1000
        try:
            data = json.loads(event.data)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self.bad_events += 1
            data = {}
        if event.event == "card":
            self.card_times_ms.append(elapsed_ms)
            return "card"
        if event.event == "run.started":
            self.run_id = data.get("run_id")
            self.server_trace_id = data.get("trace_id")
            cards = data.get("cards_expected")
            self.cards_expected = cards if isinstance(cards, int) else None
            return "started"
        if event.event in FINAL_EVENTS and self.outcome is None:
            self.outcome = FINAL_EVENTS[event.event]
            self.e2e_ms = elapsed_ms
            self.final = data
            self.run_id = self.run_id or data.get("run_id")
            self.server_trace_id = self.server_trace_id or data.get("trace_id")
            return "final"
        return None

    @property
    def ttfc_ms(self) -> float | None:
        return self.card_times_ms[0] if self.card_times_ms else None

    @property
    def card_gaps_ms(self) -> list[float]:
        times = self.card_times_ms
        return [max(b - a, 0.0) for a, b in itertools.pairwise(times)]

    @property
    def speed_index_ms(self) -> float | None:
        return speed_index_ms(self.card_times_ms)

    def sample_fields(self) -> dict[str, Any]:
        """The measured fields of this run's sample (the caller adds who, when and where)."""
        server_e2e = self.final.get("e2e_ms")
        server_ttfc = self.final.get("ttfc_ms")
        return {
            "e2e_ms": _round(self.e2e_ms),
            "ttfc_ms": _round(self.ttfc_ms),
            "speed_index_ms": _round(self.speed_index_ms),
            "cards": len(self.card_times_ms),
            "cards_expected": self.cards_expected,
            "card_times_ms": [round(t, 3) for t in self.card_times_ms],
            "server_e2e_ms": server_e2e if isinstance(server_e2e, int | float) else None,
            "server_ttfc_ms": server_ttfc if isinstance(server_ttfc, int | float) else None,
            "cost_usd": self.final.get("cost_usd"),
            "run_id": self.run_id,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def auth_headers() -> dict[str, str]:
    """``Authorization`` for the service when ``PARABENCH_API_KEY`` is set (the load sends it)."""
    key = os.environ.get("PARABENCH_API_KEY", "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}
