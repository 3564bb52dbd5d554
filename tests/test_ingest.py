"""Trace ingest: OTLP JSON lines and documents, Jaeger JSON, and every data-quality finding.

``tests/data/ingest`` holds hand-written files in the shapes other systems write:
an OpenTelemetry Collector file exporter's lines mixed with protobuf-JSON-mapping
lines (base64 ids, enum names) and a Jaeger UI download. The Jaeger critical-path
cases come from ``tests/data/critical_path`` (see its README for their origin).
"""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from harness.analysis.ingest import SPAN_COLUMNS, DataQuality, read_spans
from harness.errors import TraceDataError
from harness.executor import Executor
from harness.scenario import load_scenario
from harness.telemetry import Telemetry

DATA = Path(__file__).parent / "data"
COLLECTOR = DATA / "ingest" / "collector_file_exporter.jsonl"
JAEGER_DOWNLOAD = DATA / "ingest" / "jaeger_ui_download.json"
JAEGER_CP = json.loads((DATA / "critical_path" / "jaeger_cp_fixtures.json").read_text())["cases"]
SPANS_PER_RUN = 11  # research_assistant: a run span, 5 step spans, 5 operation spans
T1, T2 = "4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"


# --- building OTLP JSON lines ----------------------------------------------------------


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    return {"stringValue": value}


def _span(
    trace: str, span: str, parent: str = "", start: int = 1_000, end: int = 2_000, **extra: Any
) -> dict[str, Any]:
    """One OTLP/JSON span; ``extra`` overrides fields, ``attrs`` gives attributes."""
    attrs = extra.pop("attrs", {})
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span,
        "parentSpanId": parent,
        "name": f"op {span[-4:]}",
        "kind": 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": [{"key": k, "value": _value(v)} for k, v in attrs.items()],
        "status": {},
    }
    out.update(extra)
    return out


def _line(*spans: dict[str, Any], service: str = "svc") -> str:
    """One ``ExportTraceServiceRequest`` as a JSON line."""
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    request = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": list(spans)}]}]}
    return json.dumps(request, separators=(",", ":"))


def _write(path: Path, *lines: str | bytes, end: bytes = b"\n", last: bool = True) -> Path:
    """Write lines ended by ``end`` (the last one too unless ``last`` is False)."""
    text = end.join(line.encode() if isinstance(line, str) else line for line in lines)
    path.write_bytes(text + end if last and lines else text)
    return path


def _sid(n: int) -> str:
    return f"{n:016x}"


def _family(trace: str = T1, first: int = 1) -> list[dict[str, Any]]:
    """A root with two children, nested in time."""
    root = _span(trace, _sid(first), start=1_000, end=9_000)
    return [
        root,
        _span(trace, _sid(first + 1), _sid(first), start=2_000, end=4_000),
        _span(trace, _sid(first + 2), _sid(first), start=5_000, end=8_000),
    ]


def _run_harness(telemetry: Telemetry, runs: int) -> None:
    executor = Executor(load_scenario("research_assistant"), telemetry=telemetry, time_scale=0.01)

    async def main() -> None:
        for i in range(runs):
            await executor.run("parallel" if i % 2 else "sequential", seed=i, run_index=i)

    asyncio.run(main())
    telemetry.force_flush()


@pytest.fixture
def harness_spans(tmp_path: Path) -> tuple[Path, list[Any]]:
    """Three real runs written by the harness, and the SDK's own spans of them."""
    memory = InMemorySpanExporter()
    telemetry = Telemetry(spans_path=tmp_path / "spans.jsonl", otlp_from_env=False)
    telemetry.provider.add_span_processor(SimpleSpanProcessor(memory))
    _run_harness(telemetry, 3)
    telemetry.shutdown()
    return tmp_path / "spans.jsonl", list(memory.get_finished_spans())


# --- tests ---------------------------------------------------------------------------------


class TestHarnessFiles:
    def test_harness_file_reads_back_with_no_findings(self, harness_spans):
        """Three harness runs read back as 33 spans in 3 traces, one root each, nothing flagged."""
        path, _ = harness_spans
        spans, quality = read_spans(path)
        assert quality.clean, quality.to_dict()
        assert list(spans.columns) == SPAN_COLUMNS
        assert len(spans) == 3 * SPANS_PER_RUN
        assert spans.trace_id.nunique() == 3
        roots = spans[spans.parent_span_id == ""]
        assert len(roots) == 3
        assert roots.name.str.startswith("invoke_agent ").all()
        assert set(spans.parent_span_id) - {""} <= set(spans.span_id)
        assert spans.start_ns.dtype == "int64" and spans.end_ns.dtype == "int64"

    def test_harness_file_matches_the_raw_json(self, harness_spans):
        """Every span's ids, name, kind, times and attributes equal the file's own JSON."""
        path, _ = harness_spans
        spans, _ = read_spans(path)
        kinds = {1: "INTERNAL", 3: "CLIENT"}
        raw = {}
        for line in path.read_text().splitlines():
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for s in ss["spans"]:
                        raw[s["spanId"]] = s
        assert len(raw) == len(spans)
        for row in spans.itertuples():
            s = raw[row.span_id]
            assert row.trace_id == s["traceId"]
            assert row.parent_span_id == s.get("parentSpanId", "")
            assert (row.name, row.kind) == (s["name"], kinds[s["kind"]])
            assert row.start_ns == int(s["startTimeUnixNano"])
            assert row.end_ns == int(s["endTimeUnixNano"])
            assert set(row.attributes) == {a["key"] for a in s["attributes"]} | {"service.name"}
            assert row.attributes["service.name"] == "parabench"
            assert len(row.events) == len(s.get("events", []))

    def test_protobuf_json_mapping_of_the_same_spans_reads_the_same(self, harness_spans, tmp_path):
        """The SDK spans in protobuf's JSON mapping (base64 ids, enum names) give the same table."""
        path, finished = harness_spans
        mapped = MessageToDict(encode_spans(finished))  # base64 ids, SPAN_KIND_*, int64 strings
        assert mapped["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"].startswith(
            "SPAN_KIND_"
        )
        other = _write(tmp_path / "mapped.jsonl", json.dumps(mapped))
        ours, _ = read_spans(path)
        theirs, quality = read_spans(other)
        assert quality.clean, quality.to_dict()
        key = ["trace_id", "span_id"]
        pd.testing.assert_frame_equal(
            ours.sort_values(key).reset_index(drop=True),
            theirs.sort_values(key).reset_index(drop=True),
        )


class TestCollectorFiles:
    def test_collector_and_protobuf_mapping_lines_form_one_trace(self):
        """Hex, base64 and upper-case hex ids across three writers join into one clean trace."""
        spans, quality = read_spans(COLLECTOR)
        assert quality.clean, quality.to_dict()
        assert set(spans.trace_id) == {"5b8efff798038103d269b633813fc60c"}
        parent_of = dict(zip(spans.span_id, spans.parent_span_id, strict=True))
        assert parent_of == {
            "eee19b7ec3c1b174": "",
            "8a2c4f1e9b7d3a60": "eee19b7ec3c1b174",
            "c0ffee0000000001": "8a2c4f1e9b7d3a60",
            "c0ffee0000000002": "c0ffee0000000001",
            "d00dfeed00000003": "c0ffee0000000002",
        }

    def test_enum_numbers_and_names_give_kinds_and_statuses(self):
        """Kinds 2/3 and SPAN_KIND_* names, status 2 and STATUS_CODE_* names are all decoded."""
        spans, _ = read_spans(COLLECTOR)
        got = {r.name: (r.kind, r.status) for r in spans.itertuples()}
        assert got == {
            "POST /api/checkout": ("SERVER", 2),
            "payments.v1.Payments/Charge": ("CLIENT", 0),
            "Charge": ("SERVER", 2),
            "risk score": ("INTERNAL", 1),
            "rules lookup": ("CLIENT", 1),
        }

    def test_int64_as_string_and_as_number(self):
        """Times and intValues written as JSON strings or numbers both become ints."""
        spans, _ = read_spans(COLLECTOR)
        by_name = spans.set_index("name")
        assert by_name.loc["POST /api/checkout", "start_ns"] == 1_700_000_000_000_000_000
        assert by_name.loc["rules lookup", "start_ns"] == 1_700_000_000_035_000_000
        assert by_name.loc["POST /api/checkout", "attributes"]["http.response.status_code"] == 500
        assert by_name.loc["rules lookup", "attributes"]["db.rows"] == 42
        assert by_name.loc["Charge", "attributes"]["card.attempts"] == 3

    def test_attribute_types_resources_and_events(self):
        """Arrays, kvlists, bytes, doubles and bools decode; each resource names its spans."""
        spans, _ = read_spans(COLLECTOR)
        attrs = spans.set_index("name").attributes
        charge = attrs["payments.v1.Payments/Charge"]
        assert charge["retry.hosts"] == ["pay-1", "pay-2"]
        assert charge["rpc.request.metadata"] == {"content-type": "application/grpc", "attempt": 2}
        assert charge["rpc.request.digest"] == "q83v"
        assert charge["retry.backoff_s"] == 0.25
        assert attrs["POST /api/checkout"]["user_agent.synthetic"] is False
        services = {name: a["service.name"] for name, a in attrs.items()}
        assert services["POST /api/checkout"] == "checkout"
        assert services["risk score"] == "payments"
        assert services["rules lookup"] == "fraud-check"
        (event,) = spans.set_index("name").events["POST /api/checkout"]
        assert event == {
            "name": "exception",
            "time_ns": 1_700_000_000_240_000_000,
            "attributes": {"exception.type": "PaymentDeclined", "exception.escaped": True},
        }

    def test_span_attribute_wins_over_resource_service_name(self, tmp_path):
        """A span's own service.name is kept; the resource's only fills it in when absent."""
        path = _write(
            tmp_path / "s.jsonl", _line(_span(T1, _sid(1), attrs={"service.name": "mine"}))
        )
        spans, _ = read_spans(path)
        assert spans.attributes[0]["service.name"] == "mine"

    def test_legacy_instrumentation_library_spans(self, tmp_path):
        """Older Collector files (instrumentationLibrarySpans) are read like scopeSpans."""
        request = {"resourceSpans": [{"instrumentationLibrarySpans": [{"spans": _family()}]}]}
        spans, quality = read_spans(_write(tmp_path / "old.jsonl", json.dumps(request)))
        assert quality.clean and len(spans) == 3

    def test_fixture_base64_ids_are_the_expected_hex(self):
        """The Collector fixture's base64 ids decode to the hex ids these tests expect."""
        line = json.loads(COLLECTOR.read_text().splitlines()[1])
        span = line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        assert base64.b64decode(span["spanId"]).hex() == "c0ffee0000000001"
        assert span["kind"] == "SPAN_KIND_SERVER"

    def test_all_zero_parent_id_means_root(self, tmp_path):
        """A parentSpanId of sixteen zeros is no parent, not an orphan."""
        path = _write(tmp_path / "z.jsonl", _line(_span(T1, _sid(1), "0" * 16)))
        spans, quality = read_spans(path)
        assert quality.clean, quality.to_dict()
        assert spans.parent_span_id[0] == ""


class TestDocuments:
    def test_pretty_printed_otlp_request(self, tmp_path):
        """One ExportTraceServiceRequest pretty-printed over many lines is read as a document."""
        request = json.loads(_line(*_family()))
        path = tmp_path / "request.json"
        path.write_text(json.dumps(request, indent=2))
        spans, quality = read_spans(path)
        assert quality.clean, quality.to_dict()
        assert len(spans) == 3

    def test_result_wrapper(self, tmp_path):
        """``{"result": request}`` (Jaeger's v3 API) is unwrapped, pretty-printed or as lines."""
        request = json.loads(_line(*_family()))
        pretty = tmp_path / "v3.json"
        pretty.write_text(json.dumps({"result": request}, indent=1))
        lines = _write(tmp_path / "v3.jsonl", *[json.dumps({"result": request})] * 2)
        assert len(read_spans(pretty)[0]) == 3
        spans, quality = read_spans(lines)
        assert len(spans) == 3 and quality.counts == {"duplicate_span_id": 3}

    def test_truncated_pretty_printed_document_is_one_finding(self, tmp_path):
        """A pretty-printed document cut short is one invalid-JSON finding, not one per line."""
        text = json.dumps(json.loads(_line(*_family())), indent=2)
        path = tmp_path / "cut.json"
        path.write_text(text[: len(text) // 2])
        spans, quality = read_spans(path)
        assert spans.empty
        assert quality.counts == {"truncated_or_invalid_json": 1, "no_spans_in_file": 1}
        assert str(path) in quality.examples["truncated_or_invalid_json"][0]

    def test_bom_at_the_start(self, tmp_path):
        """A UTF-8 byte-order mark before the first line is skipped."""
        path = _write(tmp_path / "bom.jsonl", b"\xef\xbb\xbf" + _line(*_family()).encode())
        spans, quality = read_spans(path)
        assert quality.clean and len(spans) == 3


class TestJaeger:
    def test_ui_download(self):
        """The UI download gives 8 spans in 2 traces with padded ids and no findings."""
        spans, quality = read_spans(JAEGER_DOWNLOAD)
        assert quality.clean, quality.to_dict()
        assert len(spans) == 8
        assert set(spans.trace_id) == {
            "00000000000000007d1c4b3ea1f0c2d9",
            "0af7651916cd43dd8448eb211c80319c",
        }
        assert (spans.parent_span_id == "").sum() == 2

    def test_references_parents_and_kinds(self):
        """CHILD_OF and FOLLOWS_FROM give parents; span.kind tags give kinds (default INTERNAL)."""
        spans, _ = read_spans(JAEGER_DOWNLOAD)
        got = {r.name: (r.parent_span_id, r.kind) for r in spans.itertuples()}
        assert got["SQL SELECT"] == ("7d1c4b3ea1f0c2d9", "CLIENT")
        assert got["consume dispatch.completed"] == ("0c4f8e2a6b1d3f57", "CONSUMER")
        assert got["send receipt email"] == ("a93b0e6c24d1f780", "INTERNAL")
        assert got["publish dispatch.completed"][1] == "PRODUCER"
        assert got["HTTP GET /dispatch"] == ("", "SERVER")

    def test_times_tags_services_logs_and_status(self):
        """Microseconds become ns; tags keep their types; logs become named events."""
        spans, _ = read_spans(JAEGER_DOWNLOAD)
        rows = spans.set_index("name")
        sql = rows.loc["SQL SELECT"]
        assert sql.start_ns == 1_700_000_000_001_045_000
        assert sql.end_ns - sql.start_ns == 322_841_000
        assert sql.attributes["db.rows"] == 1
        assert sql.attributes["db.cache_hit_ratio"] == 0.875
        assert sql.attributes["request.digest"] == "q83vEjRWeJA="
        assert sql.attributes["service.name"] == "mysql"
        root = rows.loc["HTTP GET /dispatch"]
        assert root.attributes["sampler.param"] is True
        assert root.attributes["http.status_code"] == 200
        assert [e["name"] for e in root.events] == [
            "HTTP request received",
            "Search successfully completed",
        ]
        assert root.events[1] == {
            "name": "Search successfully completed",
            "time_ns": 1_700_000_000_731_400_000,
            "attributes": {"level": "info", "drivers": 10},
        }
        status = {name: int(s) for name, s in rows.status.items()}
        assert status["FindDriverIDs"] == 2  # error=true
        assert status["GET /health"] == 2  # otel.status_code=ERROR
        assert status["publish dispatch.completed"] == 1  # otel.status_code=OK
        assert status["SQL SELECT"] == 0

    def test_bare_list_single_trace_and_one_line(self, tmp_path):
        """A bare list of traces, a single trace object and a one-line document all read alike."""
        traces = json.loads(JAEGER_DOWNLOAD.read_text())["data"]
        bare = tmp_path / "bare.json"
        bare.write_text(json.dumps(traces, indent=2))
        single = tmp_path / "single.json"
        single.write_text(json.dumps(traces[1], indent=2))
        one_line = _write(tmp_path / "one.jsonl", json.dumps({"data": traces}))
        assert len(read_spans(bare)[0]) == 8
        assert len(read_spans(single)[0]) == 2
        spans, quality = read_spans(one_line)
        assert len(spans) == 8 and quality.clean

    def test_child_of_wins_and_legacy_parent(self, tmp_path):
        """CHILD_OF beats an earlier FOLLOWS_FROM; without references parentSpanID is used."""
        trace = {
            "traceID": "abc",
            "spans": [
                {"spanID": "1", "operationName": "root", "startTime": 10, "duration": 100},
                {"spanID": "2", "operationName": "b", "startTime": 20, "duration": 10},
                {
                    "spanID": "3",
                    "operationName": "c",
                    "startTime": 30,
                    "duration": 10,
                    "references": [
                        {"refType": "FOLLOWS_FROM", "traceID": "abc", "spanID": "2"},
                        {"refType": "CHILD_OF", "traceID": "abc", "spanID": "1"},
                    ],
                },
                {
                    "spanID": "4",
                    "parentSpanID": "2",
                    "operationName": "d",
                    "startTime": 22,
                    "duration": 5,
                },
            ],
        }
        path = tmp_path / "t.json"
        path.write_text(json.dumps(trace, indent=2))
        spans, quality = read_spans(path)
        assert quality.clean, quality.to_dict()
        parent = dict(zip(spans.name, spans.parent_span_id, strict=True))
        assert parent == {"root": "", "b": "", "c": _sid(1), "d": _sid(2)}
        assert set(spans.trace_id) == {"0" * 29 + "abc"}

    def test_bad_jaeger_spans_and_tags_are_findings(self, tmp_path):
        """A span without startTime is skipped; a bad int64 tag is dropped; the rest is kept."""
        trace = {
            "traceID": "ab",
            "spans": [
                {"spanID": "1", "operationName": "ok", "startTime": 10, "duration": 5},
                {"spanID": "2", "operationName": "no start", "duration": 5},
                {
                    "spanID": "3",
                    "operationName": "bad tag",
                    "startTime": 10,
                    "duration": 1,
                    "tags": [
                        {"key": "n", "type": "int64", "value": "many"},
                        {"key": "ok", "type": "bool", "value": "true"},
                    ],
                },
                "not a span",
            ],
        }
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"data": [trace, 7]}, indent=2))
        spans, quality = read_spans(path)
        assert sorted(spans.name) == ["bad tag", "ok"]
        assert spans.set_index("name").attributes["bad tag"] == {"ok": True}
        assert quality.counts == {
            "malformed_span": 2,
            "malformed_attribute": 1,
            "not_trace_json": 1,
        }

    @pytest.mark.parametrize("case", sorted(JAEGER_CP))
    def test_critical_path_fixture_round_trips(self, case, tmp_path):
        """Each jaeger-ui critical-path case, as a Jaeger document, keeps ids, parents and times."""
        fixture = JAEGER_CP[case]["spans"]
        trace_id = f"{sorted(JAEGER_CP).index(case) + 1:x}"
        spans_json = []
        for s in fixture:
            span: dict[str, Any] = {
                "traceID": trace_id,
                "spanID": s["spanID"],
                "operationName": s["spanID"],
                "references": [],
                "startTime": s["startTime"],
                "duration": s["duration"],
                "tags": [],
                "logs": [],
                "processID": "p1",
            }
            if s["parentSpanID"]:
                span["references"].append(
                    {"refType": "CHILD_OF", "traceID": trace_id, "spanID": s["parentSpanID"]}
                )
            if s["kind"] != "INTERNAL":
                span["tags"].append(
                    {"key": "span.kind", "type": "string", "value": s["kind"].lower()}
                )
            spans_json.append(span)
        document = {"data": [{"traceID": trace_id, "spans": spans_json, "processes": {}}]}
        path = tmp_path / "cp.json"
        path.write_text(json.dumps(document, indent=2))
        spans, quality = read_spans(path)
        got = {
            r.span_id: (
                r.parent_span_id,
                r.start_ns // 1000,
                (r.end_ns - r.start_ns) // 1000,
                r.kind,
            )
            for r in spans.itertuples()
        }
        want = {
            s["spanID"]: (s["parentSpanID"] or "", s["startTime"], s["duration"], s["kind"])
            for s in fixture
        }
        assert got == want
        assert set(spans.trace_id) == {trace_id.zfill(32)}
        assert quality.counts.get("child_outside_parent", 0) == _skewed(fixture)
        assert set(quality.counts) <= {"child_outside_parent"}


def _skewed(fixture: list[dict[str, Any]]) -> int:
    """Children outside their parent, counted directly from a critical-path fixture."""
    by_id = {s["spanID"]: s for s in fixture}
    count = 0
    for s in fixture:
        p = by_id.get(s["parentSpanID"])
        if p is None or s["kind"] == "CONSUMER" or p["kind"] == "PRODUCER":
            early = p is not None and s["startTime"] < p["startTime"]
            count += early
            continue
        early = s["startTime"] < p["startTime"]
        late = s["startTime"] + s["duration"] > p["startTime"] + p["duration"]
        count += early or late
    return count


class TestFindings:
    def test_truncated_last_line(self, tmp_path):
        """A last line cut mid-write is one finding; the lines before it are all read."""
        full = _line(*_family(T2, 10))
        path = _write(tmp_path / "t.jsonl", _line(*_family()), full[: len(full) // 2], last=False)
        spans, quality = read_spans(path)
        assert len(spans) == 3
        assert quality.counts == {"truncated_or_invalid_json": 1}
        assert quality.examples["truncated_or_invalid_json"][0].startswith(f"{path}:2: ")

    def test_undecodable_bytes(self, tmp_path):
        """Invalid UTF-8 is counted per line; a JSON line with it still gives its spans."""
        bad_value = _line(_span(T2, _sid(9), attrs={"note": "caf\u00e9"})).encode()
        bad_value = bad_value.replace(b"\\u00e9", b"\xff")  # json.dumps escaped the é
        assert b"\xff" in bad_value
        path = _write(tmp_path / "u.jsonl", _line(*_family()), bad_value, b"\x89PNG\r\x00\xfe")
        spans, quality = read_spans(path)
        assert quality.counts == {"undecodable_bytes": 2}
        column = bad_value.index(b"\xff") + 1
        assert quality.examples["undecodable_bytes"][0] == f"{path}:2: byte 0xff at column {column}"
        assert len(spans) == 4
        assert spans.set_index("span_id").attributes[_sid(9)]["note"] == "caf\ufffd"

    def test_non_trace_json_lines(self, tmp_path):
        """JSON that is neither OTLP nor Jaeger is counted per line; an empty request is not."""
        path = _write(
            tmp_path / "n.jsonl",
            _line(*_family()),
            '{"hello": "world"}',
            "[1, 2, 3]",
            '"just text"',
            "42",
            '{"resourceSpans": []}',
        )
        spans, quality = read_spans(path)
        assert len(spans) == 3
        assert quality.counts == {"not_trace_json": 4}
        assert quality.examples["not_trace_json"][0] == f"{path}:2: dict {{'hello': 'world'}}"

    def test_malformed_spans_skip_only_themselves(self, tmp_path):
        """Spans without ids or with bad times are skipped; their good neighbours are kept."""
        line = _line(
            _span(T1, _sid(1), start=1_000, end=9_000),
            _span(T1, "", _sid(1)),
            _span(T1, _sid(3), _sid(1), startTimeUnixNano="soon"),
            _span(T1, _sid(4), _sid(1), endTimeUnixNano=None),
            _span(T1, _sid(5), _sid(1), startTimeUnixNano=str(2**64)),
            _span(T1, _sid(6), _sid(1), start=2_000, end=3_000),
        )
        typed_ok = _line(_span("", _sid(7)), _span(T2, _sid(8), start=5, end=6))
        spans, quality = read_spans(_write(tmp_path / "m.jsonl", line, typed_ok))
        assert sorted(spans.span_id) == [_sid(1), _sid(6), _sid(8)]
        assert quality.counts == {"malformed_span": 5}
        assert any("soon" in e for e in quality.examples["malformed_span"])

    def test_time_beyond_int64_in_a_clean_line(self, tmp_path):
        """A time that does not fit int64 in an otherwise typed line is one malformed span."""
        line = _line(
            _span(T1, _sid(1), start=1_000, end=9_000),
            _span(T1, _sid(2), _sid(1), end=2**63),
        )
        spans, quality = read_spans(_write(tmp_path / "big.jsonl", line))
        assert list(spans.span_id) == [_sid(1)]
        assert quality.counts == {"malformed_span": 1}

    def test_malformed_attributes_and_events(self, tmp_path):
        """A bad attribute value or an event without time is dropped, and the span kept."""
        span = _span(T1, _sid(1))
        span["attributes"] += [
            {"key": "bad", "value": {"intValue": "lots"}},
            {"key": "good", "value": {"intValue": 3}},
        ]
        span["events"] = [{"name": "no time"}, {"name": "ok", "timeUnixNano": "1500"}]
        spans, quality = read_spans(_write(tmp_path / "a.jsonl", _line(span)))
        assert spans.attributes[0] == {"good": 3, "service.name": "svc"}
        assert [e["name"] for e in spans.events[0]] == ["ok"]
        assert quality.counts == {"malformed_attribute": 1, "malformed_event": 1}

    def test_duplicate_span_ids_are_counted_exactly(self, tmp_path):
        """Five repeats of a span id are five findings (three examples); the first is kept."""
        first = _span(T1, _sid(1), start=1_000, end=9_000, name="first")
        repeats = [_span(T1, _sid(1), name=f"repeat {i}") for i in range(5)]
        other_trace = _span(T2, _sid(1))  # the same span id in another trace is fine
        path = _write(tmp_path / "d.jsonl", _line(first, *repeats[:2]), _line(*repeats[2:]))
        _write(tmp_path / "d2.jsonl", _line(other_trace))
        spans, quality = read_spans([path, tmp_path / "d2.jsonl"])
        assert quality.counts == {"duplicate_span_id": 5}
        assert len(quality.examples["duplicate_span_id"]) == 3
        assert f"first read at {path}:1" in quality.examples["duplicate_span_id"][0]
        assert len(spans) == 2
        assert spans.set_index("trace_id").name[T1] == "first"

    def test_orphans_and_traces_without_root(self, tmp_path):
        """Missing parents are orphans; a trace of orphans only also has no root."""
        path = _write(
            tmp_path / "o.jsonl",
            _line(*_family(), _span(T1, _sid(4), _sid(99), start=2_000, end=3_000)),
            _line(_span(T2, _sid(5), _sid(98)), _span(T2, _sid(6), _sid(5), start=1_500)),
        )
        spans, quality = read_spans(path)
        assert len(spans) == 6
        assert quality.counts == {"orphan_span": 2, "trace_without_root": 1}
        assert quality.examples["orphan_span"][0] == (
            f"{path}:1: trace {T1} span {_sid(4)} 'op 0004': parent {_sid(99)} is not in the trace"
        )
        assert T2 in quality.examples["trace_without_root"][0]

    def test_server_span_with_a_remote_parent_is_an_entry_point(self, tmp_path):
        """A SERVER span whose parent came from a client's traceparent is a root, not an orphan."""
        path = _write(
            tmp_path / "r.jsonl",
            _line(_span(T1, _sid(1), _sid(90), kind=2), _span(T1, _sid(2), _sid(1), start=1_200)),
            _line(_span(T2, _sid(3), _sid(91), kind=5)),  # a CONSUMER fed by another process
            _line(_span("0" * 31 + "3", _sid(4), _sid(92), kind=1)),  # INTERNAL: a real orphan
        )
        spans, quality = read_spans(path)
        assert len(spans) == 4
        assert quality.counts == {"orphan_span": 1, "trace_without_root": 1}
        assert _sid(4) in quality.examples["orphan_span"][0]

    def test_end_before_start_is_kept_as_read(self, tmp_path):
        """Spans ending before they start are counted and kept with their times unchanged."""
        path = _write(
            tmp_path / "e.jsonl",
            _line(_span(T1, _sid(1), start=5_000, end=4_000), _span(T2, _sid(2), start=9, end=1)),
        )
        spans, quality = read_spans(path)
        assert quality.counts == {"end_before_start": 2}
        assert list(spans.start_ns - spans.end_ns) == [1_000, 8]
        assert "ends 0.001 ms before it starts" in quality.examples["end_before_start"][0]

    def test_child_outside_parent(self, tmp_path):
        """Children starting early or ending late are skew; messaging children may end late."""
        root = _span(T1, _sid(1), start=1_000, end=9_000)
        producer = _span(T1, _sid(2), _sid(1), start=2_000, end=3_000, kind=4)
        path = _write(
            tmp_path / "c.jsonl",
            _line(
                root,
                producer,
                _span(T1, _sid(3), _sid(1), start=500, end=2_000),  # starts early
                _span(T1, _sid(4), _sid(1), start=8_000, end=9_500),  # ends late
                _span(T1, _sid(5), _sid(2), start=2_500, end=7_000, kind=5),  # consumer, later
                _span(T1, _sid(6), _sid(2), start=2_600, end=3_500, kind=3),  # producer's child
                _span(T1, _sid(7), _sid(2), start=1_900, end=2_500, kind=5),  # consumer, early
            ),
        )
        spans, quality = read_spans(path)
        assert len(spans) == 7
        assert quality.counts == {"child_outside_parent": 3}
        examples = quality.examples["child_outside_parent"]
        assert "starts 0.0005 ms before its parent" in examples[0]
        assert "ends 0.0005 ms after its parent" in examples[1]

    def test_blank_lines_and_crlf_are_not_findings(self, tmp_path):
        """Blank lines and Windows line ends are ordinary."""
        path = _write(tmp_path / "b.jsonl", "", _line(*_family()), "   ", end=b"\r\n")
        spans, quality = read_spans(path)
        assert quality.clean and len(spans) == 3


class TestFiles:
    def test_unopenable_path_raises_trace_data_error(self, tmp_path):
        """A missing file is the one error: what, where and how to fix it."""
        missing = tmp_path / "nope.jsonl"
        with pytest.raises(TraceDataError) as caught:
            read_spans(missing)
        assert caught.value.what == "cannot open trace file: No such file or directory"
        assert caught.value.where == str(missing)
        assert caught.value.fix and "spans.jsonl" in caught.value.fix

    def test_directory_raises_trace_data_error(self, tmp_path):
        """A directory is not a trace file."""
        with pytest.raises(TraceDataError, match="cannot open trace file"):
            read_spans(tmp_path)

    def test_empty_and_blank_files_are_findings(self, tmp_path):
        """Empty and whitespace-only files give no spans and a finding each, never an error."""
        empty = _write(tmp_path / "empty.jsonl")
        blank = _write(tmp_path / "blank.jsonl", "", "  ", "\t")
        spans, quality = read_spans([empty, blank])
        assert spans.empty and list(spans.columns) == SPAN_COLUMNS
        assert quality.counts == {"no_spans_in_file": 2}
        assert quality.examples["no_spans_in_file"][0] == (
            f"{empty}: no spans could be read (the file is empty)"
        )

    def test_binary_garbage_is_a_finding(self, tmp_path):
        """A PNG read as traces is an undecodable-bytes finding and a file without spans."""
        png = tmp_path / "chart.png"
        png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)))
        spans, quality = read_spans(png)
        assert spans.empty
        assert quality.counts == {"undecodable_bytes": 1, "no_spans_in_file": 1}

    def test_several_files_one_table(self, tmp_path):
        """Spans of several files form one table; a trace may span files; bad files are findings."""
        a = _write(tmp_path / "a.jsonl", _line(*_family()[:2]))
        b = _write(tmp_path / "b.jsonl", _line(_family()[2]))
        c = _write(tmp_path / "c.jsonl", "not json")
        spans, quality = read_spans([str(a), b, c])
        assert len(spans) == 3
        assert quality.counts == {"truncated_or_invalid_json": 1, "no_spans_in_file": 1}


class TestDataQuality:
    def test_counts_examples_and_merge(self):
        """Counts add up exactly; examples stop at three; merge keeps both rules."""
        a, b = DataQuality(), DataQuality()
        a.add("orphan_span", "one")
        a.add_many("orphan_span", 4, ["two", "three", "four"])
        b.add_many("orphan_span", 2, ["five"])
        b.add("end_before_start", "x" * 1000)
        a.merge(b)
        assert a.counts == {"orphan_span": 7, "end_before_start": 1}
        assert a.examples["orphan_span"] == ["one", "two", "three"]
        assert len(a.examples["end_before_start"][0]) == 300
        assert list(a.to_dict()) == ["end_before_start", "orphan_span"]
        assert not a.clean and DataQuality().clean

    def test_add_many_of_zero_is_nothing(self):
        """Counting zero occurrences leaves no finding behind."""
        quality = DataQuality()
        quality.add_many("orphan_span", 0, ["never"])
        assert quality.clean and quality.to_dict() == {}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_VALUE_TYPES = ["stringValue", "intValue", "doubleValue", "boolValue", "arrayValue"]
_VALUE_TYPES += ["kvlistValue", "bytesValue"]
_field = _json | st.sampled_from(["", T1, _sid(1), "AAAAAAAAAAE=", "SPAN_KIND_CLIENT", "12", 3])


@st.composite
def _otlp_like(draw: Callable[..., Any]) -> dict[str, Any]:
    """OTLP (or Jaeger) shapes in which any field may hold any JSON value."""
    fields = ["traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano"]
    fields += ["endTimeUnixNano", "attributes", "events", "status"]
    span = _span(T1, _sid(1), attrs={"a": 1, "b": [1.5, "x"]})
    for name in draw(st.lists(st.sampled_from(fields), max_size=4)):
        span[name] = draw(_field)
    if draw(st.booleans()):
        value_type = draw(st.sampled_from([*_VALUE_TYPES, "otherValue"]))
        span["attributes"] = [{"key": draw(_field), "value": {value_type: draw(_field)}}]
    request = json.loads(_line(span, _span(T1, _sid(2), _sid(1))))
    if draw(st.booleans()):
        request["resourceSpans"][0][draw(st.sampled_from(["resource", "scopeSpans"]))] = draw(
            _field
        )
    if draw(st.booleans()):
        return {"data": [{"traceID": draw(_field), "spans": [draw(_json), {"spanID": "1"}]}]}
    return request


def _read_bytes(data: bytes) -> tuple[pd.DataFrame, DataQuality]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.jsonl"
        path.write_bytes(data)
        return read_spans(path)


_quick = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestNeverRaises:
    @_quick
    @given(st.binary(max_size=3000))
    def test_arbitrary_bytes(self, data):
        """Any bytes at all give a span table and findings, never an exception."""
        spans, quality = _read_bytes(data)
        assert list(spans.columns) == SPAN_COLUMNS
        assert not spans.empty or not quality.clean  # nothing read is always explained

    @_quick
    @given(st.lists(_json, min_size=1, max_size=4), st.booleans())
    def test_arbitrary_json(self, values, pretty):
        """Any JSON values, one per line or one pretty-printed, never raise."""
        text = json.dumps(values, indent=2) if pretty else "\n".join(json.dumps(v) for v in values)
        spans, quality = _read_bytes(text.encode())
        assert list(spans.columns) == SPAN_COLUMNS
        assert not spans.empty or not quality.clean

    @_quick
    @given(st.lists(_otlp_like(), min_size=1, max_size=3), st.booleans())
    def test_trace_shapes_with_arbitrary_fields(self, requests, pretty):
        """OTLP and Jaeger shapes with arbitrary values in any field never raise."""
        if pretty:
            text = json.dumps(requests[0], indent=2)
        else:
            text = "\n".join(json.dumps(r) for r in requests)
        spans, quality = _read_bytes(text.encode())
        assert list(spans.columns) == SPAN_COLUMNS
        assert spans.empty or spans.start_ns.dtype == "int64"
        assert not spans.empty or not quality.clean
