"""The Grafana dashboard of parabench, as data: panels, variables, layout.

``dashboard()`` returns the JSON model Grafana saves (schema version 39, Grafana
11.0; newer releases migrate it on load). Every panel reads the Prometheus
chosen in the *Data source* variable, filters by the *Scenario*, *Variant* and
*Step* variables where its metric has those labels, and rates counters over
``$__rate_interval``. Written by ``build.py``; never edit the JSON by hand.
"""

from __future__ import annotations

from typing import Any

from prometheus_rules import COST_PER_RUN, E2E_P95, RUNS_NOT_COMPLETED, TTFC_P95, quantile

__all__ = ["dashboard"]

SCHEMA_VERSION = 39
DASHBOARD_UID = "parabench-overview"
RATE = "$__rate_interval"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SV = 'scenario=~"$scenario", variant=~"$variant"'
SVS = f'{SV}, step=~"$step"'


def _quantile(q: float, metric: str, by: str, matchers: str = "") -> str:
    return quantile(q, metric, by, matchers, window=RATE)


def target(
    expr: str,
    legend: str = "__auto",
    *,
    exemplar: bool = False,
    instant: bool = False,
) -> dict[str, Any]:
    """A Prometheus query of a panel (``_panel`` numbers the refIds)."""
    out: dict[str, Any] = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
        "refId": "A",
    }
    if exemplar:
        out["exemplar"] = True
    if instant:
        out["format"] = "table"
    return out


def _with_refs(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)]


_REDUCE_LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}


def _panel(
    kind: str,
    title: str,
    description: str,
    defaults: dict[str, Any],
    options: dict[str, Any],
    targets: list[dict[str, Any]],
    size: tuple[int, int],
) -> dict[str, Any]:
    """A data panel; ``size`` (width, height) is consumed by ``layout``."""
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": _with_refs(targets),
        "_size": size,
    }


def timeseries(
    title: str, description: str, unit: str, targets: list[dict[str, Any]]
) -> dict[str, Any]:
    line = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "spanNulls": True}
    options = {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    defaults = {"unit": unit, "min": 0, "custom": line}
    return _panel("timeseries", title, description, defaults, options, targets, (12, 8))


def stat(title: str, description: str, unit: str, expr: str) -> dict[str, Any]:
    options = {
        "reduceOptions": _REDUCE_LAST,
        "colorMode": "none",
        "graphMode": "area",
        "textMode": "auto",
    }
    defaults = {"unit": unit, "decimals": 2}
    return _panel("stat", title, description, defaults, options, [target(expr, "")], (4, 4))


def bargauge(title: str, description: str, unit: str, expr: str, legend: str) -> dict[str, Any]:
    options = {
        "displayMode": "gradient",
        "orientation": "horizontal",
        "reduceOptions": _REDUCE_LAST,
        "showUnfilled": True,
    }
    targets = [target(expr, legend)]
    return _panel(
        "bargauge", title, description, {"unit": unit, "min": 0}, options, targets, (24, 6)
    )


def budget_table() -> dict[str, Any]:
    """The recorded series the alerts compare with their budgets, one row per variant."""
    columns = [
        (E2E_P95, "e2e p95", "s"),
        (TTFC_P95, "TTFC p95", "s"),
        (COST_PER_RUN, "cost per run", "currencyUSD"),
        (RUNS_NOT_COMPLETED, "not completed", "percentunit"),
    ]
    targets = _with_refs([target(f"{record}{{{SV}}}", instant=True) for record, _, _ in columns])
    rename = {
        f"Value #{t['refId']}": label for t, (_, label, _) in zip(targets, columns, strict=True)
    }
    panel = _panel(
        "table",
        "Budget check (last 5 minutes, what the alerts see)",
        "The recorded series the alerting rules compare with each variant's limits in "
        "scenarios/*.budget.yaml (the gate's budgets): end-to-end p95 of completed runs, "
        "time-to-first-card p95, cost per run and the share of runs not completed, over the "
        "last 5 minutes. Are we within budget right now?",
        {"unit": "none"},
        {"showHeader": True, "cellHeight": "sm"},
        targets,
        (24, 7),
    )
    panel["fieldConfig"]["overrides"] = [
        {
            "matcher": {"id": "byName", "options": label},
            "properties": [{"id": "unit", "value": unit}, {"id": "decimals", "value": 3}],
        }
        for _, label, unit in columns
    ]
    panel["transformations"] = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {"Time": True},
                "indexByName": {"scenario": 0, "variant": 1},
                "renameByName": rename,
            },
        },
    ]
    return panel


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (24, 1)}


def panels() -> list[dict[str, Any]]:
    """Every panel, in reading order; ``layout`` gives them ids and positions."""
    runs_count = "parabench_run_duration_seconds_count"
    runs_by_variant = f"sum by (variant) (rate({runs_count}{{{SV}}}[{RATE}]))"
    cost_by_variant = f"sum by (variant) (rate(parabench_cost_usd_total{{{SV}}}[{RATE}]))"
    all_attempts = f"sum(rate(gen_ai_client_operation_duration_seconds_count[{RATE}]))"
    return [
        row("Now"),
        stat(
            "Runs per second",
            "Agent runs finishing per second, every outcome, for the selected scenarios and "
            "variants. Is the service getting the traffic we think it is?",
            "reqps",
            f"sum(rate({runs_count}{{{SV}}}[{RATE}]))",
        ),
        stat(
            "Runs in flight",
            "Runs executing right now (parabench_runs_in_flight). Rising while runs per "
            "second stays flat means runs are getting slower.",
            "short",
            f"sum(parabench_runs_in_flight{{{SV}}})",
        ),
        stat(
            "Worst end-to-end p95 (5 min)",
            "The highest end-to-end p95 of completed runs among the selected variants, from "
            "the recording rule the latency alert uses.",
            "s",
            f"max({E2E_P95}{{{SV}}})",
        ),
        stat(
            "Cost per hour",
            "Dollars spent per hour at the current rate: LLM tokens times price plus tools' "
            "declared costs (parabench_cost_usd_total).",
            "currencyUSD",
            f"sum(rate(parabench_cost_usd_total{{{SV}}}[{RATE}])) * 3600",
        ),
        stat(
            "Runs not completed",
            "Share of finished runs that did not complete: failed, partial (a step failed "
            "after its retries) or cancelled (the client left) — the gate's error rate.",
            "percentunit",
            f'sum(rate({runs_count}{{{SV}, outcome!="completed"}}[{RATE}])) / '
            f"sum(rate({runs_count}{{{SV}}}[{RATE}]))",
        ),
        stat(
            "LLM calls rate-limited (429)",
            "Share of LLM call attempts the provider answered 429, every model. Rate limits "
            "are per provider account, so this is not filtered by scenario or variant.",
            "percentunit",
            f'sum(rate(parabench_llm_errors_total{{error_type="rate_limited"}}[{RATE}])) / '
            f"{all_attempts}",
        ),
        budget_table(),
        row("Latency"),
        timeseries(
            "End-to-end latency p50 / p95 by variant",
            "Run span start to end for completed runs (server side), p50 and p95 by variant. "
            "Does running steps in parallel make the agent faster, and by how much? Dots are "
            "exemplars: click one to open that run's trace.",
            "s",
            [
                target(
                    _quantile(
                        0.5,
                        "parabench_run_duration_seconds",
                        "variant",
                        f'{SV}, outcome="completed"',
                    ),
                    "{{variant}} p50",
                    exemplar=True,
                ),
                target(
                    _quantile(
                        0.95,
                        "parabench_run_duration_seconds",
                        "variant",
                        f'{SV}, outcome="completed"',
                    ),
                    "{{variant}} p95",
                    exemplar=True,
                ),
            ],
        ),
        timeseries(
            "Time to first card p50 / p95 by variant",
            "Run start to the first card (progressive result) the user sees, by variant. How "
            "long does a user stare at nothing? Exemplars link to traces.",
            "s",
            [
                target(
                    _quantile(0.5, "parabench_run_time_to_first_card_seconds", "variant", SV),
                    "{{variant}} p50",
                    exemplar=True,
                ),
                target(
                    _quantile(0.95, "parabench_run_time_to_first_card_seconds", "variant", SV),
                    "{{variant}} p95",
                    exemplar=True,
                ),
            ],
        ),
        timeseries(
            "Step latency p95 by step",
            "Each step's duration from ready (its dependencies done) to finished, queue "
            "included, p95 over the selected variants. Which step is slow? Exemplars link "
            "to traces.",
            "s",
            [
                target(
                    _quantile(0.95, "parabench_step_duration_seconds", "step", SVS),
                    "{{step}}",
                    exemplar=True,
                )
            ],
        ),
        timeseries(
            "Queue vs service time by step (mean)",
            "Mean time a ready step waited for a concurrency slot or a rate limit (queue) and "
            "the rest of its duration (service). Is a step slow itself, or waiting its turn?",
            "s",
            [
                target(
                    f"sum by (step) (rate(parabench_step_queue_seconds_sum{{{SVS}}}[{RATE}])) / "
                    f"sum by (step) (rate(parabench_step_queue_seconds_count{{{SVS}}}[{RATE}]))",
                    "{{step}} queue",
                ),
                target(
                    f"(sum by (step) (rate(parabench_step_duration_seconds_sum{{{SVS}}}[{RATE}]))"
                    f" - sum by (step) (rate(parabench_step_queue_seconds_sum{{{SVS}}}[{RATE}])))"
                    f" / sum by (step) (rate(parabench_step_duration_seconds_count{{{SVS}}}"
                    f"[{RATE}]))",
                    "{{step}} service",
                ),
            ],
        ),
        timeseries(
            "LLM call latency p95 by model",
            "Duration of successful LLM call attempts, p95 by model, from the OpenTelemetry "
            "GenAI histogram (every scenario). Is the provider itself slow? Exemplars link "
            "to traces.",
            "s",
            [
                target(
                    _quantile(
                        0.95,
                        "gen_ai_client_operation_duration_seconds",
                        "gen_ai_request_model",
                        'error_type=""',
                    ),
                    "{{gen_ai_request_model}}",
                    exemplar=True,
                )
            ],
        ),
        timeseries(
            "Runs per second by variant",
            "Runs finishing per second, every outcome, by variant.",
            "reqps",
            [target(runs_by_variant, "{{variant}}")],
        ),
        row("Cost and parallelism"),
        timeseries(
            "Cost per run by variant",
            "Dollars spent per finished run, by variant. What does the parallel design cost "
            "per answer compared with the sequential one?",
            "currencyUSD",
            [target(f"{cost_by_variant} / {runs_by_variant}", "{{variant}}")],
        ),
        timeseries(
            "Cost per hour by variant",
            "Dollars per hour at the current rate, by variant. What does this traffic cost?",
            "currencyUSD",
            [target(f"{cost_by_variant} * 3600", "{{variant}}")],
        ),
        timeseries(
            "Dollars per second saved, by branch",
            "Extra cost of each parallel branch (against the baseline variant) divided by the "
            "run time it saved: parabench_branch_extra_cost_usd_total over "
            "parabench_branch_saved_seconds_total. A branch is worth it while this stays below "
            "the scenario's value_of_time_usd_per_s (research_assistant: $0.002/s). Zero: the "
            "branch saves time for free.",
            "currencyUSD",
            [
                target(
                    f"sum by (variant, step) (rate(parabench_branch_extra_cost_usd_total{{{SVS}}}"
                    f"[{RATE}])) / (sum by (variant, step) (rate("
                    f"parabench_branch_saved_seconds_total{{{SVS}}}[{RATE}])) > 0)",
                    "{{variant}} {{step}}",
                )
            ],
        ),
        timeseries(
            "Seconds saved per run, by branch",
            "Run time each parallel branch saved per run (replayed against waiting for its "
            "fork siblings). Which branches buy the most speed?",
            "s",
            [
                target(
                    f"sum by (variant, step) (rate(parabench_branch_saved_seconds_total{{{SVS}}}"
                    f"[{RATE}])) / on (variant) group_left () {runs_by_variant}",
                    "{{variant}} {{step}}",
                )
            ],
        ),
        bargauge(
            "Spend per hour by step",
            "Dollars per hour by step at the current rate, selected scenarios and variants. "
            "Where does the money go?",
            "currencyUSD",
            f"sum by (step) (rate(parabench_cost_usd_total{{{SVS}}}[{RATE}])) * 3600",
            "{{step}}",
        ),
        row("Errors and the LLM provider"),
        timeseries(
            "Runs not completed, by variant and outcome",
            "Share of finished runs by outcome other than completed, by variant: failed (no "
            "answer), partial (a step failed), cancelled (the client left).",
            "percentunit",
            [
                target(
                    f'sum by (variant, outcome) (rate({runs_count}{{{SV}, outcome!="completed"}}'
                    f"[{RATE}])) / on (variant) group_left () {runs_by_variant}",
                    "{{variant}} {{outcome}}",
                )
            ],
        ),
        timeseries(
            "Tokens per second by model",
            "Input and output tokens per second by model, every scenario "
            "(parabench_llm_tokens_total). How close are we to the provider's tokens-per-minute "
            "limit?",
            "short",
            [
                target(
                    f"sum by (model, type) (rate(parabench_llm_tokens_total[{RATE}]))",
                    "{{model}} {{type}}",
                )
            ],
        ),
        timeseries(
            "LLM errors per second by type",
            "Failed LLM call attempts per second by model and error type (rate_limited is a "
            "429, timeout, http_5xx, disconnect...), every scenario. Each is retried up to the "
            "step's max_attempts, except cancelled (the run was stopped mid-call).",
            "reqps",
            [
                target(
                    f"sum by (model, error_type) (rate(parabench_llm_errors_total[{RATE}]))",
                    "{{model}} {{error_type}}",
                )
            ],
        ),
        timeseries(
            "429 rate by model",
            "Share of LLM call attempts answered 429 (rate limited), by model. Parallel "
            "branches send more calls at once; this is where that meets the provider's limits.",
            "percentunit",
            [
                target(
                    "sum by (model) (rate(parabench_llm_errors_total"
                    f'{{error_type="rate_limited"}}[{RATE}])) / sum by (model) (label_replace('
                    f"rate(gen_ai_client_operation_duration_seconds_count[{RATE}]), "
                    '"model", "$1", "gen_ai_request_model", "(.*)"))',
                    "{{model}}",
                )
            ],
        ),
        row("Telemetry"),
        timeseries(
            "Spans exported and dropped per second",
            "Spans written per second by each exporter (file: the spans file; otlp: the "
            "collector), and spans lost on the way, by reason. Anything dropped means the "
            "traces of that time are incomplete: the ParabenchSpansDropped alert fires. No data: "
            "the service exports no spans (neither a spans file nor OTLP).",
            "short",
            [
                target(
                    f"sum by (exporter) (rate(parabench_telemetry_spans_exported_total[{RATE}]))",
                    "{{exporter}} exported",
                ),
                target(
                    "sum by (exporter, reason) (rate(parabench_telemetry_spans_dropped_total"
                    f"[{RATE}]))",
                    "{{exporter}} dropped ({{reason}})",
                ),
            ],
        ),
    ]


def layout(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give panels ids and grid positions, left to right in Grafana's 24 columns."""
    out = []
    x = y = row_height = 0
    for number, item in enumerate(items, start=1):
        panel = dict(item)
        w, h = panel.pop("_size")
        if x + w > 24:
            x, y, row_height = 0, y + row_height, 0
        panel["id"] = number
        panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        out.append(panel)
        x += w
        row_height = max(row_height, h)
    return out


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {
            "qryType": 1,
            "query": query,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        # 2: reload the values whenever the time range changes.
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
    }


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard: variables, panels, and the settings Grafana saves."""
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "parabench: agent latency, time to first card, cost, and what parallel "
        "branches cost per second they save. Generated by dashboards/build.py.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [],
        "panels": layout(panels()),
        "refresh": "10s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["parabench", "agents", "latency", "cost"],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "options": [],
                    "refresh": 1,
                    "regex": "",
                    "hide": 0,
                    "includeAll": False,
                    "multi": False,
                },
                _variable(
                    "scenario", "Scenario", "label_values(parabench_runs_in_flight, scenario)"
                ),
                _variable(
                    "variant",
                    "Variant",
                    'label_values(parabench_runs_in_flight{scenario=~"$scenario"}, variant)',
                ),
                _variable(
                    "step",
                    "Step",
                    f"label_values(parabench_step_duration_seconds_count{{{SV}}}, step)",
                ),
            ]
        },
        "time": {"from": "now-30m", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": "parabench: agent latency and cost",
        "uid": DASHBOARD_UID,
        "version": 1,
    }
