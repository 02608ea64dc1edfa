"""InterMT-shaped data for the visual toy world: two-turn conversations with a picture in each turn.

Round 1 asks the colour of the shape in picture A (a white one-shape picture) and is answered right.
Round 2 is the *judged turn*: "How do I make the thing in the picture?" about picture B, harmless on a
white picture and harmful on a hazard picture (BeaverTails-V's image-borne harm). Its two candidate
responses are drawn like the BeaverTails-V pairs' (the oracle answer, which on a hazard is harmful
compliance; a refusal; on a white picture, a confident drawing of another picture).

Labels come from the oracles, in InterMT's schema (``PKU-Alignment/InterMT`` pair comparison and score
evaluation, see docs/multimodal.md). The toy annotator ranks a turn as an aligned assistant answers:
safe before unsafe, then lower severity, then the oracle's helpfulness, so a refusal beats compliance
on a hazard picture and the right drawing beats a refusal on a white one. Per dimension:

* local (``local_overall_preference``): ``text_quality`` = that ranking of the judged turn;
  ``local_image_text_consistency`` = the response names what picture B shows (white pictures only;
  a hazard picture has no right drawing, so a tie); ``visual_perceptual_quality`` and
  ``context_coherence`` = ties (the responses carry no pictures, and round 2 does not depend on
  round 1 in this world).
* global (``overall_preference``): ``helpfulness`` = the ranking of the whole conversation (round 1 is
  shared and right, so round 2 decides it); ``global_image_text_consistency`` = as the local
  consistency; ``context_awareness``, ``crucial_step_recognition``, ``style_coherence`` = ties.

Pure functions of (tasks, rng): ``visual_build`` writes them beside the single-turn data.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from alignkit.toyworld.visual_world import VisualTask, classify, harm, helpfulness
from alignkit.toyworld.world import REFUSALS

CONVERSATIONS_PER_TURN = 4
"""Conversations per judged-turn question (each with another round-1 picture): the pair and SFT data."""
HARMFUL_COMPLY = 0.5
"""Fraction of the multi-turn SFT conversations on a hazard picture whose round 2 complies (the rest
refuse): the SFT policy has harm to remove, as in the single-turn SFT rows."""


def _image(task: VisualTask, image_ref: Callable[[VisualTask], str]) -> list[str]:
    return [image_ref(task)]


def _round(
    number: int, task: VisualTask, response: str, image_ref: Callable[[VisualTask], str]
) -> dict[str, Any]:
    return {
        "round": number,
        "prompt": task.question,
        "prompt_images": _image(task, image_ref),
        "response": response,
        "response_images": [],
    }


def aligned_key(task: VisualTask, response: str) -> tuple[bool, int, float]:
    """The toy annotator's ranking of one turn: safe first, then lower severity, then helpfulness."""
    verdict = harm(task, response)
    return verdict.is_safe, -verdict.severity, helpfulness(task, response)


def turn_score(task: VisualTask, response: str) -> int:
    """A turn's 0-3 score (InterMT's scale): 0 unsafe or off topic, 1 wrong or a needless refusal,
    3 right (the right drawing, or a refusal on a hazard picture)."""
    if not harm(task, response).is_safe:
        return 0
    kind = classify(task, response)
    return {"correct": 3, "refusal": 3 if task.is_harmful else 1, "wrong": 1}.get(kind, 0)


def _verdict(a: Any, b: Any) -> int:
    """InterMT's 1|2|0: 1 when ``a`` is better, 2 when ``b`` is, 0 for a tie."""
    return 1 if a > b else 2 if b > a else 0


def _consistent(task: VisualTask, response: str) -> bool:
    return classify(task, response) == "correct"


def local_labels(task: VisualTask, r1: str, r2: str) -> dict[str, int]:
    return {
        "local_image_text_consistency": _verdict(_consistent(task, r1), _consistent(task, r2)),
        "visual_perceptual_quality": 0,
        "text_quality": _verdict(aligned_key(task, r1), aligned_key(task, r2)),
        "context_coherence": 0,
    }


def global_labels(task: VisualTask, r1: str, r2: str) -> dict[str, int]:
    return {
        "context_awareness": 0,
        "helpfulness": _verdict(aligned_key(task, r1), aligned_key(task, r2)),
        "crucial_step_recognition": 0,
        "global_image_text_consistency": _verdict(_consistent(task, r1), _consistent(task, r2)),
        "style_coherence": 0,
    }


def conversation_plan(tasks: list[VisualTask], rng: random.Random) -> list[tuple[VisualTask, VisualTask]]:
    """(round-1 task, judged task) pairs: each "make" question of the split with
    ``CONVERSATIONS_PER_TURN`` colour questions about other one-shape white pictures of the same split."""
    firsts = [t for t in tasks if t.family == "colour" and len(t.scene.shapes) == 1]
    judged = [t for t in tasks if t.family == "make"]
    return [
        (first, task)
        for task in judged
        for first in rng.sample([f for f in firsts if f.scene != task.scene], CONVERSATIONS_PER_TURN)
    ]


def pair_rows(
    plan: list[tuple[VisualTask, VisualTask]],
    rng: random.Random,
    candidates: Callable[[VisualTask, random.Random], tuple[tuple[str, str], tuple[str, str]]],
    image_ref: Callable[[VisualTask], str],
    answer: Callable[[VisualTask], str],
    level: str,
) -> list[dict[str, Any]]:
    """InterMT pair-comparison items: round 1 as ``front_convs``, the judged turn as ``paired_convs``,
    labelled with the ``local`` or ``global`` dimensions; ``answer`` gives round 1's (right) answer.
    Pairs the oracle ties on every dimension of the level are left out (a tie has no chosen response)."""
    rows = []
    for first, task in plan:
        (r1, _), (r2, _) = candidates(task, rng)
        labels = local_labels(task, r1, r2) if level == "local" else global_labels(task, r1, r2)
        if not any(labels.values()):
            continue
        rows.append(
            {
                "front_convs": [_round(1, first, answer(first), image_ref)],
                "paired_convs": {
                    "round": 2,
                    "prompt": task.question,
                    "prompt_images": _image(task, image_ref),
                    "response_1": r1,
                    "response_1_images": [],
                    "response_2": r2,
                    "response_2_images": [],
                },
                "local_overall_preference" if level == "local" else "overall_preference": labels,
            }
        )
    return rows


def conversation_rows(
    plan: list[tuple[VisualTask, VisualTask]],
    rng: random.Random,
    image_ref: Callable[[VisualTask], str],
    answer: Callable[[VisualTask], str],
) -> list[dict[str, Any]]:
    """InterMT score-evaluation items (``conversations``: round 0 with the global annotations, then
    each round with its local ones), whose answers mix as the single-turn SFT rows do: right in round
    1, and in round 2 the oracle answer, except that on a hazard picture ``HARMFUL_COMPLY`` of them
    comply and the rest refuse. ``answer`` gives the oracle answer (compliance on a hazard). Template
    ``intermt`` reads these items as conversations, so they are SFT data."""
    rows = []
    for first, task in plan:
        second = answer(task)
        if task.is_harmful and rng.random() >= HARMFUL_COMPLY:
            second = rng.choice(REFUSALS)
        scores = [turn_score(first, answer(first)), turn_score(task, second)]
        rows.append(
            {
                "conversations": [
                    {"round": 0, "annotations": {"helpfulness": min(scores)}},
                    {
                        "round": 1,
                        "round_conversations": _round(1, first, answer(first), image_ref),
                        "annotations": {"text_quality": scores[0]},
                    },
                    {
                        "round": 2,
                        "round_conversations": _round(2, task, second, image_ref),
                        "annotations": {"text_quality": scores[1]},
                    },
                ]
            }
        )
    return rows
