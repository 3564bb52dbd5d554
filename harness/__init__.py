"""parabench: measure where an AI agent's time goes and what parallel steps cost.

``import harness`` stays light; the server stack, Locust, pandas and plotly load
only in the commands that need them.
"""

from __future__ import annotations

from harness.errors import (
    ConfigError,
    ParabenchError,
    ProviderError,
    RateLimitedError,
    ScenarioError,
    TraceDataError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ParabenchError",
    "ProviderError",
    "RateLimitedError",
    "ScenarioError",
    "TraceDataError",
    "__version__",
]
