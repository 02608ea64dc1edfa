"""Scoring (prompt, response) pairs with a trained reward or cost model, for PPO, best-of-n and eval.

Rows are rendered exactly as in training (``score_example``: the chat template, cut after the
response's closing token) and batched with the model's own ``pad_token_id``, so a score here is the
score the model was trained to give. Scoring is batched and gradient-free.

A score model on a vision-language model (saved with its processor) scores prompts whose messages hold
image parts (``{"type": "image", "path": ...}`` blocks or ``Message`` records): they render through the
processor and their pixels reach the forward. A text-only score model refuses such prompts, naming the
item, rather than score the text alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from alignkit.data.media import refuse_media_messages
from alignkit.data.processor import is_processor
from alignkit.models.score_model import (
    collate_scores,
    load_score_model,
    media_inputs,
    score_example,
    sequence_scores,
)


class ScoreModelScorer:
    """A saved score model (``final/`` of ``alignkit train reward|cost``) that scores conversations.

    ``kind`` is ``"reward"`` or ``"cost"`` and ``convention`` says what the number means (both read from
    the saved config), so callers can check they were given the model they expect.
    """

    def __init__(
        self,
        path: str,
        *,
        device: str | torch.device | None = None,
        dtype: str = "float32",
        max_length: int = 512,
        batch_size: int = 32,
        trust_remote_code: bool = False,
    ) -> None:
        from alignkit.models.loading import load_processor, load_tokenizer

        self.model = load_score_model(path, dtype=dtype, trust_remote_code=trust_remote_code)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        self.tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
        processor = load_processor(path, self.tokenizer, trust_remote_code=trust_remote_code)
        self.renderer: Any = self.tokenizer if processor is None else processor
        """What rows render with: the processor of a VLM score model, else the tokenizer."""
        self.kind: str = self.model.config.score_kind
        self.convention: str = self.model.config.score_convention
        self.max_length = max_length
        self.batch_size = batch_size

    @torch.no_grad()
    def score(self, prompts: Sequence[Sequence[Any]], responses: Sequence[Sequence[Any]]) -> torch.Tensor:
        """(N,) float32 scores on the CPU of each response (its assistant messages) to its prompt.

        Messages are ``Message`` records or ``{"role", "content"}`` dicts; a response is the assistant
        turn(s) that continue the prompt. Image parts need a VLM score model (``ValueError`` otherwise).
        """
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if not is_processor(self.renderer):
            refuse_media_messages(prompts, responses, "this text-only score model")
        examples = []
        for i, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
            example = score_example(self.renderer, prompt, response, self.max_length)
            if example is None:
                raise ValueError(
                    f"item {i}: no token of the response's last turn fits in max_length={self.max_length}; "
                    "nothing to score"
                )
            examples.append(example)
        scores = []
        for start in range(0, len(examples), self.batch_size):
            batch = collate_scores(examples[start : start + self.batch_size], self.model.config.pad_token_id)
            batch = {k: v.to(self.device) for k, v in batch.items()}
            out = sequence_scores(
                self.model, batch["input_ids"], batch["attention_mask"], **media_inputs(batch, self.model)
            )
            scores.append(out.float().cpu())
        return torch.cat(scores) if scores else torch.zeros(0)
