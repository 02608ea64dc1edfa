"""A reward model trained with LoRA saves merged, so it reloads as a Scorer like a full fine-tune."""

from __future__ import annotations

import pytest
import torch
from sft_helpers import REPO

from alignkit.score.score_model import ScoreModelScorer

pytestmark = pytest.mark.integration


def test_lora_reward_model_reloads_as_a_scorer(tmp_path, cli):
    out = tmp_path / "reward"
    result = cli(
        "train", "reward", "--config", str(REPO / "examples/toyworld/reward.yaml"), "model.lora.r=4",
        "trainer.max_steps=3", "trainer.eval_every=0", f"run.output_dir={out}", "run.progress=false",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (out / "final" / "adapter_config.json").exists()
    scorer = ScoreModelScorer(str(out / "final"))
    assert scorer.kind == "reward"
    prompt = [[{"role": "user", "content": "add 3 and 4"}]] * 2
    scores = scorer.score(
        prompt, [[{"role": "assistant", "content": "7"}], [{"role": "assistant", "content": "9"}]]
    )
    assert scores.shape == (2,) and torch.isfinite(scores).all()
