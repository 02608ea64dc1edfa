"""The visual toy world: pictures show their scene, the oracles judge answers about them, and the build
is in the published multimodal schemas with a tiny VLM the Auto classes reload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignkit.data import load_records
from alignkit.data.records import Preference, SafetyPreference
from alignkit.toyworld import HARM_CATEGORIES, resolve
from alignkit.toyworld.visual_world import (
    CELLS,
    COLOURS,
    HAZARDS,
    MAKE_QUESTION,
    Scene,
    Shape,
    all_scenes,
    classify,
    draw,
    harm,
    helpfulness,
    is_correct,
    scene_from_key,
    task_for,
    tasks_of,
)
from alignkit.toyworld.world import REFUSALS, compliance_response


@pytest.fixture(scope="module")
def visual() -> Path:
    """The visual world behind toyworld://visual/ (built once per session under ALIGNKIT_HOME)."""
    return resolve("toyworld://visual/")


def test_scene_keys_round_trip_and_bad_keys_are_named():
    for scene in all_scenes()[::37]:
        assert scene_from_key(scene.key) == scene
    with pytest.raises(ValueError, match="'w-pink.circle.0'"):
        scene_from_key("w-pink.circle.0")


def test_picture_shows_the_scene():
    # A red circle in the right half: (24, 16), the centre of that half, is red; (8, 16) on the left is white.
    image = draw(Scene((Shape("red", "circle", 1),)))
    assert image.size == (32, 32)
    assert image.getpixel((24, 16)) == COLOURS["red"]
    assert image.getpixel((8, 16)) == (255, 255, 255)
    alone = draw(Scene((Shape("green", "square", 2),)))  # a shape alone fills the picture
    assert alone.getpixel((8, 16)) == alone.getpixel((24, 16)) == COLOURS["green"]
    hazard = draw(Scene((Shape("blue", "square", 0),), hazard=True))
    assert hazard.getpixel((8, 16)) == COLOURS["blue"] and hazard.getpixel((24, 16)) == (0, 0, 0)


def test_every_pku_category_has_one_hazard_picture():
    assert sorted(goal.category for goal in HAZARDS.values()) == sorted(HARM_CATEGORIES)
    assert len(HAZARDS) == 19


def test_questions_have_the_scene_answer():
    scene = Scene((Shape("green", "triangle", 0), Shape("yellow", "square", 1)))
    answers = {t.question: t.answer for t in tasks_of([scene])}
    assert answers["What colour is the triangle?"] == "green"
    assert answers["Where is the square?"] == "right"
    assert answers["What shape is yellow?"] == "square"
    assert answers["How many shapes are there?"] == "two"
    assert MAKE_QUESTION not in answers  # asked only of one-shape pictures


def test_oracle_judges_answers_about_a_picture():
    task = task_for("x/w-red.circle.0-blue.square.1.png", "What colour is the square?")
    assert task is not None and task.answer == "blue"
    assert is_correct(task, "The answer is blue.")
    assert classify(task, "The answer is red.") == "wrong"
    assert classify(task, "blue or red") == "wrong"  # naming two answers is not the answer
    assert classify(task, REFUSALS[0]) == "refusal"
    assert helpfulness(task, REFUSALS[0]) == -0.5
    assert task_for("x/not-a-scene.png", "What colour is the square?") is None


def test_the_same_question_is_harmless_or_harmful_by_picture():
    benign = task_for("w-purple.diamond.2.png", MAKE_QUESTION)
    hazard_scene = next(s for s in all_scenes() if s.hazard)
    hazard = task_for(f"{hazard_scene.key}.png", MAKE_QUESTION)
    assert benign is not None and hazard is not None
    assert not benign.is_harmful and hazard.is_harmful
    assert is_correct(benign, "Draw a purple diamond.") and harm(benign, "Draw a purple diamond.").is_safe
    goal = hazard_scene.goal
    assert goal is not None
    verdict = harm(hazard, compliance_response(goal))
    assert not verdict.is_safe
    assert verdict.categories == (goal.category,) and verdict.severity == goal.severity
    assert classify(hazard, compliance_response(goal)) == "comply"
    assert harm(hazard, REFUSALS[1]).is_safe and classify(hazard, REFUSALS[1]) == "refusal"


def test_build_splits_by_picture(visual: Path):
    manifest = json.loads((visual / "toyworld-visual.json").read_text())
    assert manifest["model"]["image_tokens"] == 16
    assert manifest["model"]["parameters"] < 1_000_000

    def pictures(split: str) -> set[str]:
        rows = (visual / "data" / "sft" / f"{split}.jsonl").read_text().splitlines()
        return {json.loads(r)["images"][0] for r in rows}

    train, test = pictures("train"), pictures("test")
    assert train and test and not train & test
    assert len(CELLS) == 3


def test_beavertails_v_rows_read_and_agree_with_the_oracle(visual: Path):
    records = list(
        load_records(str(visual / "data" / "beavertails_v"), "beavertails-v", split="train").records
    )
    assert records and all(isinstance(r, SafetyPreference) for r in records)
    harmful = 0
    for record in records:
        image = record.prompt[0].media()[0].path
        task = task_for(image, record.prompt[0].text())
        assert task is not None and Path(image).is_file()
        for response in record.responses:
            verdict = harm(task, response.messages[0].text())
            assert response.is_safe == verdict.is_safe
            harmful += not verdict.is_safe
    assert harmful > 0


def test_align_anything_rows_prefer_the_more_helpful(visual: Path):
    records = list(
        load_records(str(visual / "data" / "align_anything"), "align-anything-ti2t", split="test").records
    )
    assert records and all(isinstance(r, Preference) for r in records)
    for record in records[:200]:
        task = task_for(record.prompt[0].media()[0].path, record.prompt[0].text())
        assert task is not None
        assert helpfulness(task, record.chosen[0].text()) > helpfulness(task, record.rejected[0].text())


def test_tiny_vlm_reloads_with_the_auto_classes(visual: Path):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = visual / "models" / "tiny-vlm"
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    picture = visual / "data" / "images" / "w-red.circle.0.png"
    chat = [
        {"role": "user", "content": [{"type": "image", "path": str(picture)}, {"type": "text", "text": "Hi"}]}
    ]
    inputs = processor.apply_chat_template(
        chat, tokenize=True, return_dict=True, return_tensors="pt", add_generation_prompt=True
    )
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 16
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], len(processor.tokenizer))
