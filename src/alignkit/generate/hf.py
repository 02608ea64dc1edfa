"""A local Hugging Face causal LM as a Generator: batched sampling through ``model.generate``.

Prompts are rendered with the tokenizer's chat template (``render_prompt``, the same layout training
uses) and left-padded, so every row's next token sits at the end. A response is the generated tokens up
to and including the first stop token (the one that closes the assistant turn); everything after is
padding. Log-probabilities, when asked for, come from one extra forward pass over prompt + response
rather than from ``generate``'s per-step scores: that keeps memory at one ``(B, T)`` tensor instead of
``(B, T, V)`` logits, and gives exactly the numbers a training forward computes.

The model is used as it is (the trainer's live policy, not a copy), so PPO and GRPO sample from the
current weights with no synchronisation step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from alignkit.data.collate import pad_right
from alignkit.data.render import render_prompt
from alignkit.generate.base import Completion, SamplingConfig
from alignkit.models.forward import labelled_token_logps


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Tokens that end a response: the tokenizer's EOS plus any the generation config lists."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if not ids:
        raise ValueError("the tokenizer has no eos_token and the model's generation_config names none")
    return sorted(ids)


def pad_left(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """``(B, T)`` long tensor, each row right-aligned (padding in front)."""
    width = max((len(r) for r in rows), default=0)
    return torch.tensor([[value] * (width - len(r)) + list(r) for r in rows], dtype=torch.long)


def cut_at_stop(tokens: Sequence[int], stops: set[int]) -> tuple[list[int], bool]:
    """The tokens up to and including the first stop token, and whether one was found."""
    for i, token in enumerate(tokens):
        if token in stops:
            return list(tokens[: i + 1]), True
    return list(tokens), False


class HFGenerator:
    """Sample from a ``transformers`` causal LM (its current weights) in batches of ``batch_size`` rows."""

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 64) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.stops = stop_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stops[0]

    @classmethod
    def from_pretrained(
        cls, path: str, *, dtype: str = "float32", device: str | None = None, batch_size: int = 64
    ) -> HFGenerator:
        from alignkit.models.loading import load_causal_lm, load_tokenizer

        model = load_causal_lm(path, dtype=dtype)
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return cls(model, load_tokenizer(path), batch_size=batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[Any]],
        sampling: SamplingConfig,
        *,
        logprobs: bool = False,
        seed: int | None = None,
    ) -> list[Completion]:
        """``len(prompts) * sampling.n`` completions, prompt-major; ``seed`` leaves the global RNG untouched."""
        prompt_ids = [render_prompt(self.tokenizer, p) for p in prompts]
        rows = [(i, ids) for i, ids in enumerate(prompt_ids) for _ in range(sampling.n)]
        was_training = self.model.training
        self.model.eval()
        devices = [self.device] if self.device.type == "cuda" else []
        completions: list[Completion] = []
        try:
            with torch.random.fork_rng(devices=devices, enabled=seed is not None):
                if seed is not None:
                    torch.manual_seed(seed)
                for start in range(0, len(rows), self.batch_size):
                    completions += self._generate_batch(
                        rows[start : start + self.batch_size], sampling, logprobs
                    )
        finally:
            self.model.train(was_training)
        return completions

    def _generate_batch(
        self, rows: Sequence[tuple[int, list[int]]], sampling: SamplingConfig, logprobs: bool
    ) -> list[Completion]:
        input_ids = pad_left([ids for _, ids in rows], self.pad_id).to(self.device)
        attention_mask = pad_left([[1] * len(ids) for _, ids in rows], 0).to(self.device)
        sample = not sampling.greedy
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=sampling.max_new_tokens,
            do_sample=sample,
            temperature=sampling.temperature if sample else None,
            top_p=sampling.top_p if sample else None,
            top_k=sampling.top_k if sample else None,
            pad_token_id=self.pad_id,
            eos_token_id=self.stops,
        )
        new_tokens = output[:, input_ids.shape[1] :].tolist()
        stops = set(self.stops)
        responses = [cut_at_stop(tokens, stops) for tokens in new_tokens]
        token_logps = self._logprobs(rows, [r for r, _ in responses]) if logprobs else [None] * len(rows)
        return [
            Completion(
                prompt_index=index,
                text=self.tokenizer.decode(
                    tokens[:-1] if stopped else tokens, skip_special_tokens=True
                ).strip(),
                token_ids=tuple(tokens),
                logprobs=lps,
                finish_reason="stop" if stopped else "length",
            )
            for (index, _), (tokens, stopped), lps in zip(rows, responses, token_logps, strict=True)
        ]

    def _logprobs(
        self, rows: Sequence[tuple[int, list[int]]], responses: Sequence[list[int]]
    ) -> list[tuple[float, ...]]:
        sequences = [ids + response for (_, ids), response in zip(rows, responses, strict=True)]
        labels = [[-100] * len(ids) + response for (_, ids), response in zip(rows, responses, strict=True)]
        token_logps = labelled_token_logps(
            self.model,
            pad_right(sequences, self.pad_id).to(self.device),
            pad_right([[1] * len(s) for s in sequences], 0).to(self.device),
            pad_right(labels, -100).to(self.device),
        ).cpu()
        return [
            tuple(token_logps[i, len(ids) : len(ids) + len(response)].tolist())
            for i, ((_, ids), response) in enumerate(zip(rows, responses, strict=True))
        ]
