"""results.json's shape (lm-evaluation-harness's), its numbers by hand, metric rules, the confusion matrix."""

from __future__ import annotations

import json

import pytest

from alignkit.eval.plots import confusion_matrix, cross_tab
from alignkit.eval.results import build_results, interval, metric_entry, read_run
from alignkit.eval.task import Metric, Task, TaskConfig
from alignkit.runs import RunFolderError


def kappa_free_accuracy(pairs):
    """A corpus-level aggregate over (label, prediction) pairs, as judge agreement has."""
    return sum(label == prediction for label, prediction in pairs) / len(pairs)


class TwoMetricTask(Task):
    """A task that only has metrics, for shaping results."""

    name = "two-metric"
    version = 3
    breakdowns = ("colour",)
    metrics = (
        Metric("hit", True, "a hit"),
        Metric("agree", True, "judge agrees", kappa_free_accuracy),
    )

    def samples(self):
        return []  # results are shaped from records written in the tests below

    def score(self, samples, outputs):
        return []


def record(i, colour, hit, pair, error=None):
    return {
        "id": f"s{i}",
        "metadata": {"colour": colour},
        "scores": {} if error else {"hit": hit, "agree": pair},
        "error": error,
    }


def test_metric_entry_by_hand():
    # [1, 0, 1, 1]: mean 0.75, stderr 0.25 (see test_eval_stats); resampled means lie in [0, 1] and a
    # resample of four 1s (chance (3/4)^4 = 0.32) reaches 1, so the interval's top is 1
    entry = metric_entry(Metric("hit", True, ""), [1, 0, 1, 1], iters=1000, seed=0)
    assert entry["hit,none"] == 0.75 and entry["hit_stderr,none"] == pytest.approx(0.25)
    low, high = entry["hit_ci,none"]
    assert 0.0 <= low <= 0.5 and high == 1.0
    one = metric_entry(Metric("hit", True, ""), [1], iters=10, seed=0)
    assert one == {"hit,none": 1.0, "hit_stderr,none": "N/A", "hit_ci,none": None}
    # a corpus-level aggregate: one of two pairs agrees; resamples give 0, 1/2 or 1 (chances 1/4, 1/2, 1/4)
    boot = metric_entry(Metric("agree", True, "", kappa_free_accuracy), [(1, 1), (0, 1)], iters=2000, seed=0)
    assert boot["agree,none"] == 0.5 and boot["agree_ci,none"] == [0.0, 1.0]
    assert boot["agree_stderr,none"] == pytest.approx(0.354, abs=0.02)  # sqrt(0.25 / 2), as for a mean
    empty = metric_entry(Metric("agree", True, "", kappa_free_accuracy), [], iters=10, seed=0)
    assert empty == {"agree,none": None, "agree_stderr,none": "N/A", "agree_ci,none": None}


def test_results_json_has_lm_eval_harness_shape_and_hand_counted_values():
    task = TwoMetricTask(TaskConfig(bootstrap_iters=200))
    records = [
        record(0, "red", 1.0, (1, 1)),
        record(1, "red", 0.0, (1, 0)),
        record(2, "blue", 1.0, (0, 0)),
        record(3, "blue", None, (1, 1)),  # hit does not apply here: left out of hit only
        record(
            4, "blue", None, None, error={"stage": "answer", "type": "RuntimeError", "message": "HTTP 500"}
        ),
    ]
    results = build_results(
        task, records, original=9, config={"limit": 5}, run_config={"model": "m"}, extra={"model_name": "m"}
    )
    assert set(results) >= {
        "results", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config",
    }  # fmt: skip
    top = results["results"]["two-metric"]
    # hit over samples 0-2 (3 is None, 4 failed): (1 + 0 + 1) / 3; agree over 0-3: 3 of 4 pairs agree
    assert top["hit,none"] == pytest.approx(2 / 3) and top["agree,none"] == 0.75
    assert top["sample_len"] == 4 and top["alias"] == "two-metric"
    assert isinstance(top["hit_stderr,none"], float) and len(top["agree_ci,none"]) == 2
    assert len(top["hit_ci,none"]) == 2
    assert results["group_subtasks"] == {"two-metric": ["two-metric/colour=blue", "two-metric/colour=red"]}
    red = results["results"]["two-metric/colour=red"]
    assert red["hit,none"] == 0.5 and red["agree,none"] == 0.5 and red["sample_len"] == 2
    blue = results["results"]["two-metric/colour=blue"]
    assert blue["hit,none"] == 1.0 and blue["hit_stderr,none"] == "N/A"  # one item: no stderr
    assert results["versions"]["two-metric"] == 3 and results["versions"]["two-metric/colour=red"] == 3
    assert results["higher_is_better"]["two-metric"] == {"hit": True, "agree": True}
    assert results["n-samples"]["two-metric"] == {"original": 9, "effective": 4}
    assert results["configs"]["two-metric"]["limit"] == 5 and results["configs"]["two-metric"]["version"] == 3
    failures = results["alignkit"]["failures"]["two-metric"]
    assert failures["count"] == 1 and failures["by_stage"] == {"answer": 1}
    assert failures["samples"][0]["id"] == "s4" and "500" in failures["samples"][0]["message"]
    assert results["alignkit"]["metric_counts"]["two-metric"] == {"hit": 3, "agree": 4}
    json.dumps(results, allow_nan=False)  # strict JSON: no NaN anywhere


def test_interval_uses_the_bootstrap_ci_else_lm_evals_normal_approximation():
    entry = {
        "a,none": 0.5,
        "a_stderr,none": 0.1,
        "b,none": 0.2,
        "b_stderr,none": 0.05,
        "b_ci,none": [0.1, 0.3],
    }
    value, (low, high) = interval(entry, "a")
    assert (
        value == 0.5
        and low == pytest.approx(0.5 - 0.196, abs=1e-4)
        and high == pytest.approx(0.696, abs=1e-4)
    )
    assert interval(entry, "b") == (0.2, (0.1, 0.3))
    assert interval({"c,none": None, "c_stderr,none": "N/A"}, "c") == (None, None)
    assert interval({"d,none": 1.0, "d_stderr,none": "N/A"}, "d") == (1.0, None)


def test_confusion_matrix_and_cross_tab_by_hand():
    labels, counts = confusion_matrix(["a", "a", "b", "b", "b"], ["a", "b", "b", "b", "a"])
    # truth a: predicted a once, b once; truth b: predicted a once, b twice
    assert labels == ["a", "b"] and counts == [[1, 1], [1, 2]]
    labels, counts = confusion_matrix(["x"], ["x"], ["y", "x"])
    assert counts == [[0, 0], [0, 1]]
    with pytest.raises(ValueError, match="not among"):
        confusion_matrix(["x"], ["z"], ["x"])
    # rows and columns from different sets: family against kind of answer
    rows, columns, counts = cross_tab(
        ["add", "add", "copy"], ["wrong", "correct", "correct"], None, ["correct", "wrong", "refusal"]
    )
    assert rows == ["add", "copy"] and columns == ["correct", "wrong", "refusal"]
    assert counts == [[1, 1, 0], [1, 0, 0]]


def test_read_run_explains_a_folder_that_is_no_finished_run(tmp_path):
    with pytest.raises(RunFolderError, match="is not a folder"):
        read_run(tmp_path / "nope")
    (tmp_path / "crashed" / "generations").mkdir(parents=True)
    with pytest.raises(RunFolderError, match="run.resume=true"):
        read_run(tmp_path / "crashed")
