"""GRPO, Dr. GRPO and RLOO advantages on small groups, and the GRPO loss, by hand."""

import math

import pytest
import torch
from torch.testing import assert_close

from alignkit.losses import dr_grpo_advantages, grpo_advantages, grpo_loss, rloo_advantages

LN2 = math.log(2)


def test_grpo_advantages_by_hand():
    """G = 4, flat, ordered by prompt. Prompt 0: R = [1, 0, 0, 0], mean 1/4, unbiased std
    sqrt((.75^2 + 3 * .25^2) / 3) = sqrt(.25) = .5 -> A = [.75, -.25, -.25, -.25] / (.5 + 1e-4).
    Prompt 1: R = [2, 2, 2, 2] -> A = 0. The (P, G) layout gives the same numbers."""
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0])
    expected = torch.tensor([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0]) / torch.tensor([0.5001] * 4 + [1] * 4)
    assert_close(grpo_advantages(rewards, group_size=4), expected, atol=1e-6, rtol=0)
    assert_close(grpo_advantages(rewards.view(2, 4)), expected.view(2, 4), atol=1e-6, rtol=0)


def test_groups_are_consecutive_samples_of_one_prompt():
    """[1, 0 | 2, 4] with G = 2: means 0.5 and 3. Dr. GRPO -> [.5, -.5, -1, 1] (no std division).
    Grouping adjacent samples across prompts (0 with 2) would give different numbers."""
    rewards = torch.tensor([1.0, 0.0, 2.0, 4.0])
    assert_close(dr_grpo_advantages(rewards, group_size=2), torch.tensor([0.5, -0.5, -1.0, 1.0]))


def test_rloo_by_hand():
    """G = 2: [1, 0 | 2, 4] -> [1 - 0, 0 - 1, 2 - 4, 4 - 2] = [1, -1, -2, 2].
    G = 3: [3, 0, 0] -> [3 - (0 + 0)/2, 0 - (3 + 0)/2, 0 - 1.5] = [3, -1.5, -1.5]."""
    assert_close(rloo_advantages(torch.tensor([1.0, 0.0, 2.0, 4.0]), 2), torch.tensor([1.0, -1.0, -2.0, 2.0]))
    assert_close(rloo_advantages(torch.tensor([[3.0, 0.0, 0.0]])), torch.tensor([[3.0, -1.5, -1.5]]))


def test_bad_groups_are_rejected():
    with pytest.raises(ValueError):
        grpo_advantages(torch.tensor([1.0, 2.0, 3.0]), group_size=2)
    with pytest.raises(ValueError):
        rloo_advantages(torch.tensor([[1.0], [2.0]]))
    with pytest.raises(ValueError):
        grpo_advantages(torch.tensor([1.0, 2.0]))


def test_grpo_loss_aggregations_by_hand():
    """On-policy (q = 1), beta = 0: each valid token's loss is -A.
    A = [1, -2], mask [[1, 1, 1], [1, 0, 0]] -> token losses [-1, -1, -1 | 2].
    token mean: (-3 + 2) / 4 = -.25;  sequence mean: mean(-1, 2) = .5;
    Dr. GRPO constant normaliser B * T = 6: -1/6.
    Gradient of the token mean w.r.t. log pi: -A / 4 on valid tokens, 0 elsewhere."""
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -9.0, -9.0]], requires_grad=True)
    advantages = torch.tensor([1.0, -2.0])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    out = grpo_loss(logps, advantages, mask, beta=0.0)
    assert_close(out.loss, torch.tensor(-0.25), atol=1e-6, rtol=0)
    assert_close(
        grpo_loss(logps, advantages, mask, beta=0.0, aggregation="sequence_mean").loss, torch.tensor(0.5)
    )
    assert_close(grpo_loss(logps, advantages, mask, beta=0.0, num_tokens=6).loss, torch.tensor(-1 / 6))
    out.loss.backward()
    assert_close(logps.grad, torch.tensor([[-0.25, -0.25, -0.25], [0.5, 0.0, 0.0]]), atol=1e-6, rtol=0)


def test_grpo_loss_kl_and_clip_by_hand():
    """KL: A = 0, beta = .5, log pi - log pi_ref = [ln 2, 0] -> k3 = [ln 2 - .5, 0] -> loss .5 (ln 2 - .5) / 2.
    Clip: old log pi = 0, log pi = ln 1.5, A = 1, eps = .2 -> -min(1.5, 1.2) = -1.2, clipfrac 1."""
    logps = torch.tensor([[LN2 - 1.0, -1.0]])
    ref = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    mask = torch.ones(1, 2, dtype=torch.bool)
    out = grpo_loss(logps, torch.tensor([0.0]), mask, ref_token_logps=ref, beta=0.5)
    assert_close(out.loss, torch.tensor(0.5 * (LN2 - 0.5) / 2), atol=1e-6, rtol=0)
    assert_close(out.kl, torch.tensor((LN2 - 0.5) / 2), atol=1e-6, rtol=0)
    assert not ref.requires_grad or ref.grad is None
    clipped = grpo_loss(
        torch.tensor([[math.log(1.5)]]),
        torch.tensor([1.0]),
        torch.ones(1, 1, dtype=torch.bool),
        old_token_logps=torch.zeros(1, 1),
        beta=0.0,
    )
    assert_close(clipped.loss, torch.tensor(-1.2), atol=1e-6, rtol=0)
    assert_close(clipped.clipfrac, torch.tensor(1.0))
    with pytest.raises(ValueError, match="ref_token_logps"):
        grpo_loss(logps, torch.tensor([0.0]), mask, beta=0.1)


def test_grpo_loss_fully_masked_rows_give_no_nan():
    logps = torch.zeros(2, 3)
    for aggregation in ("token_mean", "sequence_mean"):
        out = grpo_loss(
            logps,
            torch.tensor([1.0, -1.0]),
            torch.zeros(2, 3, dtype=torch.bool),
            ref_token_logps=logps,
            aggregation=aggregation,
        )
        assert out.loss == 0 and all(torch.isfinite(v) for v in out.metrics().values())
