"""Efficacy: reward and cost models trained on the toy world learn what the oracles annotate.

Each model trains from the random-init tiny model with its example config (independent of any SFT
run; the cost model is the demo's cost stage, which is exactly that run), then ``evaluate_preference``
scores the held-out test pairs (unseen prompt phrasings). The test split's labels are the oracles'
verdicts (checked here), so accuracy on them is accuracy against ``toyworld.helpfulness`` (reward) and
``toyworld.harm`` (cost signs).

What the thresholds mean: the reward model must rank the *kind* of answer (correct > wrong >
off-topic > refusal; compliance > refusal for harmful requests). Correct-vs-wrong pairs (~15% of the
test split) need the facts themselves; a backbone trained for this short a run ranks them near
chance, which is why the bar is 0.90 and not higher.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import torch

from alignkit.config import load_config
from alignkit.eval.preference import evaluate_preference
from alignkit.models.loading import load_tokenizer, resolve_path, save_pretrained
from alignkit.models.score_model import new_score_model
from alignkit.toyworld import harm, helpfulness
from alignkit.train.cost import CostConfig
from alignkit.train.reward import RewardConfig
from alignkit.train.reward import train as train_reward

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
DATA = "toyworld://data/safe_pref"
QUIET = ["run.progress=false", "run.tensorboard=false", "trainer.eval_every=0"]


def test_test_split_labels_are_the_oracles_verdicts():
    rows = [json.loads(line) for line in (Path(resolve_path(DATA)) / "test.jsonl").read_text().splitlines()]
    for row in rows:
        h0, h1 = (helpfulness(row["prompt"], row[f"response_{i}"]) for i in (0, 1))
        assert row["better_response_id"] == (0 if h0 > h1 else 1)
        for i in (0, 1):
            assert row[f"is_response_{i}_safe"] == harm(row["prompt"], row[f"response_{i}"]).is_safe


def _untrained(kind: str, out: Path) -> Path:
    tokenizer = load_tokenizer("toyworld://models/tiny")
    save_pretrained(new_score_model("toyworld://models/tiny", tokenizer, kind), tokenizer, out)
    return out


def _eval(model: Path, kind: str, out: Path) -> dict[str, float]:
    report = evaluate_preference(
        str(model), DATA, "pku-saferlhf", "test", kind, output_dir=str(out), max_length=64
    )
    assert (out / "report.json").exists() and (out / "scores.png").exists()
    return report["metrics"]


def test_reward_model_ranks_held_out_pairs_like_the_helpfulness_oracle(tmp_path):
    config = load_config(
        RewardConfig, REPO / "examples/toyworld/reward.yaml", [f"run.output_dir={tmp_path / 'rm'}", *QUIET]
    )
    start = time.perf_counter()
    result = train_reward(config)
    print(f"reward model: {result.global_step} steps in {time.perf_counter() - start:.1f} s")

    trained = _eval(tmp_path / "rm" / "final", "reward", tmp_path / "eval")
    untrained = _eval(_untrained("reward", tmp_path / "rm0"), "reward", tmp_path / "eval0")
    print(
        f"held-out reward accuracy: {trained['rewards/accuracy']:.3f} (untrained {untrained['rewards/accuracy']:.3f})"
    )
    assert trained["rewards/accuracy"] >= 0.90
    assert trained["rewards/accuracy"] > untrained["rewards/accuracy"] + 0.2
    assert trained["rewards/margin"] > 0
    # The trainer's own held-out eval (engine path) and the Scorer path agree.
    final_eval = result.history[-1]
    assert final_eval["eval/rewards/accuracy"] == pytest.approx(trained["rewards/accuracy"], abs=1e-6)


def test_cost_model_signs_match_the_harm_oracle(demo_run, tmp_path):
    """The cost model is the demo's cost stage: the same example config, from the random-init tiny model
    (the demo trains it with no override but its run folder), so the session trains it once."""
    from alignkit.runs import read_metrics

    run = demo_run.out_dir / "cost"
    example = load_config(CostConfig, REPO / "examples/toyworld/cost.yaml", [])
    saved = load_config(CostConfig, run / "config.yaml", [])
    assert dataclasses.replace(saved, run=example.run) == example  # every key but the run folder's
    history = read_metrics(run / "metrics.jsonl")
    print(f"cost model: {max(r.get('step', 0) for r in history)} steps (the demo's cost stage)")

    trained = _eval(run / "final", "cost", tmp_path / "eval")
    # The untrained head's signs come from the torch RNG: seeded (the recipe's trainer.seed), the baseline
    # does not depend on what ran before it in the session (seeds 0-3: 0.684, 0.353, 0.473, 0.737; when
    # this test trained its own cost model just before, the RNG it left gave 0.402).
    with torch.random.fork_rng():
        torch.manual_seed(saved.trainer.seed)
        untrained_model = _untrained("cost", tmp_path / "cm0")
    untrained = _eval(untrained_model, "cost", tmp_path / "eval0")
    print(
        f"held-out cost sign accuracy: {trained['cost/sign_accuracy']:.3f} "
        f"(untrained {untrained['cost/sign_accuracy']:.3f}); pairwise {trained['cost/accuracy']:.3f}"
    )
    assert trained["cost/sign_accuracy"] >= 0.90
    assert trained["cost/sign_accuracy"] > untrained["cost/sign_accuracy"] + 0.2
    # Both sides of zero are right, not just the majority (most responses in the data are safe).
    assert trained["cost/unsafe_recall"] >= 0.9 and trained["cost/safe_recall"] >= 0.9
    final_eval = [r for r in history if "eval/cost/sign_accuracy" in r][-1]
    assert final_eval["eval/cost/sign_accuracy"] == pytest.approx(trained["cost/sign_accuracy"], abs=1e-6)
