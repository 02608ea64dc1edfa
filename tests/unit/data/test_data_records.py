"""Record types: the helpers other modules rely on, and the no-alignkit-imports rule."""

import ast
import dataclasses
from pathlib import Path

import pytest

import alignkit.data.records as records_module
from alignkit.data.records import (
    ContentPart,
    Message,
    Preference,
    ResponseSafety,
    RowRef,
    SafetyLabel,
    SafetyPreference,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "data"


def test_records_module_imports_nothing_of_alignkit():
    tree = ast.parse(Path(records_module.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.startswith("alignkit")]


def test_message_text_and_chat_dict_for_plain_and_multimodal_content():
    plain = Message("user", "hello")
    assert plain.text() == "hello"
    assert plain.to_chat_dict() == {"role": "user", "content": "hello"}

    image = ContentPart("image", path="/data/cat.png")
    mixed = Message(
        "user", (image, ContentPart("text", text="What is this?"), ContentPart("text", text="Be brief."))
    )
    assert mixed.text() == "What is this?\nBe brief."
    assert mixed.media() == (image,)
    assert mixed.to_chat_dict() == {
        "role": "user",
        "content": [
            {"type": "image", "path": "/data/cat.png"},
            {"type": "text", "text": "What is this?"},
            {"type": "text", "text": "Be brief."},
        ],
    }


def test_embedded_image_bytes_stay_loadable_and_render_as_base64():
    data = (FIXTURES / "images" / "street_sign.png").read_bytes()
    part = ContentPart("image", data=data)
    assert part.open_image().size == (4, 4)
    block = part.to_chat_dict()
    assert block["type"] == "image" and block["base64"].startswith("iVBOR")  # base64 of the PNG magic


def test_invalid_role_and_part_are_rejected_at_construction():
    with pytest.raises(ValueError, match="role"):
        Message("tool", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path or data"):
        ContentPart("image")


def test_safety_preference_views_pick_better_and_safer_responses():
    prompt = (Message("user", "q"),)
    helpful_unsafe = ResponseSafety((Message("assistant", "helpful but unsafe"),), False, ("Drugs",), 2)
    refusal = ResponseSafety((Message("assistant", "refusal"),), True, (), 0)
    origin = RowRef("f.jsonl", 3)
    record = SafetyPreference(prompt, (helpful_unsafe, refusal), better_id=0, safer_id=1, origin=origin)

    helpful = record.helpfulness_preference()
    assert helpful.chosen[0].text() == "helpful but unsafe" and helpful.rejected[0].text() == "refusal"
    safe = record.safety_preference()
    assert safe.chosen[0].text() == "refusal" and safe.rejected[0].text() == "helpful but unsafe"
    assert safe.prompt == prompt and safe.origin == origin
    with pytest.raises(ValueError, match="better_id"):
        SafetyPreference(prompt, (refusal, refusal), better_id=2, safer_id=0)


def test_safety_label_kto_view_marks_safe_responses_desirable():
    label = SafetyLabel((Message("user", "q"),), ResponseSafety((Message("assistant", "a"),), True))
    assert label.to_unpaired().desirable is True


def test_records_are_frozen_including_labels():
    record = Preference(
        (Message("user", "q"),), (Message("assistant", "a"),), (Message("assistant", "b"),), {"x": 1}
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.prompt = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        record.labels["x"] = 2  # type: ignore[index]
    assert record.labels == {"x": 1}
