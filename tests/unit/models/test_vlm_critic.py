"""A separate critic on a vision-language model (``models/value.TokenValueModel`` over the VLM score head)
reads the rows' pictures: the same tokens about two pictures get two value curves, identical up to the
first image token (causal attention: nothing before the picture can see it) and different after it; a
saved critic reloads with its processor and gives the same values."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alignkit.data.processor import media_token_ids
from alignkit.models.loading import load_processor, load_tokenizer
from alignkit.models.score_model import collate_scores, score_example
from alignkit.models.value import TokenValueModel, load_critic
from alignkit.toyworld import resolve
from alignkit.toyworld.visual_world import MAKE_QUESTION

VLM = "toyworld://visual/models/tiny-vlm"


def ask(key: str) -> list[dict]:
    path = str(resolve("toyworld://visual/data/images") / f"{key}.png")
    return [
        {
            "role": "user",
            "content": [{"type": "image", "path": path}, {"type": "text", "text": MAKE_QUESTION}],
        }
    ]


@pytest.fixture(scope="module")
def processor():
    return load_processor(VLM, load_tokenizer(VLM))


@pytest.fixture(scope="module")
def critic(processor) -> TokenValueModel:
    model = load_critic(VLM, processor, "reward")
    assert type(model.score_model).__name__ == "LlavaForSequenceClassification"
    assert float(model.score_model.score.weight.detach().abs().sum()) == 0.0  # a fresh head starts at 0
    torch.manual_seed(0)
    torch.nn.init.normal_(model.score_model.score.weight, std=1.0)  # a head that reads something
    return model.eval()


def batch_about(processor, keys: list[str], text: str) -> dict[str, torch.Tensor]:
    answer = [{"role": "assistant", "content": text}]
    examples = [score_example(processor, ask(key), answer, 64) for key in keys]
    return collate_scores(examples, pad_token_id=0)


def values(critic: TokenValueModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return critic(batch["input_ids"], batch["attention_mask"], pixel_values=batch["pixel_values"])


def test_a_vlm_critics_values_change_with_the_picture(critic, processor):
    batch = batch_about(processor, ["w-red.circle.2", "h-red.circle.2"], "Draw a red circle.")
    ids = batch["input_ids"]
    assert torch.equal(ids[0], ids[1])  # the same tokens: only the picture differs
    out = values(critic, batch)
    assert out.shape == ids.shape and torch.equal(out[:, 0], torch.zeros(2))  # column 0: no state read yet
    image_token = next(iter(media_token_ids(processor)))
    first_image = int((ids[0] == image_token).nonzero()[0])
    # values[:, t] is the head read at position t - 1: up to the first image token nothing saw a pixel
    torch.testing.assert_close(out[0, : first_image + 1], out[1, : first_image + 1])
    after = (out[0, first_image + 1 :] - out[1, first_image + 1 :]).abs()
    assert float(after.min()) > 1e-4, after  # every state after the picture depends on it
    # each row's own picture, in row order: swapping the pictures swaps the value curves
    swapped = values(critic, {**batch, "pixel_values": batch["pixel_values"].flip(0)})
    torch.testing.assert_close(swapped, out.flip(0))


def test_a_vlm_critic_saves_with_its_processor_and_reloads_with_the_same_values(
    critic, processor, tmp_path: Path
):
    critic.save(processor, tmp_path / "critic")
    assert load_processor(str(tmp_path / "critic"), load_tokenizer(str(tmp_path / "critic"))) is not None
    again = load_critic(str(tmp_path / "critic"), processor, "reward").eval()
    batch = batch_about(processor, ["w-blue.square.0", "h-red.circle.2"], "Sorry, I cannot help.")
    torch.testing.assert_close(values(again, batch), values(critic, batch), atol=1e-6, rtol=1e-5)
