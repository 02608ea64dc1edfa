"""The fuzz corpus: every malformed file stops `alignkit data inspect` with one line naming file, row and field.

The cases are written by tests/fixtures/fuzz/generate.py (see its docstring for the manifest). Each is
run in-process through the real CLI entry point (``alignkit.cli.main``), which is where a traceback
would escape; a handful also run as a real subprocess to prove the exit code end to end. With
``skip_invalid`` the same data must yield exactly the broken rows as skipped, each with its reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alignkit.cli import main
from alignkit.data import inspect_dataset

FUZZ = Path(__file__).parents[2] / "fixtures" / "fuzz"
CASES = json.loads((FUZZ / "cases" / "manifest.json").read_text())
ROW_CASES = [case for case in CASES if case["bad_rows"]]
SUBPROCESS_CASES = ["pku_safe_but_severe", "trl_chosen_without_rejected", "file_empty_jsonl", "file_not_utf8"]


def _path(case: dict) -> str:
    return str(FUZZ / "cases" / case["file"])


def _argv(case: dict, *extra: str) -> list[str]:
    argv = ["data", "inspect", _path(case), "--template", case["template"], "--split", case["split"]]
    argv += [f"--column={field}={column}" for field, column in case["column_map"].items()]
    argv += [f"--option={name}={json.dumps(value)}" for name, value in case["options"].items()]
    return [*argv, *extra]


def _location(case: dict) -> str:
    """How the error must begin: file, then row (or line for a row that is not an object), then field."""
    error = case["error"]
    if error["row"] is not None:
        return f"{_path(case)} row {error['row']}: field '{error['field']}': expected "
    if error["line"] is not None:
        return f"{_path(case)} line {error['line']}: expected "
    return f"{_path(case)}: expected "


def test_the_corpus_covers_every_template_with_enough_cases():
    from alignkit.data import TEMPLATES

    assert len(CASES) >= 80
    assert {case["template"] for case in CASES} == set(TEMPLATES)
    assert len({case["name"] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_malformed_file_exits_2_naming_file_row_and_field(case, capsys):
    assert main(_argv(case)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing half-reported before the error
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("alignkit: data error: "), captured.err
    message = captured.err.removeprefix("alignkit: data error: ")
    assert message.startswith(_location(case)), message
    assert case["error"]["says"] in message, message
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("case", ROW_CASES, ids=[case["name"] for case in ROW_CASES])
def test_skip_invalid_counts_exactly_the_bad_rows_with_their_reasons(case):
    report = inspect_dataset(
        _path(case),
        case["template"],
        split=case["split"],
        column_map=case["column_map"] or None,
        skip_invalid=True,
        **case["options"],
    )
    assert report.rows_read == case["rows"]
    assert sum(report.counts.values()) == case["rows"] - len(case["bad_rows"])
    got = [(row.file, row.row, row.field, row.kind) for row in report.skipped]
    assert got == [(_path(case), bad["row"], bad["field"], "invalid") for bad in case["bad_rows"]]
    for row, bad in zip(report.skipped, case["bad_rows"], strict=True):
        assert bad["says"] in f"{row.reason}, {row.detail}", (str(row), bad)


def test_skip_invalid_on_the_cli_reports_the_count_and_reasons(capsys):
    case = next(case for case in CASES if case["name"] == "pku_two_bad_rows")
    assert main(_argv(case, "--skip-invalid")) == 0
    out = capsys.readouterr().out
    assert "skipped 2 of 4 rows:" in out
    assert "field 'better_response_id': expected 0 or 1" in out and "field 'prompt': expected" in out


@pytest.mark.parametrize(
    "case", [case for case in CASES if not case["bad_rows"]], ids=lambda case: case["name"]
)
def test_whole_file_problems_are_not_skippable(case, capsys):
    assert main(_argv(case, "--skip-invalid")) == 2
    assert capsys.readouterr().err.startswith("alignkit: data error: ")


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_real_process_exits_2_without_a_traceback(name):
    case = next(case for case in CASES if case["name"] == name)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parents[3] / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    result = subprocess.run(
        [sys.executable, "-m", "alignkit.cli", *_argv(case)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"alignkit: data error: {_location(case)}"), result.stderr
    assert "Traceback" not in result.stderr
