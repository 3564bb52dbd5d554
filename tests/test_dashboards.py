"""The shipped dashboard, Prometheus configuration, rules and compose file, checked offline.

What a user relies on: the committed files are what ``dashboards/build.py``
builds; Grafana can load the dashboard and every reference in it resolves;
every query parses (promtool) and names only series the service exposes or
the rules record; the dashboard-linter rules that matter hold; the alerts fire
as their tests say; the compose file points at files and services that exist.
The same queries run against a real Prometheus in test_prometheus_integration.py.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dashboard_checks import (
    ALERT_RULES,
    COUNTER_SUFFIXES,
    DASHBOARDS,
    RECORDING_RULES,
    ROOT,
    RULES_DIR,
    SYNTHETIC_SERIES,
    Query,
    data_panels,
    iter_selectors,
    level_labels,
    load_dashboard,
    panel_queries,
    promtool_parses,
    recorded_names,
    rule_queries,
    rules,
    selectors,
    substitute,
    variable_queries,
)
from helpers import system_binary
from prometheus_client.parser import text_string_to_metric_families

from harness.gate.budget import load_budget
from harness.service import ServiceConfig, ServiceServer

BUILD = DASHBOARDS / "build.py"
GENERATED = (
    Path("grafana/parabench.json"),
    Path("prometheus/rules/recording.yml"),
    Path("prometheus/rules/alerts.yml"),
    Path("prometheus/rules/alerts_test.yml"),
)
PROMETHEUS_CONFIGS = (
    DASHBOARDS / "prometheus" / "prometheus.yml",
    DASHBOARDS / "prometheus" / "prometheus.local.yml",
)
DATASOURCES = DASHBOARDS / "provisioning" / "datasources" / "parabench.yaml"
DASHBOARD_PROVIDERS = DASHBOARDS / "provisioning" / "dashboards" / "parabench.yaml"
COMPOSE = ROOT / "docker-compose.yml"
# Grafana unit ids used by parabench panels (from Grafana's valueFormats categories).
GRAFANA_UNITS = {"s", "ms", "currencyUSD", "reqps", "ops", "short", "percentunit", "none"}
GRAFANA_MACROS = {"__rate_interval", "__interval", "__range", "__all"}
BUDGET_ALERTS = (
    "ParabenchRunLatencyOverBudget",
    "ParabenchFirstCardOverBudget",
    "ParabenchCostPerRunOverBudget",
    "ParabenchRunsNotCompletedOverBudget",
    "ParabenchBranchCostOverBudget",
)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


@pytest.fixture(scope="module")
def queries(dashboard: dict[str, Any]) -> list[Query]:
    """Every PromQL expression users get: panel targets, variable selectors, rules."""
    variables = [Query(f"variable '{n}'", s) for n, s, _ in variable_queries(dashboard)]
    return panel_queries(dashboard) + variables + rule_queries()


@pytest.fixture(scope="module")
def promtool() -> str:
    return system_binary("promtool", "the Prometheus configuration and rules")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The services of docker-compose.yml."""
    data: dict[str, Any] = read_yaml(COMPOSE)
    return data["services"]


def build(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BUILD), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_promtool(
    promtool: str, *args: str | Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


class TestGenerator:
    def test_committed_files_equal_a_fresh_build(self, tmp_path: Path) -> None:
        """Building into an empty directory gives the committed files byte for byte."""
        result = build("--out", tmp_path)
        assert result.returncode == 0, result.stderr
        for relative in GENERATED:
            fresh = (tmp_path / relative).read_bytes()
            assert fresh == (DASHBOARDS / relative).read_bytes(), (
                f"dashboards/{relative} is stale: run python dashboards/build.py"
            )
        assert build("--check").returncode == 0

    def test_check_names_a_stale_file(self, tmp_path: Path) -> None:
        """`build.py --check` exits 1 and names the file that differs from a fresh build."""
        assert build("--out", tmp_path).returncode == 0
        alerts = tmp_path / "prometheus" / "rules" / "alerts.yml"
        alerts.write_text(alerts.read_text().replace("for: 10m", "for: 11m", 1))
        result = build("--check", "--out", tmp_path)
        assert result.returncode == 1
        assert "alerts.yml" in result.stderr and "recording.yml" not in result.stderr


class TestDashboardJson:
    def test_grafana_can_load_it(self, dashboard: dict[str, Any]) -> None:
        """A current schema version, a uid, unique panel ids, panels within 24 columns, apart."""
        assert dashboard["schemaVersion"] >= 39
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"])
        panels = dashboard["panels"]
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), ids
        boxes = []
        for panel in panels:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
            boxes.append((pos["x"], pos["y"], pos["x"] + pos["w"], pos["y"] + pos["h"], panel))
        for i, (x0, y0, x1, y1, a) in enumerate(boxes):
            for u0, v0, u1, v1, b in boxes[i + 1 :]:
                overlap = x0 < u1 and u0 < x1 and y0 < v1 and v0 < y1
                assert not overlap, (a["title"], b["title"])

    def test_datasource_variable_and_every_reference_resolve(
        self, dashboard: dict[str, Any]
    ) -> None:
        """One Prometheus datasource variable; every panel, target and variable uses it."""
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        source = variables["datasource"]
        assert (source["type"], source["query"], source["label"]) == (
            "datasource",
            "prometheus",
            "Data source",
        )
        uses = [v["datasource"] for v in variables.values() if v["type"] == "query"]
        for panel in data_panels(dashboard):
            uses.append(panel["datasource"])
            uses.extend(t["datasource"] for t in panel["targets"])
        assert uses
        for use in uses:
            assert use == {"type": "prometheus", "uid": "${datasource}"}

    def test_variables_are_defined_used_and_refreshed(self, dashboard: dict[str, Any]) -> None:
        """scenario, variant and step exist, reload on time change, and every $var is defined."""
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        for name in ("scenario", "variant", "step"):
            assert variables[name]["type"] == "query"
            assert variables[name]["refresh"] == 2, name  # on time range change
            assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
        texts = [q.expr for q in panel_queries(dashboard)]
        texts += [s for _, s, _ in variable_queries(dashboard)]
        referenced = {m for t in texts for m in re.findall(r"\$\{?([a-zA-Z_]\w*)\}?", t)}
        assert referenced - GRAFANA_MACROS <= set(variables), referenced
        for name in ("scenario", "variant", "step"):
            assert name in referenced, f"variable '{name}' is never used"

    def test_every_panel_has_a_unit_a_description_and_queries(
        self, dashboard: dict[str, Any]
    ) -> None:
        """Every data panel names a Grafana unit, describes itself and has a query."""
        panels = data_panels(dashboard)
        assert len(panels) >= 15
        for panel in panels:
            title = panel["title"]
            assert panel["fieldConfig"]["defaults"]["unit"] in GRAFANA_UNITS, title
            for override in panel["fieldConfig"]["overrides"]:
                for prop in override["properties"]:
                    if prop["id"] == "unit":
                        assert prop["value"] in GRAFANA_UNITS, title
            assert len(panel["description"]) >= 40, title
            assert panel["targets"], title
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), title

    def test_rate_interval_on_every_range(self, dashboard: dict[str, Any]) -> None:
        """Every range in a panel query is [$__rate_interval] (dashboard-linter's rule)."""
        for query in panel_queries(dashboard):
            ranges = re.findall(r"\[([^\]]*)\]", query.expr)
            assert all(r == "$__rate_interval" for r in ranges), (query.where, ranges)

    def test_counters_only_under_rate(self, dashboard: dict[str, Any]) -> None:
        """In panels and rules, counters and histogram parts sit directly in rate or increase."""
        checked = 0
        # Variables only list label values, so their selectors need no rate().
        for query, selector in iter_selectors(panel_queries(dashboard) + rule_queries()):
            if selector.name.endswith(COUNTER_SUFFIXES) and ":" not in selector.name:
                assert selector.ranged and selector.function in {"rate", "irate", "increase"}, (
                    query.where,
                    selector,
                )
                checked += 1
        assert checked >= 30

    def test_latency_panels_show_exemplars(self, dashboard: dict[str, Any]) -> None:
        """Every quantile of a duration histogram asks for exemplars (the links to traces)."""
        latency = [
            q
            for q in panel_queries(dashboard)
            if "histogram_quantile" in q.expr and "_seconds_bucket" in q.expr
        ]
        assert len(latency) >= 5
        assert all(q.exemplar for q in latency), [q.where for q in latency if not q.exemplar]

    def test_covers_the_questions_of_the_issue(self, dashboard: dict[str, Any]) -> None:
        """Runs/s, in flight, e2e and TTFC, steps, queue, cost, branches, tokens, errors, 429s."""
        panels = {
            p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in data_panels(dashboard)
        }
        needs = {
            "runs per second": ["rate(parabench_run_duration_seconds_count"],
            "in flight": ["parabench_runs_in_flight"],
            "e2e p50/p95": [
                "histogram_quantile(0.5, sum by (le, variant) (rate(parabench_run_duration",
                "histogram_quantile(0.95, sum by (le, variant) (rate(parabench_run_duration",
            ],
            "ttfc p95": ["histogram_quantile(0.95, sum by (le, variant) (rate(parabench_run_time"],
            "latency by step": ["sum by (le, step) (rate(parabench_step_duration_seconds_bucket"],
            "queue vs service": ["parabench_step_queue_seconds_sum", "step_duration_seconds_sum"],
            "cost per run": ["parabench_cost_usd_total", "/ sum by (variant) (rate(parabench_run"],
            "cost per hour": ["parabench_cost_usd_total", "* 3600"],
            "$/s saved": ["branch_extra_cost_usd_total", "/ (sum", "branch_saved_seconds_total"],
            "tokens/s": ["rate(parabench_llm_tokens_total"],
            "errors": ["rate(parabench_llm_errors_total[$__rate_interval])"],
            "429 rate": ['parabench_llm_errors_total{error_type="rate_limited"}'],
        }
        for need, parts in needs.items():
            assert any(all(p in text for p in parts) for text in panels.values()), need

    def test_every_contract_metric_is_on_the_dashboard_or_in_a_rule(
        self, queries: list[Query]
    ) -> None:
        """Each metric of the contract (docs/concepts.md) feeds some panel or rule."""
        text = (ROOT / "docs" / "concepts.md").read_text(encoding="utf-8")
        contract = re.findall(r"^\| `((?:parabench|gen_ai)_[a-z_]+)` \|", text, flags=re.M)
        assert len(contract) >= 12
        used = {s.name for _, s in iter_selectors(queries)}
        # Token counts per call serve community GenAI dashboards; ours read the counter.
        for name in set(contract) - {"gen_ai_client_token_usage"}:
            assert any(u == name or u.startswith(name + "_") for u in used), name


class TestPromtool:
    def test_every_query_parses(self, promtool: str, queries: list[Query], tmp_path: Path) -> None:
        """promtool parses every panel, variable and rule expression, macros substituted."""
        assert len(queries) >= 60
        assert promtool_parses(promtool, queries, tmp_path) == []

    def test_a_broken_query_is_named(self, promtool: str, tmp_path: Path) -> None:
        """The parse check fails on a bad expression and says which one."""
        bad = [Query("panel 'ok'", "up"), Query("panel 'bad'", "sum(rate(up[$__rate_interval])")]
        problems = promtool_parses(promtool, bad, tmp_path)
        assert problems and problems[0].startswith("panel 'bad'")

    def test_configs_and_rules_check(self, promtool: str) -> None:
        """`promtool check config` accepts both Prometheus configs and the rule files they load."""
        check = run_promtool(promtool, "check", "config", *PROMETHEUS_CONFIGS)
        assert check.returncode == 0, check.stdout + check.stderr
        recorded = len(rules(RECORDING_RULES))
        assert check.stdout.count(f"SUCCESS: {recorded} rules found") == 2
        rules_check = run_promtool(promtool, "check", "rules", RECORDING_RULES, ALERT_RULES)
        assert rules_check.returncode == 0, rules_check.stdout + rules_check.stderr

    def test_alert_unit_tests_pass(self, promtool: str) -> None:
        """`promtool test rules` passes: each kind of alert fires when it should and only then."""
        result = run_promtool(promtool, "test", "rules", "alerts_test.yml", cwd=RULES_DIR)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_alert_unit_tests_catch_a_wrong_threshold(self, promtool: str, tmp_path: Path) -> None:
        """With every threshold tripled the alert tests fail: they check the numbers."""
        for name in ("recording.yml", "alerts_test.yml"):
            shutil.copy(RULES_DIR / name, tmp_path / name)
        text = ALERT_RULES.read_text(encoding="utf-8")
        tripled = re.sub(
            r"(expr: .*> )([0-9.e+-]+)$",
            lambda m: f"{m[1]}{float(m[2]) * 3:g}",
            text,
            flags=re.M,
        )
        assert tripled != text
        (tmp_path / "alerts.yml").write_text(tripled, encoding="utf-8")
        result = run_promtool(promtool, "test", "rules", "alerts_test.yml", cwd=tmp_path)
        assert result.returncode != 0
        for alert in (*BUDGET_ALERTS, "ParabenchRateLimited"):
            assert alert in result.stdout + result.stderr, alert


class TestRules:
    def test_alerts_mirror_the_gate_budgets(self) -> None:
        """Each limit of each budget file, as the gate reads it, has its alert and threshold."""
        found = {
            (r["alert"], r["labels"]["scenario"], r["labels"]["variant"], r["labels"].get("step")):
            float(r["expr"].rsplit(">", 1)[1])
            for r in rules(ALERT_RULES)
            if r["alert"] in BUDGET_ALERTS
        }  # fmt: skip
        expected: dict[tuple[str, str, str, str | None], float] = {}
        for path in sorted((ROOT / "scenarios").glob("*.budget.yaml")):
            budget = load_budget(path)
            for variant, spec in budget.variants.items():
                limits = spec.limits
                # The budget's value and what turns it into the metric's unit.
                scaled = {
                    "ParabenchRunLatencyOverBudget": (limits.e2e_p95_ms, 1e-3),
                    "ParabenchFirstCardOverBudget": (limits.ttfc_p95_ms, 1e-3),
                    "ParabenchCostPerRunOverBudget": (limits.cost_usd_per_run, 1),
                    "ParabenchRunsNotCompletedOverBudget": (limits.error_rate, 1),
                }
                for alert, (limit, scale) in scaled.items():
                    if limit is not None:
                        expected[(alert, budget.scenario, variant, None)] = limit * scale
                for step, usd_per_ms in limits.branch_usd_per_ms_saved.items():
                    key = (BUDGET_ALERTS[-1], budget.scenario, variant, step)
                    expected[key] = usd_per_ms * 1000  # the series is per second saved
        assert len(expected) >= 30
        assert sorted(found) == sorted(expected), "run python dashboards/build.py"
        for key, limit in expected.items():
            assert found[key] == pytest.approx(limit, rel=1e-9), key

    def test_recording_rule_names_follow_the_convention(self) -> None:
        """Recorded names are level:metric:operations; each aggregation keeps the level's labels."""
        for rule in rules(RECORDING_RULES):
            name = rule["record"]
            _, metric, operations = name.split(":")
            assert metric.startswith("parabench_") and not metric.endswith("_total"), name
            assert re.fullmatch(r"(p\d+_|ratio_)?rate5m", operations), name
            by = re.findall(r"sum by \(([^)]*)\)", rule["expr"])
            for labels in by:
                kept = {label.strip() for label in labels.split(",")} - {"le"}
                assert kept == level_labels(name), (name, kept)
            # A ratio of recorded series keeps their labels: the same level.
            for selector in selectors(rule["expr"]):
                if ":" in selector.name:
                    assert level_labels(selector.name) == level_labels(name), name

    def test_alerts_read_recorded_series(self) -> None:
        """Budget and ratio alerts compare recorded series, so alerts and the table agree."""
        recorded = recorded_names()
        for rule in rules(ALERT_RULES):
            names = {s.name for s in selectors(rule["expr"])}
            assert names <= recorded | SYNTHETIC_SERIES, rule["alert"]
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.fixture(scope="module")
def exposed() -> Iterator[dict[str, set[str]]]:
    """Series names the service exposes after a run of every bundled variant, with their labels.

    Families without samples yet (LLM errors: none happened) count by their
    type's sample names, with unknown labels.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            patch.delenv(name, raising=False)
        with ServiceServer(ServiceConfig(port=0, time_scale=0.02)) as service:
            jobs = [
                {"scenario": scenario, "variant": variant, "seed": 1}
                for scenario in service.state.scenarios
                for variant in service.state.scenarios[scenario].variants
            ]

            async def run_all() -> list[int]:
                async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:

                    async def one(body: dict[str, Any]) -> int:
                        async with client.stream("POST", "/v1/runs", json=body) as response:
                            await response.aread()
                            return response.status_code

                    return await asyncio.gather(*(one(job) for job in jobs))

            assert set(asyncio.run(run_all())) == {200}
            text = httpx.get(f"{service.url}/metrics", timeout=30).text
    names: dict[str, set[str]] = {}
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    for family in text_string_to_metric_families(text):
        for suffix in suffixes.get(family.type, [""]):
            names.setdefault(family.name + suffix, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    yield names


class TestSeriesExposed:
    def test_queries_name_only_exposed_or_recorded_series(
        self, queries: list[Query], exposed: dict[str, set[str]]
    ) -> None:
        """Every selector names a series /metrics exposes, a recording rule's, or `up`."""
        known = set(exposed) | recorded_names() | SYNTHETIC_SERIES
        unknown = [(q.where, s.name) for q, s in iter_selectors(queries) if s.name not in known]
        assert unknown == []

    def test_matchers_use_labels_the_series_has(
        self, queries: list[Query], exposed: dict[str, set[str]]
    ) -> None:
        """Every label a selector matches on exists on that series (or its recorded level)."""
        checked = 0
        for query, selector in iter_selectors(queries):
            if ":" in selector.name:
                labels = level_labels(selector.name)
            elif selector.name in SYNTHETIC_SERIES:
                labels = {"job", "instance"}
            else:
                labels = exposed[selector.name]
                if not labels:
                    continue  # no sample yet to learn its labels from (see the integration test)
            assert set(selector.matchers) <= labels, (query.where, selector)
            checked += 1
        assert checked >= 60

    def test_variable_labels_exist(
        self, dashboard: dict[str, Any], exposed: dict[str, set[str]]
    ) -> None:
        """Each variable reads a label its metric really has."""
        for name, selector_text, label in variable_queries(dashboard):
            (selector,) = selectors(substitute(selector_text, "5m"))
            assert label in exposed[selector.name], name

    def test_the_check_rejects_an_unknown_series(self, exposed: dict[str, set[str]]) -> None:
        """A misspelt metric name is caught (the check above can fail)."""
        bad = Query("panel 'typo'", "sum(rate(parabench_run_durations_seconds_count[5m]))")
        names = {s.name for _, s in iter_selectors([bad])}
        assert names and not names <= set(exposed)


class TestProvisioningAndCompose:
    def test_exemplars_link_to_a_provisioned_trace_datasource(self) -> None:
        """The Prometheus datasource turns trace_id exemplars into links to the Jaeger one."""
        sources = read_yaml(DATASOURCES)["datasources"]
        by_uid = {s["uid"]: s for s in sources}
        assert len(by_uid) == len(sources)
        (prometheus,) = [s for s in sources if s["type"] == "prometheus"]
        assert prometheus["isDefault"] is True
        (link,) = prometheus["jsonData"]["exemplarTraceIdDestinations"]
        assert link["name"] == "trace_id"  # the exemplar label harness.telemetry.metrics sets
        assert by_uid[link["datasourceUid"]]["type"] in {"jaeger", "tempo"}

    def test_rate_interval_matches_the_scrape_interval(self) -> None:
        """Grafana's timeInterval is the scrape interval, so $__rate_interval spans 4 scrapes."""
        sources = read_yaml(DATASOURCES)["datasources"]
        (prometheus,) = [s for s in sources if s["type"] == "prometheus"]
        for config in PROMETHEUS_CONFIGS:
            scrape = read_yaml(config)["global"]["scrape_interval"]
            assert prometheus["jsonData"]["timeInterval"] == scrape, config.name

    def test_compose_runs_the_whole_picture(self, compose: dict[str, Any]) -> None:
        """Prometheus, Grafana, Jaeger, the service and the simulator; image built here."""
        assert {"prometheus", "grafana", "jaeger", "service", "simulator"} <= set(compose)
        for name in ("service", "simulator"):
            assert compose[name]["build"] == "."
        assert (ROOT / "Dockerfile").is_file()
        assert "--enable-feature=exemplar-storage" in compose["prometheus"]["command"]

    def test_compose_mounts_exist_and_match_the_provisioning(self, compose: dict[str, Any]) -> None:
        """Every bind mount's source exists; Grafana's dashboard path is where the JSON is."""
        mounts: dict[str, str] = {}
        for service in compose.values():
            for volume in service.get("volumes", []):
                source, target = volume.split(":")[:2]
                assert (ROOT / source).exists(), source
                mounts[target] = source
        provider = read_yaml(DASHBOARD_PROVIDERS)["providers"][0]
        dashboards_dir = ROOT / mounts[provider["options"]["path"]]
        assert (dashboards_dir / "parabench.json").is_file()
        assert ROOT / mounts["/etc/grafana/provisioning"] == DASHBOARDS / "provisioning"
        prometheus_dir = ROOT / mounts["/etc/prometheus"]
        assert (prometheus_dir / "prometheus.yml").is_file()

    def test_addresses_name_compose_services_and_their_ports(self, compose: dict[str, Any]) -> None:
        """Scrape target, datasource URLs, OTLP endpoint and LLM base URL reach real services."""

        def listens(service: str, port: int) -> bool:
            command = " ".join(compose[service].get("command", []))
            exposed = [str(p) for p in compose[service].get("expose", [])]
            published = [str(p).rsplit(":", 1)[-1] for p in compose[service].get("ports", [])]
            return (
                f"--port={port}" in command
                or f"--port {port}" in command
                or (str(port) in exposed + published)
            )

        addresses = [read_yaml(PROMETHEUS_CONFIGS[0])["scrape_configs"][0]["static_configs"]]
        targets = [t for group in addresses[0] for t in group["targets"]]
        urls = [f"http://{t}" for t in targets]
        urls += [s["url"] for s in read_yaml(DATASOURCES)["datasources"]]
        urls.append(compose["service"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
        urls += [a.split("=", 1)[1] for a in compose["service"]["command"] if "base-url" in a]
        assert len(urls) == 5
        for url in urls:
            parsed = httpx.URL(url)
            assert parsed.host in compose, url
            assert listens(parsed.host, parsed.port or 80), url
