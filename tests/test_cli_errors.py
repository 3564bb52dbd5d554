"""The command line on bad input: exit code 2, one clear message on stderr, never a traceback.

Every command runs as a real subprocess of the installed ``parabench`` script (or
``python -m harness.cli`` when the script is missing), the way a user runs it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import Result, assert_clean_failure, assert_file_error, expectations, parabench

DATA = Path(__file__).parent / "data"
BAD_FILES = {p.stem: p for p in sorted((DATA / "bad_scenarios").glob("*.yaml"))}
NOT_UTF8 = "not_utf8"
CASES = [*BAD_FILES, NOT_UTF8]
BUNDLED = ["map_reduce_summarizer", "research_assistant", "support_agent"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty working directory, so a run that wrongly starts writes nothing in the repo."""
    return tmp_path_factory.mktemp("cwd")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every bad case's file, plus the inputs written on the fly (bytes, brackets)."""
    made = tmp_path_factory.mktemp("inputs")
    (made / "latin1.yaml").write_bytes(b"name: caf\xe9\nsteps: []\n")
    (made / "tag.yaml").write_text(
        'name: tag\n"[/x]": 1\nsteps: [{id: a, kind: tool, latency_ms: 1}]\n'
        "variants: {sequential: {mode: sequential}}\n"
    )
    (made / "style.yaml").write_text(
        'name: style\nsteps: [{id: a, kind: tool, latency_ms: "[red]"}]\n'
        "variants: {sequential: {mode: sequential}}\n"
    )
    return {
        **BAD_FILES,
        NOT_UTF8: made / "latin1.yaml",
        "tag": made / "tag.yaml",
        "style": made / "style.yaml",
    }


@pytest.fixture(scope="module")
def results(workdir: Path, inputs: dict[str, Path]) -> dict[tuple[str, ...], Result]:
    """Every command line this module checks, run at once to keep the suite fast.

    Keys are the arguments, with a bad case's name standing for its file.
    """
    good = [*BUNDLED, str(DATA / "good" / "priced_custom_model.yaml")]
    good.append(str(DATA / "good" / "remove_step.yaml"))
    commands: dict[tuple[str, ...], tuple[list[str | Path], bool]] = {}
    for case in CASES:
        commands[("validate", case)] = (["validate", inputs[case]], False)
        commands[("run", case)] = (["run", inputs[case], "-n", "1"], False)
    for case in ("tag", "style"):
        commands[("validate", case)] = (["validate", inputs[case]], False)
    for key in (
        ("run", "research_assistant", "--variant", "sequential", "--variant", "turbo", "-n", "1"),
        ("validate", "no/such/scenario.yaml"),
        ("run", "no/such/scenario.yaml", "-n", "1"),
        ("validate", *good),
    ):
        commands[key] = (list(key), False)
    commands[("-m", "validate", "support_agent")] = (["validate", "support_agent"], True)
    commands[("-m", "validate", "cycle_two")] = (["validate", inputs["cycle_two"]], True)
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 2) as pool:
        futures = {
            key: pool.submit(parabench, *args, cwd=workdir, module=module)
            for key, (args, module) in commands.items()
        }
        return {key: future.result() for key, future in futures.items()}


def expected_for(case: str, path: Path) -> dict[str, str]:
    """What the message for ``case`` must say."""
    if case == NOT_UTF8:
        return {"field": "-", "text": "not UTF-8 text (byte 9)", "fix": "save the file as UTF-8"}
    return expectations(path)


class TestBadScenarioFiles:
    """validate and run refuse each bad file with exit 2 and the file, field and fix."""

    @pytest.mark.parametrize("command", ["validate", "run"])
    @pytest.mark.parametrize("case", CASES)
    def test_clear_message_and_exit_2(
        self,
        case: str,
        command: str,
        inputs: dict[str, Path],
        results: dict[tuple[str, ...], Result],
    ) -> None:
        """The command exits 2 and prints the file, the field, the problem and the fix."""
        path = inputs[case]
        expect = expected_for(case, path)
        assert_file_error(results[(command, case)], path, expect)

    def test_nothing_was_written(
        self, workdir: Path, results: dict[tuple[str, ...], Result]
    ) -> None:
        """No refused command leaves an output directory behind."""
        assert results
        assert list(workdir.iterdir()) == []


class TestUnknownVariant:
    """run --variant with a name the scenario lacks is refused before anything runs."""

    def test_lists_the_valid_variants(self, results: dict[tuple[str, ...], Result]) -> None:
        """The message names the bad variant and lists the valid ones."""
        result = results[
            (
                "run",
                "research_assistant",
                "--variant",
                "sequential",
                "--variant",
                "turbo",
                "-n",
                "1",
            )
        ]
        assert_clean_failure(result)
        assert "--variant" in result.stderr
        assert "no variant 'turbo'" in result.stderr
        assert "fix: use one of: sequential, parallel, parallel_capped" in result.stderr


class TestMissingScenario:
    """A path that does not exist gets a message listing the bundled scenario names."""

    @pytest.mark.parametrize(
        "key",
        [("validate", "no/such/scenario.yaml"), ("run", "no/such/scenario.yaml", "-n", "1")],
        ids=["validate", "run"],
    )
    def test_lists_the_bundled_names(
        self, key: tuple[str, ...], results: dict[tuple[str, ...], Result]
    ) -> None:
        """The message names the missing path and every bundled scenario."""
        result = results[key]
        assert_clean_failure(result)
        assert "no/such/scenario.yaml: no such scenario file or bundled scenario" in result.stderr
        assert "fix: " in result.stderr
        for name in BUNDLED:
            assert name in result.stderr


class TestGoodScenarios:
    """validate accepts good files and bundled names with exit 0."""

    def test_bundled_and_fixture_files_validate(
        self, results: dict[tuple[str, ...], Result]
    ) -> None:
        """Bundled names and the good fixtures validate, each variant listed in the table."""
        [result] = [r for key, r in results.items() if key[:2] == ("validate", BUNDLED[0])]
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        for word in ("parallel_capped", "parallel_cap4", "lean", "priced_custom_model"):
            assert word in result.stdout

    def test_python_dash_m_runs_the_cli(self, results: dict[tuple[str, ...], Result]) -> None:
        """python -m harness.cli is the same command line, errors included."""
        ok = results[("-m", "validate", "support_agent")]
        assert ok.returncode == 0, ok.stderr
        bad = results[("-m", "validate", "cycle_two")]
        assert_clean_failure(bad)
        assert "dependency cycle: a → b → a" in bad.stderr


class TestMessagesAreNotMarkup:
    """A message is printed as written, whatever brackets the user's input contains."""

    def test_closing_tag_in_a_field_name(self, results: dict[tuple[str, ...], Result]) -> None:
        """An unknown field named like a closing markup tag is reported, not a traceback."""
        result = results[("validate", "tag")]
        assert_clean_failure(result)
        assert "field '[/x]': unknown field" in result.stderr

    def test_style_tag_in_a_value(self, results: dict[tuple[str, ...], Result]) -> None:
        """A value that looks like a style tag is quoted back verbatim."""
        result = results[("validate", "style")]
        assert_clean_failure(result)
        assert "got the text '[red]'" in result.stderr
