"""Budget files: a scenario's performance limits and regression tolerances, validated.

A budget file is YAML, usually ``NAME.budget.yaml`` next to the scenario
``NAME.yaml``::

    scenario: research_assistant
    min_samples: 30                # runs per variant, per run dir, before anything is judged
    confidence: 0.95               # of the bootstrap intervals
    variants:
      parallel:
        limits:                    # absolute, at real speed (measured ÷ time scale)
          e2e_p95_ms: 16000
          error_rate: 0.02
          cost_usd_per_run: 0.05
          executor_efficiency_p50_min: 0.9
          branch_usd_per_ms_saved: {search_docs: 0.00001}
        regression:                # relative increase allowed against a baseline
          e2e_p50: 0.10
          cost_usd_per_run: 0.05

``load_budget`` validates everything before any data is read: unknown keys,
numbers out of range, a tolerance outside (0, 1], a variant the scenario does
not have, a branch limit on a step that is not a parallel branch. Each problem
raises ``BudgetError`` naming the file, the field
(``variants.parallel.limits.e2e_p95_ms``) and the fix. docs/gates.md is the
reference for every key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError

from harness.errors import BudgetError, ScenarioError
from harness.gate.metrics import LIMIT_METRICS, REGRESSION_METRICS
from harness.scenario import is_file, is_finite, read_yaml_file, short_repr

__all__ = [
    "Budget",
    "Limits",
    "Regression",
    "VariantBudget",
    "budget_from_dict",
    "load_budget",
    "parallel_branches",
]

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _number(raw: Any) -> Any:
    """A YAML number; also ``1e-5``, which YAML 1.1 (PyYAML) reads as text."""
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"expected a number, got {raw!r}")
    if isinstance(raw, str):
        if not _NUMBER.match(raw.strip()):
            raise ValueError(f"expected a number, got the text {short_repr(raw)}")
        if not is_finite(float(raw)):  # "1e400" is inf
            raise ValueError(f"expected a finite number, got the text {short_repr(raw)}")
        return float(raw)
    if isinstance(raw, int | float) and not is_finite(raw):
        raise ValueError(f"expected a finite number, got {short_repr(raw)}")
    return raw


Number = Annotated[float, BeforeValidator(_number)]
Latency = Annotated[Number, Field(gt=0)]
Fraction = Annotated[Number, Field(ge=0, le=1)]
Tolerance = Annotated[Number, Field(gt=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Limits(_Strict):
    """Absolute limits of one variant; latencies in milliseconds at real speed."""

    e2e_p50_ms: Latency | None = None
    e2e_p95_ms: Latency | None = None
    e2e_p99_ms: Latency | None = None
    ttfc_p50_ms: Latency | None = None
    ttfc_p95_ms: Latency | None = None
    speed_index_p50_ms: Latency | None = None
    speed_index_p95_ms: Latency | None = None
    error_rate: Fraction | None = None
    cost_usd_per_run: Annotated[Number, Field(ge=0)] | None = None
    executor_efficiency_p50_min: Annotated[Number, Field(gt=0, le=1)] | None = None
    branch_usd_per_ms_saved: dict[str, Annotated[Number, Field(ge=0)]] = Field(default_factory=dict)

    def metric_limits(self) -> dict[str, float]:
        """The set limits by key (``LIMIT_METRICS``), without the branch limits."""
        return {k: v for k in LIMIT_METRICS if (v := getattr(self, k)) is not None}


class Regression(_Strict):
    """Tolerances against a baseline: the relative increase allowed (0.10 = +10%).

    ``error_rate`` is in absolute points instead (0.02: from 1% to 3% is allowed).
    """

    e2e_p50: Tolerance | None = None
    e2e_p95: Tolerance | None = None
    e2e_p99: Tolerance | None = None
    ttfc_p50: Tolerance | None = None
    ttfc_p95: Tolerance | None = None
    speed_index_p50: Tolerance | None = None
    speed_index_p95: Tolerance | None = None
    cost_usd_per_run: Tolerance | None = None
    error_rate: Tolerance | None = None

    def tolerances(self) -> dict[str, float]:
        """The set tolerances by key (``REGRESSION_METRICS``)."""
        return {k: v for k in REGRESSION_METRICS if (v := getattr(self, k)) is not None}


class VariantBudget(_Strict):
    """What one variant must meet."""

    limits: Limits = Field(default_factory=Limits)
    regression: Regression = Field(default_factory=Regression)

    @property
    def empty(self) -> bool:
        return not (
            self.limits.metric_limits()
            or self.limits.branch_usd_per_ms_saved
            or self.regression.tolerances()
        )


class Budget(_Strict):
    """A scenario's budget: limits and tolerances per variant, and how sure to be."""

    scenario: str = Field(min_length=1)
    scenario_file: str | None = None
    description: str = ""
    min_samples: int = Field(30, ge=5)
    confidence: Annotated[Number, Field(gt=0.5, lt=1)] = 0.95
    variants: dict[str, VariantBudget] = Field(min_length=1)

    _source: str = PrivateAttr("<memory>")

    @property
    def source(self) -> str:
        """The file it was read from."""
        return self._source


_MODELS: dict[str, type[BaseModel]] = {
    "": Budget,
    "variants.*": VariantBudget,
    "variants.*.limits": Limits,
    "variants.*.regression": Regression,
}
_RANGE_FIX = {
    "limits": "a limit is a positive number: milliseconds at real speed, USD (0 allowed), "
    "or a fraction in [0, 1] for error_rate and executor_efficiency_p50_min",
    "regression": "a tolerance is the increase allowed, a fraction in (0, 1]: 0.10 allows +10% "
    "(error_rate: 0.02 allows 2 more points)",
    "min_samples": "use at least 5 runs; 30 or more gives intervals narrow enough to decide",
    "confidence": "use a level between 0.5 and 1, e.g. 0.95",
}


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where an unknown key ``loc[-1]`` was found."""
    shape = ".".join("*" if i == 1 and loc[0] == "variants" else str(p) for i, p in enumerate(loc))
    parent = shape.rpartition(".")[0]
    model = _MODELS.get(parent)
    if model is None:
        return []
    return list(model.model_fields)


def _error_from(exc: ValidationError, source: str) -> BudgetError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    field = _field_path(loc)
    kind = first["type"]
    msg = first["msg"].removeprefix("Value error, ")
    fix = "see docs/gates.md for the budget format"
    if kind == "extra_forbidden":
        msg = "unknown field"
        allowed = _allowed_keys(loc)
        fix = "remove it, or check its spelling" + (
            f"; allowed here: {', '.join(allowed)}" if allowed else ""
        )
    elif kind == "missing":
        msg = "required field missing"
        fix = "add it (see docs/gates.md)"
    elif kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        msg = f"{first['input']!r} is out of range: {msg.replace('Input should be', 'must be')}"
        section = next((str(p) for p in reversed(loc) if str(p) in _RANGE_FIX), "limits")
        fix = _RANGE_FIX[section]
    elif kind == "too_short":
        msg = "no variants"
        fix = "add at least one variant with limits: or regression:"
    elif kind in {"dict_type", "model_type"}:
        msg = f"expected a mapping, got {type(first['input']).__name__}"
        fix = "write it as key: value pairs (see docs/gates.md)"
    elif kind == "value_error":
        fix = "write a plain number, e.g. 16000 or 0.00001"
    more = len(errors) - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''} after this one)"
    return BudgetError(msg, file=source, field=field, fix=fix)


def parallel_branches(scenario: Any, variant: str) -> list[str]:
    """The parallel branches of a scenario's variant: steps sharing a fork (same ``depends_on``)."""
    plan = scenario.plan(variant)
    if plan.mode != "parallel":
        return []
    by_deps: dict[frozenset[str], list[str]] = {}
    for sid, step in plan.steps.items():
        by_deps.setdefault(frozenset(step.depends_on), []).append(sid)
    return [sid for members in by_deps.values() if len(members) > 1 for sid in members]


def _scenario_path(budget: Budget, budget_path: Path) -> Path | None:
    from harness.scenario import resolve_scenario_path

    here = budget_path.parent
    if budget.scenario_file:
        path = here / budget.scenario_file
        return path if is_file(path) else None
    sibling = here / f"{budget.scenario}.yaml"
    if is_file(sibling):
        return sibling
    try:
        return resolve_scenario_path(budget.scenario)
    except ScenarioError:
        return None


def _check_against_scenario(budget: Budget, budget_path: Path) -> None:
    """Every variant and branch the budget names must exist in its scenario."""
    from harness.scenario import load_scenario

    src = budget.source
    path = _scenario_path(budget, budget_path)
    if path is None:
        field = "scenario_file" if budget.scenario_file else "scenario"
        raise BudgetError(
            f"no scenario file found for '{budget.scenario_file or budget.scenario}'",
            file=src,
            field=field,
            fix="name a bundled scenario, put the budget next to NAME.yaml, or set "
            "scenario_file: to the scenario's path (relative to the budget file)",
        )
    scenario = load_scenario(path)
    if scenario.name != budget.scenario:
        raise BudgetError(
            f"the scenario file {path} is named '{scenario.name}', not '{budget.scenario}'",
            file=src,
            field="scenario",
            fix=f"write scenario: {scenario.name}, or point scenario_file: at the right file",
        )
    for name, spec in budget.variants.items():
        if name not in scenario.variants:
            raise BudgetError(
                f"scenario '{scenario.name}' has no variant '{name}'",
                file=src,
                field=f"variants.{name}",
                fix=f"use one of: {', '.join(scenario.variants)}",
            )
        branches = parallel_branches(scenario, name)
        for step in spec.limits.branch_usd_per_ms_saved:
            if step in branches:
                continue
            where = f"variants.{name}.limits.branch_usd_per_ms_saved.{step}"
            if not branches:
                raise BudgetError(
                    f"variant '{name}' runs no parallel branches",
                    file=src,
                    field=where,
                    fix="remove branch_usd_per_ms_saved here, or set it on a parallel variant",
                )
            raise BudgetError(
                f"'{step}' is not a parallel branch of variant '{name}'",
                file=src,
                field=where,
                fix=f"use one of its branches: {', '.join(branches)}",
            )


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise BudgetError(
            "no such budget file", file=str(path), fix="check the path given to --budget"
        )
    return read_yaml_file(path, BudgetError)


def budget_from_dict(data: Any, *, source: str = "<memory>") -> Budget:
    """Validate parsed YAML as a budget (shape and ranges only); raises ``BudgetError``."""
    if not isinstance(data, Mapping):
        raise BudgetError(
            f"the top level must be a mapping, got {type(data).__name__}",
            file=source,
            fix="start the file with 'scenario:' and 'variants:' keys (see docs/gates.md)",
        )
    try:
        budget = Budget.model_validate(data)
    except ValidationError as exc:
        raise _error_from(exc, source) from None
    budget._source = source
    for name, spec in budget.variants.items():
        if spec.empty:
            raise BudgetError(
                f"variant '{name}' has no limits and no regression tolerances",
                file=source,
                field=f"variants.{name}",
                fix="add limits: or regression: under it, or remove the variant",
            )
    return budget


def load_budget(path: str | Path) -> Budget:
    """Read and validate a budget file, also against its scenario; raises ``BudgetError``."""
    path = Path(path)
    budget = budget_from_dict(_read_yaml(path), source=str(path))
    _check_against_scenario(budget, path)
    return budget
