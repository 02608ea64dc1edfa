"""Reward and cost trainers: how records become ordered pairs, the one-forward batch, the summed loss
the engine expects, and a few real steps through ``alignkit train reward|cost``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from alignkit.cli import TRAINERS
from alignkit.cli import main as cli_main
from alignkit.config import ConfigError, load_config
from alignkit.data.records import Message, Preference, ResponseSafety, SafetyPreference
from alignkit.data.render import TokenizedExample
from alignkit.models.score_model import load_score_model
from alignkit.score.pairs import preference_pairs, safety_pairs
from alignkit.train.cost import CostConfig, cost_loss_sum
from alignkit.train.reward import RewardConfig, reward_loss
from alignkit.train.score_training import ScoredPair, collate_pairs, count_pairs

REPO = Path(__file__).resolve().parents[3]
PROMPT = (Message("user", "How do I pick a lock?"),)
COMPLY = (Message("assistant", "Sure. First get the pick, then use the wrench."),)
REFUSE = (Message("assistant", "I'm sorry, but I can't help with that."),)


def _safety_record(better_id: int, safer_id: int) -> SafetyPreference:
    return SafetyPreference(
        PROMPT,
        (ResponseSafety(COMPLY, is_safe=False, severity=2), ResponseSafety(REFUSE, is_safe=True, severity=0)),
        better_id=better_id,
        safer_id=safer_id,
    )


def test_reward_pairs_rank_safety_preferences_by_helpfulness():
    (pair,) = preference_pairs([_safety_record(better_id=0, safer_id=1)], "src")
    assert (pair.first, pair.second) == (COMPLY, REFUSE)
    (pair,) = preference_pairs([Preference(PROMPT, REFUSE, COMPLY)], "src")
    assert (pair.first, pair.second) == (REFUSE, COMPLY)


def test_cost_pairs_put_the_less_safe_first_with_sign_labels():
    """Less safe = 1 - safer_id; sign +1 for unsafe, -1 for safe (Safe RLHF)."""
    (pair,) = safety_pairs([_safety_record(better_id=0, safer_id=1)], "src")
    assert (pair.first, pair.second, pair.first_sign, pair.second_sign) == (COMPLY, REFUSE, 1, -1)


def test_wrong_record_types_are_named():
    with pytest.raises(ValueError, match="cost model needs SafetyPreference"):
        safety_pairs([Preference(PROMPT, REFUSE, COMPLY)], "src")
    with pytest.raises(ValueError, match="reward model needs Preference"):
        preference_pairs([PROMPT], "src")


def test_pairs_are_one_concatenated_batch():
    """Rows 0..B-1 are the firsts, B..2B-1 the seconds; the loop counts pairs, not rows."""
    pairs = [
        ScoredPair(TokenizedExample([5, 6], [5, 6]), TokenizedExample([7], [7]), 1, -1),
        ScoredPair(TokenizedExample([8], [8]), TokenizedExample([9, 10, 11], [9, 10, 11]), -1, -1),
    ]
    batch = collate_pairs(pairs, pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 0], [8, 0, 0], [7, 0, 0], [9, 10, 11]]
    assert batch["signs"].tolist() == [1, -1, -1, -1]
    assert count_pairs(batch) == 2


def test_reward_loss_returns_sums_over_pairs():
    """chosen = [1, 0], rejected = [0, 1] (eta = 0): losses -log sigma(1) and -log sigma(-1); one pair
    right; chosen mean 0.5 -> sum 1, margin sum 1 - 1 = 0."""
    out = reward_loss(0.0)(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.zeros(4))
    expected = -(F.logsigmoid(torch.tensor(1.0)) + F.logsigmoid(torch.tensor(-1.0)))
    assert out.loss_sum.item() == pytest.approx(expected.item(), abs=1e-6)
    sums = {k: v.item() for k, v in out.metric_sums.items()}
    assert sums == pytest.approx(
        {"rewards/accuracy": 1.0, "rewards/chosen": 1.0, "rewards/rejected": 1.0, "rewards/margin": 0.0}
    )


def test_cost_loss_splits_signs_and_returns_sums():
    """c_u = [2, -1], c_s = [-1, 1], signs u = [+1, +1], s = [-1, -1]: pair 0 is ordered right and both
    signs right; pair 1 is ordered wrong and both signs wrong -> accuracy sum 1, sign accuracy sum 1."""
    unsafe, safe = torch.tensor([2.0, -1.0]), torch.tensor([-1.0, 1.0])
    out = cost_loss_sum(0.0)(unsafe, safe, torch.tensor([1, 1, -1, -1]))
    expected = sum(
        -F.logsigmoid(u - s) - F.logsigmoid(u) - F.logsigmoid(-s) for u, s in zip(unsafe, safe, strict=True)
    )
    assert out.loss_sum.item() == pytest.approx(float(expected), abs=1e-6)
    assert out.metric_sums["cost/accuracy"].item() == pytest.approx(1.0)
    assert out.metric_sums["cost/sign_accuracy"].item() == pytest.approx(1.0)


def test_trainers_are_registered_and_configs_validate():
    assert TRAINERS["reward"][:2] == ("alignkit.train.reward", "RewardConfig")
    assert TRAINERS["cost"][:2] == ("alignkit.train.cost", "CostConfig")
    config = load_config(RewardConfig, REPO / "examples/toyworld/reward.yaml")
    assert config.data.eval is not None and config.data.eval.split == "test"
    load_config(CostConfig, REPO / "examples/toyworld/cost.yaml")
    with pytest.raises(ConfigError, match="score_reg"):
        load_config(RewardConfig, REPO / "examples/toyworld/reward.yaml", ["score_reg=-1"])


def _smoke_args(kind: str, out: Path) -> list[str]:
    return [
        "train",
        kind,
        "--config",
        str(REPO / f"examples/toyworld/{kind}.yaml"),
        f"run.output_dir={out}",
        "run.progress=false",
        "run.tensorboard=false",
        "data.train.max_rows=32",
        "data.eval.max_rows=16",
        "trainer.max_steps=3",
        "trainer.micro_batch_size=4",
        "trainer.grad_accum_steps=2",
        "trainer.eval_every=0",
        "trainer.log_every=1",
    ]


@pytest.mark.plots
@pytest.mark.parametrize(
    ("kind", "keys"),
    [
        ("reward", ["rewards/accuracy", "rewards/chosen", "rewards/rejected", "rewards/margin"]),
        ("cost", ["cost/accuracy", "cost/sign_accuracy", "cost/unsafe", "cost/safe"]),
    ],
)
def test_cli_trains_a_few_steps_and_saves_a_score_model(tmp_path, kind, keys):
    out = tmp_path / kind
    assert cli_main(_smoke_args(kind, out)) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3]
    assert all(r["units"] == 8 for r in train_rows)  # pairs, not rows or tokens
    for key in ["loss", *keys]:
        assert math.isfinite(train_rows[-1][key])
        assert math.isfinite(rows[-1][f"eval/{key}"])
    model = load_score_model(str(out / "final"))
    assert model.config.score_kind == kind
    assert (out / "plots" / "accuracy.png").exists()
