"""Token log-probabilities and masked reductions shared by every loss.

Conventions (see docs/architecture.md): ``*_token_logps`` are per token ``(B, T)``, ``*_logps`` are
summed over a sequence ``(B,)``, and ``*_mask`` is ``True`` where a position is kept.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "entropy_from_logits",
    "label_mask",
    "masked_mean",
    "masked_whiten",
    "sequence_logps",
    "token_logps",
]


def token_logps(logits: Tensor, labels: Tensor, ignore_index: int = -100) -> Tensor:
    """Log-probability of each label token under ``logits``, aligned with ``labels``.

    The shift is done here, once: ``labels`` are aligned with the model's ``input_ids`` (the Hugging
    Face convention, prompt and padding set to ``ignore_index``), and the logits at position ``t - 1``
    predict the token at position ``t``. So ``out[:, t] = log softmax(logits[:, t - 1])[labels[:, t]]``
    for ``t >= 1``. Column 0 has no prediction and is 0; positions whose label is ``ignore_index`` are
    0 too. Use :func:`label_mask` for the matching mask.

    Memory: ``log softmax(z)[y] = z[y] - logsumexp(z)``, so no ``(B, T, V)`` log-softmax is kept. Float32
    logits go through one batched ``logsumexp``; half-precision logits are upcast one row at a time, so
    the peak extra memory is one row's ``(T, V)`` float32 copy rather than the whole batch's.

    Args:
        logits: ``(B, T, V)`` next-token logits.
        labels: ``(B, T)`` target ids aligned with the inputs; ``ignore_index`` where there is no loss.
        ignore_index: label value meaning "no target here".

    Returns:
        ``(B, T)`` float32 per-token log-probabilities, 0 where there is no target.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"expected logits (B, T, V) and labels (B, T); got {logits.shape}, {labels.shape}")
    targets = labels[:, 1:]  # (B, T-1): the token each logits[:, :-1] row predicts
    keep = targets != ignore_index
    safe_targets = torch.where(keep, targets, torch.zeros_like(targets))
    if logits.dtype == torch.float32:
        scored = logits[:, :-1]  # (B, T-1, V): a view, no copy
        picked = scored.gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1)  # (B, T-1)
        shifted = picked - torch.logsumexp(scored, dim=-1)
    else:
        rows = []
        for row_logits, row_targets in zip(logits[:, :-1], safe_targets, strict=True):
            row_logits = row_logits.float()  # (T-1, V)
            picked = row_logits.gather(-1, row_targets.unsqueeze(-1)).squeeze(-1)  # (T-1,)
            rows.append(picked - torch.logsumexp(row_logits, dim=-1))
        shifted = (
            torch.stack(rows)
            if rows
            else logits.new_zeros((0, max(logits.shape[1] - 1, 0)), dtype=torch.float32)
        )
    shifted = torch.where(keep, shifted, torch.zeros_like(shifted))
    return torch.cat([shifted.new_zeros((logits.shape[0], 1)), shifted], dim=1)  # (B, T)


def label_mask(labels: Tensor, ignore_index: int = -100) -> Tensor:
    """``(B, T)`` bool mask of the positions :func:`token_logps` scored (label set, and ``t >= 1``)."""
    mask = labels != ignore_index
    mask[:, 0] = False
    return mask


def sequence_logps(token_logps: Tensor, mask: Tensor) -> Tensor:
    """Sum of ``(B, T)`` per-token log-probs over kept positions -> ``(B,)``.

    Uses ``where`` rather than a product so a ``-inf`` or NaN at a masked position cannot leak in.
    """
    return torch.where(mask.bool(), token_logps, torch.zeros_like(token_logps)).sum(dim=-1)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` over kept positions (all of them, or along ``dim``).

    An empty selection gives 0, not NaN (the count is clamped to 1), so fully masked rows are safe.
    """
    mask = mask.bool()
    total = torch.where(mask, values, torch.zeros_like(values))
    if dim is None:
        return total.sum() / mask.sum().clamp(min=1)
    return total.sum(dim=dim) / mask.sum(dim=dim).clamp(min=1)


def masked_whiten(values: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise ``values`` to zero mean and unit variance over the kept positions of the whole batch.

    ``(x - mean) / sqrt(var + eps)`` with the population variance (divide by the count, not count - 1),
    mean and variance taken over kept positions only. With ``shift_mean=False`` the mean is added back
    (only the scale changes). Masked positions are returned as 0.

    Shapes: ``values`` and ``mask`` ``(B, T)`` (any equal shapes work) -> same shape.
    """
    mask = mask.bool()
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask, whitened, torch.zeros_like(whitened))


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the softmax distribution at each position: ``(B, T, V) -> (B, T)``.

    ``H = -sum_v p_v log p_v = logsumexp(z) - sum_v p_v z_v``, in float32. ``-inf`` logits (masked
    vocabulary) are clamped to the float32 minimum so ``0 * -inf`` cannot give NaN.
    """
    logits = logits.float().clamp(min=torch.finfo(torch.float32).min)
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)
