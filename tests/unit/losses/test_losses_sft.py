"""SFT token-level NLL and its accumulation invariance."""

import torch
from torch.testing import assert_close

from alignkit.losses import sft_loss


def test_sft_by_hand():
    """Rows [-1, -2, -3] (all kept) and [-4, (0), (0)]: NLL per row [6, 4]; 4 tokens -> 10 / 4 = 2.5.

    With the accumulated batch's count N = 8 passed in: 10 / 8.
    """
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -9.0, -9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    out = sft_loss(logps, mask)
    assert_close(out.nll, torch.tensor([6.0, 4.0]))
    assert_close(out.loss, torch.tensor(2.5))
    assert_close(sft_loss(logps, mask, num_tokens=8).loss, torch.tensor(10 / 8))
    assert set(out.metrics()) == {"loss/sft", "sft/num_tokens"}


def test_accumulation_8x1_equals_4x2_equals_2x4():
    """Summing micro-batch losses normalised by the whole batch's token count gives the full-batch loss."""
    gen = torch.Generator().manual_seed(1)
    logps = -torch.rand(8, 6, generator=gen)
    lengths = torch.tensor([6, 1, 3, 5, 2, 6, 4, 1])
    mask = torch.arange(6).unsqueeze(0) < lengths.unsqueeze(1)
    full = sft_loss(logps, mask).loss
    total = int(mask.sum())
    for micro in (1, 2, 4):
        accumulated = sum(
            sft_loss(logps[i : i + micro], mask[i : i + micro], num_tokens=total).loss
            for i in range(0, 8, micro)
        )
        assert_close(accumulated, full, atol=1e-6, rtol=0)


def test_fully_masked_batch_gives_zero_not_nan():
    out = sft_loss(torch.full((2, 3), -1.0), torch.zeros(2, 3, dtype=torch.bool))
    assert out.loss == 0 and not torch.isnan(out.loss)
