"""PPO pieces: GAE against a plain loop, clipped losses, KL estimators, per-token rewards."""

import math

import pytest
import torch
from torch.testing import assert_close

from alignkit.losses import (
    KLEstimator,
    explained_variance,
    gae,
    kl_penalty,
    per_token_costs,
    per_token_rewards,
    ppo_policy_loss,
    ppo_value_loss,
)

LN2 = math.log(2)


def test_gae_by_hand_with_right_padding():
    """gamma = 1, lam = 0.5.

    Row 0 (3 valid): r = [0, 0, 1], V = [.5, .5, .5].
      delta_2 = 1 + 0 - .5 = .5 (V after the last token is 0) -> A_2 = .5
      delta_1 = 0 + .5 - .5 = 0 -> A_1 = 0 + .5 * .5 = .25;  delta_0 = 0 -> A_0 = .125
      returns A + V = [.625, .75, 1].
    Row 1 (2 valid, then padding with junk 99s): r = [0, 2], V = [1, 1].
      delta_1 = 2 + 0 - 1 = 1 -> A_1 = 1;  delta_0 = 0 + 1 - 1 = 0 -> A_0 = .5;  returns [1.5, 2, 0].
    """
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 99.0]])
    values = torch.tensor([[0.5, 0.5, 0.5], [1.0, 1.0, 99.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    out = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert_close(out.advantages, torch.tensor([[0.125, 0.25, 0.5], [0.5, 1.0, 0.0]]), atol=1e-6, rtol=0)
    assert_close(out.returns, torch.tensor([[0.625, 0.75, 1.0], [1.5, 2.0, 0.0]]), atol=1e-6, rtol=0)


def plain_gae(rewards: list[float], values: list[float], gamma: float, lam: float) -> list[float]:
    """Textbook loop over one unpadded episode: V after the end is 0."""
    advantages, next_value, next_advantage = [0.0] * len(rewards), 0.0, 0.0
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * next_value - values[t]
        next_advantage = delta + gamma * lam * next_advantage
        advantages[t], next_value = next_advantage, values[t]
    return advantages


def test_gae_matches_a_plain_python_loop_on_random_right_padded_rows():
    gen = torch.Generator().manual_seed(0)
    batch, length, gamma, lam = 6, 9, 0.9, 0.8
    rewards = torch.randn(batch, length, generator=gen, dtype=torch.float64)
    values = torch.randn(batch, length, generator=gen, dtype=torch.float64)
    lengths = [9, 1, 5, 0, 3, 8]
    mask = torch.arange(length).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    out = gae(rewards, values, mask, gamma=gamma, lam=lam)
    for row, n in enumerate(lengths):
        expected = plain_gae(rewards[row, :n].tolist(), values[row, :n].tolist(), gamma, lam)
        expected += [0.0] * (length - n)
        assert_close(out.advantages[row], torch.tensor(expected, dtype=torch.float64), atol=1e-6, rtol=0)
        assert_close(out.returns[row, :n], out.advantages[row, :n] + values[row, :n])
        assert (out.returns[row, n:] == 0).all()


def test_ppo_policy_loss_by_hand():
    """eps = 0.2, q = exp(logp - old) = [1.5, 0.5, 1, 0.5, (masked)], A = [1, 1, -1, -1, (1e6)].

    token 0: -min(1.5, 1.2) = -1.2 (clipped term taken)
    token 1: -min(.5, .8) = -.5    token 2: -min(-1, -1) = 1
    token 3: -min(-.5, -.8) = .8 (clipped term taken)
    loss = (-1.2 - .5 + 1 + .8) / 4 = .025, clipfrac = 2/4.
    approx_kl (k2) = mean(½ ln² q) = ½(ln² 1.5 + 2 ln² .5) / 4; k3 = mean(q - 1 - ln q).
    """
    q = [1.5, 0.5, 1.0, 0.5]
    logps = torch.tensor([[math.log(x) for x in q] + [5.0]])
    old = torch.zeros(1, 5)
    advantages = torch.tensor([[1.0, 1.0, -1.0, -1.0, 1e6]])
    mask = torch.tensor([[1, 1, 1, 1, 0]], dtype=torch.bool)
    out = ppo_policy_loss(logps, old, advantages, mask, clip_eps=0.2)
    assert_close(out.loss, torch.tensor(0.025), atol=1e-6, rtol=0)
    assert_close(out.clipfrac, torch.tensor(0.5))
    k2 = sum(0.5 * math.log(x) ** 2 for x in q) / 4
    k3 = sum(x - 1 - math.log(x) for x in q) / 4
    assert_close(out.approx_kl, torch.tensor(k2), atol=1e-6, rtol=0)
    assert_close(out.approx_kl_k3, torch.tensor(k3), atol=1e-6, rtol=0)
    assert set(out.metrics()) >= {"policy/loss", "policy/approx_kl", "policy/clipfrac"}
    # a global normaliser (accumulation): the same sum over 8 tokens
    assert_close(ppo_policy_loss(logps, old, advantages, mask, num_tokens=8).loss, torch.tensor(0.0125))


def test_ppo_policy_gradient_reaches_policy_only_and_masked_batch_is_finite():
    logps = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    old = torch.tensor([[-1.1, -1.9]], requires_grad=True)
    advantages = torch.tensor([[1.0, -1.0]], requires_grad=True)
    out = ppo_policy_loss(logps, old, advantages, torch.ones(1, 2, dtype=torch.bool))
    out.loss.backward()
    assert logps.grad is not None and old.grad is None and advantages.grad is None
    empty = ppo_policy_loss(logps, old, advantages, torch.zeros(1, 2, dtype=torch.bool))
    assert empty.loss == 0 and all(torch.isfinite(v) for v in empty.metrics().values())


def test_ppo_value_loss_by_hand():
    """clip 0.5, V_old = 0. V = [2, 0, 1], R = [1, 3, 3].

    token 0: clip(V) = .5 -> max((2-1)^2, (.5-1)^2) = 1
    token 1: clip(V) = 0 -> max(9, 9) = 9 (equal: not counted as clipped)
    token 2: clip(V) = .5 -> max((1-3)^2, (.5-3)^2) = max(4, 6.25) = 6.25 (clipped)
    loss = ½ (1 + 9 + 6.25) / 3, clipfrac 1/3; a masked 4th token with huge error is ignored.
    """
    values = torch.tensor([[2.0, 0.0, 1.0, 100.0]], requires_grad=True)
    old_values = torch.zeros(1, 4)
    returns = torch.tensor([[1.0, 3.0, 3.0, -100.0]])
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    out = ppo_value_loss(values, old_values, returns, mask, clip_range=0.5)
    assert_close(out.loss, torch.tensor(0.5 * 16.25 / 3), atol=1e-6, rtol=0)
    assert_close(out.clipfrac, torch.tensor(1 / 3), atol=1e-6, rtol=0)
    out.loss.backward()
    assert values.grad[0, 3] == 0


def test_kl_estimators_by_hand():
    """log pi - log pi_ref = [0, ln 2]: k1 = [0, ln 2]; k2 = [0, ½ ln² 2]; k3 = e^-k1 - 1 + k1 = [0, ½ - 1 + ln 2]."""
    policy, ref = torch.tensor([[-1.0, LN2 - 1.0]]), torch.tensor([[-1.0, -1.0]])
    assert_close(kl_penalty(policy, ref, "k1"), torch.tensor([[0.0, LN2]]), atol=1e-6, rtol=0)
    assert_close(
        kl_penalty(policy, ref, KLEstimator.K2), torch.tensor([[0.0, 0.5 * LN2**2]]), atol=1e-6, rtol=0
    )
    assert_close(kl_penalty(policy, ref, "k3"), torch.tensor([[0.0, LN2 - 0.5]]), atol=1e-6, rtol=0)
    assert (kl_penalty(torch.randn(4, 5), torch.randn(4, 5), "k3") >= 0).all()
    with pytest.raises(ValueError):
        kl_penalty(policy, ref, "k4")


def test_per_token_rewards_put_the_score_on_the_true_last_token():
    """beta = 0.1, clip 50. Row 0 (2 valid of 3): -0.1 * [.5, 1] + [0, score 1] = [-.05, .9, 0].
    Row 1 (3 valid): score 100 clipped to 50 -> [-.1, -.1, -.1 + 50]. Row 2 (empty): all 0.
    Costs flip the KL sign: row 0 -> [.05, .1 + 1, 0]."""
    score = torch.tensor([1.0, 100.0, 7.0])
    kl = torch.tensor([[0.5, 1.0, 3.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]], dtype=torch.bool)
    rewards = per_token_rewards(score, kl, mask, beta=0.1, clip=50.0)
    expected = torch.tensor([[-0.05, 0.9, 0.0], [-0.1, -0.1, 49.9], [0.0, 0.0, 0.0]])
    assert_close(rewards, expected, atol=1e-6, rtol=0)
    costs = per_token_costs(score, kl, mask, beta=0.1, clip=50.0)
    assert_close(costs[0], torch.tensor([0.05, 1.1, 0.0]), atol=1e-6, rtol=0)


def test_explained_variance_by_hand():
    """R = [1, 2, 3] (a masked 4th entry ignored). V = R -> 1. V = [2, 2, 2] -> Var(R - V) = Var([-1, 0, 1])
    = 2/3 = Var(R) -> 0. Constant R -> undefined (NaN)."""
    returns = torch.tensor([[1.0, 2.0, 3.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    assert_close(explained_variance(returns, returns, mask), torch.tensor(1.0))
    constant = torch.tensor([[2.0, 2.0, 2.0, -7.0]])
    assert_close(explained_variance(constant, returns, mask), torch.tensor(0.0), atol=1e-6, rtol=0)
    assert torch.isnan(explained_variance(returns, constant, mask))


def test_sequence_mean_averages_each_response_first_as_safe_rlhf_does():
    """Two rows, eps = 0.2, q = 1 everywhere (so the loss is -A per token).

    row 0: A = [1, 1, 1] (3 tokens), row 1: A = [-2, (pad), (pad)] (1 token).
    token mean:    -(1 + 1 + 1 - 2) / 4 = -0.25
    sequence mean: (-(3 / 3) + 2 / 1) / 2 = 0.5
    Value loss, V = 0, R = [[1, 1, 1], [3, -, -]]: token mean ½(1 + 1 + 1 + 9) / 4 = 1.5,
    sequence mean ½((3 / 3) + 9 / 1) / 2 = 2.5.
    """
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    zeros = torch.zeros(2, 3)
    advantages = torch.tensor([[1.0, 1.0, 1.0], [-2.0, 7.0, 7.0]])
    assert_close(ppo_policy_loss(zeros, zeros, advantages, mask).loss, torch.tensor(-0.25))
    seq = ppo_policy_loss(zeros, zeros, advantages, mask, aggregation="sequence_mean")
    assert_close(seq.loss, torch.tensor(0.5))
    returns = torch.tensor([[1.0, 1.0, 1.0], [3.0, 50.0, 50.0]])
    assert_close(ppo_value_loss(zeros, zeros, returns, mask).loss, torch.tensor(1.5))
    assert_close(
        ppo_value_loss(zeros, zeros, returns, mask, aggregation="sequence_mean").loss, torch.tensor(2.5)
    )
