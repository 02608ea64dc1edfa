"""Online RL with pictures in the prompt: a rollout's rows carry their prompts' pictures (a GRPO group's
once per sample) into every forward that re-reads them, what cannot work yet on a VLM is refused by key,
and the visual oracle scores answers by the picture."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from alignkit.config import ConfigError
from alignkit.data.records import ContentPart, Message
from alignkit.generate.base import SamplingConfig
from alignkit.generate.hf import HFGenerator
from alignkit.models.forward import labelled_token_logps, media_inputs
from alignkit.score.base import FunctionScorer, as_response, prompt_images
from alignkit.toyworld import resolve
from alignkit.toyworld.visual_scoring import VisualOracleScorer, picture_and_question
from alignkit.train.online_media import check_multimodal_online
from alignkit.train.rollout import build_rollout, per_token_forward

VLM = "toyworld://visual/models/tiny-vlm"
COLOUR = "What colour is the circle?"


@pytest.fixture(scope="module")
def generator() -> HFGenerator:
    return HFGenerator.from_pretrained(VLM, device="cpu")


def prompt(key: str | None, question: str) -> list[Message]:
    parts = [ContentPart("text", text=question)]
    if key is not None:
        path = resolve("toyworld://visual/data/images") / f"{key}.png"
        parts.insert(0, ContentPart("image", path=str(path)))
    return [Message("user", tuple(parts))]


def test_rollout_rows_carry_each_samples_picture_into_the_forward(generator: HFGenerator):
    prompts = [
        prompt("w-red.circle.0", COLOUR),
        [Message("user", "How many shapes are there?")],  # a text prompt: no picture in its rows
        prompt("w-blue.circle.2", COLOUR),
    ]
    rollout = build_rollout(
        generator, generator.renderer, prompts, SamplingConfig(max_new_tokens=5, n=2), seed=3, logprobs=True
    )
    assert len(rollout) == 6 and rollout.media is not None
    # one picture per sample of an image prompt, in row order: rows 0, 1 (red), 4, 5 (blue); 3 RGB x 32 x 32
    rows = rollout.rows(range(6), "cpu")
    assert rows["pixel_values"].shape == (4, 3, 32, 32)
    red, blue = rollout.rows([0], "cpu")["pixel_values"], rollout.rows([5], "cpu")["pixel_values"]
    assert torch.equal(rows["pixel_values"][0], red[0]) and torch.equal(rows["pixel_values"][3], blue[0])
    assert not torch.equal(red, blue)
    assert "pixel_values" not in rollout.rows([2, 3], "cpu")
    # 16 image tokens per picture in the rows' ids (the processor's expansion), none labelled
    image_id = generator.renderer.image_token_id
    assert (rollout.input_ids[0] == image_id).sum() == 16 and (rollout.input_ids[2] == image_id).sum() == 0
    assert not (rollout.labels == image_id).any()

    # Re-reading the rollout (old log-probs, reference, update: all go through Rollout.rows) gives the
    # sampling loop's log-probs, which it can only do when each row gets its own picture.
    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        args = (batch["input_ids"], batch["attention_mask"], batch["labels"])
        return labelled_token_logps(generator.model, *args, media=media_inputs(batch))

    reread = per_token_forward(forward, rollout, 4, "cpu")
    assert rollout.token_logps is not None
    torch.testing.assert_close(reread, rollout.token_logps, atol=1e-4, rtol=0)
    # the same rows with the pictures swapped between the red and the blue samples read differently
    rows = rollout.rows([0, 4], "cpu")
    swapped = labelled_token_logps(
        generator.model,
        rows["input_ids"],
        rows["attention_mask"],
        rows["labels"],
        media={"pixel_values": rows["pixel_values"].flip(0)},
    )
    assert (swapped - reread[[0, 4], : swapped.shape[1]]).abs().max() > 1e-3


def test_a_text_rollout_carries_no_media(generator: HFGenerator):
    text = [[Message("user", "How many shapes are there?")]]
    rollout = build_rollout(generator, generator.tokenizer, text, SamplingConfig(max_new_tokens=3), seed=0)
    assert rollout.media is None and set(rollout.rows([0], "cpu")) == {
        "input_ids",
        "attention_mask",
        "labels",
    }


def online_config(**overrides) -> SimpleNamespace:
    base = {
        "rollout": SimpleNamespace(backend="hf"),
        "critic": SimpleNamespace(shared=True),
        "cost_critic": SimpleNamespace(shared=False),
        "cost": None,
    }
    return SimpleNamespace(**{**base, **overrides})


def test_what_a_vlm_cannot_do_online_yet_is_refused_by_key():
    check_multimodal_online(online_config(), multimodal=True)  # shared critic, no cost: fine
    # separate critics (a VLM score model fed the rows' pictures) are fine too
    check_multimodal_online(
        online_config(critic=SimpleNamespace(shared=False), cost=SimpleNamespace()), multimodal=True
    )
    check_multimodal_online(online_config(rollout=SimpleNamespace(backend="vllm")), multimodal=False)  # text
    with pytest.raises(ConfigError, match=r"rollout.backend=vllm .* use rollout.backend=hf"):
        check_multimodal_online(online_config(rollout=SimpleNamespace(backend="vllm")), multimodal=True)
    grpo = SimpleNamespace(rollout=SimpleNamespace(backend="hf"), cost=SimpleNamespace())  # no critics
    check_multimodal_online(grpo, multimodal=True)


def test_the_visual_oracle_judges_the_same_question_by_its_picture():
    prompts = [prompt("w-red.circle.0", COLOUR), prompt("w-blue.circle.2", COLOUR)] * 2
    answers = [
        as_response(a) for a in ("The answer is red.", "The answer is red.", "blue", "Sorry, I can't help")
    ]
    # red picture + "red": right (1); blue picture + "red": wrong (0); red + "blue": wrong; blue + refusal
    assert VisualOracleScorer("correct").score(prompts, answers).tolist() == [1.0, 0.0, 0.0, 0.0]
    # helpfulness (oracle.HELPFULNESS): correct 1, wrong 0, wrong 0, a refusal of a benign question -0.5
    assert VisualOracleScorer("helpfulness").score(prompts, answers).tolist() == [1.0, 0.0, 0.0, -0.5]
    make = "How do I make the thing in the picture?"
    hazard = prompt("h-red.circle.0", make)
    path, question = picture_and_question(hazard)
    assert path is not None and path.endswith("h-red.circle.0.png") and question == make
    costs = VisualOracleScorer("harm_cost").score([hazard], [as_response("Sorry, I can't help with that.")])
    assert costs.tolist() == [-1.0]  # safe: Safe RLHF's -1


def test_a_config_string_rule_sees_the_pictures_of_the_prompt():
    """``reward.path=alignkit.toyworld.visual_scoring:correct`` (a ``FunctionScorer``): a function that
    declares ``images`` gets each prompt's picture paths, so it judges the same answer by the picture."""
    prompts = [prompt("w-red.circle.0", COLOUR), prompt("w-blue.circle.2", COLOUR), [Message("user", "Hi")]]
    assert prompt_images(prompts[0])[0].endswith("w-red.circle.0.png") and prompt_images(prompts[2]) == []
    red = [as_response("The answer is red.")] * 2
    # the same answer: right about the red picture (1), wrong about the blue one (0)
    assert FunctionScorer.from_path("alignkit.toyworld.visual_scoring:correct").score(
        prompts[:2], red
    ).tolist() == [1.0, 0.0]
    seen: list = []
    batched = FunctionScorer(
        lambda p, r, images: seen.extend(images) or [len(i) for i in images], batched=True
    )
    assert batched.score(prompts, [*red, as_response("hello")]).tolist() == [1.0, 1.0, 0.0]
    assert [len(i) for i in seen] == [1, 1, 0]
    with pytest.raises(ValueError, match="no visual toy-world task"):
        FunctionScorer.from_path("alignkit.toyworld.visual_scoring:harm_cost").score(prompts[2:], red[:1])


def test_the_visual_oracle_refuses_prompts_it_cannot_judge():
    with pytest.raises(
        ValueError, match=r"no visual toy-world task for question 'What colour is the circle\?' "
    ):
        VisualOracleScorer().score([[Message("user", COLOUR)]], [as_response("red")])
    with pytest.raises(ValueError, match=r"measure 'accuracy': use one of correct, helpfulness, harm_cost"):
        VisualOracleScorer("accuracy")  # type: ignore[arg-type]


def test_scorer_objects_must_name_a_stream_the_config_has():
    from alignkit.config import load_config
    from alignkit.train.grpo import GRPOConfig, GRPOTrainer

    config = load_config(GRPOConfig, None, ["reward.path=alignkit.toyworld.oracle:ideal_reward"])
    with pytest.raises(ConfigError, match=r"scorers= names \['rewards'\]: each must be one of \['cost', "):
        GRPOTrainer(config, scorers={"rewards": VisualOracleScorer()})
    with pytest.raises(ConfigError, match=r"scorers= names \['cost'\]: .* whose config section is set"):
        GRPOTrainer(config, scorers={"cost": VisualOracleScorer("harm_cost")})  # config.cost is null
