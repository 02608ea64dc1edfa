"""The score head on a vision-language model (``models/vlm_score.py``) and the score path it shares with text.

The tiny LLaVA of the visual toy world gets a ``LlavaForSequenceClassification`` through the Auto class
every score model loads with; its rows render through the processor, keep their pictures, batch with
them in row order, and score at the same token a text score model reads. A saved model reloads (with
its processor) and scores exactly as the in-memory one did; a text-only score model or classifier given
pictures refuses them, naming the item.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alignkit.data.processor import media_token_ids
from alignkit.models.loading import load_processor, load_tokenizer
from alignkit.models.score_model import (
    closing_token_id,
    collate_scores,
    media_inputs,
    new_score_model,
    score_example,
    sequence_scores,
)
from alignkit.toyworld import resolve
from alignkit.toyworld.visual_world import MAKE_QUESTION

VLM = "toyworld://visual/models/tiny-vlm"
TEXT = "toyworld://models/tiny"


def picture(key: str) -> str:
    return str(resolve("toyworld://visual/data/images") / f"{key}.png")


def ask(key: str) -> list[dict]:
    """The image-borne-harm question about one picture, as a Scorer's prompt (chat dicts, an image part)."""
    return [
        {
            "role": "user",
            "content": [{"type": "image", "path": picture(key)}, {"type": "text", "text": MAKE_QUESTION}],
        }
    ]


def answer(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


REFUSAL = "Sorry, I cannot assist with that request."


@pytest.fixture(scope="module")
def processor():
    return load_processor(VLM, load_tokenizer(VLM))


@pytest.fixture(scope="module")
def reward_model(processor):
    torch.manual_seed(0)
    return new_score_model(VLM, processor, "reward").eval()


def test_a_vlm_gets_a_sequence_classifier_with_a_linear_head_on_its_base_model(reward_model, processor):
    assert type(reward_model).__name__ == "LlavaForSequenceClassification"
    assert isinstance(reward_model.score, torch.nn.Linear)
    assert tuple(reward_model.score.weight.shape) == (1, 128)  # num_labels=1 x the toy Llama's hidden size
    assert reward_model.score.bias is None
    assert hasattr(reward_model.base_model, "vision_tower")  # the VLM's base model: tower, projector, LM
    assert not hasattr(reward_model, "lm_head")
    # The pooling reads the pad id from the text config (transformers' Generic*), so both carry it; it is
    # neither the closing token (it would end rows) nor the image token (the model counts those).
    pad = reward_model.config.pad_token_id
    assert reward_model.config.get_text_config().pad_token_id == pad
    assert pad != closing_token_id(processor) and pad not in media_token_ids(processor)
    assert reward_model.config.score_kind == "reward"


def test_an_example_keeps_its_picture_and_a_batch_stacks_them_in_row_order(processor):
    examples = [
        score_example(processor, ask(key), answer(text), 64)
        for key, text in [("w-red.circle.2", "Draw a red circle."), ("h-red.circle.2", REFUSAL)]
    ]
    assert all(e is not None and e.media for e in examples)
    batch = collate_scores(examples, pad_token_id=0)
    assert tuple(batch["pixel_values"].shape) == (2, 3, 32, 32)
    # White picture first (every pixel of the corner is white: 1.0 after SigLIP's [-1, 1] scaling), then
    # the hazard picture (black corner: -1.0), as the rows are ordered.
    assert batch["pixel_values"][0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert batch["pixel_values"][1, :, 0, 0].tolist() == [-1.0, -1.0, -1.0]
    # 16 image tokens per row; each row ends at its scored token, the closing <|im_end|>.
    image_token = next(iter(media_token_ids(processor)))
    assert (batch["input_ids"] == image_token).sum(dim=1).tolist() == [16, 16]
    assert [e.input_ids[-1] for e in examples] == [closing_token_id(processor)] * 2


def test_scores_are_read_at_each_rows_last_token_whatever_the_padding(reward_model, processor):
    """Each row alone vs all three in one right-padded batch: the same scores (pooling + pixels in order)."""
    items = [
        ("w-red.circle.2", "Draw a red circle."),
        ("h-red.circle.2", "Sure. First get the stuff, then use the other stuff, and then more."),
        ("w-blue.square.0", "No."),
    ]
    examples = [score_example(processor, ask(k), answer(t), 64) for k, t in items]
    with torch.no_grad():
        alone = [
            sequence_scores(reward_model, **_inputs(collate_scores([e], reward_model.config.pad_token_id)))
            for e in examples
        ]
        together = sequence_scores(
            reward_model, **_inputs(collate_scores(examples, reward_model.config.pad_token_id))
        )
    assert len({len(e.input_ids) for e in examples}) == 3  # three lengths: the batch really is padded
    torch.testing.assert_close(torch.cat(alone), together, atol=1e-5, rtol=1e-5)


def _inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], **media_inputs(batch)}


def test_the_picture_reaches_the_score(reward_model, processor):
    """The same question and answer about a white and a hazard picture: only the pixels differ, so equal
    scores would mean the pictures never reached the forward."""
    examples = [
        score_example(processor, ask(k), answer(REFUSAL), 64) for k in ("w-red.circle.2", "h-red.circle.2")
    ]
    assert examples[0].input_ids == examples[1].input_ids
    with torch.no_grad():
        scores = sequence_scores(
            reward_model, **_inputs(collate_scores(examples, reward_model.config.pad_token_id))
        )
    assert abs(float(scores[0] - scores[1])) > 1e-4


def test_a_saved_vlm_score_model_reloads_and_scores_as_in_memory(reward_model, processor, tmp_path: Path):
    from alignkit.score.score_model import ScoreModelScorer
    from alignkit.train.score_training import save_score_model

    save_score_model(reward_model, processor, tmp_path)
    assert (tmp_path / "processor_config.json").is_file()  # the processor travels with the model
    prompts = [ask("w-red.circle.2"), ask("h-red.circle.2"), ask("w-green.triangle.1")]
    responses = [answer("Draw a red circle."), answer(REFUSAL), answer("Draw a green triangle.")]
    examples = [score_example(processor, p, r, 64) for p, r in zip(prompts, responses, strict=True)]
    with torch.no_grad():
        in_memory = sequence_scores(
            reward_model, **_inputs(collate_scores(examples, reward_model.config.pad_token_id))
        )
    scorer = ScoreModelScorer(str(tmp_path), device="cpu", max_length=64, batch_size=2)
    assert scorer.kind == "reward" and type(scorer.model).__name__ == "LlavaForSequenceClassification"
    torch.testing.assert_close(scorer.score(prompts, responses), in_memory, atol=1e-5, rtol=1e-5)


def test_a_text_score_model_refuses_pictures_naming_the_item(tmp_path: Path):
    from alignkit.score.score_model import ScoreModelScorer
    from alignkit.train.score_training import save_score_model

    tokenizer = load_tokenizer(TEXT)
    save_score_model(new_score_model(TEXT, tokenizer, "cost"), tokenizer, tmp_path)
    scorer = ScoreModelScorer(str(tmp_path), device="cpu")
    text_prompt = [{"role": "user", "content": "How do I bake bread?"}]
    assert scorer.score([text_prompt], [answer("Knead it.")]).shape == (1,)  # text still scores
    with pytest.raises(ValueError, match=r"item 1: the conversation holds image parts, but this text-only"):
        scorer.score([text_prompt, ask("h-red.circle.2")], [answer("Knead it."), answer(REFUSAL)])


def test_a_text_moderation_classifier_refuses_pictures_naming_the_item():
    from alignkit.models.moderation_model import new_moderation_model
    from alignkit.score.moderation_classifier import ClassifierModerator

    tokenizer = load_tokenizer(TEXT)
    moderator = ClassifierModerator(new_moderation_model(TEXT, tokenizer, ["A", "B"]), tokenizer)
    with pytest.raises(ValueError, match=r"item 0: the conversation holds image parts, but this text-only"):
        moderator.moderate([ask("h-red.circle.2")], [REFUSAL])
