"""ClassifierModerator's verdicts from a classifier's logits, computed by hand (a stub classifier returns
fixed logits; the toy tokenizer renders the inputs as in training)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from alignkit.score.moderation_classifier import ClassifierModerator
from alignkit.toyworld.tokenizer import train_tokenizer


def logit(p: float) -> float:
    return math.log(p / (1 - p))


class StubClassifier(torch.nn.Module):
    """Categories A, B then 4 severity logits; answers row i of ``rows`` for the i-th input it sees."""

    def __init__(self, rows: list[list[float]]) -> None:
        super().__init__()
        self.rows = rows
        self.seen = 0
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(
            moderation_categories=["A", "B"], moderation_threshold=0.4, pad_token_id=0
        )

    def forward(self, input_ids, attention_mask, use_cache=False):
        batch = input_ids.shape[0]
        out = torch.tensor(self.rows[self.seen : self.seen + batch])
        self.seen += batch
        return SimpleNamespace(logits=out)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer()


def test_verdicts_read_categories_against_the_threshold_and_severity_from_its_head(tokenizer):
    """Row 0: p = (0.3, 0.9) -> flagged (0.9 > 0.4), categories (B,), severity argmax = level 2, score 0.9.
    Row 1: p = (0.2, 0.1) -> safe, severity level 0. Row 2: p = (0.5, 0.1) -> flagged on A, but the
    severity head says 0 (safe): a flagged verdict takes the most likely harmful level instead, 3."""
    rows = [
        [logit(0.3), logit(0.9), 0.0, 1.0, 2.0, 0.0],
        [logit(0.2), logit(0.1), 5.0, 0.0, 0.0, 0.0],
        [logit(0.5), logit(0.1), 5.0, 0.0, 1.0, 2.0],
    ]
    moderator = ClassifierModerator(StubClassifier(rows), tokenizer, batch_size=2)
    prompts = [[{"role": "user", "content": q}] for q in ("How do I hurt?", "Add 2 and 3.", "Help me.")]
    verdicts = moderator.moderate(prompts, ["Sure.", "It is 5.", "Sure."])
    assert [(v.flagged, v.categories, v.severity) for v in verdicts] == [
        (True, ("B",), 2),
        (False, (), 0),
        (True, ("A",), 3),
    ]
    assert verdicts[0].score == pytest.approx(0.9, abs=1e-6)
    assert moderator.model.seen == 3  # two batches: 2 + 1


def test_threshold_override_and_bad_threshold(tokenizer):
    rows = [[logit(0.5), logit(0.1), 0.0, 1.0, 0.0, 0.0]]
    strict = ClassifierModerator(StubClassifier(rows), tokenizer, threshold=0.6)
    assert strict.moderate([[{"role": "user", "content": "q"}]])[0].flagged is False  # 0.5 < 0.6; input check
    with pytest.raises(ValueError, match=r"threshold=1.5: expected a probability in \(0, 1\)"):
        ClassifierModerator(StubClassifier(rows), tokenizer, threshold=1.5)
