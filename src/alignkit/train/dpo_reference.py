"""The reference policy ``pi_ref`` of the DPO family, behind one small seam: ``Reference.logps(batch)``.

Ways to get ``log pi_ref(y|x)``, one interface for the loss:

- :class:`FrozenReference`: a separate copy of the starting model (full fine-tuning). Eval mode, no
  gradients, never given to ``accelerator.prepare``: it is not trained, so an optimizer, DDP hooks or
  a ZeRO partition would only cost memory (and DDP would wait for gradients it never gets).
- :class:`AdapterDisabledReference`: with LoRA the frozen base model *is* the reference, so the policy
  runs once more with its adapter switched off; no second copy of the weights is needed.
- cached: :func:`cache_reference_logps` runs either of the above once over the data before training
  and stores the numbers in the examples (``reference: cached``); a batch that carries ``ref_logps``
  needs no reference forward at all (:func:`reference_logps`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

import torch

from alignkit.data.collate import collate_lm
from alignkit.data.pair_examples import PairExample, UnpairedExample, lm_inputs
from alignkit.models.forward import response_logps

Batch = dict[str, torch.Tensor]
E = TypeVar("E", PairExample, UnpairedExample)


class Reference(Protocol):
    def logps(self, batch: Batch) -> torch.Tensor:
        """``(B,)`` reference log-probs of each row's labelled tokens (no gradient)."""
        ...


class FrozenReference:
    """A separate frozen model (see the module docstring for why it is never prepared)."""

    def __init__(self, model: torch.nn.Module) -> None:
        model.eval()
        model.requires_grad_(False)
        self.model = model

    @torch.no_grad()
    def logps(self, batch: Batch) -> torch.Tensor:
        return response_logps(self.model, batch).logps


class AdapterDisabledReference:
    """The policy itself with its adapter disabled: the frozen base model is ``pi_ref`` under LoRA.

    ``disable_adapter(model)`` is a context manager in which ``model`` computes as its base model
    (``alignkit.models.lora.disabled_adapter``). The model is put in eval mode for the reference forward
    (no dropout, as a frozen reference) and returned to the mode it was in.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        disable_adapter: Callable[[torch.nn.Module], AbstractContextManager[Any]],
    ) -> None:
        self.model = model
        self.disable_adapter = disable_adapter

    @torch.no_grad()
    def logps(self, batch: Batch) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            with self.disable_adapter(self.model):
                return response_logps(self.model, batch).logps
        finally:
            self.model.train(was_training)


def reference_logps(batch: Batch, reference: Reference | None, prefix: str = "") -> torch.Tensor:
    """Reference log-probs of ``batch``'s rows (or its ``prefix`` sequences): cached when the batch
    carries them, else computed live. Raises when neither is available."""
    cached = batch.get(f"{prefix}ref_logps")
    if cached is not None:
        return cached
    if reference is None:
        raise ValueError("this loss needs reference log-probs: the batch has none cached and no reference")
    return reference.logps(lm_inputs(batch, prefix))


def cache_reference_logps(
    reference: Reference,
    examples: Sequence[E],
    *,
    pad_token_id: int,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[Any]] | None = None,
) -> list[E]:
    """``examples`` with their reference log-probs filled in, computed in batches of ``batch_size``.

    Every sequence an example needs (``example.sequences()``) is scored once. Right padding keeps a
    row's log-probs independent of its batch-mates (``data/collate.py``), which is why the cached
    numbers match what the live reference computes inside any training batch.
    """
    sequences = [seq for example in examples for seq in example.sequences()]
    values: list[float] = []
    for start in range(0, len(sequences), batch_size):
        batch = collate_lm(sequences[start : start + batch_size], pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast() if autocast is not None else _null():
            values += reference.logps(batch).float().cpu().tolist()
    out, pos = [], 0
    for example in examples:
        n = len(example.sequences())
        out.append(example.with_ref_logps(values[pos : pos + n]))
        pos += n
    return out


def _null() -> AbstractContextManager[None]:
    from contextlib import nullcontext

    return nullcontext()
