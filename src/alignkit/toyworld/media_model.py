"""What the visual and the audio toy model share: a small media encoder in front of the toy Llama.

Both are built the same way: the text world's tokenizer with the media's special tokens appended (so
every text token keeps its id), a ChatML template that writes the media placeholder where a part of that
type goes, and the tiny Llama of ``model.py`` as the language model, initialised by ``seeded_model``.
Written once here so the two models cannot drift apart; what differs (the encoder's config, the processor
and model classes) stays in ``visual_model`` / ``audio_model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alignkit.toyworld.model import TinyModelSpec


def media_chat_template(part_type: str, placeholder: str) -> str:
    """The toy worlds' ChatML template for one media type: string or part-list content, ``placeholder``
    written where a part of ``part_type`` goes (the processor expands it to the model's media tokens)."""
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


@dataclass(frozen=True)
class TinyMediaSpec:
    """Shape of a tiny media model: its encoder (the VLM's SigLIP tower, the audio model's Whisper-style
    encoder; feed-forward width ``2 * encoder_hidden``) and the toy Llama behind it (``text``).

    One spec for both because both worlds chose the same shape: with the toy vocabulary the defaults give
    about 0.6M parameters for the VLM and 0.7M for the audio model.
    """

    encoder_hidden: int = 64
    encoder_layers: int = 2
    encoder_heads: int = 2
    text: TinyModelSpec = field(default_factory=TinyModelSpec)


def media_tokenizer(tokenizer: Any, media_tokens: Sequence[str], chat_template: str) -> Any:
    """The toy tokenizer (``tokenizer``, or a freshly trained one) with ``<|im_start|>`` and the media's
    special tokens appended, in that order, and the media chat template: the processors' tokenizer."""
    from alignkit.toyworld.tokenizer import IM_START, train_tokenizer

    tokenizer = tokenizer or train_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, *media_tokens]})
    tokenizer.chat_template = chat_template
    return tokenizer
