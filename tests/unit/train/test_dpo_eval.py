"""Implicit-reward evaluation of a DPO policy (``alignkit.eval.dpo_eval``)."""

from __future__ import annotations

import math

import pytest
import torch

from alignkit.data import load_records
from alignkit.eval.dpo_eval import PairLogps, evaluate_dpo_policy, preference_metrics
from alignkit.models.loading import load_causal_lm, load_tokenizer, resolve_path

TINY = "toyworld://models/tiny"


def test_preference_metrics_by_hand() -> None:
    """Three pairs. Policy margins log pi(y_w) - log pi(y_l): [1, -1, 0] -> logp accuracy 1/3 (a tie
    is wrong). rho_w - rho_l = (policy_w - ref_w) - (policy_l - ref_l):
    pair 0: (-1 - -2) - (-2 - -2) = 1; pair 1: (-3 - -3) - (-2 - -1) = 1; pair 2: (-1 - -1) - (-1 - -1) = 0.
    With beta 0.5 the reward margins are [0.5, 0.5, 0]: accuracy 2/3, mean 1/3."""
    policy = PairLogps(torch.tensor([-1.0, -3.0, -1.0]), torch.tensor([-2.0, -2.0, -1.0]))
    reference = PairLogps(torch.tensor([-2.0, -3.0, -1.0]), torch.tensor([-2.0, -1.0, -1.0]))
    out = preference_metrics(policy, reference, beta=0.5)
    assert out["logp_accuracy"] == pytest.approx(1 / 3)
    assert out["logp_margin"] == pytest.approx(0.0)
    assert out["implicit_reward_accuracy"] == pytest.approx(2 / 3)
    assert out["implicit_reward_margin"] == pytest.approx(1 / 3)
    assert out["n_pairs"] == 3
    assert "implicit_reward_accuracy" not in preference_metrics(policy, None)
    empty = preference_metrics(PairLogps(torch.zeros(0), torch.zeros(0)), None)
    assert math.isnan(empty["logp_accuracy"])


def test_a_policy_equal_to_its_reference_has_no_implicit_preference() -> None:
    tokenizer = load_tokenizer(TINY)
    records = load_records(resolve_path("toyworld://data/safe_pref"), "pku-saferlhf", split="test").records[
        :6
    ]
    model = load_causal_lm(TINY).train()
    out = evaluate_dpo_policy(model, tokenizer, records, reference=model, max_length=64)
    assert out["n_pairs"] == 6
    assert out["implicit_reward_accuracy"] == 0.0  # every margin is exactly 0: a tie, counted wrong
    assert 0.0 <= out["logp_accuracy"] <= 1.0
    assert model.training  # the mode is restored
