"""The frozen reference policy of online RL, per token: ``log pi_ref(a_t | s_t)`` for the KL penalty.

Under LoRA the frozen base *is* the reference, so the policy runs once more with its adapter disabled
(no second copy of the weights). Otherwise a separate copy of the starting model is loaded, kept in eval
mode without gradients and never handed to ``accelerator.prepare`` (it is not trained, so an optimizer,
DDP hooks or a ZeRO partition would only cost memory). The sequence-level counterpart for the DPO family
is ``train/dpo_reference.py``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from alignkit.models.forward import labelled_token_logps
from alignkit.models.lora import disabled_adapter, is_lora
from alignkit.sections import ModelConfig


class ReferencePolicy:
    def __init__(
        self,
        policy: torch.nn.Module,
        model_cfg: ModelConfig,
        device: Any,
        autocast: Any = None,
        temperature: float = 1.0,
    ) -> None:
        """``autocast``: the accelerator's ``autocast`` context factory, so a separately loaded reference
        computes in the same mixed precision as the (prepared) policy and KL is 0 at equal weights."""
        self.policy = policy
        self.autocast = autocast or contextlib.nullcontext
        self.temperature = temperature  # pi_ref at the sampling temperature, like the policy
        self.frozen: torch.nn.Module | None = None
        if not is_lora(policy):
            from alignkit.models.loading import load_causal_lm

            frozen = load_causal_lm(
                model_cfg.path, dtype=model_cfg.dtype, trust_remote_code=model_cfg.trust_remote_code
            )
            frozen.requires_grad_(False)
            self.frozen = frozen.to(device).eval()

    @torch.no_grad()
    def token_logps(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T) reference log-probs of the labelled tokens (0 elsewhere)."""
        args = (batch["input_ids"], batch["attention_mask"], batch["labels"], self.temperature)
        if self.frozen is not None:
            with self.autocast():
                return labelled_token_logps(self.frozen, *args)
        was_training = self.policy.training
        self.policy.eval()
        try:
            with disabled_adapter(self.policy):
                return labelled_token_logps(self.policy, *args)
        finally:
            self.policy.train(was_training)
