"""Writing the visual toy world to disk (``toyworld://visual/...``), in the published multimodal schemas.

Layout of a build (a few seconds, offline)::

    visual/
      toyworld-visual.json          manifest: version, seed, counts, model shape
      models/tiny-vlm/              LLaVA + processor (AutoModelForImageTextToText / AutoProcessor)
      data/images/<key>.png         every picture, named by its scene key (oracles read the name)
      data/sft/{train,test}.jsonl   TRL conversational rows with an ``images`` column (template trl)
      data/prompts/{train,test}.jsonl   TRL prompt-only rows with ``images`` (for generation / RL)
      data/beavertails_v/{train,test}.jsonl   BeaverTails-V rows (template beavertails-v)
      data/align_anything/{train,test}.jsonl  Align-Anything text-image-to-text rows (align-anything-ti2t)
      data/intermt/local/{train,test}.jsonl    InterMT pair items, two turns, the judged turn's local labels
      data/intermt/global/{train,test}.jsonl   the same shape with the whole conversation's global labels
      data/intermt/sft/{train,test}.jsonl      InterMT conversation items with 0-3 annotations (SFT data)

Image paths in the rows are relative to the data file (``../images/<key>.png``), as the templates
resolve them. Labels come from the oracles of ``visual_world``; the split is by scene, so test pictures
were never seen in training.
"""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path
from typing import Any

from alignkit.toyworld import visual_intermt as intermt
from alignkit.toyworld.oracle import HarmVerdict
from alignkit.toyworld.store import CachedBuild, write_datasets
from alignkit.toyworld.visual_world import (
    ANSWER_FORM,
    VisualTask,
    all_scenes,
    draw,
    harm,
    helpfulness,
    tasks_of,
)
from alignkit.toyworld.world import REFUSALS, compliance_response

VERSION = 2
"""2: adds data/intermt (every file of version 1 is byte-identical)."""
MANIFEST = "toyworld-visual.json"
MAKE_PAIRS = 4
"""BeaverTails-V pairs per "make" question (its image-borne harm data), each an independent draw."""
HARMFUL_COMPLY = 0.5
"""Fraction of SFT rows on hazard pictures that comply (the rest refuse): the base policy must have
harm to remove, as in the text world's SFT mixture."""


def image_ref(task: VisualTask) -> str:
    """Where a row finds its picture: relative to the data file, as the templates resolve it."""
    return f"../images/{task.scene.key}.png"


def good_response(task: VisualTask) -> str:
    """The correct answer to a benign question; for a hazard, harmful compliance (the most 'helpful')."""
    if task.is_harmful:
        assert task.scene.goal is not None
        return compliance_response(task.scene.goal)
    return task.answer if task.family == "make" else ANSWER_FORM.format(a=task.answer)  # type: ignore[return-value]


def wrong_response(task: VisualTask, rng: random.Random, pool: list[VisualTask]) -> str:
    """A confident answer of the right form but about another picture (same family)."""
    others = [t for t in pool if t.family == task.family and t.answer != task.answer and t.answer]
    return good_response(rng.choice(others))


def nested_image_ref(task: VisualTask) -> str:
    """``image_ref`` for a file one folder deeper (``data/intermt/<level>/``)."""
    return f"../{image_ref(task)}"


def user_turn(task: VisualTask) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": task.question}]}]


def sft_rows(tasks: list[VisualTask], rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for task in tasks:
        if task.is_harmful:
            answer = good_response(task) if rng.random() < HARMFUL_COMPLY else rng.choice(REFUSALS)
        else:
            answer = good_response(task)
        rows.append(
            {
                "messages": [*user_turn(task), {"role": "assistant", "content": answer}],
                "images": [image_ref(task)],
            }
        )
    return rows


def prompt_rows(tasks: list[VisualTask]) -> list[dict[str, Any]]:
    return [{"prompt": user_turn(task), "images": [image_ref(task)]} for task in tasks]


def _candidates(task: VisualTask, rng: random.Random, pool: list[VisualTask]) -> tuple[tuple[str, str], ...]:
    """Two different (response, source) candidates for a pair."""
    options = [(good_response(task), "oracle"), (rng.choice(REFUSALS), "refusal")]
    if not task.is_harmful:
        options.append((wrong_response(task, rng, pool), "wrong"))
    first, second = rng.sample(options, 2)
    return first, second


def _rates(task: VisualTask, response: str, verdict: HarmVerdict) -> tuple[int, int]:
    """(helpful_rate, harmless_rate): BeaverTails-V's graded rates, from the oracles (harmless < 0 unsafe)."""
    helpful = round(2 * helpfulness(task, response))  # -1 .. 2
    harmless = 1 if verdict.is_safe else -verdict.severity
    return helpful, harmless


def beavertails_v_rows(
    tasks: list[VisualTask], rng: random.Random, pool: list[VisualTask]
) -> list[dict[str, Any]]:
    """``MAKE_PAIRS`` pairs per "make" question (benign and hazard pictures alike): BeaverTails-V's schema."""
    rows = []
    for task in (t for t in tasks for _ in range(MAKE_PAIRS) if t.family == "make"):
        (r1, from1), (r2, from2) = _candidates(task, rng, pool)
        v1, v2 = harm(task, r1), harm(task, r2)
        h1, h2 = helpfulness(task, r1), helpfulness(task, r2)
        helpful1, harmless1 = _rates(task, r1, v1)
        helpful2, harmless2 = _rates(task, r2, v2)
        # Safe beats unsafe, then lower severity; equally safe responses are ranked by helpfulness (an
        # annotator who cannot tell them apart on safety prefers the useful one), so the safety label
        # ranks exactly as an aligned assistant answers: refuse on a hazard picture, answer otherwise.
        k1, k2 = (v1.is_safe, -v1.severity, h1), (v2.is_safe, -v2.severity, h2)
        safer = 1 if k1 >= k2 else 2
        goal = task.scene.goal
        rows.append(
            {
                "question": task.question,
                "image": image_ref(task),
                "category": goal.category if goal else "none",
                "image_severity": goal.severity if goal else 0,
                "response_1": r1,
                "response_2": r2,
                "response_1_from": from1,
                "response_2_from": from2,
                "more_helpful_response_id": "1" if h1 >= h2 else "2",
                "safer_response_id": str(safer),
                "is_response_1_safe": "true" if v1.is_safe else "false",
                "is_response_2_safe": "true" if v2.is_safe else "false",
                "response_1_harmless_rate": harmless1,
                "response_2_harmless_rate": harmless2,
                "response_1_helpful_rate": helpful1,
                "response_2_helpful_rate": helpful2,
            }
        )
    return rows


def align_anything_rows(
    tasks: list[VisualTask], rng: random.Random, pool: list[VisualTask]
) -> list[dict[str, Any]]:
    """One pair per benign question: Align-Anything ti2t, ``overall_response`` = the more helpful, plus
    ``helpfulness_rate_*`` and ``harmlessness_rate_*`` ratings (0-3)."""
    rows = []
    for task in tasks:
        if task.is_harmful:
            continue
        (r1, _), (r2, _) = _candidates(task, rng, pool)
        h1, h2 = helpfulness(task, r1), helpfulness(task, r2)
        if h1 == h2:
            continue
        rows.append(
            {
                "question": task.question,
                "image": image_ref(task),
                "response_1": r1,
                "response_2": r2,
                "overall_response": 1 if h1 > h2 else 2,
                "helpfulness_rate_1": round(2 * h1) + 1,
                "helpfulness_rate_2": round(2 * h2) + 1,
                "harmlessness_rate_1": 3 if harm(task, r1).is_safe else 0,
                "harmlessness_rate_2": 3 if harm(task, r2).is_safe else 0,
            }
        )
    return rows


def _write_world(root: Path, seed: int) -> dict[str, Any]:
    """Everything a build holds, written into ``root`` (an empty folder); returns the manifest's fields."""
    from alignkit.toyworld.model import model_manifest, save_model
    from alignkit.toyworld.visual_model import IMAGE_TOKENS, build_processor, build_tiny_vlm

    scenes = all_scenes()
    images = root / "data" / "images"
    images.mkdir(parents=True)
    for scene in scenes:
        draw(scene).save(images / f"{scene.key}.png")
    splits = {
        "train": tasks_of([s for s in scenes if not s.held_out]),
        "test": tasks_of([s for s in scenes if s.held_out]),
    }
    counts: dict[str, int] = {}
    for split, tasks in splits.items():
        rng = random.Random(f"toyworld-visual-{seed}-{split}")
        written = {
            "sft": sft_rows(tasks, random.Random(rng.random())),
            "prompts": prompt_rows(tasks),
            "beavertails_v": beavertails_v_rows(tasks, random.Random(rng.random()), tasks),
            "align_anything": align_anything_rows(tasks, random.Random(rng.random()), tasks),
        }
        # The multi-turn data draws from its own generators, so the files above stay as version 1 wrote them.
        plan = intermt.conversation_plan(tasks, random.Random(f"toyworld-visual-{seed}-{split}-intermt"))
        draw_pair = partial(_candidates, pool=tasks)
        for level in ("local", "global"):
            pair_rng = random.Random(f"toyworld-visual-{seed}-{split}-intermt-{level}")
            written[f"intermt/{level}"] = intermt.pair_rows(
                plan, pair_rng, draw_pair, nested_image_ref, good_response, level
            )
        conversation_rng = random.Random(f"toyworld-visual-{seed}-{split}-intermt-sft")
        written["intermt/sft"] = intermt.conversation_rows(
            plan, conversation_rng, nested_image_ref, good_response
        )
        write_datasets(root, split, written, counts)

    processor = build_processor()
    model = build_tiny_vlm(processor, seed)
    save_model(model, processor, root / "models" / "tiny-vlm")
    return {
        "counts": counts,
        "images": len(scenes),
        "model": {**model_manifest(model), "image_tokens": IMAGE_TOKENS},
    }


VISUAL_BUILD = CachedBuild("toyworld-visual", MANIFEST, VERSION, _write_world)
"""The visual world's build flow (``store.CachedBuild``), shared with the text and audio worlds."""


# Public names of the flow, like the text world's ``build`` / ``default_root`` / ``default_world``.
build_visual = VISUAL_BUILD.build
"""Build the visual world into ``root`` (or return the build already there); atomic like ``build``."""
default_visual_root = VISUAL_BUILD.default_root
default_visual_world = VISUAL_BUILD.default
"""The world behind ``toyworld://visual/`` (seed 0), built on first use."""
