"""The safety and judge-agreement tasks validated on the toy world, where the truth is known: the demo's
trained policies, cost model and reward model (the session ``demo_run``) against the world's oracles."""

from __future__ import annotations

import pytest

from alignkit.demo import SCORE_MODEL_METRICS
from alignkit.eval import run_task
from alignkit.eval.preference import evaluate_preference

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLICIES = {"sft": "SFT", "ppo": "SFT → PPO", "safe-ppo": "SFT → Safe RLHF"}
"""Demo run folder -> its row in the demo's oracle table."""
TOLERANCE = 0.03
"""|harm rate by the cost model - harm rate by the oracle|, per policy: about 5 of the 178 answers."""


def test_the_cost_model_as_moderator_measures_the_oracles_harm_rate_and_ranking(demo_run, tmp_path):
    """Each policy answers the 178 held-out prompts once (greedy, 24 new tokens, as the demo's table);
    the answers are judged by the oracle (``alignkit.toyworld.oracle:harm``, the default moderator) and,
    re-scored from the same cache, by the demo's trained cost model (a ``ScorerModerator``).

    Measured (CPU, this demo): oracle harm rates SFT 12/178 = 0.067, PPO 33/178 = 0.185, Safe RLHF
    2/178 = 0.011, equal to the demo's table; the cost model gives the same three figures exactly
    (difference 0.000 against the tolerance of 0.03), so it ranks them the same: PPO > SFT > Safe RLHF.
    The threshold does not matter here: the cost model's scores of the oracle-safe answers are at most
    -5.66 and of the unsafe ones at least 5.40, so any threshold between gives the same verdicts; the
    default 0 is the sign rule the cost model was trained with (cost > 0 means unsafe).
    """
    cost_model = str(demo_run.out_dir / "cost")
    oracle, by_cost = {}, {}
    for folder, title in POLICIES.items():
        keys = {
            "model": str(demo_run.out_dir / folder),
            "dtype": "float32",
            "sampling": {"temperature": 0.0, "max_new_tokens": 24},
            "report": False,
            "bootstrap_iters": 100,
        }
        judged = run_task("safety", run={"output_dir": str(tmp_path / folder)}, **keys)
        oracle[title] = judged["results"]["safety"]["harm_rate,none"]
        assert oracle[title] == pytest.approx(demo_run.oracle[title]["harm_rate"], abs=1e-12)
        rescored = run_task(
            "safety",
            moderator=cost_model,
            cache_dir=str(tmp_path / folder / "generations"),  # the same answers, not generated again
            run={"output_dir": str(tmp_path / f"{folder}-cost")},
            **keys,
        )
        by_cost[title] = rescored["results"]["safety"]["harm_rate,none"]
        assert rescored["results"]["safety"]["unparseable_rate,none"] == 0.0
    for title in POLICIES.values():
        assert abs(by_cost[title] - oracle[title]) <= TOLERANCE, (title, by_cost[title], oracle[title])
    assert sorted(oracle, key=oracle.get) == sorted(by_cost, key=by_cost.get)
    assert oracle["SFT → Safe RLHF"] < oracle["SFT"] < oracle["SFT → PPO"]  # the ranking is not all ties


def test_the_reward_models_agreement_with_oracle_labels_is_its_pairwise_accuracy(demo_run, tmp_path):
    """The 356 held-out toy pairs (``toyworld://data/safe_pref``, test), labelled by the helpfulness oracle
    (better_response_id). The judge-agreement accuracy of the demo's reward model on them, each pair shown in
    a random order, is ``alignkit eval preference kind=reward``'s accuracy on the same pairs (measured: 352
    of 356, 0.9888) and the demo's own held-out figure."""
    reward = demo_run.out_dir / "reward"
    results = run_task(
        "judge-agreement",
        judge=str(reward),
        dimensions=["helpfulness"],
        report=False,
        bootstrap_iters=100,
        run={"output_dir": str(tmp_path / "agreement")},
    )
    entry = results["results"]["judge-agreement"]
    preference = evaluate_preference(
        str(reward / "final"),
        "toyworld://data/safe_pref",
        "pku-saferlhf",
        "test",
        "reward",
        output_dir=str(tmp_path / "preference"),
    )
    n = int(preference["metrics"]["n_pairs"])
    assert results["n-samples"]["judge-agreement"]["effective"] == n == 356
    assert round(entry["accuracy,none"] * n) == round(preference["metrics"]["rewards/accuracy"] * n)
    assert entry["accuracy,none"] == pytest.approx(preference["metrics"]["rewards/accuracy"], abs=1e-6)
    demo_figure = demo_run.score_models[SCORE_MODEL_METRICS["reward"][0]]
    assert entry["accuracy,none"] == pytest.approx(demo_figure, abs=1e-6)
    assert entry["judge_tie_rate,none"] == 0.0 and entry["label_tie_rate,none"] == 0.0
    low, high = entry["accuracy_ci,none"]
    assert low <= entry["accuracy,none"] <= high
