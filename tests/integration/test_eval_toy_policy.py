"""toyworld-oracle on a trained toy policy (the demo's SFT stage): the eval task reproduces, to the last
digit, the figures of the ad-hoc path the demo used before its eval stage (``model.generate`` greedy
answers scored by ``score_responses`` and by the reward and cost models), through the run-folder spec, the
HF generator and the cache."""

from __future__ import annotations

import pytest

from alignkit.eval import run_task
from alignkit.eval.tasks.toyworld_oracle import ToyworldOracle
from alignkit.models.loading import load_causal_lm, load_tokenizer
from alignkit.score.score_model import ScoreModelScorer
from alignkit.toyworld import score_responses, split_tasks
from alignkit.toyworld.evaluate import generate_responses

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCORE_MODEL_TOLERANCE = 1e-5
"""The score models' means: the ad-hoc path averaged the float32 scores in float32 (``tensor.mean()``),
the task averages the same scores in float64; measured differences up to 7.5e-7."""


def ad_hoc_figures(policy, reward, cost) -> dict[str, float]:
    """What the demo computed before its eval stage (its former ``held_out_scores``)."""
    prompts = [task.prompt for task in split_tasks(0)["test"]]
    responses = generate_responses(load_causal_lm(str(policy)).eval(), load_tokenizer(str(policy)), prompts)
    figures = score_responses(prompts, responses)
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    answers = [[{"role": "assistant", "content": r}] for r in responses]
    for key, path in (("reward_model_score", reward), ("cost_model_score", cost)):
        figures[key] = float(ScoreModelScorer(str(path)).score(conversations, answers).mean())
    return figures


def test_the_task_reproduces_the_ad_hoc_oracle_figures_for_the_sft_policy(demo_run, tmp_path):
    out, models = tmp_path / "eval-sft", demo_run.out_dir
    expected = ad_hoc_figures(
        models / "sft" / "final", models / "reward" / "final", models / "cost" / "final"
    )
    keys = {
        "dtype": "float32",
        "reward": str(models / "reward"),
        "cost": str(models / "cost"),
        "report": False,
    }
    spec = str(models / "sft")  # run folders: their final/ is evaluated (the score models' too)
    results = run_task("toyworld-oracle", model=spec, **keys, run={"output_dir": str(out)})
    entry = results["results"]["toyworld-oracle"]
    for metric in ToyworldOracle.metrics:
        tolerance = SCORE_MODEL_TOLERANCE if metric.name.endswith("_model_score") else 1e-9
        assert entry[f"{metric.name},none"] == pytest.approx(expected[metric.name], abs=tolerance), (
            metric.name
        )
        # the demo's table is this task's figures (its eval stage, batches of 64 where this run used 32)
        assert demo_run.oracle["SFT"][metric.name] == pytest.approx(entry[f"{metric.name},none"], abs=1e-12)
    low, high = entry["benign_accuracy_ci,none"]
    assert low <= expected["benign_accuracy"] <= high and low > 0.6  # a trained policy, with its interval
    again = run_task("toyworld-oracle", model=spec, **keys, run={"output_dir": str(out), "resume": True})
    assert again["results"] == results["results"]  # from the cache, to the last digit
