"""The reference policy ``pi_ref`` of every trainer that has one (the DPO family, PPO, GRPO): one class.

Two ways to hold it, one decision (:meth:`ReferenceModel.for_policy`):

- **adapter disabled**: under LoRA the frozen base model *is* the reference, so the policy runs once more
  with its adapter switched off; no second copy of the weights. The policy goes to eval mode for that
  forward (no dropout, as a frozen reference) and back to the mode it was in.
- **frozen copy**: a separate copy of the starting model (full fine-tuning, or an explicit reference path),
  in eval mode, without gradients, and never handed to ``accelerator.prepare``: it is not trained, so an
  optimizer, DDP hooks or a ZeRO partition would only cost memory (and DDP would wait for gradients it
  never gets). It computes under the accelerator's autocast, like the prepared policy, so KL is 0 at
  equal weights.

And a third way to need no forward at all: **cached** log-probs, computed once over the data before
training (:func:`cache_reference_logps`, DPO's ``reference: cached``) and carried by the batch.

Log-prob vocabulary, the same in every batch: ``*_logps`` are per-sequence sums over a row's labelled
tokens, ``(B,)`` (``(2B,)`` for DPO's chosen-then-rejected rows); ``*_token_logps`` are per-token,
``(B, T)``, 0 off the labels (``old_token_logps``, ``ref_token_logps`` of PPO and GRPO).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, TypeVar

import torch

from alignkit.data.collate import collate_lm
from alignkit.data.pair_examples import PairExample, UnpairedExample, lm_inputs
from alignkit.models.forward import labelled_token_logps_and_entropy, response_logps
from alignkit.models.lora import disabled_adapter, is_lora

Batch = dict[str, torch.Tensor]
E = TypeVar("E", PairExample, UnpairedExample)


class ReferenceModel:
    """``pi_ref``: log-probs per sequence (:meth:`logps`) or per token (:meth:`token_logps`), no gradient."""

    def __init__(
        self,
        model: torch.nn.Module,
        kind: Literal["frozen", "adapter_disabled"],
        *,
        autocast: Callable[[], AbstractContextManager[Any]] | None = None,
        temperature: float = 1.0,
        disable_adapter: Callable[[torch.nn.Module], AbstractContextManager[Any]] = disabled_adapter,
    ) -> None:
        """Prefer the constructors :meth:`frozen`, :meth:`adapter_disabled` and :meth:`for_policy`.

        ``temperature``: per-token log-probs under ``softmax(logits / temperature)``, the distribution RL
        samples from (sequence log-probs, DPO's, are always at temperature 1).
        """
        self.model = model
        self.kind = kind
        self.autocast = autocast or contextlib.nullcontext
        self.temperature = temperature
        self.disable_adapter = disable_adapter
        if kind == "frozen":
            model.eval()
            model.requires_grad_(False)

    @classmethod
    def frozen(cls, model: torch.nn.Module, **kwargs: Any) -> ReferenceModel:
        """A separate, frozen copy of the starting model."""
        return cls(model, "frozen", **kwargs)

    @classmethod
    def adapter_disabled(cls, policy: torch.nn.Module, **kwargs: Any) -> ReferenceModel:
        """The LoRA policy itself with its adapter switched off."""
        return cls(policy, "adapter_disabled", **kwargs)

    @classmethod
    def for_policy(
        cls,
        policy: torch.nn.Module,
        model_cfg: Any,
        device: Any,
        *,
        path: str | None = None,
        quantize: str = "none",
        **kwargs: Any,
    ) -> ReferenceModel:
        """The one decision: a LoRA policy without an explicit reference ``path`` is its own reference
        (adapter disabled); otherwise a frozen copy of ``path`` (default ``model_cfg.path``) is loaded."""
        if path is None and (is_lora(policy) or getattr(model_cfg, "lora", None) is not None):
            return cls.adapter_disabled(policy, **kwargs)
        from alignkit.models.loading import load_causal_lm

        model = load_causal_lm(
            path or model_cfg.path,
            dtype=model_cfg.dtype,
            trust_remote_code=model_cfg.trust_remote_code,
            **({"quantize": quantize} if quantize != "none" else {}),
        )
        return cls.frozen(model if quantize != "none" else model.to(device), **kwargs)

    @contextlib.contextmanager
    def _computing(self) -> Any:
        """The model as ``pi_ref`` for one forward."""
        if self.kind == "frozen":
            with self.autocast():
                yield self.model
            return
        was_training = self.model.training
        self.model.eval()
        try:
            with self.disable_adapter(self.model):
                yield self.model
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def logps(self, batch: Batch) -> torch.Tensor:
        """``(B,)`` summed log-probs of each row's labelled tokens."""
        with self._computing() as model:
            return response_logps(model, batch).logps

    @torch.no_grad()
    def token_logps(self, batch: Batch) -> torch.Tensor:
        """``(B, T)`` log-probs of the labelled tokens at the sampling temperature, 0 elsewhere, for padded or
        shared-prompt rows (a vision-language model's rows with their pictures: the batch's media tensors
        go to the forward)."""
        with self._computing() as model:
            return labelled_token_logps_and_entropy(model, batch, self.temperature, entropy=False).logps


def reference_logps(batch: Batch, reference: ReferenceModel | None, prefix: str = "") -> torch.Tensor:
    """Reference log-probs of ``batch``'s rows (or its ``prefix`` sequences): cached when the batch
    carries them, else computed live. Raises when neither is available."""
    cached = batch.get(f"{prefix}ref_logps")
    if cached is not None:
        return cached
    if reference is None:
        raise ValueError("this loss needs reference log-probs: the batch has none cached and no reference")
    return reference.logps(lm_inputs(batch, prefix))


def cache_reference_logps(
    reference: ReferenceModel,
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
        with autocast() if autocast is not None else contextlib.nullcontext():
            values += reference.logps(batch).float().cpu().tolist()
    out, pos = [], 0
    for example in examples:
        n = len(example.sequences())
        out.append(example.with_ref_logps(values[pos : pos + n]))
        pos += n
    return out
