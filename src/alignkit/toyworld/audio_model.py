"""The audio toy world's policy: a random-init Qwen2-Audio (a tiny Whisper-style encoder + the toy Llama).

Built from configs with the classes a real Qwen2-Audio checkpoint loads (``Qwen2AudioForConditionalGeneration``,
``Qwen2AudioProcessor``), so ``AutoModelForMultimodalLM`` / ``AutoProcessor`` reload it. Choices:

- **One second of features**: ``WhisperFeatureExtractor(chunk_length=1)`` pads every clip to 1 s (100 mel
  frames); the encoder's convolution and pooling make that 25 audio tokens, fewer for a shorter clip
  (the processor counts them from the feature mask). The encoder's ``max_source_positions`` is 50 to match.
- **The text tokenizer plus the three audio special tokens** (``<|audio_bos|>``, ``<|AUDIO|>``,
  ``<|audio_eos|>``), appended, so every text token keeps its id.
- **A ChatML template that takes string or part-list content** and writes
  ``<|audio_bos|><|AUDIO|><|audio_eos|>`` where a clip goes; the processor expands ``<|AUDIO|>``. Turns
  are located by the prompt-prefix rule of ``alignkit.data.render``, as for the tiny VLM.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alignkit.toyworld.audio_world import SAMPLING_RATE
from alignkit.toyworld.visual_model import media_chat_template

AUDIO_TOKEN, AUDIO_BOS, AUDIO_EOS = "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"
MEL_BINS = 80
AUDIO_TOKENS = 25
"""Tokens a one-second clip expands to: 100 frames -> 50 after the stride-2 convolution -> 25 pooled."""

CHAT_TEMPLATE = media_chat_template("audio", AUDIO_BOS + AUDIO_TOKEN + AUDIO_EOS)


@dataclass(frozen=True)
class TinyAudioSpec:
    """Shape of the tiny Qwen2-Audio (about 0.7M parameters with the toy vocabulary)."""

    audio_hidden: int = 64
    audio_layers: int = 2
    audio_heads: int = 2
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 256
    max_positions: int = 256


def build_processor(tokenizer: Any = None) -> Any:
    """A ``Qwen2AudioProcessor``: the toy tokenizer + audio tokens, Whisper features of one second."""
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    from alignkit.toyworld.tokenizer import IM_START, train_tokenizer

    tokenizer = tokenizer or train_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, AUDIO_BOS, AUDIO_TOKEN, AUDIO_EOS]})
    tokenizer.chat_template = CHAT_TEMPLATE
    extractor = WhisperFeatureExtractor(feature_size=MEL_BINS, sampling_rate=SAMPLING_RATE, chunk_length=1)
    return Qwen2AudioProcessor(
        feature_extractor=extractor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        audio_token=AUDIO_TOKEN,
        audio_bos_token=AUDIO_BOS,
        audio_eos_token=AUDIO_EOS,
    )


def build_tiny_alm(processor: Any, seed: int, spec: TinyAudioSpec | None = None) -> Any:
    """A randomly initialised tiny Qwen2-Audio whose generation stops at ``<|im_end|>``."""
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        Qwen2AudioConfig,
        Qwen2AudioEncoderConfig,
        Qwen2AudioForConditionalGeneration,
    )

    spec = spec or TinyAudioSpec()
    tokenizer = processor.tokenizer
    audio = Qwen2AudioEncoderConfig(
        num_mel_bins=MEL_BINS,
        encoder_layers=spec.audio_layers,
        encoder_attention_heads=spec.audio_heads,
        encoder_ffn_dim=2 * spec.audio_hidden,
        d_model=spec.audio_hidden,
        max_source_positions=2 * AUDIO_TOKENS,
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
    config = Qwen2AudioConfig(
        audio_config=audio,
        text_config=text,
        audio_token_id=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN),
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):  # building the world leaves the caller's RNG alone
        torch.manual_seed(seed)
        model = Qwen2AudioForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=32,
    )
    return model


def save_alm(model: Any, processor: Any, path: Path) -> None:
    """Model (safetensors) + processor (tokenizer, feature extractor, chat template) in one folder."""
    model.save_pretrained(str(path), safe_serialization=True)
    processor.save_pretrained(str(path))
