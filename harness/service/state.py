"""What one service process owns: scenarios, executors, the provider, telemetry, admission.

Built once, before the server binds, so a bad scenario or a missing API key
fails the command instead of the first request. Everything here is used from
the server's event loop only (one thread), so the admission counter needs no
lock: the check and the increment happen without an ``await`` between them.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
from typing import Any

from prometheus_client import CollectorRegistry

from harness.errors import ConfigError
from harness.executor import Executor
from harness.latency import LatencyProfile
from harness.providers.base import LlmProvider
from harness.providers.config import ProviderConfig, build_provider
from harness.scenario import Scenario
from harness.service.config import ServiceConfig, load_service_scenarios
from harness.telemetry import Telemetry
from harness.telemetry.metrics import Metrics

__all__ = ["RequestError", "ServiceState"]

_log = logging.getLogger(__name__)


class RequestError(Exception):
    """A request the service refuses, answered as ``{"error": {...}}`` JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        valid: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.valid = valid
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "field": self.field}
        if self.valid is not None:
            error["valid"] = self.valid
        return {"error": error}


def _merged_profiles(scenarios: dict[str, Scenario]) -> dict[str, LatencyProfile]:
    """Every scenario's latency overrides for one shared HTTP simulator."""
    merged: dict[str, LatencyProfile] = {}
    owner: dict[str, str] = {}
    for name, scenario in scenarios.items():
        for model, profile in scenario.latency_overrides.items():
            if model in merged and merged[model] != profile:
                raise ConfigError(
                    f"scenarios '{owner[model]}' and '{name}' give model '{model}' different "
                    "latencies, and one HTTP simulator serves them all",
                    where="provider",
                    fix="use the in-process 'simulated' provider (each call carries its "
                    "scenario's latency), or give the model the same latency in both",
                )
            merged[model] = profile
            owner[model] = name
    return merged


class ServiceState:
    """The service's long-lived parts; ``app.state.service`` in the ASGI app.

    One provider serves every scenario (one connection pool, one set of
    client-side limits, one HTTP simulator), as one provider account serves a
    real product. The in-process simulated provider needs nothing per
    scenario: every call carries its scenario's latency profile.
    """

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.scenarios = load_service_scenarios(config)
        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics = Metrics(self.registry)
        self.telemetry = Telemetry(
            spans_path=config.spans_path, metrics=self.metrics, service_name="parabench-service"
        )
        self._simulator: Any = None
        self._closed = False
        try:
            self.provider = self._open_provider(config.provider)
            self.executors = {
                name: Executor(
                    scenario,
                    telemetry=self.telemetry,
                    provider=self.provider,
                    time_scale=config.time_scale,
                )
                for name, scenario in self.scenarios.items()
            }
        except BaseException:
            self.close()
            raise
        self.active_runs = 0
        self.shutting_down = False
        #: The tasks serving ``POST /v1/runs`` right now (awaited by ``drain`` on shutdown).
        self.requests: set[asyncio.Task[Any]] = set()
        self._run_index = itertools.count()
        key = config.api_key.get_secret_value() if config.api_key else None
        self._expected_auth = f"Bearer {key}".encode() if key else None

    def _open_provider(self, config: ProviderConfig) -> LlmProvider:
        provider, self._simulator = build_provider(
            config, _merged_profiles(self.scenarios), time_scale=self.config.time_scale
        )
        return provider

    @property
    def simulator_url(self) -> str | None:
        """The built-in simulator's base URL when the provider kind is ``simulator``."""
        return self._simulator.url if self._simulator is not None else None

    def next_run_index(self) -> int:
        """A fresh run index: requests without a seed draw different runs."""
        return next(self._run_index)

    def check_auth(self, authorization: str | None) -> None:
        """Raise a 401 ``RequestError`` unless the bearer token matches (when one is set)."""
        if self._expected_auth is None:
            return
        if not authorization:
            raise RequestError(
                401,
                "this service requires a bearer token: send 'Authorization: Bearer <api_key>'",
                field="Authorization",
                headers={"www-authenticate": "Bearer"},
            )
        if not hmac.compare_digest(authorization.encode(), self._expected_auth):
            raise RequestError(
                401,
                "wrong bearer token",
                field="Authorization",
                headers={"www-authenticate": 'Bearer error="invalid_token"'},
            )

    def describe(self) -> list[dict[str, Any]]:
        """What ``GET /v1/scenarios`` lists: scenarios, variants, card steps."""
        out = []
        for name, scenario in self.scenarios.items():
            variants = []
            for variant, spec in scenario.variants.items():
                plan = scenario.plan(variant)
                variants.append(
                    {
                        "name": variant,
                        "mode": plan.mode,
                        "max_concurrency": plan.max_concurrency,
                        "description": spec.description,
                        "steps": list(plan.order),
                        "card_steps": plan.card_steps,
                        "cards_expected": len(plan.card_steps),
                    }
                )
            out.append(
                {
                    "name": name,
                    "description": scenario.description,
                    "baseline_variant": scenario.baseline_variant,
                    "value_of_time_usd_per_s": scenario.value_of_time_usd_per_s,
                    "variants": variants,
                }
            )
        return out

    def begin_shutdown(self) -> None:
        """Refuse new runs and cancel the runs in progress.

        Each open stream then ends with what its run did: ``run.failed`` for a
        cancelled run, its own final event for a run that had just finished.
        """
        self.shutting_down = True
        for executor in self.executors.values():
            executor.cancel_runs()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait (at most ``timeout_s``) for every run request to end, after ``begin_shutdown``.

        Runs end their spans as they are cancelled; closing the telemetry before
        they have would lose those spans. Uvicorn stops waiting for requests after
        its graceful timeout and cancels them without waiting: this wait is ours.
        """
        if not self.shutting_down:  # a second cancel would cut a stream's run.failed short
            self.begin_shutdown()
        pending = [task for task in self.requests if not task.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout_s)
            if late:
                _log.warning("%d run request(s) still open at shutdown", len(late))

    async def aclose(self) -> None:
        """Release the provider's connections (inside the loop that used them)."""
        try:
            await self.provider.aclose()
        except Exception:
            _log.exception("closing the provider failed")

    def close(self) -> None:
        """Stop the built-in simulator and flush spans; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._simulator is not None:
            self._simulator.stop()
            self._simulator = None
        self.telemetry.shutdown()
