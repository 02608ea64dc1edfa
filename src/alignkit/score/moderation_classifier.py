"""A trained moderation classifier as a ``Moderator`` (``alignkit train moderation``; Beaver-Dam style).

One forward per batch over prompt + response (rendered with the chat template, read at the response's
closing token as in training): category probabilities ``sigmoid(z_c)``; the verdict flags when the most
likely category passes ``threshold`` (Beaver-Dam-7B uses 0.4), names every category above it, and gives
the severity head's most likely level (0-3; a flagged verdict's is at least 1) as the severity. ``score`` is the largest category probability.

An input check (``responses=None``) judges the prompt followed by an empty answer: a classifier trained on
responses knows harm in answers, so its input verdicts are only as good as that transfer.

A classifier trained on a vision-language model renders through the processor saved with it, so prompts
with image parts are judged with their pictures (BeaverTails-V's image, question, answer); a text-only
classifier refuses them (``ValueError`` naming the item).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from alignkit.data.media import refuse_media_messages
from alignkit.data.processor import is_processor
from alignkit.models.moderation_model import SEVERITY_LEVELS, load_moderation_model
from alignkit.models.score_model import collate_scores, media_inputs, score_example
from alignkit.score.base import as_response
from alignkit.score.moderation import SafetyVerdict, response_text


class ClassifierModerator:
    """A multi-label harm classifier (categories + severity) behind the ``Moderator`` protocol.

    ``tokenizer``: what rows render with, the tokenizer or (for a classifier on a VLM) the processor."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        threshold: float | None = None,
        max_length: int = 512,
        batch_size: int = 32,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.categories: tuple[str, ...] = tuple(model.config.moderation_categories)
        self.threshold = threshold if threshold is not None else float(model.config.moderation_threshold)
        if not 0 < self.threshold < 1:
            raise ValueError(f"moderation threshold={self.threshold}: expected a probability in (0, 1)")
        self.max_length = max_length
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, path: str, **kwargs: Any) -> ClassifierModerator:
        from alignkit.models.loading import load_processor, load_tokenizer

        tokenizer = load_tokenizer(path)
        processor = load_processor(path, tokenizer)
        return cls(load_moderation_model(path), tokenizer if processor is None else processor, **kwargs)

    @torch.no_grad()
    def probabilities(
        self, prompts: Sequence[Sequence[Any]], responses: Sequence[str | Sequence[Any]] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, C)`` category probabilities and ``(N, 4)`` severity probabilities."""
        if responses is not None and len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if not is_processor(self.tokenizer):
            refuse_media_messages(prompts, None, "this text-only moderation classifier")
        texts = [""] * len(prompts) if responses is None else [response_text(r) for r in responses]
        examples = []
        for i, (prompt, text) in enumerate(zip(prompts, texts, strict=True)):
            example = score_example(self.tokenizer, prompt, as_response(text), self.max_length)
            if example is None:
                raise ValueError(
                    f"item {i}: the prompt leaves no room for the response within max_length={self.max_length}"
                )
            examples.append(example)
        device = next(self.model.parameters()).device
        pad = self.model.config.pad_token_id
        outputs = []
        for start in range(0, len(examples), self.batch_size):
            batch = collate_scores(examples[start : start + self.batch_size], pad)
            batch = {**batch, **media_inputs(batch, self.model)}
            logits = self.model(**{k: v.to(device) for k, v in batch.items()}, use_cache=False).logits
            outputs.append(logits.float().cpu())  # (B, C + 4)
        logits = torch.cat(outputs) if outputs else torch.zeros(0, len(self.categories) + SEVERITY_LEVELS)
        c = len(self.categories)
        return logits[:, :c].sigmoid(), logits[:, c:].softmax(dim=-1)

    def moderate(
        self, prompts: Sequence[Sequence[Any]], responses: Sequence[str | Sequence[Any]] | None = None
    ) -> list[SafetyVerdict]:
        categories, severities = self.probabilities(prompts, responses)
        verdicts = []
        levels = severities.argmax(dim=-1).tolist()
        harmful_levels = (severities[:, 1:].argmax(dim=-1) + 1).tolist()
        for probs, level, harmful_level in zip(categories.tolist(), levels, harmful_levels, strict=True):
            top = max(probs, default=0.0)
            named = tuple(name for name, p in zip(self.categories, probs, strict=True) if p > self.threshold)
            flagged = top > self.threshold
            # the severity head's own answer, except that a flagged verdict never reads "severity 0"
            severity = harmful_level if flagged and level == 0 else level
            verdicts.append(
                SafetyVerdict(
                    flagged=flagged,
                    categories=named,
                    severity=severity,
                    score=float(top),
                    raw=" ".join(f"{p:.3f}" for p in probs),
                )
            )
        return verdicts
