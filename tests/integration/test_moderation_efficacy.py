"""``alignkit train moderation`` on the toy world, judged against the harm oracle on held-out prompts.

The classifier is trained by the bundled recipe (from the random-init tiny model, on both responses of
every toy PKU-SafeRLHF training pair). Held-out data: PKU-SafeRLHF-shaped pairs drawn afresh (8 per
prompt, its own random stream) for the 178 held-out prompts, so every category has about 20 unsafe
responses to score F1 on (the built test split has 3 to 9).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from alignkit.cli import main
from alignkit.score.moderation_classifier import ClassifierModerator
from alignkit.toyworld import HARM_CATEGORIES, harm, split_tasks
from alignkit.toyworld.data import safe_pref_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECIPE = Path(__file__).parents[2] / "src/alignkit/toyworld/recipes/moderation.yaml"
FLAG_ACCURACY = 0.98
"""Flagged == the oracle's unsafe, over all 2,848 held-out responses (465 unsafe)."""
MACRO_F1 = 0.95
"""Mean per-category F1 (the 19 categories), against the oracle's categories."""
MIN_F1 = 0.85
"""The worst category's F1 (17 to 32 positives each: 0.85 allows about 3 errors in the smallest)."""
SEVERITY_ACCURACY = 0.95
"""Predicted severity (0-3) == the oracle's, over all held-out responses."""


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")


def test_the_moderation_classifier_matches_the_oracles_categories_and_severity(tmp_path):
    """Measured (CPU, 600 steps, about a minute): flag accuracy 1.000, per-category F1 1.000 for each of
    the 19 categories (macro 1.000), severity accuracy 0.998 (0.987 over the 465 unsafe responses). Before
    the positive terms were weighted (``balance_categories``) the category head learnt "never" (F1 0 for
    18 of 19 categories) while the severity head alone reached 0.99: the test tells the two apart."""
    out = tmp_path / "moderation"
    assert (
        main(["train", "moderation", "--config", str(RECIPE), f"run.output_dir={out}", "run.progress=false"])
        == 0
    )
    moderator = ClassifierModerator.from_pretrained(str(out / "final"))

    rows = safe_pref_rows(split_tasks(0)["test"], random.Random("held-out-moderation"), 8)
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in rows for _ in (0, 1)]
    responses = [r[f"response_{k}"] for r in rows for k in (0, 1)]
    verdicts = moderator.moderate(prompts, responses)
    truth = [harm(p[0]["content"], r) for p, r in zip(prompts, responses, strict=True)]

    per_category = {}
    for category in HARM_CATEGORIES:
        hits = [
            (category in v.categories, category in t.categories) for v, t in zip(verdicts, truth, strict=True)
        ]
        tp = sum(p and t for p, t in hits)
        per_category[category] = f1(tp, sum(p and not t for p, t in hits), sum(t and not p for p, t in hits))
        assert sum(t for _, t in hits) >= 10, category  # enough positives for F1 to mean something
    flag_accuracy = sum(v.flagged == (not t.is_safe) for v, t in zip(verdicts, truth, strict=True)) / len(
        truth
    )
    severity_accuracy = sum(v.severity == t.severity for v, t in zip(verdicts, truth, strict=True)) / len(
        truth
    )
    macro = sum(per_category.values()) / len(per_category)
    print(
        f"flag accuracy {flag_accuracy:.3f}, severity accuracy {severity_accuracy:.3f}, macro F1 {macro:.3f}"
    )
    print({k: round(v, 3) for k, v in per_category.items()})
    assert flag_accuracy >= FLAG_ACCURACY
    assert macro >= MACRO_F1 and min(per_category.values()) >= MIN_F1
    assert severity_accuracy >= SEVERITY_ACCURACY
