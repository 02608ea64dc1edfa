"""``alignkit demo --modality image``: the demo's code path on the visual toy world (SFT-V, reward-V and
cost-V models, DPO-V, PPO-V, Safe RLHF-V, every policy judged by ``alignkit eval run toyworld-visual-oracle``),
run through the CLI with ``ALIGNKIT_MAX_STEPS=2`` (a quick tour: the folder, not the figures); SFT-V's
efficacy on held-out pictures is measured on the session's SFT-V policy, trained by the demo's recipe."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import yaml

from alignkit.cli import main

pytestmark = [pytest.mark.integration]

STAGES = {
    "random init": "random-init",
    "SFT-V": "sft",
    "SFT-V → DPO-V (safety)": "dpo-safety",
    "SFT-V → PPO-V": "ppo",
    "SFT-V → Safe RLHF-V": "safe-ppo",
}
TASK = "toyworld-visual-oracle"


@pytest.mark.slow
@pytest.mark.plots
def test_image_demo_writes_the_run_folder_with_each_stage_judged_on_held_out_pictures(tmp_path, monkeypatch):
    """Every stage, 2 steps each (about 70 s under a load of 8 on 2 cores, 25 s of it evaluating four
    policies that never end an answer)."""
    monkeypatch.setenv("ALIGNKIT_MAX_STEPS", "2")
    out = tmp_path / "demo-v"
    assert main(["demo", "--modality", "image", "--out", str(out)]) == 0
    check_run_folder(out)


def check_run_folder(out: Path) -> None:
    """What the image demo must write: every stage's figures from its eval run, the capped runs, the
    comparison, results.md and report.html."""
    saved = json.loads((out / "results.json").read_text())
    assert saved["modality"] == "image" and set(saved["oracle"]) == set(STAGES)
    for stage, folder in STAGES.items():
        assert saved["eval_runs"][stage] == f"eval/{folder}"
        entry = json.loads((out / "eval" / folder / "results.json").read_text())["results"][TASK]
        figures = saved["oracle"][stage]
        for key in ("benign_accuracy", "harmful_compliance_rate", "harmful_refusal_rate", "ideal_rate"):
            assert 0 <= figures[key] <= 1 and figures[key] == entry[f"{key},none"], (stage, key)
        if stage == "random init":  # shown for scale, not scored by the score models
            assert math.isnan(figures["cost_model_score"])
        else:
            assert math.isfinite(figures["cost_model_score"]) and math.isfinite(figures["reward_model_score"])
        counts = json.loads((out / "eval" / folder / "results.json").read_text())["alignkit"]["metric_counts"]
        # the held-out pictures: 13 hazard pictures asked the harmful question, 99 benign questions
        assert (counts[TASK]["harmful_compliance_rate"], counts[TASK]["benign_accuracy"]) == (13, 99), stage
    for folder in ("sft", "reward", "cost", "dpo-safety", "safe-ppo"):
        config = yaml.safe_load((out / folder / "config.yaml").read_text())
        steps = config["trainer"].get("max_steps", config["trainer"].get("steps"))
        assert steps == 2, folder  # ALIGNKIT_MAX_STEPS reached every stage
        assert (out / folder / "final" / "processor_config.json").is_file(), folder
    safe = yaml.safe_load((out / "safe-ppo" / "config.yaml").read_text())
    assert safe["reward"]["path"] == str(out / "reward" / "final")
    assert safe["cost"]["path"] == str(out / "cost" / "final")
    assert set(saved["score_models"]) == {
        "reward-V model: held-out BeaverTails-V pairs ranked (helpfulness)",
        "cost-V model: held-out sign accuracy vs the harm oracle",
    }
    compare = json.loads((out / "eval" / "compare" / "compare.json").read_text())
    assert compare["task"] == TASK and len(compare["runs"]) == 4
    assert "| SFT-V → Safe RLHF-V |" in (out / "results.md").read_text()
    page = (out / "report.html").read_text()
    for stage in STAGES:
        assert f"<td>{stage}</td>" in page, stage
    assert "alignkit eval run toyworld-visual-oracle" in page and "Against SFT-V" in page
    assert "Safe RLHF&#x27;s Lagrange multiplier" in page and page.count("data:image/png;base64,") >= 2
    assert (out / "plots" / "sft_loss.png").stat().st_size > 1000


@pytest.mark.parametrize("modality", ["audio", "video"])
def test_a_modality_without_a_demo_is_refused_naming_the_allowed_ones(tmp_path, capsys, modality):
    out = tmp_path / "demo"
    assert main(["demo", "--modality", modality, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--modality {modality!r}" in err and "text, image" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.slow
def test_sft_v_of_the_demo_answers_held_out_pictures_far_above_random_init(sft_v_policy: Path, tmp_path):
    """The session's SFT-V policy is trained by the demo's own SFT-V recipe (checked key by key), so the
    demo's SFT-V row is this one: held-out benign accuracy must beat random init by at least 0.3.
    Measured (greedy, 99 benign questions about the 20 held-out pictures): random init 0.000, SFT-V 0.354
    (35/99; the demo's own SFT-V row, twice): per family colour 0.13, place 0.43, kind 0.56, count 0.37 and
    the harmless "make" question 0.00 on pictures never seen in training, hence the modest bar."""
    from alignkit.config import load_config
    from alignkit.demo import evaluate
    from alignkit.demo_plan import IMAGE_PLAN
    from alignkit.train.sft import SFTConfig

    demo = load_config(SFTConfig, IMAGE_PLAN.recipes / "sft.yaml", [])
    fixture = load_config(SFTConfig, sft_v_policy.parent / "config.yaml", [])  # what the fixture ran
    # the same training; the demo also evaluates the SFT loss once, after the last step
    assert dataclasses.replace(fixture.trainer, eval_every=demo.trainer.eval_every) == demo.trainer
    assert (demo.model, demo.data.train, demo.data.max_length, demo.data.packing) == (
        fixture.model,
        fixture.data.train,
        fixture.data.max_length,
        fixture.data.packing,
    )
    random_init = IMAGE_PLAN.world()[1]
    before = evaluate(random_init, tmp_path / "random-init", None, None, TASK)
    after = evaluate(sft_v_policy, tmp_path / "sft-v", None, None, TASK)
    assert before["benign_accuracy"] <= 0.1
    assert after["benign_accuracy"] >= before["benign_accuracy"] + 0.3, (before, after)
