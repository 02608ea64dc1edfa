"""``alignkit eval leaderboard``: Libra scores of three models from their runs' results.json, by hand.

The runs are written here in results.json's shape (what ``eval run`` writes), one per model and task:

    model  toyworld-oracle: benign_accuracy ↑  harm_rate ↓   win-rate: win_rate ↑
    P      0.9                                  0.5           0.6
    Q      0.7                                  0.3           0.5
    R      0.5                                  0.0           0.4
"""

from __future__ import annotations

import json
import math

import pytest

from alignkit.cli import main
from alignkit.config import ConfigError
from alignkit.eval.leaderboard import build_leaderboard, format_leaderboard, leaderboard_command, orient
from alignkit.runs import RunFolderError

ORACLE = {"P": (0.9, 0.5), "Q": (0.7, 0.3), "R": (0.5, 0.0)}
WIN = {"P": 0.6, "Q": 0.5, "R": 0.4}


def write_run(folder, task, model, metrics, higher):
    folder.mkdir(parents=True)
    entry = {"alias": task, "name": task, "sample_len": 10}
    for name, value in metrics.items():
        entry |= {
            f"{name},none": value,
            f"{name}_stderr,none": 0.01,
            f"{name}_ci,none": [value - 0.1, value + 0.1],
        }
    results = {
        "results": {task: entry},
        "group_subtasks": {task: []},
        "higher_is_better": {task: higher},
        "model_name": model,
    }
    (folder / "results.json").write_text(json.dumps(results))
    return str(folder)


@pytest.fixture
def runs(tmp_path):
    oracle = {
        m: write_run(
            tmp_path / f"oracle-{m}",
            "toyworld-oracle",
            f"runs/{m}",
            {"benign_accuracy": acc, "harm_rate": harm},
            {"benign_accuracy": True, "harm_rate": False},
        )
        for m, (acc, harm) in ORACLE.items()
    }
    win = {
        m: write_run(tmp_path / f"win-{m}", "win-rate", f"runs/{m}", {"win_rate": w}, {"win_rate": True})
        for m, w in WIN.items()
    }
    return oracle, win


def test_three_models_by_hand(runs):
    oracle, _ = runs
    board = build_leaderboard(
        list(oracle.values()), ["toyworld-oracle:benign_accuracy"], ["toyworld-oracle:harm_rate"]
    )
    # x = benign accuracy, y = 1 - harm rate:
    # P (0.9, 0.5): 1 - sqrt((0.01 + 0.25) / 2) = 1 - sqrt(0.13) = 0.639445
    # Q (0.7, 0.7): 1 - sqrt((0.09 + 0.09) / 2) = 1 - 0.3      = 0.700000
    # R (0.5, 1.0): 1 - sqrt((0.25 + 0.00) / 2) = 1 - 0.353553 = 0.646447
    expected = {"runs/Q": 0.7, "runs/R": 1 - math.sqrt(0.125), "runs/P": 1 - math.sqrt(0.13)}
    assert [m["model"] for m in board["models"]] == list(expected)
    assert [m["rank"] for m in board["models"]] == [1, 2, 3]
    for m in board["models"]:
        assert m["libra"] == pytest.approx(expected[m["model"]], abs=1e-12)
    p = board["models"][2]
    assert (p["capability"], p["safety"], p["mean"]) == pytest.approx((0.9, 0.5, 0.7))
    assert p["metrics"]["toyworld-oracle:harm_rate"]["value"] == 0.5  # the raw value is kept beside y
    text = format_leaderboard(board)
    assert text.splitlines()[2].split()[:3] == ["1", "runs/Q", "0.7000"]


def test_two_capability_benchmarks_min_max_normalised(runs):
    oracle, win = runs
    board = build_leaderboard(
        [*oracle.values(), *win.values()],
        ["toyworld-oracle:benign_accuracy", "win-rate:win_rate"],
        ["toyworld-oracle:harm_rate"],
        "minmax",
    )
    # min-max per benchmark: accuracy (0.9, 0.7, 0.5) -> (1, 0.5, 0); win rate (0.6, 0.5, 0.4) -> (1, 0.5, 0)
    # x = mean of the two: P 1, Q 0.5, R 0; y = 1 - harm: P 0.5, Q 0.7, R 1
    # P: 1 - sqrt((0 + 0.25) / 2) = 0.646447; Q: 1 - sqrt((0.25 + 0.09) / 2) = 1 - sqrt(0.17) = 0.587689
    # R: 1 - sqrt((1 + 0) / 2) = 0.292893
    scores = {m["model"]: m["libra"] for m in board["models"]}
    assert scores == pytest.approx(
        {"runs/P": 1 - math.sqrt(0.125), "runs/Q": 1 - math.sqrt(0.17), "runs/R": 1 - math.sqrt(0.5)}
    )
    assert [m["model"] for m in board["models"]] == ["runs/P", "runs/Q", "runs/R"]
    assert sorted(board["models"][0]["runs"]) == sorted([oracle["P"], win["P"]])


def test_lower_is_better_metrics_are_turned_around_on_each_scale():
    assert orient(0.25, False, "none") == 0.75
    assert orient(25.0, False, "percentage") == 75.0
    assert orient(0.25, False, "minmax") == -0.25
    assert orient(0.25, True, "none") == 0.25


def test_names_given_on_the_command_line_group_runs(tmp_path, runs):
    oracle, _ = runs
    board = build_leaderboard(
        [f"safe={oracle['R']}", f"sft={oracle['P']}"],
        ["toyworld-oracle:benign_accuracy"],
        ["toyworld-oracle:harm_rate"],
    )
    assert [m["model"] for m in board["models"]] == ["safe", "sft"]


def test_missing_or_ambiguous_metrics_are_errors_naming_model_and_run(tmp_path, runs):
    oracle, win = runs
    cap, safe = ["win-rate:win_rate"], ["toyworld-oracle:harm_rate"]
    with pytest.raises(ConfigError, match="model 'runs/P' has no run of task 'win-rate'"):
        build_leaderboard(list(oracle.values()), cap, safe)
    with pytest.raises(ConfigError, match="has no metric 'accuracy'.*benign_accuracy, harm_rate"):
        build_leaderboard(list(oracle.values()), ["toyworld-oracle:accuracy"], safe)
    twice = write_run(
        tmp_path / "again", "toyworld-oracle", "runs/P", {"benign_accuracy": 0.8}, {"benign_accuracy": True}
    )
    with pytest.raises(ConfigError, match="two runs of task 'toyworld-oracle'"):
        build_leaderboard([oracle["P"], twice], ["toyworld-oracle:benign_accuracy"], safe)
    with pytest.raises(ConfigError, match=r"give --safety TASK:METRIC; these runs have: .*harm_rate ↓"):
        build_leaderboard(list(oracle.values()), ["toyworld-oracle:benign_accuracy"], [])
    with pytest.raises(ConfigError, match="write TASK:METRIC"):
        build_leaderboard(list(oracle.values()), ["benign_accuracy"], safe)
    bad = write_run(tmp_path / "bad", "safety", "runs/P", {"harm_rate": 3.0}, {"harm_rate": False})
    with pytest.raises(ConfigError, match=r"model 'runs/P' scores 3.0 .*must be a rate in \[0, 1\]"):
        build_leaderboard([oracle["P"], bad], ["toyworld-oracle:benign_accuracy"], ["safety:harm_rate"])


def test_the_command_writes_json_and_report_and_never_overwrites(tmp_path, runs, capsys):
    oracle, _ = runs
    out = tmp_path / "board"
    argv = [
        "eval",
        "leaderboard",
        *oracle.values(),
        "--capability",
        "toyworld-oracle:benign_accuracy",
        "--safety",
        "toyworld-oracle:harm_rate",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "runs/Q" in printed and str(out / "leaderboard.json") in printed
    saved = json.loads((out / "leaderboard.json").read_text())
    assert saved["models"][0]["model"] == "runs/Q" and saved["formula"].startswith("libra = 1 - sqrt")
    assert "Libra leaderboard" in (out / "report.html").read_text()
    assert main(argv) == 2  # a second run into the same folder is refused
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    with pytest.raises(RunFolderError, match="already holds files"):
        leaderboard_command(list(oracle.values()), capability=["x:y"], safety=["x:y"], out=str(out))
