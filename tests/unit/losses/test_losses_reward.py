"""Bradley-Terry reward loss and the Safe RLHF cost loss, by hand."""

import math

import torch
from torch.testing import assert_close

from alignkit.losses import bradley_terry_loss, cost_loss


def nls(x: float) -> float:
    """-log sigma(x) = log(1 + e^-x)."""
    return math.log1p(math.exp(-x))


def test_bradley_terry_by_hand():
    """s_w = [2, 0, -1], s_l = [0, 0, 1] -> s_w - s_l = [2, 0, -2] -> L = -log sigma([2, 0, -2]).

    Accuracy [T, F, F] = 1/3; mean scores 1/3 and 1/3; margin 0.
    With eta = 0.1 add 0.1 * (s_w^2 + s_l^2) / 2 = [0.2, 0, 0.1].
    """
    chosen, rejected = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    out = bradley_terry_loss(chosen, rejected)
    assert_close(out.losses, torch.tensor([nls(2), nls(0), nls(-2)]), atol=1e-6, rtol=0)
    metrics = out.metrics()
    assert_close(metrics["rewards/accuracy"], torch.tensor(1 / 3))
    assert_close(metrics["rewards/chosen"], torch.tensor(1 / 3))
    assert_close(metrics["rewards/rejected"], torch.tensor(1 / 3))
    assert_close(metrics["rewards/margin"], torch.tensor(0.0))
    regularised = bradley_terry_loss(chosen, rejected, score_reg=0.1)
    assert_close(regularised.losses, torch.tensor([nls(2) + 0.2, nls(0), nls(-2) + 0.1]), atol=1e-6, rtol=0)


def test_bradley_terry_prefers_the_preferred_answer_and_detaches_metrics():
    chosen = torch.tensor([1.0, 2.0], requires_grad=True)
    rejected = torch.tensor([0.0, 0.0], requires_grad=True)
    out = bradley_terry_loss(chosen, rejected)
    assert (out.losses < bradley_terry_loss(rejected, chosen).losses).all()
    out.losses.sum().backward()
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all()  # pushes s_w up and s_l down
    assert not out.chosen_scores.requires_grad
    assert all(not v.requires_grad for v in out.metrics().values())


def test_cost_loss_by_hand_with_sign_labels():
    """c_u = [1, -1], c_s = [-2, -3], sign_u = [+1, -1] (the second pair is safe/safe), sign_s = [-1, -1].

    Row 0: -log sigma(1 - -2) - log sigma(1 * 1) - log sigma(-1 * -2) = nls(3) + nls(1) + nls(2).
    Row 1: -log sigma(-1 - -3) - log sigma(-1 * -1) - log sigma(-1 * -3) = nls(2) + nls(1) + nls(3).
    Every sign is right (4/4) and c_u > c_s in both pairs.
    """
    out = cost_loss(
        torch.tensor([1.0, -1.0]), torch.tensor([-2.0, -3.0]), torch.tensor([1, -1]), torch.tensor([-1, -1])
    )
    row = nls(3) + nls(1) + nls(2)
    assert_close(out.losses, torch.tensor([row, row]), atol=1e-6, rtol=0)
    metrics = out.metrics()
    assert_close(metrics["cost/sign_accuracy"], torch.tensor(1.0))
    assert_close(metrics["cost/accuracy"], torch.tensor(1.0))


def test_cost_loss_graded_labels_as_safe_rlhf_v():
    """Safe RLHF-V: sign = -harmless_rate. harmless_rate u = -2, s = 3 -> signs 2, -3.

    c_u = 0.5, c_s = -0.5: nls(0.5 - -0.5) + nls(2 * 0.5) + nls(-3 * -0.5) = nls(1) + nls(1) + nls(1.5).
    A grade of 0 gives log 2 and is left out of the sign accuracy: second pair c = (0.5, 0.2), rates
    (0, 1) -> nls(0.3) + log 2 + nls(-0.2); sign right for 0.2? sign -1 * 0.2 < 0 -> wrong. 2 of 3 right.
    Pairwise: 0.5 > -0.5 and 0.5 > 0.2 -> accuracy 1. With eta = 0.5, row 0 adds 0.5 * 0.5 / 2 = 0.125.
    """
    harmless_u, harmless_s = torch.tensor([-2, 0]), torch.tensor([3, 1])
    costs_u, costs_s = torch.tensor([0.5, 0.5]), torch.tensor([-0.5, 0.2])
    out = cost_loss(costs_u, costs_s, -harmless_u, -harmless_s)
    expected = torch.tensor([nls(1) + nls(1) + nls(1.5), nls(0.3) + math.log(2) + nls(-0.2)])
    assert_close(out.losses, expected, atol=1e-6, rtol=0)
    assert_close(out.metrics()["cost/sign_accuracy"], torch.tensor(2 / 3))
    assert_close(out.metrics()["cost/accuracy"], torch.tensor(1.0))
    regularised = cost_loss(costs_u, costs_s, -harmless_u, -harmless_s, score_reg=0.5)
    assert_close(regularised.losses[0], expected[0] + 0.125, atol=1e-6, rtol=0)
