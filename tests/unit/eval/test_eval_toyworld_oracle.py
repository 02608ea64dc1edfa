"""toyworld-oracle: its samples, its agreement with ``toyworld.score_responses``, and bad data.

The model is a rule (a real Generator): right answers to capitals and copies, a wrong sum, a refusal of
animal sounds, and compliance with the severe harmful requests only, so every metric has something to
count and the expected values follow from the rule.
"""

from __future__ import annotations

import json
import math

import pytest

from alignkit.config import ConfigError
from alignkit.data.errors import DataError
from alignkit.eval import run_task
from alignkit.eval.tasks.toyworld_oracle import ToyworldOracle, ToyworldOracleConfig
from alignkit.generate.base import Completion
from alignkit.sections import DatasetConfig
from alignkit.toyworld import find_task, score_responses, split_tasks
from alignkit.toyworld.world import compliance_response, correct_response, refusal_response, wrong_answers

SCORE_MODEL_METRICS = ("reward_model_score", "cost_model_score")


def rule_answer(prompt: str) -> str:
    task = find_task(prompt)
    if task is None:
        return "I do not know."
    if task.goal is not None:
        return compliance_response(task.goal) if task.goal.severity == 3 else refusal_response()
    if task.family == "add":
        return f"The answer is {wrong_answers(task)[0]}."
    if task.family == "sound":
        return refusal_response()
    return correct_response(task)


class ToyRule:
    cache_identity = "toy-rule-v1"

    def __init__(self) -> None:
        self.asked = 0

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        self.asked += len(prompts)
        return [Completion(i, rule_answer(p[-1]["content"])) for i, p in enumerate(prompts)]


def test_samples_are_the_held_out_prompts_with_their_family_and_category():
    samples = ToyworldOracle(ToyworldOracleConfig(model="x")).samples()
    test = split_tasks(0)["test"]
    assert len(samples) == len(test) and len({s.id for s in samples}) == len(samples)
    assert {s.prompt_text for s in samples} == {t.prompt for t in test}
    harmful = [s for s in samples if s.metadata["family"] == "harmful"]
    assert harmful and all(s.metadata["category"] and s.metadata["severity"] in (1, 2, 3) for s in harmful)
    assert all(s.metadata["category"] is None for s in samples if s.metadata["family"] != "harmful")


def test_metrics_equal_score_responses_and_the_rule(tmp_path):
    rule = ToyRule()
    results = run_task(
        "toyworld-oracle", model=rule, run={"output_dir": str(tmp_path / "r")}, log=lambda *a: None
    )
    prompts = [t.prompt for t in split_tasks(0)["test"]]
    assert rule.asked == len(prompts)
    expected = score_responses(prompts, [rule_answer(p) for p in prompts])
    entry = results["results"]["toyworld-oracle"]
    for metric in ToyworldOracle.metrics:
        if metric.name in SCORE_MODEL_METRICS:  # no reward= / cost= given: not computed, not zero
            assert entry[f"{metric.name},none"] is None, metric.name
            continue
        assert entry[f"{metric.name},none"] == pytest.approx(expected[metric.name]), metric.name
    # the rule, counted: benign answers are right for capitals and copies only
    benign = [t for t in split_tasks(0)["test"] if not t.is_harmful]
    assert entry["benign_accuracy,none"] == pytest.approx(
        sum(t.family in ("capital", "copy") for t in benign) / len(benign)
    )
    assert results["results"]["toyworld-oracle/family=add"]["benign_accuracy,none"] == 0.0
    assert results["results"]["toyworld-oracle/family=sound"]["benign_refusal_rate,none"] == 1.0
    assert results["results"]["toyworld-oracle/family=capital"]["harmful_compliance_rate,none"] is None
    harmful = [t for t in split_tasks(0)["test"] if t.is_harmful]
    assert entry["harmful_compliance_rate,none"] == pytest.approx(
        sum(t.goal.severity == 3 for t in harmful) / len(harmful)
    )
    assert not math.isnan(entry["harm_rate_stderr,none"])
    rows = [json.loads(line) for line in (tmp_path / "r" / "samples.jsonl").read_text().splitlines()]
    kinds = {r["verdicts"]["oracle"]["kind"] for r in rows}
    assert kinds == {"correct", "wrong", "refusal", "comply"}
    report = (tmp_path / "r" / "report.html").read_text()
    assert "Oracle verdicts" in report and "By category" in report


def test_a_row_without_the_prompt_field_names_file_row_and_field(tmp_path):
    bad = tmp_path / "test.jsonl"  # the task reads split test
    bad.write_text(
        json.dumps({"prompt": "What is 3 plus 4?"}) + "\n" + json.dumps({"question": "Add 2 and 5."}) + "\n"
    )
    out = tmp_path / "r"
    with pytest.raises(DataError) as err:
        run_task("toyworld-oracle", model=ToyRule(), data={"source": str(bad)}, run={"output_dir": str(out)})
    assert "test.jsonl" in str(err.value) and "row 2" in str(err.value) and "'prompt'" in str(err.value)
    assert not out.exists()


def test_records_without_a_prompt_are_refused_with_their_row(tmp_path):
    texts = tmp_path / "test.jsonl"
    texts.write_text(json.dumps({"text": "just text"}) + "\n")
    with pytest.raises(DataError, match=r"test.jsonl row 1: field 'prompt'.*PlainText"):
        data = DatasetConfig(source=str(texts), template="trl-text", split="test")
        ToyworldOracle(ToyworldOracleConfig(model="x", data=data)).samples()


def test_reward_and_cost_keys_score_every_answer_and_rescore_from_the_cache(tmp_path):
    """reward= / cost= add the mean score of a Scorer (a model folder or a function; here the toy oracles as
    functions, so the expected means follow from the rule by hand), re-scoring cached answers only."""
    rule, out = ToyRule(), tmp_path / "r"
    run_task("toyworld-oracle", model=rule, report=False, run={"output_dir": str(out)}, log=lambda *a: None)
    asked = rule.asked
    results = run_task(
        "toyworld-oracle",
        model=rule,
        reward="alignkit.toyworld.oracle:helpfulness",
        cost="alignkit.toyworld.oracle:harm_cost",
        report=False,
        run={"output_dir": str(out), "resume": True},
        log=lambda *a: None,
    )
    assert rule.asked == asked  # every answer came from the generation cache
    entry = results["results"]["toyworld-oracle"]
    # the reward "model" is the helpfulness oracle itself: its mean is the oracle helpfulness
    assert entry["reward_model_score,none"] == pytest.approx(entry["mean_helpfulness,none"])
    # harm_cost is -1 for a safe answer and the severity (3) for each of the k severe harmful requests the
    # rule complies with: mean = (3k - (n - k)) / n
    test = split_tasks(0)["test"]
    n, k = len(test), sum(t.is_harmful and t.goal.severity == 3 for t in test)
    assert k > 0 and entry["cost_model_score,none"] == pytest.approx((3 * k - (n - k)) / n)
    assert entry["cost_model_score_ci,none"][0] < entry["cost_model_score,none"]
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {r["scores"]["cost_model_score"] for r in rows} == {-1.0, 3.0}


def test_a_reward_key_that_cannot_score_is_refused_before_any_folder(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(ConfigError, match=r"reward.*no_such_rule"):
        run_task("toyworld-oracle", model=ToyRule(), reward="alignkit.toyworld.oracle:no_such_rule",
                 run={"output_dir": str(out)})  # fmt: skip
    with pytest.raises(ConfigError, match=r"cost='toyworld://models/tiny' is not an alignkit reward or cost"):
        run_task(
            "toyworld-oracle", model=ToyRule(), cost="toyworld://models/tiny", run={"output_dir": str(out)}
        )
    assert not out.exists()
