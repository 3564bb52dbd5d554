"""Loading a pydantic settings model from inline JSON or a JSON file, plus overrides.

The simulator (``parabench simulator``) and the agent service (``parabench
serve``) read their settings the same way: ``--config`` is either a JSON
object or the path of a file holding one, and command-line options override
single fields::

    config = load_json_settings(
        ServiceConfig,
        '{"port": 0}',
        {"time_scale": 0.05, "host": None},
        what="service",
        example='{"port": 8000}',
        reference="harness.service.ServiceConfig",
    )

Every problem (unreadable file, bad JSON, not an object, a field out of range)
is a ``ConfigError`` naming where it is and how to fix it. Only pydantic is
imported here, so ``import harness`` stays light.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from harness.errors import ConfigError

__all__ = ["load_json_settings"]

_Model = TypeVar("_Model", bound=BaseModel)


def load_json_settings(
    model_cls: type[_Model],
    source: str | None,
    overrides: Mapping[str, object],
    *,
    what: str,
    example: str,
    reference: str,
) -> _Model:
    """Build ``model_cls`` from ``source`` (inline JSON, a JSON file or None), then ``overrides``.

    ``source`` starting with ``{`` is inline JSON, anything else a file path;
    None (or empty) starts from the model's defaults. Overrides whose value is
    None are ignored, so command-line options left unset keep the file's value;
    the others replace the field whole (a nested dict is not merged).

    ``what`` names the settings in messages ("the {what} config"); ``example``
    is a one-field JSON object shown in the fix for a non-object; ``reference``
    is where the fields are documented (e.g. ``harness.simulator.SimulatorConfig``).
    Raises ``ConfigError`` naming ``--config`` or the file, the field and its problem.
    """
    data: dict[str, object] = {}
    where = "--config"
    if source:
        text = source
        if not source.lstrip().startswith("{"):
            where = source
            try:
                text = Path(source).read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(
                    f"the {what} config is not UTF-8 text (byte {exc.start})",
                    where=source,
                    fix="save the file as UTF-8 JSON",
                ) from exc
            except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
                raise ConfigError(
                    f"cannot read the {what} config: {getattr(exc, 'strerror', None) or exc}",
                    where=source,
                    fix="pass an existing JSON file or an inline JSON object",
                ) from exc
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"the {what} config is not valid JSON: {exc.msg} (line {exc.lineno})",
                where=where,
                fix=f"write one JSON object with {model_cls.__name__} fields",
            ) from exc
        except (ValueError, RecursionError) as exc:  # a 5000-digit number; [[[[... nested deep
            raise ConfigError(
                f"the {what} config cannot be read as JSON: {str(exc)[:80]}",
                where=where,
                fix=f"write one JSON object with {model_cls.__name__} fields",
            ) from exc
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"the {what} config must be a JSON object",
                where=where,
                fix=f"wrap the settings in {{...}}, e.g. {example}",
            )
        data.update(loaded)
    data.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'config'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(
            f"invalid {what} config: {problems}",
            where=where,
            fix=f"see {reference} for the fields and their ranges",
        ) from exc
