"""The ``reward:`` / ``cost:`` / ``monitor:`` config section: where a Scorer comes from.

It lives beside the scorers because everything that scores answers reads it: the online trainers (reward,
cost, monitor) and evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignkit.config import ConfigError, check
from alignkit.score.base import AnswerOnly, Scorer, build_scorer, import_function, looks_like_function


@dataclass
class ScorerConfig:
    path: str = ""
    """A reward/cost model folder (`final/` of `alignkit train reward|cost`) or a Python function
    'package.module:function' called as fn(prompt_text, response_text) -> float (a function that declares
    `reasoning` / `answer` parameters also gets the response split at its </think>)."""
    batched: bool = False
    """For a function: call it once per batch as fn(prompts, responses) -> list of floats."""
    batch_size: int = 32
    """Pairs scored per forward (models) or per call (batched functions)."""
    answer_only: bool = False
    """Score only the answer of a reasoning model's response (its <think>...</think> block removed)."""

    def validate(self, prefix: str) -> None:
        check(bool(self.path), f"{prefix}path", self.path, "a score model folder or 'module:function'")
        check(self.batch_size > 0, f"{prefix}batch_size", self.batch_size, "a positive integer")

    def check_source(self, key: str, kind: str | None) -> None:
        """Before any run folder: the function must import, the folder must hold a score model of ``kind``
        (None: either kind, as for a monitor)."""
        from alignkit.models.score_model import check_score_model

        if looks_like_function(self.path):
            try:
                import_function(self.path)
            except ValueError as err:
                raise ConfigError(f"{key}.path: {err}") from None
            return
        elsewhere = {
            "reward": "; a cost model belongs in cost.path",
            "cost": "; a reward model belongs in reward.path",
        }
        check_score_model(self.path, f"{key}.path", kind, elsewhere.get(kind or "", ""))

    def build(self, device: Any = None, max_length: int = 512) -> Scorer:
        scorer = build_scorer(
            self.path, batched=self.batched, batch_size=self.batch_size, device=device, max_length=max_length
        )
        return AnswerOnly(scorer) if self.answer_only else scorer
