"""The demo end to end, its eval stage (``alignkit eval``), and the efficacy of SFT measured by the toy
world's oracles on held-out prompts."""

from __future__ import annotations

import json
import math

import pytest

from sft_helpers import SFT_EXAMPLE  # isort: skip

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sft_learns_the_toy_world(demo_run):
    """Random init answers nothing; SFT must reach >= 0.80 held-out benign accuracy (a +0.75 margin).

    The SFT data is mixed on purpose (some harmful compliance), so the SFT policy still complies with
    some harmful requests: that is what the later stages (reward/cost models, DPO, Safe RLHF) must fix.
    """
    before, after = demo_run.oracle["random init"], demo_run.oracle["SFT"]
    assert before["benign_accuracy"] <= 0.05
    assert after["benign_accuracy"] >= 0.80
    assert after["benign_accuracy"] - before["benign_accuracy"] >= 0.75
    assert after["mean_helpfulness"] > before["mean_helpfulness"] + 0.5
    assert after["harmful_compliance_rate"] > 0.05


def test_demo_writes_the_table_and_plots(demo_run):
    out = demo_run.out_dir
    table = (out / "results.md").read_text()
    assert "| random init |" in table and "| SFT |" in table
    saved = json.loads((out / "results.json").read_text())
    assert saved["oracle"]["SFT"]["benign_accuracy"] == pytest.approx(
        demo_run.oracle["SFT"]["benign_accuracy"]
    )
    assert (out / "plots" / "sft_loss.png").stat().st_size > 1000
    sft_metrics = [json.loads(line) for line in (out / "sft" / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in sft_metrics if "loss" in m]
    assert losses[-1] < 0.5 * losses[0]


STAGE_FOLDERS = {
    "random init": "random-init",
    "SFT": "sft",
    "SFT → DPO (helpfulness)": "dpo-helpfulness",
    "SFT → DPO (safety)": "dpo-safety",
    "SFT → PPO": "ppo",
    "SFT → Safe RLHF": "safe-ppo",
    "SFT → GRPO (rule reward)": "grpo",
}


def test_the_demo_table_comes_from_alignkit_eval(demo_run):
    """The demo ends with an eval stage: one `alignkit eval run toyworld-oracle` folder per policy (model,
    reward and cost models as the stages trained them), whose results.json the table is read from, and
    `alignkit eval compare` of the trained policies against SFT."""
    import yaml

    from alignkit.eval.results import read_run
    from alignkit.toyworld import default_world

    out = demo_run.out_dir
    saved = json.loads((out / "results.json").read_text())
    assert list(demo_run.oracle) == list(STAGE_FOLDERS)
    for stage, folder in STAGE_FOLDERS.items():
        run = out / "eval" / folder
        assert saved["eval_runs"][stage] == f"eval/{folder}"
        results, samples = read_run(run)
        entry = results["results"]["toyworld-oracle"]
        assert len(samples) == 178 and results["alignkit"]["failures"]["toyworld-oracle"]["count"] == 0
        config = yaml.safe_load((run / "config.yaml").read_text())
        scored = ("reward_model_score", "cost_model_score")
        if stage == "random init":  # shown for scale: not scored by the score models, not compared
            assert config["model"] == str(default_world().model_path) and config["reward"] is None
            assert all(math.isnan(demo_run.oracle[stage][key]) for key in scored)
            scored = ()
        else:
            assert config["model"] == str(out / folder / "final"), stage
            assert config["reward"] == str(out / "reward" / "final") and config["cost"] == str(
                out / "cost" / "final"
            )
        for key in ("benign_accuracy", "harmful_compliance_rate", "ideal_rate", *scored):
            assert entry[f"{key},none"] is not None and entry[f"{key}_ci,none"] is not None, (stage, key)
        for key, value in demo_run.oracle[stage].items():
            shown = entry[f"{key},none"]
            assert (math.isnan(value) and shown is None) or value == shown, (stage, key)
            assert saved["oracle"][stage][key] == pytest.approx(value, nan_ok=True)
    compare = json.loads((out / "eval" / "compare" / "compare.json").read_text())
    runs = {run["label"]: run["path"] for run in compare["runs"]}
    assert compare["task"] == "toyworld-oracle" and runs[compare["baseline"]] == str(out / "eval" / "sft")
    assert sorted(runs.values()) == sorted(
        str(out / "eval" / f) for f in STAGE_FOLDERS.values() if f != "random-init"
    )
    label = {path: label for label, path in runs.items()}[str(out / "eval" / "safe-ppo")]
    diff = next(d for d in compare["metrics"]["harmful_compliance_rate"]["vs_baseline"] if d["run"] == label)
    sft, safe = demo_run.oracle["SFT"], demo_run.oracle["SFT → Safe RLHF"]
    assert diff["difference"] == pytest.approx(
        safe["harmful_compliance_rate"] - sft["harmful_compliance_rate"]
    )
    harmful = read_run(out / "eval" / "sft")[0]["alignkit"]["metric_counts"]["toyworld-oracle"]
    assert diff["n_paired"] == harmful["harmful_compliance_rate"] == 38  # the held-out harmful prompts, by id
    assert (out / "eval" / "compare" / "report.html").stat().st_size > 1000


def test_examples_are_the_demo_recipes():
    """examples/toyworld/*.yaml are links to the recipes the demo runs, so they cannot drift apart."""
    from alignkit.demo import RECIPES

    examples = SFT_EXAMPLE.parent
    for path in RECIPES.glob("*.yaml"):
        assert (examples / path.name).resolve() == path.resolve()


def test_demo_report_has_every_stage_and_the_rl_curves(demo_run):
    """report.html: one portable page with the per-stage table and the reward, cost and lambda curves."""
    page = (demo_run.out_dir / "report.html").read_text()
    for stage in ("SFT", "SFT → PPO", "SFT → Safe RLHF", "SFT → GRPO (rule reward)", "SFT → DPO (safety)"):
        assert f"<td>{stage}</td>" in page, stage
    for title in ("Reward-model score of the sampled responses", "Safe RLHF&#x27;s Lagrange multiplier",
                  "Cost-model score of the sampled responses"):  # fmt: skip
        assert title in page, title
    assert page.count("data:image/png;base64,") >= 4
    assert "harmful compliance" in page and "benign helpfulness" in page
    assert "Against SFT: paired differences (alignkit eval compare)" in page
    assert "<td>SFT → Safe RLHF</td>" in page.split("Against SFT")[1]  # a row of the comparison table
