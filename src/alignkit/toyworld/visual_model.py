"""The visual toy world's policy: a random-init LLaVA (SigLIP vision tower + the toy Llama) and its processor.

Built from configs with the same classes a real LLaVA checkpoint loads (``LlavaForConditionalGeneration``,
``LlavaProcessor``), so ``AutoModelForImageTextToText`` / ``AutoProcessor`` reload it and every code
path that serves a real VLM is the one exercised here. Choices:

- **Image processor without torchvision**: ``SiglipImageProcessorPil`` (the torchvision wheel cannot be
  relied on); 32x32 pictures in 8x8 patches give 16 image tokens per picture.
- **``vision_feature_select_strategy='full'``**: SigLIP has no CLS token to drop.
- **The text tokenizer plus one special ``<image>`` token**, appended, so every text token keeps its id.
- **A ChatML template that takes string or part-list content** and writes ``<image>`` where a picture
  goes; the processor expands it to the 16 tokens. No ``{% generation %}`` tags: turns are located by
  the prompt-prefix rule of ``alignkit.data.render``, which works through the processor unchanged.
"""

from __future__ import annotations

from typing import Any

from alignkit.toyworld.media_model import TinyMediaSpec, media_chat_template, media_tokenizer
from alignkit.toyworld.model import seeded_model, tiny_llama_config
from alignkit.toyworld.visual_world import IMAGE_SIZE

IMAGE_TOKEN = "<image>"
PATCH_SIZE = 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
"""Tokens one picture expands to (16 at 32 px, 8 px patches)."""


CHAT_TEMPLATE = media_chat_template("image", "<image>")


TinyVLMSpec = TinyMediaSpec
"""Shape of the tiny LLaVA: the SigLIP tower is the encoder (about 0.6M parameters by default)."""


def build_processor(tokenizer: Any = None) -> Any:
    """A ``LlavaProcessor``: the toy tokenizer + ``<image>``, SigLIP's PIL image processor at 32 px."""
    from transformers import LlavaProcessor, SiglipImageProcessorPil

    return LlavaProcessor(
        image_processor=SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=media_tokenizer(tokenizer, [IMAGE_TOKEN], CHAT_TEMPLATE),
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
        image_token=IMAGE_TOKEN,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_vlm(processor: Any, seed: int, spec: TinyVLMSpec | None = None) -> Any:
    """A randomly initialised tiny LLaVA whose generation stops at ``<|im_end|>``."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, SiglipVisionConfig

    spec = spec or TinyVLMSpec()
    tokenizer = processor.tokenizer
    vision = SiglipVisionConfig(
        hidden_size=spec.encoder_hidden,
        intermediate_size=2 * spec.encoder_hidden,
        num_hidden_layers=spec.encoder_layers,
        num_attention_heads=spec.encoder_heads,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=tiny_llama_config(tokenizer, spec.text),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        tie_word_embeddings=True,
    )
    return seeded_model(LlavaForConditionalGeneration, config, tokenizer, seed)
