"""Continuing an assistant turn that is already partly written: what Stream Aligner asks of its upstream.

Stream Aligner (arXiv 2501.05336) has the upstream continue from the accepted, corrected prefix, so the
upstream must accept a pre-filled assistant turn. A plain ``Generator`` cannot (its prompt ends where the
assistant starts), hence the small ``PrefillGenerator`` protocol. ``HFPrefillGenerator`` is a local model's
``HFGenerator`` whose prompt tokens are the rendered conversation followed by the prefix's tokens, sampled
by the same batched loop (nothing of its sampling is re-implemented).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from alignkit.data.render import render_prompt
from alignkit.generate.base import Completion, SamplingConfig
from alignkit.generate.hf import HFGenerator


@runtime_checkable
class PrefillGenerator(Protocol):
    def continue_from(
        self,
        prompts: Sequence[Sequence[Any]],
        prefixes: Sequence[str],
        sampling: SamplingConfig,
        *,
        seed: int | None = None,
    ) -> list[Completion]:
        """Completions of each prompt's assistant turn after its already-written ``prefix`` (the new text only)."""
        ...


class HFPrefillGenerator(HFGenerator):
    """An ``HFGenerator`` that can also continue a pre-filled assistant turn."""

    @torch.no_grad()
    def continue_from(
        self,
        prompts: Sequence[Sequence[Any]],
        prefixes: Sequence[str],
        sampling: SamplingConfig,
        *,
        seed: int | None = None,
    ) -> list[Completion]:
        if len(prompts) != len(prefixes):
            raise ValueError(f"{len(prompts)} prompts but {len(prefixes)} prefixes")
        if sampling.n != 1:
            raise ValueError(f"continue_from samples once per prompt: sampling.n={sampling.n}, expected 1")
        rows = [
            (i, render_prompt(self.tokenizer, p) + self.tokenizer.encode(prefix, add_special_tokens=False))
            for i, (p, prefix) in enumerate(zip(prompts, prefixes, strict=True))
        ]
        was_training = self.model.training
        self.model.eval()
        devices = [self.device] if self.device.type == "cuda" else []
        completions: list[Completion] = []
        try:
            with torch.random.fork_rng(devices=devices, enabled=seed is not None):
                if seed is not None:
                    torch.manual_seed(seed)
                uniforms = (
                    None
                    if sampling.greedy
                    else torch.rand(
                        len(rows), sampling.max_new_tokens, dtype=torch.float64, device=self.device
                    )
                )
                for start in range(0, len(rows), self.batch_size):
                    stop = start + self.batch_size
                    chunk = None if uniforms is None else uniforms[start:stop]
                    completions += self._generate_batch(rows[start:stop], sampling, False, chunk)
        finally:
            self.model.train(was_training)
        return completions
