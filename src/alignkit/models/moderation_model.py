"""Moderation classifiers: a causal-LM backbone with one head for harm categories and severity.

Saved as a plain ``AutoModelForSequenceClassification`` (like Beaver-Dam-7B, a sequence classifier with
one sigmoid output per BeaverTails category) with ``C + 4`` outputs read at the response's closing token
(the pooling of ``alignkit.models.score_model``): ``C`` category logits (sigmoid each: a response may
serve several harms) then 4 severity logits (softmax: safe, minor, moderate, severe, PKU-SafeRLHF's
scale). The category names and the flag threshold are written into ``config.json``, so a checkpoint
carries what its outputs mean and the ``ClassifierModerator`` needs nothing else. On a vision-language
model the class is the one ``models/vlm_score.py`` registers for its family (the pictures' tensors go to
the same forward), so a classifier judges (image, question, answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SEVERITY_LEVELS = 4
"""0 safe, 1 minor, 2 moderate, 3 severe."""


def new_moderation_model(
    path: str, tokenizer: Any, categories: Sequence[str], *, threshold: float = 0.4, dtype: str = "float32"
) -> Any:
    """A classifier on the backbone of checkpoint ``path``, its ``C + 4`` outputs freshly initialised.
    ``tokenizer``: the run's tokenizer, or a VLM's processor."""
    from transformers import AutoModelForSequenceClassification

    from alignkit.models.loading import resolve_path
    from alignkit.models.precision import DTYPES
    from alignkit.models.score_model import score_pad_token_id
    from alignkit.models.vlm_score import register_vlm_classifier, set_pad_token_id

    register_vlm_classifier(path)
    labels = [*categories, *(f"severity_{level}" for level in range(SEVERITY_LEVELS))]
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_path(path), num_labels=len(labels), dtype=DTYPES[dtype]
    )
    set_pad_token_id(model.config, score_pad_token_id(tokenizer))
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    model.config.moderation_categories = list(categories)
    model.config.moderation_threshold = threshold
    model.config.problem_type = "multi_label_classification"
    return model


def load_moderation_model(path: str, *, dtype: str = "float32") -> Any:
    """A saved moderation classifier (``final/`` of ``alignkit train moderation``), in eval mode."""
    from transformers import AutoModelForSequenceClassification

    from alignkit.models.loading import resolve_path
    from alignkit.models.precision import DTYPES
    from alignkit.models.vlm_score import register_vlm_classifier

    register_vlm_classifier(path)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_path(path), dtype=DTYPES[dtype])
    if not getattr(model.config, "moderation_categories", None):
        raise ValueError(
            f"{path!r} is not an alignkit moderation classifier (its config has no moderation_categories); "
            "train one with `alignkit train moderation`"
        )
    return model.eval()
