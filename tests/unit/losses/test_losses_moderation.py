"""The moderation loss against values computed by hand."""

from __future__ import annotations

import math

import torch

from alignkit.losses.moderation import moderation_loss


def test_moderation_loss_by_hand():
    """One example, C = 2, S = 4.

    Categories: logits [0, ln 3], labels [1, 1]: BCE = -log 1/2 = ln 2 and -log 3/4 = ln(4/3); sum
    ln 2 + ln 4/3 = ln(8/3). Severity: logits [0, 0, 0, ln 5], label 3: softmax = 5/8, CE = ln(8/5).
    Weight 0.5: L = ln(8/3) + 0.5 ln(8/5). Decisions: p = [1/2, 3/4] > 0.5 -> [no, yes] vs [yes, yes]:
    category accuracy 1/2; any-flag: yes == yes -> 1; severity argmax 3 == 3 -> 1.
    """
    out = moderation_loss(
        torch.tensor([[0.0, math.log(3)]]),
        torch.tensor([[0.0, 0.0, 0.0, math.log(5)]]),
        torch.tensor([[1.0, 1.0]]),
        torch.tensor([3]),
        severity_weight=0.5,
    )
    expected = math.log(8 / 3) + 0.5 * math.log(8 / 5)
    assert torch.allclose(out.losses, torch.tensor([expected]), atol=1e-6)
    assert out.category_correct.tolist() == [0.5]
    assert out.flag_correct.tolist() == [1.0] and out.severity_correct.tolist() == [1.0]


def test_a_confident_right_answer_costs_less_than_a_confident_wrong_one():
    labels, severity = torch.tensor([[0.0, 1.0]]), torch.tensor([2])
    right = moderation_loss(
        torch.tensor([[-5.0, 5.0]]), torch.tensor([[0.0, 0.0, 5.0, 0.0]]), labels, severity
    )
    wrong = moderation_loss(
        torch.tensor([[5.0, -5.0]]), torch.tensor([[5.0, 0.0, 0.0, 0.0]]), labels, severity
    )
    assert right.losses.item() < wrong.losses.item()
    assert wrong.metrics()["moderation/flag_accuracy"].item() == 1.0  # both flag something
    assert wrong.metrics()["moderation/category_accuracy"].item() == 0.0


def test_pos_weight_scales_only_the_positive_terms_and_a_missing_severity_adds_nothing():
    """Logits [0, 0], labels [1, 0], pos_weight [3, 3]: 3 ln 2 (positive, weighted) + ln 2 (negative) = 4 ln 2.
    Severity label -100 (none): no severity term."""
    out = moderation_loss(
        torch.zeros(1, 2),
        torch.zeros(1, 4),
        torch.tensor([[1.0, 0.0]]),
        torch.tensor([-100]),
        pos_weight=torch.tensor([3.0, 3.0]),
    )
    assert torch.allclose(out.losses, torch.tensor([4 * math.log(2)]), atol=1e-6)
