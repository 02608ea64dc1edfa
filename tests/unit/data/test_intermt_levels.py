"""InterMT pair items at the two levels: ``local`` puts the loss on the judged turn only, ``global`` on
every assistant turn of the conversation. The fixture row is written here to the documented schema
(DATASETS.md / SEED_METHODS.md 4.2: ``front_convs`` rounds, ``paired_convs`` with ``response_1``/
``response_2`` and their image lists, verdicts 1|2|0 per dimension, ``""`` image slots skipped)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from alignkit.config import ConfigError, from_dict
from alignkit.data import load_records
from alignkit.data.pair_examples import tokenize_pairs
from alignkit.data.processor import text_tokenizer
from alignkit.data.render import IGNORE_INDEX
from alignkit.sections import DataConfig
from alignkit.toyworld import resolve

IMAGE_TOKENS = 16  # 32 px pictures in 8 px patches: (32 / 8) ** 2


def documented_row(first: str, second: str) -> dict:
    """One pair item as InterMT's pair-comparison loader reads it, both levels' verdicts given."""
    return {
        "front_convs": [
            {
                "round": 1,
                "prompt": "What colour is the square?",
                "prompt_images": [f"images/{first}", ""],
                "response": "The answer is purple.",
                "response_images": [""],
            }
        ],
        "paired_convs": {
            "round": 2,
            "prompt": "How do I make the thing in the picture?",
            "prompt_images": [f"images/{second}"],
            "response_1": "I won't help with that.",
            "response_1_images": [],
            "response_2": "Draw a red circle.",
            "response_2_images": [""],
        },
        "overall_preference": {
            "context_awareness": 0,
            "helpfulness": 2,
            "crucial_step_recognition": 0,
            "global_image_text_consistency": 2,
            "style_coherence": 0,
        },
        "local_overall_preference": {
            "local_image_text_consistency": 2,
            "visual_perceptual_quality": 0,
            "text_quality": 2,
            "context_coherence": 0,
        },
    }


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("intermt")
    (folder / "images").mkdir()
    world_images = resolve("toyworld://visual/data/images")
    for key in ("w-purple.square.2", "w-red.circle.0"):
        shutil.copy(world_images / f"{key}.png", folder / "images" / f"{key}.png")
    row = documented_row("w-purple.square.2.png", "w-red.circle.0.png")
    (folder / "train.jsonl").write_text(json.dumps(row) + "\n")
    return folder / "train.jsonl"


@pytest.fixture(scope="module")
def processor():
    from alignkit.models.loading import load_processor, load_tokenizer

    path = "toyworld://visual/models/tiny-vlm"
    return load_processor(path, load_tokenizer(path))


def texts(messages) -> list[tuple[str, str]]:
    return [(m.role, m.text()) for m in messages]


def test_local_level_prompts_with_the_history_and_compares_the_judged_turn(pairs_file: Path):
    (record,) = load_records(str(pairs_file), "intermt", dimension="text_quality", level="local").records
    assert texts(record.prompt) == [
        ("user", "What colour is the square?"),
        ("assistant", "The answer is purple."),
        ("user", "How do I make the thing in the picture?"),
    ]
    assert [Path(p.path).name for p in record.prompt[0].media()] == ["w-purple.square.2.png"]  # "" skipped
    assert [Path(p.path).name for p in record.prompt[2].media()] == ["w-red.circle.0.png"]
    assert texts(record.chosen) == [("assistant", "Draw a red circle.")]  # text_quality 2: response_2
    assert texts(record.rejected) == [("assistant", "I won't help with that.")]
    assert record.labels["text_quality"] == 1 and record.labels["helpfulness"] == 1  # chosen-relative


def test_global_level_compares_whole_conversations_after_the_first_question(pairs_file: Path):
    (record,) = load_records(str(pairs_file), "intermt", dimension="helpfulness", level="global").records
    assert texts(record.prompt) == [("user", "What colour is the square?")]
    history = [("assistant", "The answer is purple."), ("user", "How do I make the thing in the picture?")]
    assert texts(record.chosen) == [*history, ("assistant", "Draw a red circle.")]
    assert texts(record.rejected) == [*history, ("assistant", "I won't help with that.")]


def labelled_texts(processor, example) -> str:
    tokenizer = text_tokenizer(processor)
    return tokenizer.decode(
        [t for t, y in zip(example.input_ids, example.labels, strict=True) if y != IGNORE_INDEX]
    )


def test_a_local_pair_labels_exactly_the_judged_turn(pairs_file: Path, processor):
    records = load_records(str(pairs_file), "intermt", dimension="text_quality", level="local").records
    (pair,), truncated, dropped = tokenize_pairs(records, processor, 256, "helpfulness")
    assert (truncated, dropped) == (0, 0)
    assert labelled_texts(processor, pair.chosen) == "Draw a red circle.<|im_end|>"
    assert labelled_texts(processor, pair.rejected) == "I won't help with that.<|im_end|>"
    for side in (pair.chosen, pair.rejected):  # both turns' pictures are in the input, none labelled
        assert side.input_ids.count(processor.image_token_id) == 2 * IMAGE_TOKENS
        assert tuple(side.media["pixel_values"].shape) == (2, 3, 32, 32)
    # The two sides are the same tokens up to the judged turn: only it differs, only it is labelled.
    first_label = pair.chosen.labels.index(next(y for y in pair.chosen.labels if y != IGNORE_INDEX))
    assert pair.chosen.input_ids[:first_label] == pair.rejected.input_ids[:first_label]


def test_a_global_pair_labels_every_assistant_turn(pairs_file: Path, processor):
    records = load_records(str(pairs_file), "intermt", dimension="helpfulness", level="global").records
    (pair,), _, _ = tokenize_pairs(records, processor, 256, "helpfulness")
    assert (
        labelled_texts(processor, pair.chosen)
        == "The answer is purple.<|im_end|>Draw a red circle.<|im_end|>"
    )
    assert (
        labelled_texts(processor, pair.rejected)
        == "The answer is purple.<|im_end|>I won't help with that.<|im_end|>"
    )
    # Same ids as the local rendering: the levels differ in what is labelled, not in what the model reads.
    local = load_records(str(pairs_file), "intermt", dimension="helpfulness", level="local").records
    (local_pair,), _, _ = tokenize_pairs(local, processor, 256, "helpfulness")
    assert pair.chosen.input_ids == local_pair.chosen.input_ids


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"level": "turn"}, "intermt option level: expected one of local, global, got 'turn'"),
        ({"level": "global", "dimension": "text_quality"}, "dimension 'text_quality' judges one turn"),
    ],
)
def test_a_bad_level_is_a_config_error_naming_the_key_and_the_allowed_values(options, message):
    section = {"source": "data.jsonl", "template": "intermt", "options": options}
    with pytest.raises(ConfigError) as info:
        from_dict(DataConfig, {"train": section}, prefix="data.")
    assert "data.train.options=" in str(info.value) and message in str(info.value)
