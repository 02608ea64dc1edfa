"""The demo end to end, and the efficacy of SFT measured by the toy world's oracles on held-out prompts."""

from __future__ import annotations

import json

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
