"""Prometheus recording rules, alerts mirroring the gate budgets, and their promtool tests.

Recorded series are named ``level:metric:operations`` after Prometheus's
convention: the level lists the labels kept, the metric keeps its name
(``_total`` dropped under a rate), the operations read newest first.

The alerts mirror ``scenarios/*.budget.yaml`` — the budgets ``parabench
gate`` judges releases by — read by ``read_budgets``: for each variant its
``e2e_p95_ms``, ``ttfc_p95_ms``, ``cost_usd_per_run``, ``error_rate`` and
``branch_usd_per_ms_saved`` limits, over the last 5 minutes, for 10 minutes.
Two operational alerts have no budget: LLM calls rate-limited
(``MAX_RATE_LIMITED_RATIO``) and the service not being scraped.

Differences from the gate, which judges raw per-run samples: quantiles here
come from histogram buckets (exact at bucket bounds, interpolated between
them), and TTFC counts every run with a card, not only completed ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "COST_PER_RUN",
    "E2E_P95",
    "RUNS_NOT_COMPLETED",
    "SPANS_DROPPED",
    "TTFC_P95",
    "VariantBudget",
    "alert_rules",
    "alert_tests",
    "quantile",
    "read_budgets",
    "recording_rules",
]

#: Window of the recording rules, and so of the alerts built on them.
WINDOW = "5m"
#: How long a budget must be exceeded before its alert fires.
ALERT_FOR = "10m"
#: The Prometheus job scraping the service (both prometheus*.yml use it).
JOB = "parabench"
#: Share of a model's LLM call attempts answered 429 that raises an alert.
MAX_RATE_LIMITED_RATIO = 0.10

E2E_P50 = "scenario_variant:parabench_run_duration_seconds:p50_rate5m"
E2E_P95 = "scenario_variant:parabench_run_duration_seconds:p95_rate5m"
TTFC_P95 = "scenario_variant:parabench_run_time_to_first_card_seconds:p95_rate5m"
STEP_P95 = "scenario_variant_step:parabench_step_duration_seconds:p95_rate5m"
RUNS_RATE = "scenario_variant:parabench_run_duration_seconds_count:rate5m"
COST_RATE = "scenario_variant:parabench_cost_usd:rate5m"
COST_PER_RUN = "scenario_variant:parabench_cost_usd_per_run:ratio_rate5m"
RUNS_NOT_COMPLETED = "scenario_variant:parabench_runs_not_completed:ratio_rate5m"
BRANCH_USD_PER_S = "scenario_variant_step:parabench_branch_usd_per_second_saved:ratio_rate5m"
RATE_LIMITED = "model:parabench_llm_rate_limited:ratio_rate5m"
SPANS_DROPPED = "exporter_reason:parabench_telemetry_spans_dropped:rate5m"


@dataclass(frozen=True)
class VariantBudget:
    """The limits of one variant that alerts can mirror, in the units of the metrics."""

    scenario: str
    variant: str
    e2e_p95_s: float | None = None
    ttfc_p95_s: float | None = None
    cost_per_run_usd: float | None = None
    not_completed_ratio: float | None = None
    #: Dollars per second saved, by step (the budget says per millisecond).
    branch_usd_per_s: dict[str, float] = field(default_factory=dict)


def _seconds(limits: dict[str, Any], key: str) -> float | None:
    return limits[key] / 1000 if key in limits else None


def read_budgets(paths: Iterable[Path]) -> list[VariantBudget]:
    """The variants' limits from gate budget files (``parabench gate`` validates them)."""
    out = []
    for path in paths:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for variant, spec in data["variants"].items():
            limits = spec.get("limits") or {}
            branches = limits.get("branch_usd_per_ms_saved") or {}
            out.append(
                VariantBudget(
                    scenario=data["scenario"],
                    variant=variant,
                    e2e_p95_s=_seconds(limits, "e2e_p95_ms"),
                    ttfc_p95_s=_seconds(limits, "ttfc_p95_ms"),
                    cost_per_run_usd=limits.get("cost_usd_per_run"),
                    not_completed_ratio=limits.get("error_rate"),
                    branch_usd_per_s={step: ms * 1000 for step, ms in branches.items()},
                )
            )
    return out


def quantile(q: float, metric: str, by: str, matchers: str = "", window: str = WINDOW) -> str:
    """``histogram_quantile`` of a classic histogram, aggregated ``by`` some labels."""
    selector = f"{metric}_bucket{{{matchers}}}" if matchers else f"{metric}_bucket"
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({selector}[{window}])))"


def recording_rules() -> list[dict[str, str]]:
    """The recorded series: the quantiles and ratios the alerts and the budget table read."""
    sv, svs = "scenario, variant", "scenario, variant, step"
    attempts = (
        "sum by (model) (label_replace(rate(gen_ai_client_operation_duration_seconds_count"
        f'[{WINDOW}]), "model", "$1", "gen_ai_request_model", "(.*)"))'
    )
    branch = "sum by (scenario, variant, step) (rate(parabench_branch_{}[" + WINDOW + "]))"
    completed = 'outcome="completed"'
    return [
        {"record": E2E_P50, "expr": quantile(0.5, "parabench_run_duration_seconds", sv, completed)},
        {
            "record": E2E_P95,
            "expr": quantile(0.95, "parabench_run_duration_seconds", sv, completed),
        },
        {
            "record": TTFC_P95,
            "expr": quantile(0.95, "parabench_run_time_to_first_card_seconds", sv),
        },
        {"record": STEP_P95, "expr": quantile(0.95, "parabench_step_duration_seconds", svs)},
        {
            "record": RUNS_RATE,
            "expr": f"sum by ({sv}) (rate(parabench_run_duration_seconds_count[{WINDOW}]))",
        },
        {"record": COST_RATE, "expr": f"sum by ({sv}) (rate(parabench_cost_usd_total[{WINDOW}]))"},
        {"record": COST_PER_RUN, "expr": f"{COST_RATE} / {RUNS_RATE}"},
        {
            "record": RUNS_NOT_COMPLETED,
            "expr": f"sum by ({sv}) (rate(parabench_run_duration_seconds_count"
            f'{{outcome!="completed"}}[{WINDOW}])) / {RUNS_RATE}',
        },
        {
            # Only where time was saved: a branch that saved nothing has no price per second.
            "record": BRANCH_USD_PER_S,
            "expr": f"{branch.format('extra_cost_usd_total')} / "
            f"({branch.format('saved_seconds_total')} > 0)",
        },
        {
            "record": RATE_LIMITED,
            "expr": "sum by (model) (rate(parabench_llm_errors_total"
            f'{{error_type="rate_limited"}}[{WINDOW}])) / {attempts}',
        },
        {
            "record": SPANS_DROPPED,
            "expr": "sum by (exporter, reason) "
            f"(rate(parabench_telemetry_spans_dropped_total[{WINDOW}]))",
        },
    ]


# ---------------------------------------------------------------- alerts

# Exact formats keep the rendered value predictable, so `promtool test rules` can expect it.
_VALUE = '{{ printf "%.3g" $value }}'
_PERCENT = "{{ humanizePercentage $value }}"


@dataclass(frozen=True)
class BudgetAlert:
    """An alert comparing one recorded series with one limit of a variant's budget."""

    name: str
    record: str
    limit: str  # the VariantBudget field
    what: str
    unit: str  # "s", "usd", "ratio" or "usd/s"

    def text(self, number: str) -> str:
        """A number (or a value template) with this alert's unit."""
        forms = {"s": "{} s", "usd": "${}", "usd/s": "${} per second saved", "ratio": "{}"}
        return forms[self.unit].format(number)

    def number(self, value: float) -> str:
        """A value as the annotations render it (what the templates below print)."""
        return f"{value * 100:.4g}%" if self.unit == "ratio" else f"{value:.3g}"

    @property
    def template(self) -> str:
        """The alert's value, as a template Prometheus renders, with its unit."""
        return self.text(_PERCENT if self.unit == "ratio" else _VALUE)


BUDGET_ALERTS = (
    BudgetAlert("ParabenchRunLatencyOverBudget", E2E_P95, "e2e_p95_s", "end-to-end p95", "s"),
    BudgetAlert("ParabenchFirstCardOverBudget", TTFC_P95, "ttfc_p95_s", "TTFC p95", "s"),
    BudgetAlert(
        "ParabenchCostPerRunOverBudget", COST_PER_RUN, "cost_per_run_usd", "cost per run", "usd"
    ),
    BudgetAlert(
        "ParabenchRunsNotCompletedOverBudget",
        RUNS_NOT_COMPLETED,
        "not_completed_ratio",
        "share of runs not completed",
        "ratio",
    ),
)
BRANCH_ALERT = BudgetAlert(
    "ParabenchBranchCostOverBudget",
    BRANCH_USD_PER_S,
    "branch_usd_per_s",
    "extra cost",
    "usd/s",
)


def budget_rule(
    alert: BudgetAlert, budget: VariantBudget, step: str | None = None
) -> dict[str, Any]:
    """The rule for one limit of one variant (of one branch for the branch alert)."""
    labels = {"scenario": budget.scenario, "variant": budget.variant}
    limit = getattr(budget, alert.limit)
    if step is not None:
        labels["step"] = step
        limit = limit[step]
    where = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    who = " / ".join(labels.values())
    budget_text = alert.text(alert.number(limit))
    return {
        "alert": alert.name,
        "expr": f"{alert.record}{{{where}}} > {limit:g}",
        "for": ALERT_FOR,
        # The expression keeps these labels anyway; naming them keeps each rule distinct.
        "labels": {"severity": "warning", **labels},
        "annotations": {
            "summary": f"{who}: {alert.what} over its budget of {budget_text}",
            "description": f"{alert.what} over the last {WINDOW} is {alert.template} "
            f"(budget {budget_text}, from {budget.scenario}.budget.yaml); "
            f"over it for {ALERT_FOR}.",
        },
    }


def _budget_rules(budgets: list[VariantBudget]) -> list[dict[str, Any]]:
    rules = [
        budget_rule(alert, budget)
        for alert in BUDGET_ALERTS
        for budget in budgets
        if getattr(budget, alert.limit) is not None
    ]
    rules += [
        budget_rule(BRANCH_ALERT, budget, step)
        for budget in budgets
        for step in budget.branch_usd_per_s
    ]
    return rules


def alert_rules(budgets: list[VariantBudget]) -> list[dict[str, Any]]:
    """Every alert: the budgets, LLM calls rate-limited, spans lost, the service not scraped."""
    return [
        *_budget_rules(budgets),
        {
            "alert": "ParabenchRateLimited",
            "expr": f"{RATE_LIMITED} > {MAX_RATE_LIMITED_RATIO:g}",
            "for": ALERT_FOR,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.model }}: more than "
                f"{MAX_RATE_LIMITED_RATIO:.0%} of LLM calls are rate-limited (429)",
                "description": "{{ humanizePercentage $value }} of call attempts over the "
                f"last {WINDOW} were answered 429; runs wait and retry, so latency grows.",
            },
        },
        {
            # Any drop: the traces (and so reports and critical paths) of that time are
            # incomplete. No wait: a lost span does not come back.
            "alert": "ParabenchSpansDropped",
            "expr": f"{SPANS_DROPPED} > 0",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.exporter }} exporter: spans dropped ({{ $labels.reason }})",
                "description": f"Spans were lost on their way to the {{{{ $labels.exporter }}}} "
                f"exporter in the last {WINDOW} (reason: {{{{ $labels.reason }}}}), so traces "
                "of that time are incomplete. parabench_telemetry_spans_dropped_total counts "
                "them; see docs/service.md.",
            },
        },
        {
            "alert": "ParabenchServiceDown",
            "expr": f'up{{job="{JOB}"}} == 0',
            "for": "2m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "{{ $labels.instance }}: the parabench service cannot be scraped",
                "description": "Prometheus has failed to scrape /metrics for 2 minutes.",
            },
        },
    ]


# ---------------------------------------------------------------- promtool test cases


def _selector(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _series(name: str, labels: dict[str, str], per_minute: float) -> dict[str, str]:
    """An input series growing by ``per_minute`` each minute for half an hour."""
    return {"series": _selector(name, labels), "values": f"0+{per_minute:g}x30"}


def _rendered(rule: dict[str, Any], labels: dict[str, str], value: str) -> dict[str, str]:
    """The rule's annotations as Prometheus renders them for ``labels`` and ``value``."""
    out = {}
    for key, text in rule["annotations"].items():
        for name, label in labels.items():
            text = text.replace(f"{{{{ $labels.{name} }}}}", label)
        out[key] = text.replace(_PERCENT, value).replace(_VALUE, value)
    return out


def _case(
    inputs: list[dict[str, str]], rule: dict[str, Any], fired: dict[str, Any], at: tuple[str, str]
) -> dict[str, Any]:
    """Not firing at ``at[0]`` (pending at most), firing exactly as ``fired`` says at ``at[1]``."""
    return {
        "interval": "1m",
        "input_series": inputs,
        "alert_rule_test": [
            {"eval_time": at[0], "alertname": rule["alert"], "exp_alerts": []},
            {"eval_time": at[1], "alertname": rule["alert"], "exp_alerts": [fired]},
        ],
    }


#: Before, and well after, a budget alert's ALERT_FOR has run.
_BUDGET_TIMES = ("5m", "20m")


def _inputs(
    alert: BudgetAlert, budget: VariantBudget, limit: float, over: bool
) -> list[dict[str, str]]:
    """Input series putting ``budget``'s variant over ``limit`` (or well under it).

    Over: latencies all above the top finite bucket, so the p95 is that bucket's
    bound, 2 × limit; cost per run and the not-completed share at 2 × and 1.5 ×
    the limit. Under: the p95 inside the limit's bucket (0.95 × limit), the rest
    at half the limit.
    """
    labels = {"scenario": budget.scenario, "variant": budget.variant}
    runs = {**labels, "outcome": "completed"}
    if alert.unit == "s":
        metric = (
            "parabench_run_duration_seconds"
            if alert.record == E2E_P95
            else ("parabench_run_time_to_first_card_seconds")
        )
        series = runs if alert.record == E2E_P95 else labels
        counts = (0, 0, 10) if over else (10, 10, 10)
        les = [f"{limit:g}", f"{2 * limit:g}", "+Inf"]
        return [
            _series(f"{metric}_bucket", {**series, "le": le}, count)
            for le, count in zip(les, counts, strict=True)
        ]
    if alert.unit == "usd":
        cost = 2 * limit if over else limit / 2
        return [
            _series("parabench_cost_usd_total", {**labels, "step": "a", "model": "m"}, cost),
            _series("parabench_run_duration_seconds_count", runs, 1),
        ]
    # 200 runs a minute, a share of them failed: 1.5 × the limit, or half of it.
    failed = 200 * limit * (1.5 if over else 0.5)
    return [
        _series("parabench_run_duration_seconds_count", runs, 200 - failed),
        _series("parabench_run_duration_seconds_count", {**labels, "outcome": "failed"}, failed),
    ]


def _budget_case(alert: BudgetAlert, budgets: list[VariantBudget]) -> dict[str, Any]:
    """The first variant with this limit over it (fires after ALERT_FOR), the next under."""
    over, under = [b for b in budgets if getattr(b, alert.limit) is not None][:2]
    limit = getattr(over, alert.limit)
    inputs = _inputs(alert, over, limit, True) + _inputs(
        alert, under, getattr(under, alert.limit), False
    )
    value = 1.5 * limit if alert.unit == "ratio" else 2 * limit
    rule = budget_rule(alert, over)
    fired = {
        "exp_labels": rule["labels"],
        "exp_annotations": _rendered(rule, {}, alert.number(value)),
    }
    return _case(inputs, rule, fired, _BUDGET_TIMES)


def _branch_case(budgets: list[VariantBudget]) -> dict[str, Any]:
    """One branch at twice its limit per second saved, another at half of its own."""
    budget = next(b for b in budgets if len(b.branch_usd_per_s) >= 2)
    (over, over_limit), (under, under_limit) = list(budget.branch_usd_per_s.items())[:2]
    labels = {"scenario": budget.scenario, "variant": budget.variant}
    inputs = []
    for step, usd_per_s in ((over, 2 * over_limit), (under, under_limit / 2)):
        step_labels = {**labels, "step": step}
        inputs.append(_series("parabench_branch_saved_seconds_total", step_labels, 1))
        inputs.append(_series("parabench_branch_extra_cost_usd_total", step_labels, usd_per_s))
    rule = budget_rule(BRANCH_ALERT, budget, over)
    fired = {
        "exp_labels": rule["labels"],
        "exp_annotations": _rendered(rule, {}, BRANCH_ALERT.number(2 * over_limit)),
    }
    return _case(inputs, rule, fired, _BUDGET_TIMES)


def _rate_limited_case(rule: dict[str, Any]) -> dict[str, Any]:
    """gpt-4o: 1 call in 4 answered 429. gpt-4o-mini: errors, but none a 429."""
    inputs = [
        _series(
            "gen_ai_client_operation_duration_seconds_count",
            {
                "gen_ai_operation_name": "chat",
                "gen_ai_provider_name": "openai",
                "gen_ai_request_model": model,
                "error_type": "",
            },
            4,
        )
        for model in ("gpt-4o", "gpt-4o-mini")
    ]
    errors = {"gpt-4o": "rate_limited", "gpt-4o-mini": "timeout"}
    for model, error in errors.items():
        inputs.append(
            _series("parabench_llm_errors_total", {"model": model, "error_type": error}, 1)
        )
    fired = {
        "exp_labels": {"severity": "warning", "model": "gpt-4o"},
        "exp_annotations": _rendered(rule, {"model": "gpt-4o"}, "25%"),
    }
    return _case(inputs, rule, fired, _BUDGET_TIMES)


def _spans_dropped_case(rule: dict[str, Any]) -> dict[str, Any]:
    """OTLP: 10 quiet minutes, then 5 spans a minute dropped. The spans file: none dropped."""
    name = "parabench_telemetry_spans_dropped_total"
    dropping = {"exporter": "otlp", "reason": "queue_full"}
    inputs = [
        {"series": _selector(name, dropping), "values": "0x10 5+5x20"},
        {"series": _selector(name, {"exporter": "file", "reason": "queue_full"}), "values": "0x30"},
    ]
    fired = {
        "exp_labels": {"severity": "warning", **dropping},
        "exp_annotations": _rendered(rule, dropping, ""),
    }
    return _case(inputs, rule, fired, ("10m", "13m"))


def _service_down_case(rule: dict[str, Any]) -> dict[str, Any]:
    labels = {"job": JOB, "instance": "service:8000"}
    down = {"series": _selector("up", labels), "values": "0x30"}
    fired = {
        "exp_labels": {"severity": "critical", **labels},
        "exp_annotations": _rendered(rule, labels, ""),
    }
    return _case([down], rule, fired, ("1m", "5m"))


def alert_tests(budgets: list[VariantBudget]) -> dict[str, Any]:
    """A `promtool test rules` file exercising every kind of alert, firing and not."""
    rate_limited, spans_dropped, service_down = alert_rules(budgets)[-3:]
    return {
        "rule_files": ["recording.yml", "alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            *(_budget_case(alert, budgets) for alert in BUDGET_ALERTS),
            _branch_case(budgets),
            _rate_limited_case(rate_limited),
            _spans_dropped_case(spans_dropped),
            _service_down_case(service_down),
        ],
    }
