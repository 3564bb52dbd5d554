"""The exceptions parabench raises on purpose.

Every error says what was wrong, where (file, field, span id) and how to fix
it, so the command line can print it as is and exit non-zero::

    ParabenchError                 base class; ``exit_code`` 2 (bad input)
    ├── ScenarioError              a scenario file is invalid
    │   └── BudgetError            a budget file (``*.budget.yaml``) is invalid
    ├── ConfigError                a setting or command-line value is invalid
    ├── TraceDataError             a trace file cannot be read at all
    ├── StageError                 a stage of ``parabench demo`` failed or was interrupted
    └── ProviderError              an LLM or tool call failed (one attempt)
        └── RateLimitedError       the provider answered 429; may carry Retry-After

Telemetry never raises into the code it observes: exporters and metric
updates log and drop instead (see ``harness.telemetry``).
"""

from __future__ import annotations

__all__ = [
    "BudgetError",
    "ConfigError",
    "ParabenchError",
    "ProviderError",
    "RateLimitedError",
    "ScenarioError",
    "StageError",
    "TraceDataError",
]


class ParabenchError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""

    exit_code = 2

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = [f"{self.where}: {self.what}" if self.where else self.what]
        if self.fix:
            parts.append(f"  fix: {self.fix}")
        return "\n".join(parts)


class ScenarioError(ParabenchError):
    """A scenario file is invalid: unreadable, malformed, or an impossible DAG."""

    def __init__(
        self, what: str, *, file: str, field: str | None = None, fix: str | None = None
    ) -> None:
        self.file = file
        self.field = field
        where = f"{file}: field '{field}'" if field else file
        super().__init__(what, where=where, fix=fix)


class BudgetError(ScenarioError):
    """A budget file is invalid: malformed, or naming variants or steps its scenario lacks.

    A budget belongs to its scenario (``NAME.budget.yaml`` next to ``NAME.yaml``),
    so it is reported the same way: the file, the field and the fix.
    """


class ConfigError(ParabenchError):
    """A setting, environment variable or command-line value is invalid."""


class TraceDataError(ParabenchError):
    """A trace file cannot be read at all (a bad line is a finding, not an error)."""


class StageError(ParabenchError):
    """A stage of a job that starts servers and a load (``parabench demo``) failed.

    ``stage`` names it. ``exit_code`` is 1, or 130 when the user interrupted
    it (Ctrl-C), as a shell reports a job ended by SIGINT. The message says
    where the outputs collected so far are.
    """

    def __init__(
        self,
        what: str,
        *,
        stage: str,
        interrupted: bool = False,
        where: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.stage = stage
        self.interrupted = interrupted
        self.exit_code = 130 if interrupted else 1
        super().__init__(what, where=where, fix=fix)


class ProviderError(ParabenchError):
    """One attempt of an LLM or tool call failed.

    ``error_type`` is the low-cardinality name recorded as ``error.type`` on
    the operation span and as a metric label (``timeout``, ``http_500``,
    ``disconnect`` ...). ``retryable`` tells the retry loop whether another
    attempt can help.
    """

    exit_code = 1

    def __init__(
        self,
        what: str,
        *,
        error_type: str,
        retryable: bool = True,
        where: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.error_type = error_type
        self.retryable = retryable
        super().__init__(what, where=where, fix=fix)


class RateLimitedError(ProviderError):
    """The provider answered 429; ``retry_after_s`` is its Retry-After, if any."""

    def __init__(self, what: str, *, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(what, error_type="rate_limited", retryable=True)
