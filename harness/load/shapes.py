"""Load shapes: how many concurrent users (= runs in flight) a test asks for over time.

Every parabench user runs one agent run after another with no think time, so
the user count *is* the number of concurrent runs the service is asked to
carry. Three shapes, selected by name (``--shape``):

``constant``
    ``users`` users, reached at ``spawn_rate`` per second, for ``duration_s``
    (or until Locust's ``--run-time`` or Ctrl-C).
``step``
    a step ramp: ``step_users`` users, then ``2 × step_users`` …, one step
    every ``hold_s`` seconds, up to ``users``; the last level is held for
    ``hold_s`` too, then the test ends.
``sweep``
    a concurrency sweep over explicit ``levels`` (e.g. 1, 2, 4, 8, 16), each
    held for ``hold_s`` seconds, then the test ends. Each sample records the
    level in force when it was sent, so latency can be plotted against
    concurrency.

The schedules here are plain Python (``tick(t) -> (users, spawn_rate) | None``),
so they are tested without Locust; ``harness/load/locustfile.py`` wraps the
chosen one in a single ``LoadTestShape`` subclass, ``ParabenchShape``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.errors import ConfigError

__all__ = [
    "SHAPES",
    "ConcurrencySweep",
    "ConstantUsers",
    "LoadSchedule",
    "StepRamp",
    "make_schedule",
    "parse_levels",
]

SHAPES = ("constant", "step", "sweep")


@dataclass(frozen=True)
class ConstantUsers:
    """A fixed number of users, optionally for a fixed time."""

    users: int
    spawn_rate: float
    duration_s: float | None = None

    def tick(self, run_time_s: float) -> tuple[int, float] | None:
        if self.duration_s is not None and run_time_s >= self.duration_s:
            return None
        return self.users, self.spawn_rate

    @property
    def total_s(self) -> float | None:
        return self.duration_s

    @property
    def levels(self) -> list[int]:
        return [self.users]


@dataclass(frozen=True)
class ConcurrencySweep:
    """Each level of users in turn, each held for ``hold_s`` seconds."""

    levels: tuple[int, ...]
    hold_s: float
    spawn_rate: float

    def tick(self, run_time_s: float) -> tuple[int, float] | None:
        index = math.floor(max(run_time_s, 0.0) / self.hold_s)
        if index >= len(self.levels):
            return None
        return self.levels[index], self.spawn_rate

    @property
    def total_s(self) -> float:
        return self.hold_s * len(self.levels)


class StepRamp(ConcurrencySweep):
    """``step_users``, ``2 × step_users`` … up to ``max_users``, one step every ``hold_s``."""

    def __init__(self, step_users: int, max_users: int, hold_s: float, spawn_rate: float) -> None:
        count = math.ceil(max_users / step_users)
        levels = tuple(min(step_users * (i + 1), max_users) for i in range(count))
        super().__init__(levels=levels, hold_s=hold_s, spawn_rate=spawn_rate)


LoadSchedule = ConstantUsers | ConcurrencySweep


def parse_levels(spec: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,2,4,8"`` → ``(1, 2, 4, 8)``; every level a positive integer."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    levels: list[int] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(
                f"concurrency level '{text}' is not a positive whole number",
                where="--levels",
                fix="give levels as comma-separated user counts, e.g. 1,2,4,8",
            )
        levels.append(int(text))
    if not levels:
        raise ConfigError(
            "the sweep has no levels", where="--levels", fix="give e.g. --levels 1,2,4,8"
        )
    return tuple(levels)


def make_schedule(
    shape: str,
    *,
    users: int,
    spawn_rate: float | None = None,
    duration_s: float | None = None,
    levels: str | Sequence[int] | None = None,
    hold_s: float | None = None,
    step_users: int | None = None,
) -> LoadSchedule:
    """The schedule a shape name and its options describe, or a ConfigError saying what to fix.

    Without ``spawn_rate``, a constant test starts all users in about a second
    and a step or sweep reaches each new level in about a second.
    """
    if shape not in SHAPES:
        raise ConfigError(
            f"unknown load shape '{shape}'", where="--shape", fix=f"use one of: {', '.join(SHAPES)}"
        )
    if spawn_rate is not None and spawn_rate <= 0:
        raise ConfigError(
            f"spawn rate {spawn_rate} is not positive",
            where="--spawn-rate",
            fix="give users started per second, e.g. 10",
        )
    if shape == "constant":
        if users < 1:
            raise ConfigError(
                f"{users} users", where="--users", fix="give at least one user, e.g. --users 10"
            )
        return ConstantUsers(users, spawn_rate or float(users), duration_s)
    if hold_s is None or hold_s <= 0:
        raise ConfigError(
            f"the {shape} shape needs a positive hold time per level",
            where="--hold",
            fix="give seconds per level, e.g. --hold 10",
        )
    if shape == "sweep":
        parsed = parse_levels(levels or "")
        jump = max(b - a for a, b in itertools.pairwise((0, *parsed)))
        return ConcurrencySweep(parsed, hold_s, spawn_rate or float(max(jump, 1)))
    if step_users is None or step_users < 1 or users < step_users:
        raise ConfigError(
            f"a step ramp of {step_users} users per step up to {users} users",
            where="--step-users",
            fix="give a positive --step-users no larger than --users",
        )
    return StepRamp(step_users, users, hold_s, spawn_rate or float(step_users))
