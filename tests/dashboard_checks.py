"""Reading the shipped dashboard and rules, and the PromQL facts tests check about them.

Import as ``from dashboard_checks import ...`` (like ``helpers``). Queries are
taken from the committed files, never from ``dashboards/build.py``, so the
tests check what users get.

``selectors`` is a small PromQL lexer, not a parser: it finds each series
selector with its label matchers, whether it is ranged, and the function it
sits directly in. ``promtool check rules`` (a real parser) checks the syntax.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"
DASHBOARD_JSON = DASHBOARDS / "grafana" / "parabench.json"
RULES_DIR = DASHBOARDS / "prometheus" / "rules"
RECORDING_RULES = RULES_DIR / "recording.yml"
ALERT_RULES = RULES_DIR / "alerts.yml"

#: Counters and the counter-like parts of histograms: only meaningful under rate().
COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
#: Series Prometheus makes itself for every target.
SYNTHETIC_SERIES = {"up"}


@dataclass(frozen=True)
class Query:
    """One PromQL query of the dashboard: a panel target or a variable's selector."""

    where: str
    expr: str
    exemplar: bool = False


@dataclass(frozen=True)
class Selector:
    """A series selector inside an expression."""

    name: str
    matchers: dict[str, str]
    ranged: bool
    #: The function whose argument list the selector sits in directly, if any.
    function: str | None


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))


def data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that shows data (rows are only headings), collapsed rows included."""
    out = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def panel_queries(dashboard: dict[str, Any]) -> list[Query]:
    return [
        Query(f"panel '{p['title']}' {t['refId']}", t["expr"], bool(t.get("exemplar")))
        for p in data_panels(dashboard)
        for t in p["targets"]
    ]


_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(variable, selector, label) of each ``label_values`` variable."""
    out = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text)
        assert match, f"variable '{variable['name']}': not a label_values query: {text}"
        out.append((variable["name"], match["selector"], match["label"]))
    return out


def variable_names(dashboard: dict[str, Any]) -> set[str]:
    return {variable["name"] for variable in dashboard["templating"]["list"]}


def substitute(expr: str, rate_interval: str, values: dict[str, str] | None = None) -> str:
    """Grafana's macros and the dashboard's variables replaced, for Prometheus to run.

    Variables take ``values`` or else ``.*`` (Grafana's "All" here). Like Grafana,
    a ``$name`` that is no variable stays as it is (``"$1"`` in label_replace).
    """
    expr = (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$__interval", "15s")
        .replace("$__range", "1h")
    )
    values = {**dict.fromkeys(variable_names(load_dashboard()), ".*"), **(values or {})}

    def value(match: re.Match[str]) -> str:
        return values.get(match["name"], match[0])

    return re.sub(r"\$\{?(?P<name>[a-zA-Z_]\w*)\}?", value, expr)


def rules(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules(RECORDING_RULES)}


def rule_queries() -> list[Query]:
    return [
        Query(f"rule {rule.get('record') or rule['alert']}", rule["expr"])
        for path in (RECORDING_RULES, ALERT_RULES)
        for rule in rules(path)
    ]


def level_labels(record: str) -> set[str]:
    """The labels a ``level:metric:operations`` name promises (its level part)."""
    return set(record.split(":")[0].split("_"))


# ---------------------------------------------------------------- the lexer

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    |(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    |(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z]*)
    |(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    |(?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],@])
    """,
    re.VERBOSE,
)
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise ValueError(f"cannot read {expr[pos : pos + 20]!r} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "ws":
            out.append((kind, match.group()))
        pos = match.end()
    return out


def selectors(expr: str) -> list[Selector]:
    """Every series selector of an expression (macros already substituted)."""
    tokens = _tokens(expr)
    found: list[Selector] = []
    calls: list[str | None] = []  # one entry per open parenthesis
    pending: str | None = None  # a function or aggregation whose "(" comes next
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "ident" and text in _LABEL_LISTS:
            i += 1
            if following == "(":
                i = tokens.index(("op", ")"), i) + 1
            continue
        if kind == "ident" and (following == "(" or text in _AGGREGATIONS):
            pending = text
        elif kind == "ident" and text not in _KEYWORDS:
            matchers: dict[str, str] = {}
            i += 1
            if i < len(tokens) and tokens[i][1] == "{":
                i += 1
                while tokens[i][1] != "}":
                    if tokens[i][1] == ",":
                        i += 1
                        continue
                    label, _, value = tokens[i], tokens[i + 1], tokens[i + 2]
                    matchers[label[1]] = value[1][1:-1]
                    i += 3
                i += 1
            ranged = i < len(tokens) and tokens[i][1] == "["
            if ranged:
                i = tokens.index(("op", "]"), i) + 1
            found.append(Selector(text, matchers, ranged, calls[-1] if calls else None))
            continue
        elif text == "(":
            calls.append(pending)
            pending = None
        elif text == ")":
            calls.pop()
        elif text == "[":  # a subquery's range
            i = tokens.index(("op", "]"), i)
        i += 1
    return found


# ---------------------------------------------------------------- promtool


def promtool_parses(promtool: str, queries: list[Query], tmp_path: Path) -> list[str]:
    """Problems `promtool check rules` finds in the queries (macros substituted); [] if none."""
    group = {
        "name": "dashboard-queries",
        "rules": [
            {"record": f"parabench_check_{n}", "expr": substitute(q.expr, "5m")}
            for n, q in enumerate(queries)
        ],
    }
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [group]}), encoding="utf-8")
    check = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    if check.returncode == 0:
        return []
    output = check.stdout + check.stderr
    # promtool names each failing rule by its record name: say which query that is.
    named = [
        f"{q.where}: {q.expr}" for n, q in enumerate(queries) if f'"parabench_check_{n}"' in output
    ]
    return [*named, output]


def iter_selectors(queries: list[Query]) -> Iterator[tuple[Query, Selector]]:
    for query in queries:
        for selector in selectors(substitute(query.expr, "5m")):
            yield query, selector
