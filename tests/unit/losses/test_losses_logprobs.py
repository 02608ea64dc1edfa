"""Token log-probs and masked reductions, against values computed by hand."""

import math

import torch
from torch.testing import assert_close

from alignkit.losses import (
    entropy_from_logits,
    label_mask,
    masked_mean,
    masked_whiten,
    sequence_logps,
    token_logps,
)

LN2, LN3 = math.log(2), math.log(3)


def test_token_logps_by_hand_with_shift_and_padding():
    """logits[:, t-1] predict labels[:, t].

    Row 0: position 0 logits [0, 0, ln 2] -> p = [1/4, 1/4, 1/2]; label[1] = 2 -> log 1/2.
           position 1 logits [ln 3, 0, 0] -> p = [3/5, 1/5, 1/5]; label[2] = 0 -> log 3/5.
    Row 1: same logits, label[1] = 1 -> log 1/4, label[2] ignored -> 0. Column 0 is always 0.
    """
    step0 = [0.0, 0.0, LN2]
    step1 = [LN3, 0.0, 0.0]
    garbage = [7.0, -3.0, 1.0]  # logits at the last position predict nothing
    logits = torch.tensor([[step0, step1, garbage], [step0, step1, garbage]])
    labels = torch.tensor([[-100, 2, 0], [-100, 1, -100]])
    expected = torch.tensor([[0.0, math.log(1 / 2), math.log(3 / 5)], [0.0, math.log(1 / 4), 0.0]])
    assert_close(token_logps(logits, labels), expected, atol=1e-6, rtol=0)
    assert label_mask(labels).tolist() == [[False, True, True], [False, True, False]]


def test_token_logps_matches_full_log_softmax_and_has_gradient():
    """The memory-lean gather - logsumexp equals indexing a full log_softmax of the shifted logits."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=gen, requires_grad=True)
    labels = torch.randint(0, 7, (3, 5), generator=gen)
    labels[0, :2] = -100
    labels[2, 3:] = -100
    full = torch.log_softmax(logits[:, :-1], dim=-1)
    expected = full.gather(-1, labels[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)
    expected = torch.where(labels[:, 1:] != -100, expected, torch.zeros_like(expected))
    out = token_logps(logits, labels)
    assert_close(out[:, 1:], expected, atol=1e-6, rtol=0)
    assert (out[:, 0] == 0).all()
    out.sum().backward()
    assert logits.grad is not None and logits.grad[:, -1].abs().sum() == 0  # last logits predict nothing


def test_label_mask_drops_column_zero():
    assert label_mask(torch.tensor([[5, 1, -100]])).tolist() == [[False, True, False]]


def test_sequence_logps_ignores_masked_inf():
    """[-1, -2, -inf] with the -inf masked -> -3, not NaN."""
    out = sequence_logps(torch.tensor([[-1.0, -2.0, -math.inf]]), torch.tensor([[True, True, False]]))
    assert_close(out, torch.tensor([-3.0]), atol=1e-6, rtol=0)


def test_masked_mean_by_hand_and_empty_rows():
    """[[1, 2, (3)], [(4), (5), (6)]]: all kept values -> (1 + 2) / 2; per row -> [1.5, 0 (empty)]."""
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    assert_close(masked_mean(values, mask), torch.tensor(1.5))
    assert_close(masked_mean(values, mask, dim=1), torch.tensor([1.5, 0.0]))
    assert masked_mean(values, torch.zeros_like(mask)) == 0


def test_masked_whiten_by_hand():
    """Kept [1, 3]: mean 2, population variance 1 -> [-1, 1]; masked 100 -> 0.

    Without the mean shift: (x - 2) / 1 + 2 -> [1, 3].
    """
    values = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[True, True, False]])
    assert_close(masked_whiten(values, mask), torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-6, rtol=0)
    assert_close(
        masked_whiten(values, mask, shift_mean=False), torch.tensor([[1.0, 3.0, 0.0]]), atol=1e-6, rtol=0
    )


def test_entropy_by_hand():
    """Uniform over 4 -> ln 4; [0, 0, -inf] -> uniform over 2 -> ln 2 (no NaN from 0 * -inf);
    [0, ln 3, -inf, -inf] -> p = [1/4, 3/4] -> -(1/4 ln 1/4 + 3/4 ln 3/4)."""
    logits = torch.tensor(
        [[[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -math.inf, -math.inf], [0.0, LN3, -math.inf, -math.inf]]]
    )
    expected = torch.tensor([[math.log(4), LN2, -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]])
    assert_close(entropy_from_logits(logits), expected, atol=1e-6, rtol=0)


def test_half_precision_rows_match_the_batched_float32_path():
    """bf16 logits take the row-by-row upcast path; it must agree with the batched float32 path."""
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11).to(torch.bfloat16)
    labels = torch.randint(0, 11, (3, 5))
    labels[1, 3:] = -100
    expected = token_logps(logits.float(), labels)
    torch.testing.assert_close(token_logps(logits, labels), expected, atol=1e-6, rtol=0)
