"""Settings of the agent service (``parabench serve``), and loading its scenarios.

One pydantic model, ``ServiceConfig``; unknown fields are refused so a typo
fails loudly::

    config = ServiceConfig(port=0, time_scale=0.05, max_in_flight=500)
    config = ServiceConfig(scenarios=("research_assistant", "my/agent.yaml"))

Decisions worth knowing:

* ``spans_path`` defaults to None: a long-lived service writes no span file
  unless asked (the standard ``OTEL_EXPORTER_OTLP_*`` variables still export
  to a collector). ``parabench serve`` / ``parabench demo`` pass a path under
  ``reports/`` when they want the traces for analysis.
* The service listens on loopback unless ``host`` says otherwise; ``api_key``
  guards ``/v1/*`` (the page, ``/healthz`` and ``/metrics`` stay open).
* One provider serves every scenario, as one provider account serves a real
  product: its connection pool and client-side limits are shared.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from harness.errors import ConfigError
from harness.providers.config import ProviderConfig
from harness.scenario import Scenario, bundled_scenarios, load_scenario
from harness.settings import load_json_settings

__all__ = ["DEFAULT_PAGE_SCENARIO", "ServiceConfig", "load_config", "load_service_scenarios"]

#: The scenario the demo page (``GET /``) opens with, when it is loaded.
DEFAULT_PAGE_SCENARIO = "research_assistant"


class ServiceConfig(BaseModel):
    """Where the service listens, what it runs, and how it protects itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="interface to bind; loopback by default")
    port: int = Field(8000, ge=0, le=65535, description="TCP port; 0 picks a free one")
    scenarios: tuple[str, ...] = Field(
        (), description="scenario files or bundled names; empty with no scenarios_dir: all bundled"
    )
    scenarios_dir: Path | None = Field(
        None, description="also load every *.yaml in this directory (not *.budget.yaml)"
    )
    provider: ProviderConfig = Field(
        default_factory=ProviderConfig,
        description="simulated (in process), simulator (built-in HTTP simulator) or openai",
    )
    time_scale: float = Field(
        1.0, gt=0, le=100, description="multiplier on every simulated wait (0.05: 20× faster)"
    )
    spans_path: Path | None = Field(None, description="OTLP JSON lines file; None writes none")
    max_in_flight: int = Field(
        2000, ge=1, description="runs at once; beyond it POST /v1/runs answers 503 at once"
    )
    retry_after_s: int = Field(1, ge=0, description="Retry-After of a 503, in seconds")
    keepalive_s: float | None = Field(
        15.0, gt=0, description="send ': keep-alive' after this much silence; None: never"
    )
    # A SecretStr, so the key never shows in a repr or a log line.
    api_key: SecretStr | None = Field(None, description="bearer token required on /v1/* when set")
    max_body_bytes: int = Field(64 * 1024, ge=1, description="larger request bodies get 413")
    gc_threshold: int | None = Field(
        50_000,
        ge=1,
        description="generation-0 garbage-collection threshold of a `parabench serve` process "
        "(None: Python's default, 700); thousands of live runs make frequent collections "
        "the service's main source of added latency (docs/benchmarks.md)",
    )
    seed: int = Field(
        0, ge=0, le=0xFFFFFFFF, description="seed of runs whose request names no seed"
    )


def load_config(source: str | None = None, **overrides: object) -> ServiceConfig:
    """Build a config from inline JSON or a JSON file, then apply ``overrides``.

    Overrides set to None are ignored, so command-line options left unset keep
    the file's value. Raises ``ConfigError`` naming the field and its problem.
    """
    return load_json_settings(
        ServiceConfig,
        source,
        overrides,
        what="service",
        example='{"port": 8000}',
        reference="harness.service.ServiceConfig",
    )


def _scenario_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ConfigError(
            f"'{directory}' is not a directory",
            where="scenarios_dir",
            fix="point it at a directory of scenario YAML files",
        )
    files = sorted(
        p for p in directory.glob("*.yaml") if p.is_file() and not p.name.endswith(".budget.yaml")
    )
    if not files:
        raise ConfigError(
            f"no scenario files (*.yaml) in '{directory}'",
            where="scenarios_dir",
            fix="add scenario files there, or name scenarios one by one",
        )
    return files


def load_service_scenarios(config: ServiceConfig) -> dict[str, Scenario]:
    """The scenarios the service runs, by name; raises ``ScenarioError`` / ``ConfigError``.

    Two files defining the same scenario name are refused: a request names a
    scenario, so the name must say which one it gets.
    """
    sources: list[str | Path] = list(config.scenarios)
    if config.scenarios_dir is not None:
        sources.extend(_scenario_files(config.scenarios_dir))
    if not sources:
        sources.extend(bundled_scenarios())
    if not sources:
        raise ConfigError(
            "no scenarios to serve: none named and no bundled scenarios found",
            where="scenarios",
            fix="name scenario files, or set scenarios_dir",
        )
    loaded: dict[str, Scenario] = {}
    for source in sources:
        scenario = load_scenario(source)
        if scenario.name in loaded and loaded[scenario.name].source != scenario.source:
            raise ConfigError(
                f"two scenarios are named '{scenario.name}': "
                f"{loaded[scenario.name].source} and {scenario.source}",
                where="scenarios",
                fix="rename one of them (the 'name:' field) or serve only one",
            )
        loaded[scenario.name] = scenario
    return loaded
