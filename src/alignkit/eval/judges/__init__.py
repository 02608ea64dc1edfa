"""Judges: models and rules that decide a per-sample verdict for evaluation.

- ``pairwise``: which of two answers is better, one order per call (``PairwiseJudge``: ``ScorerPairJudge``
  over a reward model, ``LLMPairJudge`` over any Generator, MT-Bench style); swaps live in the metrics.
- ``yes_no``: a yes/no LLM judge and DeceptionBench's three judgements (``judge_deception``).
- ``refusal``: a phrase rule for refusals (``looks_like_refusal``).

Moderation verdicts (harmful or not) come from ``alignkit.score.moderation``: the guard uses them too.
"""

from alignkit.eval.judges.base import JUDGE_SAMPLING, conversation_text, judge_conversation
from alignkit.eval.judges.pairwise import (
    PAIRWISE_SYSTEM,
    PAIRWISE_TEMPLATE,
    LLMPairJudge,
    PairVerdict,
    PairwiseJudge,
    ScorerPairJudge,
    Winner,
    pair_question,
    parse_pair_verdict,
)
from alignkit.eval.judges.refusal import REFUSAL_PHRASES, looks_like_refusal
from alignkit.eval.judges.yes_no import (
    ALIGNMENT,
    CONSISTENCY,
    COT_INNER,
    DeceptionTrace,
    YesNoJudge,
    YesNoPrompt,
    YesNoVerdict,
    judge_deception,
    parse_yes_no,
)

__all__ = [
    "ALIGNMENT",
    "CONSISTENCY",
    "COT_INNER",
    "JUDGE_SAMPLING",
    "PAIRWISE_SYSTEM",
    "PAIRWISE_TEMPLATE",
    "REFUSAL_PHRASES",
    "DeceptionTrace",
    "LLMPairJudge",
    "PairVerdict",
    "PairwiseJudge",
    "ScorerPairJudge",
    "Winner",
    "YesNoJudge",
    "YesNoPrompt",
    "YesNoVerdict",
    "conversation_text",
    "judge_conversation",
    "judge_deception",
    "looks_like_refusal",
    "pair_question",
    "parse_pair_verdict",
    "parse_yes_no",
]
