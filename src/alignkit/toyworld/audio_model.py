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

from typing import Any

from alignkit.toyworld.audio_world import SAMPLING_RATE
from alignkit.toyworld.media_model import TinyMediaSpec, media_chat_template, media_tokenizer
from alignkit.toyworld.model import seeded_model, tiny_llama_config

AUDIO_TOKEN, AUDIO_BOS, AUDIO_EOS = "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"
MEL_BINS = 80
AUDIO_TOKENS = 25
"""Tokens a one-second clip expands to: 100 frames -> 50 after the stride-2 convolution -> 25 pooled."""

CHAT_TEMPLATE = media_chat_template("audio", AUDIO_BOS + AUDIO_TOKEN + AUDIO_EOS)


TinyAudioSpec = TinyMediaSpec
"""Shape of the tiny Qwen2-Audio: the Whisper-style encoder is the encoder (about 0.7M parameters by
default)."""


def build_processor(tokenizer: Any = None) -> Any:
    """A ``Qwen2AudioProcessor``: the toy tokenizer + audio tokens, Whisper features of one second."""
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    tokenizer = media_tokenizer(tokenizer, [AUDIO_BOS, AUDIO_TOKEN, AUDIO_EOS], CHAT_TEMPLATE)
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
    from transformers import Qwen2AudioConfig, Qwen2AudioEncoderConfig, Qwen2AudioForConditionalGeneration

    spec = spec or TinyAudioSpec()
    tokenizer = processor.tokenizer
    audio = Qwen2AudioEncoderConfig(
        num_mel_bins=MEL_BINS,
        encoder_layers=spec.encoder_layers,
        encoder_attention_heads=spec.encoder_heads,
        encoder_ffn_dim=2 * spec.encoder_hidden,
        d_model=spec.encoder_hidden,
        max_source_positions=2 * AUDIO_TOKENS,
    )
    config = Qwen2AudioConfig(
        audio_config=audio,
        text_config=tiny_llama_config(tokenizer, spec.text),
        audio_token_id=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN),
        tie_word_embeddings=True,
    )
    return seeded_model(Qwen2AudioForConditionalGeneration, config, tokenizer, seed)
