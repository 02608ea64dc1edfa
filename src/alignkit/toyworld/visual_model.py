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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alignkit.toyworld.visual_world import IMAGE_SIZE

IMAGE_TOKEN = "<image>"
PATCH_SIZE = 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
"""Tokens one picture expands to (16 at 32 px, 8 px patches)."""


def media_chat_template(part_type: str, placeholder: str) -> str:
    """The toy worlds' ChatML template for one media type: string or part-list content, ``placeholder``
    written where a part of ``part_type`` goes (the processor expands it to the model's media tokens).
    Shared by the visual and the audio toy model."""
    return (
        "{%- for message in messages %}"
        "{{- '<|im_start|>' + message['role'] + '\\n' }}"
        "{%- if message['content'] is string %}{{- message['content'] }}"
        "{%- else %}{%- for part in message['content'] %}"
        f"{{%- if part['type'] == '{part_type}' %}}{{{{- '{placeholder}' }}}}"
        "{%- elif part['type'] == 'text' %}{{- part['text'] }}{%- endif %}"
        "{%- endfor %}{%- endif %}"
        "{{- '<|im_end|>\\n' }}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )


CHAT_TEMPLATE = media_chat_template("image", "<image>")


@dataclass(frozen=True)
class TinyVLMSpec:
    """Shape of the tiny LLaVA (about 0.6M parameters with the toy vocabulary)."""

    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 2
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 256
    max_positions: int = 256


def build_processor(tokenizer: Any = None) -> Any:
    """A ``LlavaProcessor``: the toy tokenizer + ``<image>``, SigLIP's PIL image processor at 32 px."""
    from transformers import LlavaProcessor, SiglipImageProcessorPil

    from alignkit.toyworld.tokenizer import IM_START, train_tokenizer

    tokenizer = tokenizer or train_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, IMAGE_TOKEN]})
    tokenizer.chat_template = CHAT_TEMPLATE
    return LlavaProcessor(
        image_processor=SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
        image_token=IMAGE_TOKEN,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_vlm(processor: Any, seed: int, spec: TinyVLMSpec | None = None) -> Any:
    """A randomly initialised tiny LLaVA whose generation stops at ``<|im_end|>``."""
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        SiglipVisionConfig,
    )

    spec = spec or TinyVLMSpec()
    tokenizer = processor.tokenizer
    vision = SiglipVisionConfig(
        hidden_size=spec.vision_hidden,
        intermediate_size=2 * spec.vision_hidden,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=spec.vision_heads,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.text_hidden,
        intermediate_size=spec.text_intermediate,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.text_heads,
        num_key_value_heads=spec.text_heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):  # building the world leaves the caller's RNG alone
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=32,
    )
    return model


def save_vlm(model: Any, processor: Any, path: Path) -> None:
    """Model (safetensors) + processor (tokenizer, image processor, chat template) in one folder."""
    model.save_pretrained(str(path), safe_serialization=True)
    processor.save_pretrained(str(path))
