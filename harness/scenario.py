"""Scenarios: a DAG of agent steps plus the variants that run it.

A scenario file is YAML::

    name: research_assistant
    value_of_time_usd_per_s: 0.01      # what one second less waiting is worth
    baseline_variant: sequential       # extra cost of a branch is measured against it
    defaults: {model: gpt-4o-mini}
    steps:
      - id: plan
        kind: llm
        input_tokens: 1500             # a number, or a distribution (below)
        output_tokens: 200
        card: true                     # its completion shows the user a result
      - id: search_web
        kind: tool
        depends_on: [plan]
        latency_ms: {median: 6000, sigma: 0.1}
        cost_usd: 0.005
    variants:
      sequential: {mode: sequential}
      parallel:
        mode: parallel
        max_concurrency: 3             # optional cap
        overrides: {search_web: {latency_ms: 5000}}
        add_steps: [...]               # e.g. a speculative branch
        remove_steps: [...]

A distribution is a number (fixed), ``{median, sigma}`` (lognormal),
``{low, high}`` (uniform) or ``{mean, sd}`` (normal, clamped at 0).

``load_scenario`` validates everything up front and raises ``ScenarioError``
naming the file, the field and the fix.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from harness import dag
from harness.errors import ScenarioError
from harness.latency import LatencyProfile, profile_for
from harness.pricing import PriceOverride, known_price
from harness.providers.base import ProviderConfig

__all__ = [
    "BUNDLED_DIR",
    "Dist",
    "ModelConfig",
    "Plan",
    "Scenario",
    "Step",
    "Variant",
    "bundled_scenarios",
    "load_scenario",
    "resolve_scenario_path",
]


def _bundled_dir() -> Path:
    """``scenarios/`` of a source checkout, else where ``pip install`` put it.

    The charter keeps ``scenarios/`` at the top of the repository, outside the
    ``harness`` package, so a wheel installs it as data under
    ``<prefix>/share/parabench/scenarios`` (see pyproject.toml).
    """
    checkout = Path(__file__).resolve().parent.parent / "scenarios"
    if checkout.is_dir():
        return checkout
    installed = Path(sys.prefix) / "share" / "parabench" / "scenarios"
    return installed if installed.is_dir() else checkout


BUNDLED_DIR = _bundled_dir()

_DIST_HELP = (
    "use a number, or a distribution: {median: M, sigma: S} (lognormal), "
    "{low: A, high: B} (uniform) or {mean: M, sd: S} (normal)"
)
_NONNEG_FIX = "use a number >= 0: a duration, a token count or a spread cannot be negative"
#: The largest lognormal sigma (as ``LatencyProfile.jitter_sigma``): at 3 the 99th
#: percentile is already 1000 times the median, and far above it a draw overflows.
_MAX_SIGMA = 3.0


def is_finite(value: float) -> bool:
    """``math.isfinite``, also False for an integer too large for a float (YAML allows 10**400)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def short_repr(value: Any) -> str:
    """``repr(value)``, cut to 40 characters: a 400-digit number does not fit a message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _FieldProblem(ValueError):
    """A validator's complaint, with the fix and the field (under the checked object) at fault."""

    def __init__(self, what: str, *, fix: str, field: str = "") -> None:
        super().__init__(what)
        self.field = field
        self.fix = fix


class _OverrideProblem(Exception):
    """A variant's override makes its step invalid (reported against the override)."""

    def __init__(self, step_id: str, error: ValidationError) -> None:
        super().__init__(step_id)
        self.step_id = step_id
        self.error = error


class Dist(BaseModel):
    """A non-negative quantity: fixed, lognormal, uniform or normal (clamped at 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["fixed", "lognormal", "uniform", "normal"]
    # Bounded here too: the {kind, a, b} form below skips the checks of the YAML shapes.
    a: float = Field(ge=0, allow_inf_nan=False)  # value | median | low | mean
    b: float = Field(0.0, ge=0, allow_inf_nan=False)  # - | sigma | high | sd

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, raw: Any) -> Any:
        if isinstance(raw, Dist):
            return raw
        if isinstance(raw, bool) or raw is None:
            raise _FieldProblem(f"expected a non-negative number, got {raw!r}", fix=_DIST_HELP)
        if isinstance(raw, int | float):
            if not is_finite(raw) or raw < 0:
                raise _FieldProblem(
                    f"must be a finite number >= 0, got {short_repr(raw)}", fix=_NONNEG_FIX
                )
            return {"kind": "fixed", "a": float(raw)}
        if isinstance(raw, str):
            raise _FieldProblem(
                f"expected a number, got the text {short_repr(raw)}", fix=_DIST_HELP
            )
        if not isinstance(raw, Mapping):
            raise _FieldProblem(
                f"expected a number or a mapping, got {type(raw).__name__}", fix=_DIST_HELP
            )
        if "kind" in raw and "a" in raw:
            return raw
        shapes = {
            frozenset({"median", "sigma"}): ("lognormal", "median", "sigma"),
            frozenset({"low", "high"}): ("uniform", "low", "high"),
            frozenset({"mean", "sd"}): ("normal", "mean", "sd"),
        }
        keys = frozenset(raw)
        if keys not in shapes:
            raise _FieldProblem(f"unknown distribution keys {sorted(keys)}", fix=_DIST_HELP)
        kind, ka, kb = shapes[keys]
        values = {}
        for key in (ka, kb):
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _FieldProblem(
                    f"'{key}' must be a number, got {short_repr(value)}", field=key, fix=_NONNEG_FIX
                )
            if not is_finite(value) or value < 0:
                raise _FieldProblem(
                    f"'{key}' must be a finite number >= 0, got {short_repr(value)}",
                    field=key,
                    fix=_NONNEG_FIX,
                )
            values[key] = float(value)
        if kind == "uniform" and values["high"] < values["low"]:
            raise _FieldProblem(
                f"'high' ({values['high']}) is below 'low' ({values['low']})",
                field="high",
                fix="swap low and high",
            )
        return {"kind": kind, "a": values[ka], "b": values[kb]}

    @model_validator(mode="after")
    def _sigma_in_range(self) -> Dist:
        if self.kind == "lognormal" and self.b > _MAX_SIGMA:
            raise _FieldProblem(
                f"'sigma' must be at most {_MAX_SIGMA:g}, got {self.b:g}",
                field="sigma",
                fix="sigma is the spread of the logarithm: 0.1 to 1 is typical; "
                "use {low: A, high: B} for a wide range",
            )
        return self

    @property
    def median(self) -> float:
        """The median: the value the scenario's theory uses."""
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a

    @property
    def mean(self) -> float:
        if self.kind == "lognormal":
            return self.a * math.exp(self.b**2 / 2)
        return self.median

    def sample(self, rng: np.random.Generator) -> float:
        """One draw, never negative."""
        if self.kind == "fixed":
            return self.a
        if self.kind == "lognormal":
            return self.a * math.exp(rng.normal(0.0, self.b)) if self.b > 0 else self.a
        if self.kind == "uniform":
            return float(rng.uniform(self.a, self.b))
        return max(0.0, float(rng.normal(self.a, self.b)))


class Step(BaseModel):
    """One unit of agent work: an LLM call or a tool call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$", max_length=64)
    kind: Literal["llm", "tool"]
    depends_on: tuple[str, ...] = ()
    card: bool = False
    description: str = ""
    # llm steps
    model: str | None = None
    input_tokens: Dist | None = None
    output_tokens: Dist | None = None
    prompt: str | None = Field(None, max_length=100_000)
    # tool steps
    tool: str | None = None
    latency_ms: Dist | None = None
    cost_usd: float = Field(0.0, ge=0, allow_inf_nan=False)
    # both
    timeout_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    max_attempts: int = Field(3, ge=1, le=20)
    fail_rate: float = Field(0.0, ge=0, le=1, description="simulated failure chance per attempt")

    @field_validator("depends_on", mode="before")
    @classmethod
    def _deps_list(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            return (raw,)
        return raw

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Step:
        if self.kind == "llm":
            for name in ("input_tokens", "output_tokens"):
                if getattr(self, name) is None:
                    raise _FieldProblem(
                        "an llm step needs input_tokens and output_tokens",
                        field=name,
                        fix=f"add {name}: a number, or a distribution such as "
                        "{median: 500, sigma: 0.2}",
                    )
            if self.latency_ms is not None:
                raise _FieldProblem(
                    "an llm step's latency comes from its model's profile",
                    field="latency_ms",
                    fix="remove latency_ms, or set the profile under models.<name>.latency",
                )
        if self.kind == "tool":
            for name in ("model", "input_tokens", "output_tokens", "prompt"):
                if getattr(self, name) is not None:
                    raise _FieldProblem(
                        f"a tool step takes no {name}",
                        field=name,
                        fix=f"remove {name}, or make the step kind: llm",
                    )
        if self.kind == "tool" and self.latency_ms is None:
            raise _FieldProblem(
                "a tool step needs latency_ms",
                field="latency_ms",
                fix="add latency_ms: a number, or a distribution such as {median: 800, sigma: 0.2}",
            )
        return self

    @property
    def tool_name(self) -> str:
        return self.tool or self.id


class StepOverride(BaseModel):
    """What a variant changes about a step; unset fields keep the step's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    depends_on: tuple[str, ...] | None = None
    card: bool | None = None
    model: str | None = None
    input_tokens: Dist | None = None
    output_tokens: Dist | None = None
    prompt: str | None = Field(None, max_length=100_000)
    latency_ms: Dist | None = None
    cost_usd: float | None = Field(None, ge=0, allow_inf_nan=False)
    timeout_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    max_attempts: int | None = Field(None, ge=1, le=20)
    fail_rate: float | None = Field(None, ge=0, le=1)


class Variant(BaseModel):
    """How the same work is run: sequential, parallel, or parallel with a cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["sequential", "parallel"]
    max_concurrency: int | None = Field(None, ge=1)
    description: str = ""
    overrides: dict[str, StepOverride] = Field(default_factory=dict)
    add_steps: tuple[Step, ...] = ()
    remove_steps: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _cap_only_parallel(self) -> Variant:
        if self.mode == "sequential" and self.max_concurrency not in (None, 1):
            raise _FieldProblem(
                "max_concurrency applies to mode: parallel only",
                field="max_concurrency",
                fix="remove max_concurrency, or use mode: parallel",
            )
        return self


class ModelConfig(BaseModel):
    """A scenario's settings for one model: its price and latency profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    price: PriceOverride | None = None
    latency: LatencyProfile | None = None


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "gpt-4o-mini"


class Plan:
    """One variant of a scenario, resolved: the final steps and how to schedule them."""

    def __init__(self, scenario: Scenario, variant: str) -> None:
        self.scenario = scenario
        self.variant = variant
        spec = scenario.variants[variant]
        self.mode = spec.mode
        self.max_concurrency = 1 if spec.mode == "sequential" else spec.max_concurrency
        steps: dict[str, Step] = {}
        for step in scenario.steps:
            if step.id in spec.remove_steps:
                continue
            override = spec.overrides.get(step.id)
            if override is not None:
                # Validated as a whole step, so an override cannot smuggle in a field
                # that the step's kind ignores (latency_ms on an llm step, say).
                merged = step.model_dump(exclude_defaults=True)
                merged.update(override.model_dump(exclude_none=True))
                try:
                    step = Step.model_validate(merged)
                except ValidationError as exc:
                    raise _OverrideProblem(step.id, exc) from None
            steps[step.id] = step
        for step in spec.add_steps:
            steps[step.id] = step
        # A removed step's dependents lose the edge, not the work.
        removed = set(spec.remove_steps)
        self.steps: dict[str, Step] = {}
        for sid, step in steps.items():
            if removed.intersection(step.depends_on):
                kept = tuple(d for d in step.depends_on if d not in removed)
                step = step.model_copy(update={"depends_on": kept})
            self.steps[sid] = step
        self.deps: dict[str, tuple[str, ...]] = {sid: s.depends_on for sid, s in self.steps.items()}

    @cached_property
    def order(self) -> list[str]:
        """A topological order; ties keep the declared order."""
        return dag.topological_order(self.deps)

    def model_of(self, step: Step) -> str:
        return step.model or self.scenario.defaults.model

    def median_duration_s(self, step: Step) -> float:
        """A step's duration with no jitter: the basis of the scenario's theory."""
        if step.kind == "tool":
            assert step.latency_ms is not None
            return step.latency_ms.median / 1000.0
        assert step.input_tokens is not None and step.output_tokens is not None
        profile = self.scenario.latency_profile(self.model_of(step))
        return profile.median_duration_s(step.input_tokens.median, step.output_tokens.median)

    def theoretical_makespan_s(self) -> float:
        """Makespan with median durations under this variant's schedule (no overhead)."""
        durations = {sid: self.median_duration_s(s) for sid, s in self.steps.items()}
        return dag.replay(self.deps, durations, self.max_concurrency, order=self.order).makespan

    def expected_cost_usd(self, step_id: str) -> float:
        """A step's cost at median token counts (0 when unpriced)."""
        from harness.pricing import cost_usd

        step = self.steps[step_id]
        if step.kind == "tool":
            return step.cost_usd
        assert step.input_tokens is not None and step.output_tokens is not None
        cost = cost_usd(
            self.model_of(step),
            round(step.input_tokens.median),
            round(step.output_tokens.median),
            self.scenario.price_overrides,
        )
        return cost or 0.0

    @property
    def card_steps(self) -> list[str]:
        return [sid for sid in self.order if self.steps[sid].card]


class Scenario(BaseModel):
    """A validated scenario. Build it with ``load_scenario`` or ``Scenario.from_dict``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=64)
    description: str = ""
    value_of_time_usd_per_s: float = Field(0.0, ge=0, allow_inf_nan=False)
    baseline_variant: str = "sequential"
    defaults: Defaults = Field(default_factory=Defaults)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    steps: tuple[Step, ...] = Field(min_length=1)
    variants: dict[str, Variant] = Field(min_length=1)
    provider: ProviderConfig | None = None

    _source: str = PrivateAttr("<memory>")
    _plans: dict[str, Plan] = PrivateAttr(default_factory=dict)
    _latency: dict[str, LatencyProfile] | None = PrivateAttr(None)

    @property
    def source(self) -> str:
        return self._source

    @property
    def price_overrides(self) -> dict[str, PriceOverride]:
        return {m: c.price for m, c in self.models.items() if c.price is not None}

    @property
    def latency_overrides(self) -> dict[str, LatencyProfile]:
        """The scenario's latency profiles; fields it leaves out keep the model's defaults."""
        if self._latency is None:
            merged: dict[str, LatencyProfile] = {}
            for model, cfg in self.models.items():
                if cfg.latency is None:
                    continue
                changes = {k: getattr(cfg.latency, k) for k in cfg.latency.model_fields_set}
                merged[model] = profile_for(model).model_copy(update=changes)
            self._latency = merged
        return self._latency

    def latency_profile(self, model: str) -> LatencyProfile:
        return profile_for(model, self.latency_overrides)

    def plan(self, variant: str) -> Plan:
        """The resolved plan of ``variant``; raises ``KeyError`` naming the valid ones."""
        if variant not in self.variants:
            raise KeyError(
                f"scenario '{self.name}' has no variant '{variant}'; "
                f"valid: {', '.join(self.variants)}"
            )
        if variant not in self._plans:
            self._plans[variant] = Plan(self, variant)
        return self._plans[variant]

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<memory>") -> Scenario:
        """Validate ``data`` (parsed YAML); raises ``ScenarioError``."""
        if not isinstance(data, Mapping):
            raise ScenarioError(
                f"the top level must be a mapping, got {type(data).__name__}",
                file=source,
                fix="start the file with 'name:', 'steps:' and 'variants:' keys",
            )
        try:
            scenario = cls.model_validate(data)
        except ValidationError as exc:
            raise _scenario_error_from(exc, source, data) from None
        scenario._source = source
        _check_graph(scenario)
        return scenario


def _loc_to_field(loc: Iterable[Any], data: Any) -> str:
    """Turn a pydantic location into a field path a user can find: steps[2](draft).model."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            try:
                node = node[item]
                if isinstance(node, Mapping) and "id" in node:
                    label = f"[{item}](id={node['id']})"
            except (IndexError, KeyError, TypeError):
                node = None
            parts.append(label)
            continue
        item = str(item)
        if item in {"function-before[_from_yaml()]", "function-after[_fields_fit_kind()]"}:
            continue
        if item.startswith(("function-", "tagged-union", "union[")):
            continue
        parts.append(("." if parts else "") + item)
        node = node.get(item) if isinstance(node, Mapping) else None
    return "".join(parts) or "(top level)"


_FIXES = {
    "extra_forbidden": "remove it, or check its spelling against docs/scenarios.md",
    "missing": "add it",
    "literal_error": "use one of the values listed",
    "string_pattern_mismatch": "use letters, digits, '_', '-' and '.', starting with a letter",
    "greater_than_equal": "use a number at or above the limit",
    "greater_than": "use a number above the limit",
    "less_than_equal": "use a number at or below the limit",
    "too_short": "add at least one entry",
}


def _scenario_error_from(exc: ValidationError, source: str, data: Any) -> ScenarioError:
    errors = exc.errors(include_url=False)
    # A list whose items failed is also "too short" once they are dropped: not a problem
    # of its own, so it is neither reported nor counted.
    locs = [e["loc"] for e in errors]
    errors = [
        e
        for e in errors
        if e["type"] != "too_short"
        or not any(len(loc) > len(e["loc"]) and loc[: len(e["loc"])] == e["loc"] for loc in locs)
    ]
    first = errors[0]
    field = _loc_to_field(first["loc"], data)
    msg = first["msg"].removeprefix("Value error, ")
    kind = first["type"]
    if kind == "extra_forbidden":
        msg = "unknown field"
    fix = _FIXES.get(kind, "see docs/scenarios.md for the field's format")
    problem = first.get("ctx", {}).get("error")
    if isinstance(problem, _FieldProblem):
        if problem.field:
            field = problem.field if field == "(top level)" else f"{field}.{problem.field}"
        fix = problem.fix
    more = len(errors) - 1
    if more:
        msg += f" (and {more} more problem{'s' if more > 1 else ''} after this one)"
    return ScenarioError(msg, file=source, field=field, fix=fix)


def _check_graph(scenario: Scenario) -> None:
    """Cross-field checks pydantic cannot do: ids, dependencies, cycles, prices."""
    src = scenario.source
    seen: dict[str, int] = {}
    for i, step in enumerate(scenario.steps):
        if step.id in seen:
            raise ScenarioError(
                f"duplicate step id '{step.id}' (first used by steps[{seen[step.id]}])",
                file=src,
                field=f"steps[{i}].id",
                fix="give every step a unique id",
            )
        seen[step.id] = i
    if scenario.baseline_variant not in scenario.variants:
        raise ScenarioError(
            f"baseline variant '{scenario.baseline_variant}' is not among the variants "
            f"({', '.join(scenario.variants)})",
            file=src,
            field="baseline_variant",
            fix="name one of the variants, usually the sequential one",
        )
    for vname, variant in scenario.variants.items():
        base = f"variants.{vname}"
        for sid in variant.overrides:
            if sid not in seen:
                raise ScenarioError(
                    f"override for unknown step '{sid}'",
                    file=src,
                    field=f"{base}.overrides.{sid}",
                    fix=f"use one of the step ids: {', '.join(seen)}",
                )
        for sid in variant.remove_steps:
            if sid not in seen:
                raise ScenarioError(
                    f"remove_steps names unknown step '{sid}'",
                    file=src,
                    field=f"{base}.remove_steps",
                    fix=f"use one of the step ids: {', '.join(seen)}",
                )
        for j, step in enumerate(variant.add_steps):
            if step.id in seen and step.id not in variant.remove_steps:
                raise ScenarioError(
                    f"added step '{step.id}' has the id of an existing step",
                    file=src,
                    field=f"{base}.add_steps[{j}].id",
                    fix="pick a new id, or change the existing step under overrides",
                )
        try:
            plan = Plan(scenario, vname)
        except _OverrideProblem as problem:
            error = _scenario_error_from(problem.error, src, None)
            where = f"{base}.overrides.{problem.step_id}"
            field = error.field if error.field and error.field != "(top level)" else None
            raise ScenarioError(
                error.what,
                file=src,
                field=f"{where}.{field}" if field else where,
                fix=error.fix,
            ) from None
        for sid, step in plan.steps.items():
            where = _step_field(scenario, vname, sid, "depends_on")
            for dep in step.depends_on:
                if dep == sid:
                    raise ScenarioError(
                        f"step '{sid}' depends on itself",
                        file=src,
                        field=f"{where}.depends_on",
                        fix="remove it from its own depends_on",
                    )
                if dep not in plan.steps:
                    raise ScenarioError(
                        f"step '{sid}' depends on unknown step '{dep}'",
                        file=src,
                        field=f"{where}.depends_on",
                        fix=f"use one of the step ids: {', '.join(plan.steps)}",
                    )
            if step.kind == "llm":
                model = plan.model_of(step)
                cfg = scenario.models.get(model)
                if (cfg is None or cfg.price is None) and not known_price(model):
                    raise ScenarioError(
                        f"model '{model}' has no known price",
                        file=src,
                        field=(
                            f"{_step_field(scenario, vname, sid, 'model')}.model"
                            if step.model
                            else "defaults.model"
                        ),
                        fix=(
                            f"use a model genai-prices knows, or add models: {{{model}: "
                            "{price: {input_usd_per_mtok: X, output_usd_per_mtok: Y}}}"
                        ),
                    )
        cycle = dag.find_cycle(plan.deps)
        if cycle:
            # Point at the edge this variant added, if it added one: that is where to look.
            culprit = next(
                (s for s in cycle if _overrides(scenario, vname, s, "depends_on")), cycle[0]
            )
            raise ScenarioError(
                "dependency cycle: " + " → ".join([*cycle, cycle[0]]),
                file=src,
                field=f"{_step_field(scenario, vname, culprit, 'depends_on')}.depends_on",
                fix="remove one of these dependencies so the steps form a DAG",
            )
        scenario._plans[vname] = plan


def _overrides(scenario: Scenario, variant: str, sid: str, attr: str) -> bool:
    override = scenario.variants[variant].overrides.get(sid)
    return override is not None and getattr(override, attr) is not None


def _step_field(scenario: Scenario, variant: str, sid: str, attr: str | None = None) -> str:
    """Where the user wrote step ``sid`` — or ``variant``'s override of its ``attr``."""
    if attr is not None and _overrides(scenario, variant, sid, attr):
        return f"variants.{variant}.overrides.{sid}"
    for i, step in enumerate(scenario.steps):
        if step.id == sid:
            return f"steps[{i}](id={sid})"
    for j, step in enumerate(scenario.variants[variant].add_steps):
        if step.id == sid:
            return f"variants.{variant}.add_steps[{j}](id={sid})"
    return f"steps(id={sid})"


def is_file(path: Path) -> bool:
    """``path.is_file()``, but False for a name the system refuses (too long, a NUL byte)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def resolve_scenario_path(name_or_path: str | Path) -> Path:
    """A scenario file from a path or a bundled scenario's name."""
    path = Path(name_or_path)
    if is_file(path):
        return path
    for candidate in (BUNDLED_DIR / f"{name_or_path}.yaml", BUNDLED_DIR / str(name_or_path)):
        if is_file(candidate):
            return candidate
    names = ", ".join(bundled_scenarios()) or "(none found)"
    raise ScenarioError(
        "no such scenario file or bundled scenario",
        file=str(name_or_path) or "''",
        fix=f"give the path of a YAML file, or one of the bundled names: {names}",
    )


def bundled_scenarios() -> list[str]:
    """Names of the scenarios shipped in scenarios/."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.yaml") if not p.name.endswith(".budget.yaml"))


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, made strict where it is silent or crashes.

    A key written twice in one mapping is an error (PyYAML keeps the last one and
    drops the other without a word), and a value its tag cannot hold (``2001-13-45``
    read as a date, ``!!int x``) is a ``yaml.YAMLError`` with its line and column
    rather than a bare ``ValueError``.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
            shown = short_repr(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            kind = str(node.tag).rpartition(":")[2] or "its type"
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"cannot read {shown} as {kind} ({exc}); quote it to keep it as text",
                node.start_mark,
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"the key {short_repr(key)} is written twice",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml_file(path: Path, error: type[ScenarioError] = ScenarioError) -> Any:
    """Parse a YAML file; any problem raises ``error`` naming the file and the fix.

    Shared by scenario and budget files, which report problems the same way. A key
    written twice in a mapping is refused, not silently overwritten.
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error("no such file", file=source, fix="check the path") from None
    except UnicodeDecodeError as exc:
        raise error(
            f"not UTF-8 text (byte {exc.start})", file=source, fix="save the file as UTF-8"
        ) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise error(
            f"cannot read: {getattr(exc, 'strerror', None) or exc}",
            file=source,
            fix="check the path and its permissions",
        ) from None
    try:
        return yaml.load(text, Loader=_YamlLoader)  # a SafeLoader: builds no Python objects
    except RecursionError:
        raise error(
            "invalid YAML: nested too deeply to read",
            file=source,
            fix="a scenario or budget nests a few levels; check the brackets and indentation",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(
            f"invalid YAML{where}: {problem}",
            file=source,
            fix="fix the YAML syntax (indentation, colons, quotes; each key once per mapping)",
        ) from None


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Read and validate a scenario file; raises ``ScenarioError`` with file, field and fix."""
    path = resolve_scenario_path(name_or_path)
    return Scenario.from_dict(read_yaml_file(path), source=str(path))
