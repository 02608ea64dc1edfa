"""Pairwise judges: which of two answers to the same prompt is better, in the order they are shown.

A judge sees one order per call; the win rate asks both orders and combines them
(``alignkit.eval.metrics.combine_orders``), because judges favour a position. Verdicts are stated in
the judge's own position terms: ``A`` = the first answer shown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, runtime_checkable

from alignkit.eval.judges.base import JUDGE_SAMPLING, ask, check_template, conversation_text, fill
from alignkit.generate.base import Generator, SamplingConfig
from alignkit.score.base import Scorer, as_response

Winner = Literal["A", "B", "tie"]


@dataclass(frozen=True)
class PairVerdict:
    winner: Winner | None
    """'A' (the first answer shown), 'B', 'tie', or None when the judge's output could not be read."""
    raw: str
    """The judge's output verbatim (a reward model's: both scores)."""
    margin: float | None = None
    """score(A) − score(B) for a scoring judge; None for a generative one."""


@runtime_checkable
class PairwiseJudge(Protocol):
    def compare(
        self, prompts: Sequence[Sequence[Any]], answers_a: Sequence[str], answers_b: Sequence[str]
    ) -> list[PairVerdict]:
        """One verdict per prompt on (answers_a[i] shown first, answers_b[i] second)."""
        ...


def _check(prompts: Sequence[Any], answers_a: Sequence[str], answers_b: Sequence[str]) -> None:
    if not len(prompts) == len(answers_a) == len(answers_b):
        raise ValueError(
            f"{len(prompts)} prompts, {len(answers_a)} answers A and {len(answers_b)} answers B: "
            "a pairwise judge needs one of each per item"
        )


class ScorerPairJudge:
    """A reward model (or any Scorer) as a judge: the higher score wins; |difference| <= tie_margin ties.

    A non-finite score gives an unparseable verdict rather than a win for the other side.
    """

    def __init__(self, scorer: Scorer, *, tie_margin: float = 0.0) -> None:
        if tie_margin < 0:
            raise ValueError(f"tie_margin={tie_margin} must be >= 0")
        self.scorer = scorer
        self.tie_margin = tie_margin

    def compare(
        self, prompts: Sequence[Sequence[Any]], answers_a: Sequence[str], answers_b: Sequence[str]
    ) -> list[PairVerdict]:
        _check(prompts, answers_a, answers_b)
        scores_a = self.scorer.score(prompts, [as_response(a) for a in answers_a]).tolist()
        scores_b = self.scorer.score(prompts, [as_response(b) for b in answers_b]).tolist()
        verdicts = []
        for a, b in zip(scores_a, scores_b, strict=True):
            raw = f"A={a!r} B={b!r}"
            if not (math.isfinite(a) and math.isfinite(b)):
                verdicts.append(PairVerdict(None, raw))
                continue
            margin = a - b
            winner: Winner = "tie" if abs(margin) <= self.tie_margin else "A" if margin > 0 else "B"
            verdicts.append(PairVerdict(winner, raw, margin))
        return verdicts


PAIRWISE_SYSTEM = (
    "You are an impartial judge. Compare the answers that two AI assistants gave to the user question "
    "shown below and decide which one follows the user's instructions and answers the question better, "
    "weighing helpfulness, relevance, accuracy, depth, creativity and level of detail. Begin with a short "
    "comparison of the two answers and explain your reasoning. Do not let the order in which the answers "
    "appear, their length or the assistants' names sway you; be as objective as you can. After your "
    'explanation give your final verdict in exactly this form: "[[A]]" if assistant A is better, '
    '"[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)
"""MT-Bench's pairwise judge instructions (Zheng et al. 2023, ``pair-v2``), paraphrased."""

PAIRWISE_TEMPLATE = """[User Question]
{question}

[The Start of Assistant A's Answer]
{answer_a}
[The End of Assistant A's Answer]

[The Start of Assistant B's Answer]
{answer_b}
[The End of Assistant B's Answer]"""
"""The user turn: ``{question}`` (the prompt; a multi-turn one as labelled turns), ``{answer_a}``,
``{answer_b}`` in the order shown."""

_VERDICT = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE)


def parse_pair_verdict(text: str) -> Winner | None:
    """The **last** ``[[A]]`` / ``[[B]]`` / ``[[C]]`` (``[[tie]]`` too; any case) in the text; None if none.

    The last one, because judges often restate the format ("answer [[A]] if ...") before concluding.
    """
    found = _VERDICT.findall(text)
    if not found:
        return None
    last = found[-1].upper()
    return "tie" if last in ("C", "TIE") else last  # type: ignore[return-value]


def pair_question(
    prompt: Sequence[Any], answer_a: str, answer_b: str, template: str = PAIRWISE_TEMPLATE
) -> str:
    """The judge's user turn for one item: ``template`` filled with the prompt and both answers in the
    order shown (``judge_conversation(pair_question(...), system)`` is the whole request)."""
    return fill(template, {"question": conversation_text(prompt), "answer_a": answer_a, "answer_b": answer_b})


class LLMPairJudge:
    """Any Generator as a pairwise judge, MT-Bench style: it explains, then writes ``[[A]]``, ``[[B]]``
    or ``[[C]]``. Output without a verdict is an unparseable verdict (kept, never dropped)."""

    def __init__(
        self,
        generator: Generator,
        *,
        template: str = PAIRWISE_TEMPLATE,
        system: str | None = PAIRWISE_SYSTEM,
        sampling: SamplingConfig | None = None,
        seed: int | None = 0,
    ) -> None:
        check_template(template, ("question", "answer_a", "answer_b"), "pairwise judge")
        self.generator = generator
        self.template = template
        self.system = system
        self.sampling = sampling or replace(JUDGE_SAMPLING)  # a copy: SamplingConfig is mutable
        self.seed = seed

    def compare(
        self, prompts: Sequence[Sequence[Any]], answers_a: Sequence[str], answers_b: Sequence[str]
    ) -> list[PairVerdict]:
        _check(prompts, answers_a, answers_b)
        questions = [
            pair_question(p, a, b, self.template)
            for p, a, b in zip(prompts, answers_a, answers_b, strict=True)
        ]
        texts = ask(self.generator, questions, self.system, self.sampling, self.seed)
        return [PairVerdict(parse_pair_verdict(text), text) for text in texts]
