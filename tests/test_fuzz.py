"""Property-based fuzzing of bad input: trace files, scenario files, budget files, settings.

Each reader either accepts its input or rejects it with a ``ParabenchError`` whose
message says what is wrong and where (trace ingest may instead report a
data-quality finding, which also says where). Nothing else may escape: no
``ValueError``, ``KeyError``, ``RecursionError``, YAML or pydantic error.

Inputs are random bytes and text, random JSON and YAML documents, and
structure-aware mutations of valid files (what the harness writes, a Jaeger
download, the bundled scenarios and budgets). The default run is quick and the
same every time (a fixed seed); ``PARABENCH_FUZZ_EXAMPLES=2000`` (examples per
test) makes a longer hunt with fresh random examples.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import parabench
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from harness.analysis.audit import analyze_files
from harness.analysis.console import print_analysis
from harness.analysis.ingest import SPAN_COLUMNS, read_spans
from harness.errors import BudgetError, ConfigError, ParabenchError, ScenarioError, TraceDataError
from harness.gate.budget import Budget, load_budget
from harness.scenario import BUNDLED_DIR, Dist, Scenario, load_scenario
from harness.settings import load_json_settings
from harness.telemetry.otlp_file import spans_to_otlp_json

DATA = Path(__file__).parent / "data"
SCENARIOS = sorted(p for p in BUNDLED_DIR.glob("*.yaml") if not p.name.endswith(".budget.yaml"))
BUDGETS = sorted(BUNDLED_DIR.glob("*.budget.yaml"))

#: ``PARABENCH_FUZZ_EXAMPLES``: examples per test for a long run (the default run is quick).
LONG = int(os.environ.get("PARABENCH_FUZZ_EXAMPLES") or 0)

#: Every data-quality finding ``harness.analysis.ingest`` documents.
FINDINGS = {
    "undecodable_bytes",
    "truncated_or_invalid_json",
    "not_trace_json",
    "malformed_span",
    "malformed_attribute",
    "malformed_event",
    "duplicate_span_id",
    "orphan_span",
    "trace_without_root",
    "end_before_start",
    "child_outside_parent",
    "no_spans_in_file",
    "unreadable_file",
}


def fuzz(default: int, *, long: int | None = None) -> settings:
    """Hypothesis settings: ``default`` examples from a fixed seed (the same ones every run,
    as every test here), or for a long run its count of fresh random ones."""
    wanted = long if long is not None else LONG
    fixed: dict[str, Any] = {} if wanted > default else {"derandomize": True, "database": None}
    return settings(
        max_examples=max(default, wanted),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **fixed,
    )


# --- values -------------------------------------------------------------------------------

_HUGE_INTS = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**30, -(10**400), -1, 0]
_ODD_TEXT = [
    "",
    " ",
    "NaN",
    "nan",
    "inf",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e-400",
    "-1",
    "+7",
    "0x10",
    "１２３",  # fullwidth digits
    "²",  # a digit to isdigit(), not to int()
    "٣",  # Arabic-Indic three
    "\u202etxt",  # right-to-left override
    "💥",
    "\x00",
    "a\x00b",
    "\n",
    "[bold red]x[/]",
    "{",
    "null",
    "true",
    "a" * 300,
    "9" * 5000,
    "Ω" * 70,
]
_FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [1e308, -1e308, 5e-324, -0.0, 1e19, 9.3e18, -9.3e18, 0.5]
)
#: Scalars JSON can hold (no NaN or infinity: ``json.dumps`` would write invalid JSON).
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(_HUGE_INTS)
    | _FLOATS
    | st.text(max_size=20)
    | st.sampled_from(_ODD_TEXT)
)


def json_values(keys: list[str], leaves: st.SearchStrategy[Any] = json_scalars) -> Any:
    """Nested JSON whose object keys are sometimes ones the reader looks for."""
    key = st.text(max_size=10) | st.sampled_from(keys)
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=4),
        max_leaves=10,
    )


# --- structure-aware mutation of a JSON/YAML tree ---------------------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _retype(value: Any) -> Any:
    """The same value as another JSON type: 12 → "12", "12" → 12, [x] → {"0": x} ..."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return [value]
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return 0


_OPS = ["replace", "replace", "delete", "add_key", "duplicate", "retype", "wrap", "negate"]


@st.composite
def mutated(
    draw: st.DrawFn, base: Any, values: st.SearchStrategy[Any], keys: list[str], most: int = 4
) -> Any:
    """``base`` with 1..``most`` random edits at random places: replaced, deleted, added ..."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, most))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(_OPS))
        if not path:
            if op == "replace":
                doc = draw(values)
            continue
        parent, last = _get(doc, path[:-1]), path[-1]
        if op == "replace":
            parent[last] = draw(values)
        elif op == "delete":
            del parent[last]
        elif op == "add_key":
            target = parent[last]
            if isinstance(target, dict):
                target[draw(st.sampled_from(keys) | st.text(max_size=8))] = draw(values)
            elif isinstance(target, list):
                target.append(draw(values))
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
        elif op == "retype":
            parent[last] = _retype(parent[last])
        elif op == "wrap":
            parent[last] = draw(st.sampled_from([[parent[last]], {"value": parent[last]}]))
        elif op == "negate" and isinstance(parent[last], int | float | str):
            number = parent[last]
            if isinstance(number, str):
                parent[last] = "-" + number
            elif not isinstance(number, bool):
                parent[last] = -number * draw(st.sampled_from([1, 1000, 10**20]))
    return doc


# --- trace files --------------------------------------------------------------------------


@functools.cache
def sdk_request() -> dict[str, Any]:
    """An ExportTraceServiceRequest as parabench writes it, with every kind of AnyValue."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "fuzz"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("fuzz")
    scalars = {"s": "text", "i": 7, "f": 1.5, "b": True}
    arrays = {"ls": ["a", "b"], "li": [1, 2], "lf": [0.5], "lb": [False]}
    with tracer.start_as_current_span("run", kind=SpanKind.SERVER, attributes=scalars) as root:
        root.add_event("started", {"n": 1})
        with tracer.start_as_current_span("step", kind=SpanKind.CLIENT, attributes=arrays) as s:
            s.set_status(Status(StatusCode.ERROR, "boom"))
        with tracer.start_as_current_span("tool", kind=SpanKind.PRODUCER):
            pass
    provider.shutdown()
    request = spans_to_otlp_json(exporter.get_finished_spans())
    # The SDK writes no kvlist, bytes or empty values: add them by hand.
    span = request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["attributes"] += [
        {
            "key": "kv",
            "value": {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": "1"}}]}},
        },
        {"key": "raw", "value": {"bytesValue": "AAEC"}},
        {"key": "empty", "value": {}},
    ]
    return request


@functools.cache
def jaeger_download() -> dict[str, Any]:
    """The Jaeger UI download fixture."""
    document: dict[str, Any] = json.loads((DATA / "ingest" / "jaeger_ui_download.json").read_text())
    return document


@functools.cache
def harness_request() -> dict[str, Any]:
    """One request of real harness spans (runs, steps, operations): the exact-DAG analysis path."""
    first = (DATA / "ingest" / "collector_file_exporter.jsonl").read_text().splitlines()[0]
    collector: dict[str, Any] = json.loads(first)
    try:
        import asyncio

        from harness.executor import Executor
        from harness.telemetry import Telemetry
    except ImportError:  # pragma: no cover - the executor is always there
        return collector
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spans.jsonl"
        telemetry = Telemetry(spans_path=path, otlp_from_env=False)
        executor = Executor(load_scenario("support_agent"), telemetry=telemetry, time_scale=0.001)

        async def main() -> None:
            for i, variant in enumerate(["sequential", "parallel"]):
                await executor.run(variant, seed=i, run_index=i)

        asyncio.run(main())
        telemetry.force_flush()
        telemetry.shutdown()
        lines = path.read_text().splitlines()
    request: dict[str, Any] = json.loads(lines[0])
    for line in lines[1:]:
        request["resourceSpans"] += json.loads(line)["resourceSpans"]
    return request


TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def one_span_line(**fields: Any) -> bytes:
    """One OTLP JSON line holding one valid span, with ``fields`` replaced, and a broken one."""
    span = {"traceId": TRACE, "spanId": SPAN, "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
    span.update(fields)
    # The null span sends the line down the tolerant path, as a mutated line would go.
    request = {"resourceSpans": [{"scopeSpans": [{"spans": [span, {"traceId": None}]}]}]}
    return json.dumps(request).encode()


_OTLP_KEYS = [
    "resourceSpans",
    "resource",
    "attributes",
    "scopeSpans",
    "instrumentationLibrarySpans",
    "spans",
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "kind",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "events",
    "timeUnixNano",
    "status",
    "code",
    "key",
    "value",
    "values",
    "result",
]
_ANY_VALUE_KEYS = [
    "stringValue",
    "intValue",
    "doubleValue",
    "boolValue",
    "arrayValue",
    "kvlistValue",
    "bytesValue",
]
_JAEGER_KEYS = [
    "data",
    "traceID",
    "spanID",
    "parentSpanID",
    "operationName",
    "references",
    "refType",
    "startTime",
    "duration",
    "tags",
    "type",
    "logs",
    "fields",
    "timestamp",
    "process",
    "processID",
    "processes",
    "serviceName",
    "spans",
]
_IDS = [
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "00f067aa0ba902b7",
    "AAAAAAAAAAE=",
    "S/kvNXezTaajzpKdDg5HNg==",
    "0000000000000000",
    "ABCDEF0123456789",
    "span-A",
    "abc",
]
_ENUMS = ["SPAN_KIND_CLIENT", "STATUS_CODE_ERROR", "server", "CHILD_OF", "FOLLOWS_FROM"]
_ENUMS += ["int64", "float64", "bool", "string", "binary", "error", "span.kind"]
_ENUMS += ["otel.status_code", "service.name", "parabench.run.id", "parabench.step.id"]


def _any_value(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An OTLP AnyValue of any kind, holding the right or a wrong kind of value."""
    kind = st.sampled_from([*_ANY_VALUE_KEYS, "otherValue"])
    scalar = st.builds(lambda k, v: {k: v}, kind, json_scalars)
    array = st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3))
    kvlist = st.builds(
        lambda kvs: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kvs]}},
        st.lists(st.tuples(json_scalars, inner), max_size=3),
    )
    return scalar | array | kvlist


any_values = st.recursive(st.builds(dict), _any_value, max_leaves=6)  # a fresh {} each time
_trace_leaves = json_scalars | st.sampled_from(_IDS + _ENUMS) | any_values
trace_values = json_values(_OTLP_KEYS + _ANY_VALUE_KEYS + _JAEGER_KEYS, _trace_leaves)
_TRACE_KEYS = _OTLP_KEYS + _ANY_VALUE_KEYS + _JAEGER_KEYS


@st.composite
def trace_documents(draw: st.DrawFn) -> Any:
    """A valid OTLP request (the SDK's or the harness's) or a Jaeger download, mutated."""
    base = draw(
        st.sampled_from(["sdk", "sdk", "jaeger"])
        .map({"sdk": sdk_request, "jaeger": jaeger_download}.__getitem__)
        .map(lambda make: make())
    )
    document = draw(mutated(base, trace_values, _TRACE_KEYS))
    if draw(st.integers(0, 9)) == 0:
        document = {"result": document}
    return document


def encode_lines(draw: st.DrawFn, documents: list[Any]) -> bytes:
    """Documents as JSON lines or one pretty-printed document, perhaps cut short or with BOM."""
    style = draw(st.sampled_from(["lines", "lines", "pretty", "compact"]))
    if style == "pretty":
        text = json.dumps(documents[0], indent=2, ensure_ascii=draw(st.booleans()))
    elif style == "compact":
        text = json.dumps(documents[0], separators=(",", ":"))
    else:
        text = "\n".join(json.dumps(d, ensure_ascii=draw(st.booleans())) for d in documents)
    data = text.encode("utf-8")
    if draw(st.integers(0, 5)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.integers(0, 9)) == 0:
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


@st.composite
def trace_files(draw: st.DrawFn) -> bytes:
    """The bytes of a trace file: mutated OTLP or Jaeger JSON, one line or many."""
    documents = draw(st.lists(trace_documents(), min_size=1, max_size=3))
    return encode_lines(draw, documents)


def spans_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The span objects of an OTLP request (to edit in place)."""
    return [s for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def set_attribute(span: dict[str, Any], key: str, value: dict[str, Any] | None) -> None:
    """Give ``span`` the attribute ``key`` with this AnyValue (``None``: a key without one)."""
    span["attributes"] = [kv for kv in span["attributes"] if kv["key"] != key]
    span["attributes"].append({"key": key} if value is None else {"key": key, "value": value})


def step_spans(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The step spans of each step id, in the order the runs wrote them."""
    out: dict[str, list[dict[str, Any]]] = {}
    for span in spans_of(doc):
        for kv in span["attributes"]:
            if kv["key"] == "parabench.step.id":
                out.setdefault(kv["value"]["stringValue"], []).append(span)
    return out


def _ids(names: list[str]) -> dict[str, Any]:
    return {"arrayValue": {"values": [{"stringValue": n} for n in names]}}


@st.composite
def harness_edits(draw: st.DrawFn) -> dict[str, Any]:
    """The harness spans with edits that keep their shape but not their sense: dependencies
    on other (or lost) steps, cycles, duplicate ids, spans moved between traces or lost."""
    doc = copy.deepcopy(harness_request())
    steps = step_spans(doc)
    names = sorted(steps)
    spans = spans_of(doc)
    runs = [s for s in spans if s["name"].startswith("invoke_agent")]
    for _ in range(draw(st.integers(1, 3))):
        edit = draw(st.sampled_from(["deps", "drop", "rename", "retrace", "reparent", "run"]))
        span = draw(st.sampled_from(steps[draw(st.sampled_from(names))]))
        if edit == "deps":
            deps = draw(st.lists(st.sampled_from([*names, "ghost"]), max_size=3))
            set_attribute(span, "parabench.step.depends_on", _ids(deps))
        elif edit == "drop":
            for resource in doc["resourceSpans"]:
                for scope in resource["scopeSpans"]:
                    scope["spans"] = [s for s in scope["spans"] if s is not span]
        elif edit == "rename":
            set_attribute(span, "parabench.step.id", {"stringValue": draw(st.sampled_from(names))})
        elif edit == "retrace":
            other = draw(st.sampled_from([s["traceId"] for s in runs] + ["f" * 32]))
            span["traceId"] = other
        elif edit == "reparent":
            span["parentSpanId"] = draw(st.sampled_from([s["spanId"] for s in spans]))
        else:
            run = draw(st.sampled_from(runs))
            key, value = draw(
                st.sampled_from(
                    [
                        ("parabench.variant", {"stringValue": "parallel"}),
                        ("parabench.variant.mode", {"stringValue": "sequential"}),
                        ("parabench.variant.mode", {"stringValue": "other"}),
                        ("parabench.variant.max_concurrency", {"intValue": "-1"}),
                        ("parabench.variant.max_concurrency", {"intValue": "2"}),
                        ("parabench.outcome", {"stringValue": "failed"}),
                        ("parabench.time_scale", {"doubleValue": 0.0}),
                        ("parabench.run.id", {"stringValue": "same"}),
                    ]
                )
            )
            set_attribute(run, key, copy.deepcopy(value))
    return doc


@st.composite
def harness_files(draw: st.DrawFn) -> bytes:
    """Harness spans (run, step and operation spans of two runs), edited and mutated."""
    document = harness_request()
    if draw(st.booleans()):
        document = draw(harness_edits())
    if draw(st.booleans()):
        document = draw(mutated(document, trace_values, _TRACE_KEYS, most=6))
    return encode_lines(draw, [document])


_text_lines = st.lists(
    st.text(max_size=80)
    | st.sampled_from(["{", "[", "}", '{"resourceSpans": [', '{"data": null}', "NaN", "[1, 2"]),
    max_size=6,
).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))


def write_files(folder: Path, contents: list[bytes]) -> list[Path]:
    """Each content in its own file: ``f0.jsonl``, ``f1.jsonl`` ..."""
    paths = []
    for i, data in enumerate(contents):
        path = folder / f"f{i}.jsonl"
        path.write_bytes(data)
        paths.append(path)
    return paths


def check_error(exc: ParabenchError) -> None:
    """A rejection's message is text that says what and where, and prints as UTF-8."""
    message = str(exc)
    assert message.strip() and exc.what.strip(), repr(exc)
    assert exc.where, f"no 'where' in: {message}"
    message.encode("utf-8")


def check_read(paths: list[Path]) -> None:
    """``read_spans`` gives a table and findings that say where, or a clean ParabenchError."""
    try:
        spans, quality = read_spans(paths)
    except ParabenchError as exc:
        check_error(exc)
        return
    assert list(spans.columns) == SPAN_COLUMNS
    assert spans.empty or str(spans.start_ns.dtype) == "int64"
    assert set(quality.counts) <= FINDINGS, quality.counts
    for finding, count in quality.counts.items():
        examples = quality.examples[finding]
        assert count > 0 and examples, finding
        for example in examples:
            assert any(str(p) in example for p in paths), (finding, example)
            example.encode("utf-8")
    assert not spans.empty or not quality.clean  # nothing read is always explained
    json.dumps(quality.to_dict())


def check_analysis(paths: list[Path]) -> None:
    """``parabench analyze``'s work in process: analyse, print the table, write the JSON."""
    try:
        analysis = analyze_files(paths)
    except ParabenchError as exc:
        check_error(exc)
        return
    json.dumps(analysis.to_json(), ensure_ascii=False).encode("utf-8")
    print_analysis(analysis, Console(file=io.StringIO(), width=160))


@pytest.fixture(scope="module", autouse=True)
def _bases() -> None:
    """Build the valid files once, before any strategy runs (the SDK's ids use ``random``)."""
    sdk_request()
    harness_request()


class TestTraceIngest:
    """read_spans returns spans and findings or raises a ParabenchError; nothing else escapes."""

    @fuzz(150)
    @given(st.lists(st.binary(max_size=2000) | _text_lines, min_size=1, max_size=3))
    def test_arbitrary_bytes_and_text_lines(self, contents: list[bytes]) -> None:
        """Random bytes and random text lines are read or explained by findings."""
        with tempfile.TemporaryDirectory() as folder:
            check_read(write_files(Path(folder), contents))

    @fuzz(100)
    @given(st.lists(trace_values, min_size=1, max_size=4), st.booleans())
    def test_arbitrary_json(self, values: list[Any], pretty: bool) -> None:
        """Random JSON values, one per line or one pretty-printed document, never raise."""
        text = json.dumps(values, indent=2) if pretty else "\n".join(map(json.dumps, values))
        with tempfile.TemporaryDirectory() as folder:
            check_read(write_files(Path(folder), [text.encode()]))

    @fuzz(250)
    @given(st.lists(trace_files(), min_size=1, max_size=2))
    def test_mutated_otlp_and_jaeger(self, contents: list[bytes]) -> None:
        """Valid OTLP and Jaeger files with fields dropped or replaced by any JSON are read."""
        with tempfile.TemporaryDirectory() as folder:
            check_read(write_files(Path(folder), contents))

    @fuzz(100)
    @given(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]), trace_files())
    def test_non_json_numbers(self, token: str, data: bytes) -> None:
        """NaN, Infinity and out-of-range numbers (Python's json writes them) are read or found."""
        data = data.replace(b"1", token.encode(), 1).replace(b'"0"', token.encode(), 1)
        with tempfile.TemporaryDirectory() as folder:
            check_read(write_files(Path(folder), [data]))

    @pytest.mark.parametrize("name", ["missing.jsonl", "", ".", "a" * 300, "a\x00b"])
    def test_unopenable_paths(self, name: str, tmp_path: Path) -> None:
        """A missing file, a directory or an impossible name (NUL byte) raise TraceDataError."""
        with pytest.raises(TraceDataError) as info:
            read_spans([tmp_path / name])
        check_error(info.value)

    # Regressions: inputs the fuzzing found that used to raise something else.

    def test_jaeger_time_beyond_any_integer_is_a_finding(self, tmp_path: Path) -> None:
        """A Jaeger startTime or log timestamp of 1e306 µs is a malformed span or event."""
        span = {"spanID": SPAN, "startTime": 1e306, "duration": 1}
        logged = {"spanID": "1" * 16, "startTime": 1, "duration": 1, "logs": [{"timestamp": 1e306}]}
        document = {"data": [{"traceID": TRACE, "spans": [span, logged]}]}
        spans, quality = read_spans(write_files(tmp_path, [json.dumps(document).encode()]))
        assert len(spans) == 1
        assert quality.counts == {"malformed_span": 1, "malformed_event": 1}

    def test_a_number_no_float_holds_is_a_malformed_attribute(self, tmp_path: Path) -> None:
        """An OTLP doubleValue or a Jaeger float64 tag of 10**400 is dropped and reported."""
        attribute = {"key": "x", "value": {"doubleValue": 10**400}}
        otlp = one_span_line(attributes=[attribute], name="otlp")
        tag = {"key": "x", "type": "float64", "value": 10**400}
        jaeger = {"data": [{"traceID": TRACE, "spans": [{"spanID": "2" * 16, "startTime": 1}]}]}
        jaeger["data"][0]["spans"][0]["tags"] = [tag]
        spans, quality = read_spans(write_files(tmp_path, [otlp, json.dumps(jaeger).encode()]))
        assert sorted(spans.name) == ["", "otlp"]
        assert not any("x" in attributes for attributes in spans.attributes)
        assert quality.counts == {"malformed_attribute": 2, "malformed_span": 1}  # + the null span

    def test_an_id_that_is_not_text_is_a_malformed_span(self, tmp_path: Path) -> None:
        """A traceId written as a list is refused, not turned into the id "['...']"."""
        data = one_span_line(traceId=[TRACE])
        spans, quality = read_spans(write_files(tmp_path, [data]))
        assert spans.empty
        assert quality.counts == {"malformed_span": 2, "no_spans_in_file": 1}  # + the null span
        assert "traceId is list, not a string" in quality.examples["malformed_span"][0]


def _harness_edit(edit: str) -> dict[str, Any]:
    """The harness spans with one edit, as a trace file edited by hand or by a tool might be."""
    doc = copy.deepcopy(harness_request())
    steps = step_spans(doc)
    runs = [s for s in spans_of(doc) if s["name"].startswith("invoke_agent")]
    search, answer = steps["search_kb"][-1], steps["answer"][-1]
    if edit == "step trace id is a list":
        search["traceId"] = [search["traceId"]]
    elif edit == "step moved to another trace":
        search["traceId"] = "f" * 32
    elif edit == "step id without a value":
        set_attribute(search, "parabench.step.id", None)
    elif edit == "a dependency's span is lost":
        lost = steps["draft_refund"][-1]
        for resource in doc["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                scope["spans"] = [s for s in scope["spans"] if s is not lost]
    elif edit == "cost is text":
        set_attribute(search, "parabench.cost_usd", {"stringValue": "abc"})
    elif edit == "depends_on is a number":
        set_attribute(answer, "parabench.step.depends_on", {"intValue": "3"})
    elif edit == "time scale is text":
        set_attribute(runs[-1], "parabench.time_scale", {"stringValue": "fast"})
    elif edit == "time scale is zero":
        set_attribute(runs[-1], "parabench.time_scale", {"doubleValue": 0.0})
    elif edit == "two run spans in a trace":
        twin = copy.deepcopy(runs[-1])
        twin["spanId"] = "1" * 16
        doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append(twin)
    elif edit == "cycle in a sequential run":
        set_attribute(steps["classify"][0], "parabench.step.depends_on", _ids(["answer"]))
    return doc


class TestTraceAnalysis:
    """The whole of ``parabench analyze`` on mutated traces: a result or a clean error."""

    @pytest.mark.parametrize(
        "edit",
        [
            "step trace id is a list",
            "step moved to another trace",
            "step id without a value",
            "a dependency's span is lost",
            "cost is text",
            "depends_on is a number",
            "time scale is text",
            "time scale is zero",
            "two run spans in a trace",
            "cycle in a sequential run",
        ],
    )
    def test_edited_harness_traces_are_analysed(self, edit: str, tmp_path: Path) -> None:
        """Harness spans with a lost or mistyped span or attribute are analysed, not a crash."""
        paths = write_files(tmp_path, [json.dumps(_harness_edit(edit)).encode()])
        analysis = analyze_files(paths)
        assert analysis.harness_runs >= 1
        json.dumps(analysis.to_json())
        print_analysis(analysis, Console(file=io.StringIO(), width=160))

    @fuzz(60)
    @given(st.lists(trace_files() | harness_files(), min_size=1, max_size=2))
    def test_analysis_in_process(self, contents: list[bytes]) -> None:
        """Analysing, printing and writing JSON of mutated traces never raise anything else."""
        with tempfile.TemporaryDirectory() as folder:
            check_analysis(write_files(Path(folder), contents))

    @fuzz(4, long=LONG // 40)
    @given(
        st.lists(trace_files() | harness_files() | st.binary(max_size=300), min_size=1, max_size=3),
        st.sampled_from(["table", "json"]),
    )
    def test_command_line(self, contents: list[bytes], output_format: str) -> None:
        """``parabench analyze FILE...`` exits 0 or 2 and never prints a traceback."""
        with tempfile.TemporaryDirectory() as folder:
            paths = write_files(Path(folder), contents)
            result = parabench("analyze", *paths, "--format", output_format, cwd=Path(folder))
        output = result.stdout + result.stderr
        assert "Traceback" not in output, output
        assert result.returncode in (0, 2), output
        if result.returncode == 2:
            assert result.stderr.startswith("error: "), output
        elif output_format == "json":
            json.loads(result.stdout)


# --- scenario files -----------------------------------------------------------------------

_SCENARIO_KEYS = [
    *Scenario.model_fields,
    "id",
    "kind",
    "depends_on",
    "card",
    "model",
    "input_tokens",
    "output_tokens",
    "prompt",
    "tool",
    "latency_ms",
    "cost_usd",
    "timeout_s",
    "max_attempts",
    "fail_rate",
    "mode",
    "max_concurrency",
    "overrides",
    "add_steps",
    "remove_steps",
    "median",
    "sigma",
    "low",
    "high",
    "mean",
    "sd",
    "a",
    "b",
    "price",
    "latency",
    "input_usd_per_mtok",
    "output_usd_per_mtok",
    "ttft_ms",
    "itl_ms",
    "jitter_sigma",
    "capacity",
    "base_url",
    "max_in_flight",
]
_WEIRD_IDS = ["", "1st", "a b", "é", "ステップ", "a\nb", "a" * 65, "-x", "x.y", "_", "💥"]
#: Scalars YAML can hold beyond JSON's: dates, bytes, NaN and infinity, huge integers.
yaml_scalars = (
    json_scalars
    | st.floats()
    | st.dates()
    | st.datetimes()
    | st.binary(max_size=8)
    | st.sampled_from([10**400, -(10**400), 1e-320, *_WEIRD_IDS])
)
yaml_values = json_values(_SCENARIO_KEYS, yaml_scalars)


def _sample_steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    steps = doc.get("steps")
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


@st.composite
def scenario_edits(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """A bundled scenario with scenario-shaped edits: cycles, duplicate ids, odd overrides ..."""
    doc = copy.deepcopy(base)
    steps = _sample_steps(doc)
    ids = [s.get("id") for s in steps] or ["x"]
    variants = doc.get("variants") if isinstance(doc.get("variants"), dict) else {}
    some_id = st.sampled_from(ids) | st.sampled_from(_WEIRD_IDS)
    some_value = yaml_values | st.integers(-5, 10**6) | some_id
    for _ in range(draw(st.integers(1, 3))):
        edit = draw(
            st.sampled_from(
                ["cycle", "rename", "duplicate_id", "override", "add_step", "remove", "model"]
            )
        )
        step = draw(st.sampled_from(steps)) if steps else {}
        variant = draw(st.sampled_from(sorted(variants))) if variants else None
        spec = variants.get(variant) if variant is not None else None
        if not isinstance(spec, dict):
            spec = {}
        if edit == "cycle":
            target = draw(some_id)
            if draw(st.booleans()) or not isinstance(spec.get("overrides"), dict):
                step["depends_on"] = [*(step.get("depends_on") or []), target]
            else:
                spec["overrides"][step.get("id")] = {"depends_on": [target]}
        elif edit == "rename":
            step["id"] = draw(st.sampled_from(_WEIRD_IDS) | st.text(max_size=12))
        elif edit == "duplicate_id":
            step["id"] = draw(st.sampled_from(ids))
        elif edit == "override":
            field = draw(st.sampled_from(_SCENARIO_KEYS))
            spec.setdefault("overrides", {})[draw(some_id)] = {field: draw(some_value)}
        elif edit == "add_step":
            added = copy.deepcopy(draw(st.sampled_from(steps))) if steps else {}
            added[draw(st.sampled_from(_SCENARIO_KEYS))] = draw(some_value)
            spec.setdefault("add_steps", []).append(added)
        elif edit == "remove":
            spec.setdefault("remove_steps", []).append(draw(some_id))
        elif edit == "model":
            name = draw(st.sampled_from(["gpt-4o", "gpt-4o-mini", "acme-x", ""]))
            section = draw(st.sampled_from(["latency", "price"]))
            models = doc.setdefault("models", {})
            if isinstance(models, dict):
                models[name] = {section: {draw(st.sampled_from(_SCENARIO_KEYS)): draw(some_value)}}
                step["model"] = name
    return doc


@functools.cache
def bundled_docs() -> list[dict[str, Any]]:
    """The bundled scenarios and a priced custom model, as parsed YAML."""
    paths = [*SCENARIOS, DATA / "good" / "priced_custom_model.yaml"]
    return [yaml.safe_load(p.read_text(encoding="utf-8")) for p in paths]


@st.composite
def scenario_documents(draw: st.DrawFn) -> Any:
    """A bundled scenario, edited as a scenario and mutated as a tree."""
    doc = copy.deepcopy(draw(st.sampled_from(bundled_docs())))
    if draw(st.booleans()):
        doc = draw(scenario_edits(doc))
    if draw(st.booleans()):
        doc = draw(mutated(doc, yaml_values, _SCENARIO_KEYS))
    return doc


_YAML_SNIPPETS = [
    "a: &x [*x]",
    "steps: &s [*s]",
    "<<: {name: x}",
    "? [a, b]\n: c",
    "!!python/object/apply:os.system ['true']",
    "!!binary AAAA",
    "%YAML 1.1\n---\na: 1\n---\nb: 2",
    "a: 1\na: 2",
    "name: \t x",
    "{",
    "- [",
    "'",
    "a: !!float 'x'",
    "a: !!int '1_000'",
    "a: 1e400",
    "a: .inf",
    "a: 0o17",
    "a: 2001-13-45",
    "\ufeffname: bom",
    "[" * 200 + "]" * 200,
    "[" * 3000 + "]" * 3000,
    "a: " + "{b: " * 3000 + "1" + "}" * 3000,
    "- " * 2000 + "x",
]


def dump_yaml(draw: st.DrawFn, doc: Any) -> bytes:
    """``doc`` as YAML text, sometimes damaged: cut short or with a snippet spliced in."""
    try:
        text = yaml.safe_dump(
            doc, allow_unicode=draw(st.booleans()), sort_keys=False, default_flow_style=None
        )
    except yaml.YAMLError:  # a value PyYAML cannot represent: write what it can
        text = repr(doc)
    edit = draw(st.integers(0, 9))
    if edit == 0:
        text = text[: draw(st.integers(0, len(text)))]
    elif edit == 1:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(_YAML_SNIPPETS) | st.text(max_size=10)) + text[at:]
    return text.encode("utf-8", "surrogatepass")


@st.composite
def scenario_files(draw: st.DrawFn) -> bytes:
    """The bytes of a scenario file: a mutated bundled one, random YAML, text or bytes."""
    kind = draw(st.sampled_from(["bundled", "bundled", "bundled", "random", "text", "bytes"]))
    if kind == "bundled":
        return dump_yaml(draw, draw(scenario_documents()))
    if kind == "random":
        return dump_yaml(draw, draw(yaml_values))
    if kind == "text":
        return draw(st.sampled_from(_YAML_SNIPPETS) | st.text(max_size=200)).encode(
            "utf-8", "surrogatepass"
        )
    return draw(st.binary(max_size=500))


def check_file_error(exc: ScenarioError, path: Path) -> None:
    """A scenario or budget error names the file, the field when there is one, and a fix."""
    check_error(exc)
    message = str(exc)
    assert exc.file and message.startswith(f"{exc.file}: "), message
    assert exc.fix, message
    if exc.field is not None:
        assert exc.field.strip() and f"field '{exc.field}'" in message, message


def check_scenario(path: Path) -> Scenario | None:
    """``load_scenario`` gives a usable Scenario or a ScenarioError naming ``path``."""
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        check_file_error(exc, path)
        assert exc.file == str(path), str(exc)
        event("scenario refused", exc.what.partition(" ")[0])
        return None
    event("scenario loaded")
    rng = np.random.default_rng(0)
    for variant in scenario.variants:
        plan = scenario.plan(variant)
        assert len(plan.order) == len(plan.steps)
        assert plan.theoretical_makespan_s() >= 0
        for sid, step in plan.steps.items():
            assert plan.expected_cost_usd(sid) >= 0
            for dist in (step.input_tokens, step.output_tokens, step.latency_ms):
                if isinstance(dist, Dist):
                    assert dist.mean >= 0 and math.isfinite(dist.sample(rng))
    return scenario


class TestScenarioParsing:
    """load_scenario returns a Scenario or raises a ScenarioError naming the file and field."""

    @fuzz(250)
    @given(scenario_files())
    def test_scenario_files(self, data: bytes) -> None:
        """Mutated bundled scenarios, random YAML, text and bytes load or fail cleanly."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "scenario.yaml"
            path.write_bytes(data)
            check_scenario(path)

    @fuzz(100)
    @given(scenario_documents())
    def test_scenario_dicts(self, doc: Any) -> None:
        """Scenario.from_dict on edited documents (no YAML round trip) fails only cleanly."""
        try:
            Scenario.from_dict(doc, source="fuzz.yaml")
        except ScenarioError as exc:
            check_file_error(exc, Path("fuzz.yaml"))

    @pytest.mark.parametrize("name", ["", ".", "a" * 300, "a\x00b", "../", "missing.yaml", "é/ö"])
    def test_scenario_names(self, name: str) -> None:
        """A name that is no file and no bundled scenario (too long for a file name, empty ...)
        is a ScenarioError naming it."""
        with pytest.raises(ScenarioError) as info:
            load_scenario(name)
        check_error(info.value)
        assert info.value.file == (name or "''")

    # Regressions: inputs the fuzzing found that used to raise something else, or pass.

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("[" * 3000 + "]" * 3000, "invalid YAML: nested too deeply to read"),
            ("name: x\ndescription: 2001-13-45\n", "cannot read '2001-13-45' as timestamp"),
            ("name: !!int x\n", "cannot read 'x' as int"),
            ("name: " + "9" * 5000, "as int (Exceeds the limit"),
            ("name: a\nsteps: []\nname: b\n", "line 3, column 1: the key 'name' is written twice"),
        ],
        ids=["deep", "bad-date", "bad-tag", "5000-digits", "duplicate-key"],
    )
    def test_yaml_the_parser_chokes_on(self, text: str, problem: str, tmp_path: Path) -> None:
        """YAML that made PyYAML raise RecursionError or ValueError, or silently drop a key,
        is a ScenarioError with the line."""
        path = tmp_path / "s.yaml"
        path.write_text(text)
        with pytest.raises(ScenarioError) as info:
            load_scenario(path)
        check_file_error(info.value, path)
        assert problem in info.value.what

    @pytest.mark.parametrize(
        ("field", "value", "where", "problem"),
        [
            ("latency_ms", 10**400, "latency_ms", "must be a finite number >= 0, got 1000"),
            ("latency_ms", {"median": 10**400, "sigma": 0.1}, "latency_ms.median", "finite"),
            ("latency_ms", {"median": 100, "sigma": 1000}, "latency_ms.sigma", "at most 3"),
            ("cost_usd", math.inf, "cost_usd", "finite number"),
            ("timeout_s", math.inf, "timeout_s", "finite number"),
        ],
    )
    def test_numbers_out_of_any_range(
        self, field: str, value: Any, where: str, problem: str, tmp_path: Path
    ) -> None:
        """An integer beyond any float, infinity and a sigma whose draws overflow are refused."""
        doc = copy.deepcopy(bundled_docs()[0])
        doc["steps"][1][field] = value  # map_reduce_summarizer's chunk_1, a tool step
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(ScenarioError) as info:
            load_scenario(path)
        check_file_error(info.value, path)
        assert info.value.field == f"steps[1](id=chunk_1).{where}"
        assert problem in info.value.what

    def test_value_of_time_must_be_finite(self) -> None:
        """An infinite value of time is refused: every branch would be worth any price."""
        doc = dict(bundled_docs()[0], value_of_time_usd_per_s=math.inf)
        with pytest.raises(ScenarioError) as info:
            Scenario.from_dict(doc, source="s.yaml")
        assert info.value.field == "value_of_time_usd_per_s"


# --- budget files -------------------------------------------------------------------------

_BUDGET_KEYS = [
    *Budget.model_fields,
    "limits",
    "regression",
    "e2e_p50_ms",
    "e2e_p95_ms",
    "error_rate",
    "cost_usd_per_run",
    "executor_efficiency_p50_min",
    "branch_usd_per_ms_saved",
    "e2e_p50",
    "ttfc_p95",
    "sequential",
    "parallel",
    "parallel_capped",
    "search_docs",
]
_budget_values = json_values(_BUDGET_KEYS, yaml_scalars | st.sampled_from(["1e-5", "1e400", "-3"]))


@functools.cache
def budget_docs() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text(encoding="utf-8")) for p in BUDGETS]


@st.composite
def budget_documents(draw: st.DrawFn) -> Any:
    """A bundled budget with budget-shaped edits and random tree mutations."""
    doc = copy.deepcopy(draw(st.sampled_from(budget_docs())))
    names = [p.stem for p in SCENARIOS]
    for _ in range(draw(st.integers(0, 2))):
        edit = draw(st.sampled_from(["scenario", "scenario_file", "branch", "variant"]))
        if edit == "scenario":
            doc["scenario"] = draw(st.sampled_from([*names, "", "a" * 300, "x\x00"]))
        elif edit == "scenario_file":
            doc["scenario_file"] = draw(
                st.sampled_from(["scenario.yaml", "budget.yaml", ".", "..", "a" * 300, "x\x00"])
            )
        elif edit == "branch" and isinstance(doc.get("variants"), dict) and doc["variants"]:
            spec = doc["variants"][draw(st.sampled_from(sorted(doc["variants"])))]
            if isinstance(spec, dict):
                limits = spec.setdefault("limits", {})
                step = draw(st.sampled_from(["search_docs", "answer", "classify", "", "nope"]))
                limits.setdefault("branch_usd_per_ms_saved", {})[step] = draw(_budget_values)
        elif edit == "variant" and isinstance(doc.get("variants"), dict):
            name = draw(st.sampled_from(["parallel", "nope", "", "a" * 300]))
            doc["variants"][name] = {"limits": {"e2e_p50_ms": draw(_budget_values)}}
    if draw(st.booleans()):
        doc = draw(mutated(doc, _budget_values, _BUDGET_KEYS))
    return doc


@st.composite
def budget_files(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    """A budget file's bytes, and those of a scenario file next to it (or none)."""
    kind = draw(st.sampled_from(["bundled", "bundled", "bundled", "random", "bytes"]))
    if kind == "bundled":
        data = dump_yaml(draw, draw(budget_documents()))
    elif kind == "random":
        data = dump_yaml(draw, draw(_budget_values))
    else:
        data = draw(st.binary(max_size=300))
    scenario = None
    if draw(st.booleans()):
        scenario = draw(st.sampled_from(SCENARIOS).map(Path.read_bytes) | scenario_files())
    return data, scenario


class TestBudgetParsing:
    """load_budget returns a Budget or raises a BudgetError (ScenarioError for its scenario)."""

    @fuzz(250)
    @given(budget_files())
    def test_budget_files(self, files: tuple[bytes, bytes | None]) -> None:
        """Mutated bundled budgets, random YAML and bytes load or fail with file, field and fix."""
        data, scenario = files
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "budget.yaml"
            path.write_bytes(data)
            if scenario is not None:
                (Path(folder) / "scenario.yaml").write_bytes(scenario)
            try:
                budget = load_budget(path)
            except BudgetError as exc:
                check_file_error(exc, path)
                assert exc.file == str(path), str(exc)
            except ScenarioError as exc:  # the scenario file it names is bad: that file is named
                check_file_error(exc, path)
                assert Path(exc.file).is_file(), str(exc)
            else:
                assert budget.variants and all(not v.empty for v in budget.variants.values())

    # Regressions: inputs the fuzzing found that used to raise something else, or pass.

    @pytest.mark.parametrize(
        ("value", "problem"),
        [
            ("1" + "0" * 400, "expected a finite number, got 1000"),
            ("'1e400'", "expected a finite number, got the text '1e400'"),
            ("1e400", "expected a finite number, got the text '1e400'"),
        ],
    )
    def test_numbers_beyond_any_float(self, value: str, problem: str, tmp_path: Path) -> None:
        """A limit of 10**400, or 1e400 (infinity once read), is a BudgetError, not accepted."""
        path = tmp_path / "b.budget.yaml"
        path.write_text(
            f"scenario: support_agent\nvariants:\n  parallel:\n    limits:\n"
            f"      e2e_p95_ms: {value}\n"
        )
        with pytest.raises(BudgetError) as info:
            load_budget(path)
        check_file_error(info.value, path)
        assert info.value.field == "variants.parallel.limits.e2e_p95_ms"
        assert problem in info.value.what

    @pytest.mark.parametrize("key", ["scenario", "scenario_file"])
    def test_a_scenario_name_too_long_for_a_file(self, key: str, tmp_path: Path) -> None:
        """A scenario name or file too long for the system is "no scenario file found"."""
        path = tmp_path / "b.budget.yaml"
        path.write_text(
            ("" if key == "scenario" else "scenario: support_agent\n") + f"{key}: {'a' * 300}\n"
            "variants: {parallel: {limits: {e2e_p95_ms: 1}}}\n"
        )
        with pytest.raises(BudgetError, match="no scenario file found") as info:
            load_budget(path)
        assert info.value.field == key


# --- JSON settings (--config) -------------------------------------------------------------


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int = Field(0, ge=0, le=65535)
    time_scale: float = Field(1.0, ge=0)
    name: str = "x"
    nested: dict[str, float] = Field(default_factory=dict)


def _load(source: str | None, overrides: dict[str, object]) -> _Settings:
    return load_json_settings(
        _Settings, source, overrides, what="fuzz", example='{"port": 8000}', reference="_Settings"
    )


_settings_keys = ["port", "time_scale", "name", "nested"]


class TestJsonSettings:
    """load_json_settings returns settings or raises a ConfigError saying where."""

    def test_a_config_file_that_is_not_utf8(self, tmp_path: Path) -> None:
        """A --config file of other bytes is a ConfigError, not a UnicodeDecodeError."""
        path = tmp_path / "config.json"
        path.write_bytes(b'{"name": "\x80"}')
        with pytest.raises(ConfigError, match="not UTF-8 text") as info:
            _load(str(path), {})
        assert info.value.where == str(path)

    @pytest.mark.parametrize(
        "text",
        ['{"port": ' + "9" * 5000 + "}", '{"nested": ' + "[" * 100_000 + "]" * 100_000 + "}"],
    )
    def test_json_python_cannot_parse(self, text: str) -> None:
        """A 5000-digit number or JSON nested 100,000 deep is a ConfigError."""
        with pytest.raises(ConfigError, match="cannot be read as JSON") as info:
            _load(text, {})
        assert info.value.where == "--config"

    @fuzz(150)
    @given(
        json_values(_settings_keys).map(json.dumps)
        | st.text(max_size=40).map(lambda t: "{" + t)
        | st.sampled_from(
            [
                "{" * 5000,
                '{"port": NaN}',
                '{"port": 1e400}',
                '{"port": ' + "9" * 5000 + "}",
                '{"a": 1, "a": 2}',
                '{"nested": ' + "[" * 100_000 + "]" * 100_000 + "}",
            ]
        ),
        st.dictionaries(st.sampled_from(_settings_keys), json_scalars, max_size=2),
    )
    def test_inline_json(self, source: str, overrides: dict[str, object]) -> None:
        """Any inline --config text and any overrides give settings or a ConfigError."""
        try:
            _load(source, overrides)
        except ConfigError as exc:
            check_error(exc)

    @fuzz(100)
    @given(
        st.binary(max_size=300) | json_values(_settings_keys).map(lambda v: json.dumps(v).encode())
    )
    def test_config_files(self, data: bytes) -> None:
        """Any bytes in a --config file give settings or a ConfigError naming the file."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "config.json"
            path.write_bytes(data)
            try:
                _load(str(path), {})
            except ConfigError as exc:
                check_error(exc)
                assert exc.where == str(path)

    @pytest.mark.parametrize("name", ["missing.json", ".", "a" * 300, "a\x00b", ""])
    def test_config_paths(self, name: str, tmp_path: Path) -> None:
        """A --config path that cannot be read (a NUL byte in it, too long) is a ConfigError."""
        with pytest.raises(ConfigError) as info:
            _load(str(tmp_path / name), {})
        check_error(info.value)
