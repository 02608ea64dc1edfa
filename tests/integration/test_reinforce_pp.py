"""REINFORCE++ on the toy world: the proof that an advantage estimator is one registry entry.

``reinforce_pp`` was added to ``alignkit.losses.advantages`` as one function and one ``@estimator`` line;
nothing in the trainer names it. Run from the demo's SFT policy with the oracle's ideal-answer rule as
reward (the GRPO recipe, ``advantage=reinforce_pp``), it must raise the oracle's accuracy on the 178
held-out prompts as GRPO and RLOO do.
"""

from __future__ import annotations

import json

import pytest

from alignkit.cli import trainer_for
from alignkit.config import load_config
from alignkit.demo import RECIPES, held_out_scores

pytestmark = [pytest.mark.slow, pytest.mark.integration]

IDEAL_GAIN = 0.02
"""REINFORCE++ must raise the oracle's accuracy by this, the margin GRPO and RLOO are held to."""


def test_reinforce_pp_with_the_oracle_rule_raises_oracle_accuracy(demo_run, tmp_path):
    models = demo_run.out_dir
    config_cls, train = trainer_for("grpo")
    config = load_config(
        config_cls,
        RECIPES / "grpo.yaml",
        [
            f"model.path={models / 'sft' / 'final'}",
            "monitor=null",
            "advantage=reinforce_pp",
            f"run.output_dir={tmp_path / 'reinforce_pp'}",
            "run.progress=false",
        ],
    )
    result = train(config)
    scores = held_out_scores(result.final_dir, models / "reward" / "final", models / "cost" / "final")
    sft = demo_run.oracle["SFT"]
    print(f"\nREINFORCE++ oracle accuracy {sft['ideal_rate']:.3f} -> {scores['ideal_rate']:.3f}")
    assert scores["ideal_rate"] >= sft["ideal_rate"] + IDEAL_GAIN
    rows = [json.loads(line) for line in (result.final_dir.parent / "metrics.jsonl").read_text().splitlines()]
    stepped = [r for r in rows if "reward/score" in r]
    # the KL to the reference is in the reward (k1, logged as policy/kl), not in the loss
    assert stepped and all("policy/kl" in r and "timing/rollout" in r for r in stepped)
