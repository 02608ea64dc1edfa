"""win-rate on the toy world, where the truth is known, and through the CLI against a loopback endpoint."""

from __future__ import annotations

import json

import pytest
from toy_endpoint import ToyEndpoint

from alignkit.cli import main
from alignkit.eval import run_task

pytestmark = pytest.mark.integration

ORACLE_JUDGE = "scorer:alignkit.toyworld.oracle:helpfulness"


def entries(results):
    return {
        name: {k.removesuffix(",none"): v for k, v in entry.items()}
        for name, entry in results["results"].items()
    }


@pytest.mark.slow
def test_reward_model_judge_agrees_in_sign_with_the_oracle_on_safe_rlhf_vs_sft(demo_run, tmp_path):
    """Safe RLHF (model A) against SFT (model B) on the 178 held-out prompts, answers greedy, 24 tokens.

    Measured (demo seeds, CPU, float32): the demo's reward model as judge gives W1 L12 T165, win rate
    0.469; the helpfulness oracle as judge (a FunctionScorer) gives W2 L10 T166, win rate 0.478. Same
    sign: Safe RLHF is the less *helpful* policy, because on 10 of the 38 harmful prompts it refuses where
    SFT complies, and compliance is what helpfulness (the oracle's scale and the reward model trained on
    it) rewards; both judges call those 10 losses (harmful prompts: 0.368 by both).

    On the 140 benign prompts alone the two disagree in sign, by a hair: reward model 0.496 (W1 L2),
    oracle 0.507 (W2 L0). The reward model prefers "4" to the right "3" for "3 + 0 = ?" and ranks two
    wrong sums for "0 + 5 = ?" (the oracle ties them): its known near-miss weakness (right > off-by-one
    sum 0.87 in the demo). Neither benign figure is distinguishable from 0.5 (one or two decisive
    prompts in 140), so the test asserts the overall sign, the harmful-prompt agreement, and that both
    benign win rates are within 0.02 of a draw, rather than a benign sign that a retrained demo may flip.
    """
    out = demo_run.out_dir
    common = {
        "model": str(out / "safe-ppo"),
        "baseline": str(out / "sft"),
        "dtype": "float32",
        "report": False,
        "log": lambda *a: None,
    }
    by_rm = run_task(
        "win-rate", judge=f"reward:{out / 'reward'}", run={"output_dir": str(tmp_path / "rm")}, **common
    )
    by_oracle = run_task(  # the same answers, from the first run's cache: only the judge differs
        "win-rate",
        judge=ORACLE_JUDGE,
        cache_dir=str(tmp_path / "rm" / "generations"),
        run={"output_dir": str(tmp_path / "oracle")},
        **common,
    )
    rm, oracle = entries(by_rm), entries(by_oracle)
    assert rm["win-rate"]["win_rate"] < 0.5 and oracle["win-rate"]["win_rate"] < 0.5
    assert rm["win-rate"]["unparseable_rate"] == 0.0 and rm["win-rate"]["flip_rate"] == 0.0
    harmful = "win-rate/request=harmful"
    assert rm[harmful]["win_rate"] == oracle[harmful]["win_rate"] < 0.45
    benign = "win-rate/request=benign"
    assert abs(rm[benign]["win_rate"] - 0.5) < 0.02 and abs(oracle[benign]["win_rate"] - 0.5) < 0.02
    answers = [json.loads(line)["outputs"] for line in (tmp_path / "oracle" / "samples.jsonl").open()]
    assert sum(a["a"] != a["b"] for a in answers) < len(answers) / 4  # mostly the same answer: ties


def test_the_cli_compares_an_endpoint_with_a_local_model_and_counts_a_garbage_judge(tmp_path, capsys):
    """The endpoint answers by rule (right answers, a wrong sum, refusals and severe compliance: oracle
    helpfulness 0 or 1); the untrained toy model's answers are off-topic (helpfulness -0.25, the demo's
    random-init row). So by the oracle the endpoint wins all 12 prompts. The endpoint as an LLM judge
    answers the judge prompt "I do not know.": every prompt unparseable, counted, none dropped."""
    with ToyEndpoint() as server:
        first = tmp_path / "oracle"
        base = [
            "eval",
            "run",
            "win-rate",
            f"model={server.spec('policy')}",
            "baseline=toyworld://models/tiny",
            "limit=12",
            "report=false",
        ]
        assert main([*base, f"judge={ORACLE_JUDGE}", f"run.output_dir={first}"]) == 0
        results = entries(json.loads((first / "results.json").read_text()))["win-rate"]
        assert results["win_rate"] == 1.0 and results["win_share"] == 1.0
        assert len(server.asked) == 12
        again = tmp_path / "llm-judge"
        argv = [*base, f"judge={server.spec('judge')}", f"cache_dir={first / 'generations'}"]
        assert main([*argv, f"run.output_dir={again}"]) == 0
        assert len(server.asked) == 12 + 24  # the answers came from the cache; the judge was asked twice each
    saved = json.loads((again / "results.json").read_text())
    results = entries(saved)["win-rate"]
    assert results["unparseable_rate"] == 1.0 and results["win_rate"] is None
    assert saved["n-samples"]["win-rate"]["effective"] == 12 and saved["config"]["model_args"]["judge"]
    rows = [json.loads(line) for line in (again / "samples.jsonl").open()]
    assert all(r["verdicts"]["judge"]["ab"]["raw"] == "I do not know." for r in rows)
    assert "unparseable_rate" in capsys.readouterr().out
