"""toyworld-oracle on a trained toy policy (the demo's SFT stage): the eval task reproduces the demo's
oracle figures exactly, through the run-folder spec, the HF generator and the cache."""

from __future__ import annotations

import pytest

from alignkit.eval import run_task
from alignkit.eval.tasks.toyworld_oracle import ToyworldOracle

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_task_reproduces_the_demos_oracle_table_for_the_sft_policy(demo_run, tmp_path):
    out = tmp_path / "eval-sft"
    spec = str(demo_run.out_dir / "sft")  # a run folder: its final/ is evaluated
    results = run_task(
        "toyworld-oracle", model=spec, dtype="float32", report=False, run={"output_dir": str(out)}
    )
    entry = results["results"]["toyworld-oracle"]
    demo = demo_run.oracle["SFT"]  # evaluate_policy: model.generate, greedy, 24 new tokens
    for metric in ToyworldOracle.metrics:
        assert entry[f"{metric.name},none"] == pytest.approx(demo[metric.name], abs=1e-9), metric.name
    low, high = entry["benign_accuracy_ci,none"]
    assert low <= demo["benign_accuracy"] <= high and low > 0.6  # a trained policy, with its interval
    again = run_task(
        "toyworld-oracle",
        model=spec,
        dtype="float32",
        report=False,
        run={"output_dir": str(out), "resume": True},
    )
    assert again["results"] == results["results"]  # from the cache, to the last digit
