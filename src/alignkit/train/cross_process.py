"""Statistics over every process's samples: sums, masked means, whitening and gathers.

An online step's advantages are whitened and its metrics averaged over *all* processes' samples, so a run
on two processes computes what one process would on the same rollout (tested with 2 gloo processes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch


def reduce_sum(accelerator: Any, values: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Element-wise sum over processes (float64, on the CPU)."""
    tensor = torch.as_tensor(values, dtype=torch.float64).to(accelerator.device)
    if accelerator.num_processes > 1:
        tensor = accelerator.reduce(tensor, reduction="sum")
    return tensor.cpu()


def global_masked_mean(accelerator: Any, values: torch.Tensor, mask: torch.Tensor) -> float:
    mask = mask.bool()
    total, count = reduce_sum(accelerator, [float(values[mask].sum()), float(mask.sum())]).tolist()
    return total / max(count, 1.0)


def global_whiten(
    accelerator: Any, values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """``masked_whiten`` with the mean and (population) variance of the valid tokens of *all* processes."""
    mask = mask.bool()
    mean = global_masked_mean(accelerator, values, mask)
    var = global_masked_mean(accelerator, (values - mean).square(), mask)
    whitened = (values - mean) / math.sqrt(var + eps)
    return torch.where(mask, whitened, torch.zeros_like(whitened))


def gather_floats(accelerator: Any, values: torch.Tensor) -> list[float]:
    """Every process's values, in rank order (equal counts per process)."""
    values = values.float().to(accelerator.device)
    if accelerator.num_processes > 1:
        values = accelerator.gather(values)
    return values.cpu().tolist()
