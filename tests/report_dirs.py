"""Run directories for the report tests: spans, load samples, both, and hostile markup.

``spans_dir`` runs the bundled research agent for real (every variant, a few
runs, at a hundredth of real time). The others are derived from it or written
by hand in the documented formats: load samples in ``parabench.load.sample/1``
(``harness/load/samples.py``), OTLP JSON lines for a foreign trace.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from harness.analysis import read_spans, runs_table
from harness.runner import run_batch
from harness.scenario import load_scenario

TIME_SCALE = 0.01
VARIANTS = ("sequential", "parallel", "parallel_capped")

# Markup in every kind of name the report shows; none of it may ever run.
SCENARIO_MARKUP = "ra<img src=x onerror=alert(1)>"
STEP_MARKUP = "web</script><script>alert(2)</script>"
ATTRIBUTE_MARKUP = "<img src=x onerror=alert(3)>"
VARIANT_MARKUP = 'capped"><svg onload=alert(4)>'
SPAN_MARKUP = "GET /<img src=x onerror=alert(5)>"
MARKUP = (SCENARIO_MARKUP, STEP_MARKUP, ATTRIBUTE_MARKUP, VARIANT_MARKUP, SPAN_MARKUP)


def spans_dir(root: Path) -> Path:
    """``parabench run research_assistant``, every variant, three runs each."""
    out = root / "spans"
    run_batch(
        load_scenario("research_assistant"),
        variants=VARIANTS,
        runs=3,
        out_dir=out,
        seed=3,
        time_scale=TIME_SCALE,
    )
    return out


def sample(
    variant: str,
    concurrency: int,
    e2e_ms: float | None,
    *,
    outcome: str = "completed",
    trace_id: str = "",
    scenario: str = "research_assistant",
    cards_ms: list[float] | None = None,
) -> dict[str, Any]:
    """One load sample as ``harness/load/locustfile.py`` writes it."""
    answered = outcome != "rejected"
    cards = (
        cards_ms
        if cards_ms is not None
        else ([e2e_ms * f for f in (0.1, 0.5, 1.0)] if e2e_ms else [])
    )
    return {
        "schema": "parabench.load.sample/1",
        "send_time_unix_s": 1_790_000_000.0 + concurrency,
        "scenario": scenario,
        "variant": variant,
        "outcome": outcome,
        "http_status": 200 if answered else 503,
        "trace_id": trace_id,
        "concurrency": concurrency,
        "worker_users": concurrency,
        "error": None if answered else "503 over capacity (Retry-After: 1 s)",
        "e2e_ms": e2e_ms if answered else None,
        "ttfc_ms": cards[0] if answered and cards else None,
        "speed_index_ms": sum(cards) / len(cards) if answered and cards else None,
        "cards": len(cards) if answered else 0,
        "cards_expected": len(cards) if answered else None,
        "card_times_ms": cards if answered else [],
        "server_e2e_ms": e2e_ms - 2.0 if answered and e2e_ms else None,
        "server_ttfc_ms": None,
        "cost_usd": 0.02 if answered else None,
        "run_id": None,
        "worker": "local",
    }


def write_samples(path: Path, samples: list[dict[str, Any]], extra_lines: str = "") -> None:
    lines = "".join(json.dumps(s) + "\n" for s in samples)
    path.write_text(lines + extra_lines, encoding="utf-8")


def samples_dir(root: Path) -> Path:
    """Only load samples: a sweep over 1 and 4 users, one 503, a torn and a foreign line."""
    out = root / "samples"
    out.mkdir()
    samples = [sample("sequential", 1, 250.0 + i) for i in range(4)]
    samples += [sample("parallel", 1, 130.0 + i) for i in range(4)]
    samples += [sample("sequential", 4, 300.0 + i) for i in range(4)]
    samples += [sample("parallel", 4, 160.0 + i) for i in range(3)]
    samples.append(sample("parallel", 4, None, outcome="rejected"))
    other = json.dumps({"schema": "someone.else/9", "variant": "x"})
    write_samples(out / "samples.jsonl", samples, other + "\n" + '{"schema": "parab')
    return out


def both_dir(root: Path, spans: Path) -> Path:
    """The spans of ``spans_dir`` and, for two of its variants, one client sample per run.

    Client e2e is the server's plus 3 ms (request and stream transfer), sent at
    concurrency 1 for the first run and 2 for the others: a two-level sweep.
    """
    out = root / "both"
    out.mkdir()
    shutil.copy(spans / "spans.jsonl", out / "spans.jsonl")
    table, _ = read_spans(out / "spans.jsonl")
    runs = runs_table(table)
    samples = []
    for i, run in enumerate(runs.itertuples(index=False)):
        if run.variant == "parallel_capped":
            continue
        samples.append(
            sample(run.variant, 1 if i < 3 else 2, run.e2e_ms + 3.0, trace_id=run.trace_id)
        )
    write_samples(out / "samples.jsonl", samples)
    return out


def _inner(text: str) -> str:
    """``text`` as it appears inside a JSON string."""
    return json.dumps(text)[1:-1]


def _foreign_trace() -> str:
    """One OTLP request: a request span with two overlapping children with markup names."""

    def span(span_id: str, parent: str, name: str, start_ms: int, end_ms: int) -> dict:
        base = 1_790_000_000_000_000_000
        return {
            "traceId": "f0" * 16,
            "spanId": span_id,
            "parentSpanId": parent,
            "name": name,
            "kind": 2,
            "startTimeUnixNano": str(base + start_ms * 1_000_000),
            "endTimeUnixNano": str(base + end_ms * 1_000_000),
            "attributes": [{"key": "http.route", "value": {"stringValue": ATTRIBUTE_MARKUP}}],
        }

    spans = [
        span("a1" * 8, "", SPAN_MARKUP, 0, 100),
        span("b2" * 8, "a1" * 8, "<b>fetch</b>", 10, 60),
        span("c3" * 8, "a1" * 8, "$x$ & y", 20, 90),
    ]
    request = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": spans}]}]}
    return json.dumps(request) + "\n"


def markup_dir(root: Path, spans: Path) -> Path:
    """The spans of ``spans_dir`` with markup in a scenario, a step, a variant and attributes.

    Also: a foreign trace whose span names are markup, a chat span failed with an
    ``error.type`` that is markup, and a line of garbage holding markup (a
    data-quality example).
    """
    out = root / "markup"
    out.mkdir()
    text = spans.joinpath("spans.jsonl").read_text(encoding="utf-8")
    for plain, hostile in (
        ("research_assistant", SCENARIO_MARKUP),
        ("search_web", STEP_MARKUP),
        ("parallel_capped", VARIANT_MARKUP),
    ):
        text = text.replace(plain, _inner(hostile))
    lines = text.splitlines(keepends=True)
    failed = json.loads(lines[0])
    for scope in failed["resourceSpans"][0]["scopeSpans"]:
        for s in scope["spans"]:
            if s["name"].startswith("chat "):
                s["attributes"].append(
                    {"key": "error.type", "value": {"stringValue": ATTRIBUTE_MARKUP}}
                )
                break
    lines[0] = json.dumps(failed) + "\n"
    garbage = f"this is {ATTRIBUTE_MARKUP} and not json\n"
    (out / "spans.jsonl").write_text("".join(lines) + _foreign_trace() + garbage, encoding="utf-8")
    return out
