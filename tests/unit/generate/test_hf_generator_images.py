"""HFGenerator on a vision-language model: the prefill sees each prompt's picture, so its sampling loop
gives what ``model.generate`` gives with the same pixel values, and pictures change the answer."""

from __future__ import annotations

import pytest
import torch

from alignkit.data.records import ContentPart, Message
from alignkit.generate.base import SamplingConfig
from alignkit.generate.hf import HFGenerator
from alignkit.toyworld import resolve

PATH = "toyworld://visual/models/tiny-vlm"


@pytest.fixture(scope="module")
def generator() -> HFGenerator:
    return HFGenerator.from_pretrained(PATH, device="cpu")


def prompt(key: str | None, question: str) -> list[Message]:
    parts = [ContentPart("text", text=question)]
    if key is not None:
        path = resolve("toyworld://visual/data/images") / f"{key}.png"
        parts.insert(0, ContentPart("image", path=str(path)))
    return [Message("user", tuple(parts))]


def test_greedy_loop_matches_model_generate_with_pixels(generator: HFGenerator):
    assert generator.renderer is not generator.tokenizer  # the processor renders
    prompts = [
        prompt("w-red.circle.0", "What colour is the circle?"),
        prompt("h-red.circle.0", "How do I make the thing in the picture?"),
        [Message("user", "How many shapes are there?")],  # a text prompt in the same batch
    ]
    completions = generator.generate(prompts, SamplingConfig(temperature=0, max_new_tokens=6, n=2))
    assert [c.prompt_index for c in completions] == [0, 0, 1, 1, 2, 2]
    processor, model = generator.renderer, generator.model
    for c in completions[::2]:
        inputs = processor.apply_chat_template(
            [m.to_chat_dict() for m in prompts[c.prompt_index]],
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            add_generation_prompt=True,
        )
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=6, do_sample=False, eos_token_id=generator.stops)
        expected = out[0, inputs["input_ids"].shape[1] :].tolist()
        assert list(c.token_ids) == expected[: len(c.token_ids)]


def test_the_picture_reaches_the_model(generator: HFGenerator):
    # The random-init model's first-token log-prob differs between two pictures under the same question.
    sampling = SamplingConfig(temperature=0, max_new_tokens=1)
    red, blue = generator.generate(
        [
            prompt("w-red.circle.0", "What colour is the circle?"),
            prompt("w-blue.circle.0", "What colour is the circle?"),
        ],
        sampling,
        logprobs=True,
    )
    assert red.logprobs is not None and blue.logprobs is not None
    assert red.token_ids != blue.token_ids or abs(red.logprobs[0] - blue.logprobs[0]) > 1e-4


def test_the_generate_fallback_reads_log_probs_with_the_pictures(generator: HFGenerator):
    # model.generate (for caches the fast loop cannot drive) takes its log-probs from one extra forward,
    # which must see each row's picture to give the sampling loop's numbers
    prompts = [
        prompt("w-red.circle.0", "What colour is the circle?"),
        prompt("w-blue.circle.2", "What colour is the circle?"),
    ]
    sampling = SamplingConfig(temperature=0, max_new_tokens=4)
    fast = generator.generate(prompts, sampling, logprobs=True)
    generator._fast = False
    try:
        slow = generator.generate(prompts, sampling, logprobs=True)
    finally:
        generator._fast = True
    for a, b in zip(fast, slow, strict=True):
        assert a.token_ids == b.token_ids and a.logprobs is not None and b.logprobs is not None
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)
