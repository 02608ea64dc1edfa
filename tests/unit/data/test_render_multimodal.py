"""Rendering through a processor: image tokens expanded to the processor's count, loss on exactly the
assistant text, and a text-only chat rendered as the tokenizer renders it (one render path)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alignkit.data.collate import collate_lm
from alignkit.data.processor import is_processor, text_tokenizer
from alignkit.data.records import ContentPart, Message
from alignkit.data.render import (
    IGNORE_INDEX,
    render_conversation,
    render_prompt,
    render_prompt_inputs,
    render_response,
)
from alignkit.toyworld import resolve

IMAGE_TOKENS = 16  # 32 px pictures in 8 px patches: (32 / 8) ** 2


@pytest.fixture(scope="module")
def processor():
    from alignkit.models.loading import load_processor, load_tokenizer

    path = "toyworld://visual/models/tiny-vlm"
    return load_processor(path, load_tokenizer(path))


def picture(key: str) -> ContentPart:
    path = resolve("toyworld://visual/data/images") / f"{key}.png"
    assert Path(path).is_file()
    return ContentPart("image", path=str(path))


def user(*parts: ContentPart | str) -> Message:
    return Message(
        "user", tuple(p if isinstance(p, ContentPart) else ContentPart("text", text=p) for p in parts)
    )


def labelled_text(processor, example) -> str:
    return text_tokenizer(processor).decode(
        [t for t, y in zip(example.input_ids, example.labels, strict=True) if y != -100]
    )


def test_assistant_mask_covers_exactly_the_answer_after_image_expansion(processor):
    chat = [
        user(picture("w-red.circle.0"), "What colour is the circle?"),
        Message("assistant", "The answer is red."),
    ]
    example = render_conversation(processor, chat, max_length=128)
    image_id = processor.image_token_id
    assert example.input_ids.count(image_id) == IMAGE_TOKENS
    assert labelled_text(processor, example) == "The answer is red.<|im_end|>"
    assert all(
        y == IGNORE_INDEX for t, y in zip(example.input_ids, example.labels, strict=True) if t == image_id
    )
    assert example.media is not None and tuple(example.media["pixel_values"].shape) == (1, 3, 32, 32)


def test_two_pictures_in_two_turns(processor):
    chat = [
        user(picture("w-red.circle.0"), "What colour is the circle?"),
        Message("assistant", "The answer is red."),
        user("And this one?", picture("w-blue.square.1")),
        Message("assistant", "The answer is blue."),
    ]
    example = render_conversation(processor, chat, max_length=256)
    assert example.input_ids.count(processor.image_token_id) == 2 * IMAGE_TOKENS
    assert labelled_text(processor, example) == "The answer is red.<|im_end|>The answer is blue.<|im_end|>"
    assert tuple(example.media["pixel_values"].shape) == (2, 3, 32, 32)
    # A pairwise response: only the judged (last) turn is labelled, the pictures of the prompt come along.
    scored = render_response(processor, chat[:3], chat[3:], max_length=256)
    assert labelled_text(processor, scored) == "The answer is blue.<|im_end|>"
    assert tuple(scored.media["pixel_values"].shape) == (2, 3, 32, 32)


def test_text_chat_renders_through_the_processor_as_through_the_tokenizer(processor):
    chat = [Message("user", "What is 3 plus 4?"), Message("assistant", "The answer is 7.")]
    tokenizer = text_tokenizer(processor)
    assert is_processor(processor) and not is_processor(tokenizer)
    by_processor = render_conversation(processor, chat, max_length=64)
    by_tokenizer = render_conversation(tokenizer, chat, max_length=64)
    assert by_processor.input_ids == by_tokenizer.input_ids
    assert by_processor.labels == by_tokenizer.labels
    assert by_processor.media is None and by_tokenizer.media is None
    assert render_prompt_inputs(tokenizer, chat[:1]) == (render_prompt(tokenizer, chat[:1]), {})


def test_prompt_inputs_open_the_assistant_turn_with_the_picture(processor):
    ids, media = render_prompt_inputs(
        processor, [user(picture("w-green.triangle.1"), "Where is the triangle?")]
    )
    assert text_tokenizer(processor).decode(ids).endswith("<|im_start|>assistant\n")
    assert ids.count(processor.image_token_id) == IMAGE_TOKENS
    assert tuple(media["pixel_values"].shape) == (1, 3, 32, 32)


def test_a_cut_inside_the_image_tokens_is_refused(processor):
    chat = [
        user(picture("w-red.circle.0"), "What colour is the circle?"),
        Message("assistant", "The answer is red."),
    ]
    with pytest.raises(ValueError, match="data.max_length=10 inside or before its image tokens"):
        render_conversation(processor, chat, max_length=10)


def test_collate_concatenates_the_pictures_of_a_batch(processor):
    chats = [
        [user(picture(key), "What colour is the circle?"), Message("assistant", f"The answer is {colour}.")]
        for key, colour in (("w-red.circle.0", "red"), ("w-blue.circle.2", "blue"))
    ]
    examples = [render_conversation(processor, chat, max_length=128) for chat in chats]
    batch = collate_lm(examples, pad_token_id=0)
    assert tuple(batch["pixel_values"].shape) == (2, 3, 32, 32)
    assert torch.equal(batch["pixel_values"][1], examples[1].media["pixel_values"][0])
    text = collate_lm(
        [
            render_conversation(
                text_tokenizer(processor),
                chats[0][:0] + [Message("user", "Hi"), Message("assistant", "Hello.")],
                64,
            )
        ],
        0,
    )
    assert set(text) == {"input_ids", "attention_mask", "labels"}


def test_inspect_counts_pictures_and_their_sizes():
    from alignkit.data import inspect_dataset

    report = inspect_dataset(resolve("toyworld://visual/data/beavertails_v"), "beavertails-v", split="test")
    images = report.media["image"]
    # Each "make" question about a picture gets 4 pairs: 4 records per distinct picture.
    assert images["parts"] == report.counts["SafetyPreference"] == 4 * images["distinct"]
    assert images["sizes"] == {"32x32": images["distinct"]}
    assert (
        f"images:   {images['parts']} in records, {images['distinct']} distinct; sizes 32x32"
        in report.format()
    )
    assert report.to_dict()["media"] == report.media
