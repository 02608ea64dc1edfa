"""The visual world's InterMT data: two turns with a picture each, labels from the oracles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignkit.data import load_records
from alignkit.data.records import Conversation, Preference
from alignkit.toyworld import resolve
from alignkit.toyworld.visual_intermt import HARMFUL_COMPLY, aligned_key, local_labels, turn_score
from alignkit.toyworld.visual_world import MAKE_QUESTION, harm, scene_from_key, task_for
from alignkit.toyworld.world import REFUSALS, compliance_response


@pytest.fixture(scope="module")
def intermt() -> Path:
    return resolve("toyworld://visual/data/intermt")


def judged_task(record: Preference):
    """The judged turn's task: the last user message of the prompt (its picture and question)."""
    turn = [m for m in (*record.prompt, *record.chosen) if m.role == "user"][-1]
    return task_for(turn.media()[0].path, turn.text())


def test_turn_scores_and_local_verdicts_follow_the_aligned_ranking():
    hazard = task_for("h-red.circle.0.png", MAKE_QUESTION)
    white = task_for("w-red.circle.0.png", MAKE_QUESTION)
    assert hazard is not None and hazard.is_harmful and white is not None
    comply = compliance_response(hazard.scene.goal)
    # Hazard: refusing is safe (3), complying unsafe (0). White: the right drawing 3, another one 1,
    # a needless refusal 1.
    assert (turn_score(hazard, REFUSALS[0]), turn_score(hazard, comply)) == (3, 0)
    scores = [turn_score(white, r) for r in ("Draw a red circle.", "Draw a blue square.", REFUSALS[0])]
    assert scores == [3, 1, 1]
    assert aligned_key(hazard, REFUSALS[0]) > aligned_key(hazard, comply)  # (True, 0, 0.0) > (False, -s, 1.0)
    # Response 2 (the refusal) is better on text quality; a hazard has no right drawing: consistency ties.
    assert local_labels(hazard, comply, REFUSALS[1]) == {
        "local_image_text_consistency": 0,
        "visual_perceptual_quality": 0,
        "text_quality": 2,
        "context_coherence": 0,
    }


def test_local_pairs_have_two_pictured_turns_and_the_safer_turn_wins(intermt: Path):
    records = load_records(str(intermt / "local"), "intermt", dimension="text_quality").records
    assert len(records) > 300 and all(isinstance(r, Preference) for r in records)
    hazards = 0
    for record in records:
        assert [m.role for m in record.prompt] == ["user", "assistant", "user"]
        pictures = [p.path for m in record.prompt for p in m.media()]
        assert len(pictures) == 2 and all(Path(p).is_file() for p in pictures)
        first = task_for(pictures[0], record.prompt[0].text())
        assert first is not None and first.family == "colour"
        task = judged_task(record)
        assert task is not None and task.question == MAKE_QUESTION
        chosen, rejected = record.chosen[0].text(), record.rejected[0].text()
        assert aligned_key(task, chosen) > aligned_key(task, rejected)
        if task.is_harmful:
            hazards += 1
            assert harm(task, chosen).is_safe
    assert 0.3 < hazards / len(records) < 0.7


def test_global_pairs_read_at_the_global_level(intermt: Path):
    records = load_records(str(intermt / "global"), "intermt", level="global", split="test").records
    assert records
    for record in records:
        assert [m.role for m in record.prompt] == ["user"]
        assert [m.role for m in record.chosen] == ["assistant", "user", "assistant"]
        assert record.chosen[:2] == record.rejected[:2]  # the shared history
        task = judged_task(record)
        assert aligned_key(task, record.chosen[-1].text()) > aligned_key(task, record.rejected[-1].text())


def test_splits_are_by_picture_in_both_turns(intermt: Path):
    def pictures(split: str) -> set[str]:
        rows = [json.loads(r) for r in (intermt / "local" / f"{split}.jsonl").read_text().splitlines()]
        keys = {r["front_convs"][0]["prompt_images"][0] for r in rows}
        return keys | {r["paired_convs"]["prompt_images"][0] for r in rows}

    train, test = pictures("train"), pictures("test")
    assert train and test and not train & test
    assert all(scene_from_key(Path(p).stem).held_out for p in test)


def test_sft_conversations_carry_oracle_scores_and_comply_on_some_hazards(intermt: Path):
    records = load_records(str(intermt / "sft"), "intermt").records
    assert records and all(isinstance(r, Conversation) for r in records)
    complied = hazards = 0
    for record in records:
        assert [m.role for m in record.messages] == ["user", "assistant"] * 2
        scores = []
        for r, (question, answer) in enumerate(zip(record.messages[::2], record.messages[1::2], strict=True)):
            task = task_for(question.media()[0].path, question.text())
            scores.append(turn_score(task, answer.text()))
            assert record.labels[f"round{r + 1}.text_quality"] == scores[-1]
            if task.is_harmful:
                hazards += 1
                complied += not harm(task, answer.text()).is_safe
        assert record.labels["helpfulness"] == min(scores)
    assert abs(complied / hazards - HARMFUL_COMPLY) < 0.15
