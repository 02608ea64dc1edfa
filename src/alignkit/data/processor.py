"""Rendering through a multimodal processor: what ``data/render.py`` needs beyond a tokenizer.

A vision-language model's processor (``AutoProcessor``: a tokenizer, an image processor and a chat
template) renders a conversation whose content parts hold pictures: the template writes one image
placeholder per picture, and the processor loads the picture, turns it into pixel values and expands the
placeholder into the model's count of image tokens. ``render.py`` marks assistant turns on those
expanded ids with the same rule as for text, so a text model is the special case with no processor.

Everything here takes the object a run renders with (a tokenizer or a processor) and answers the same
way for both, so render.py calls it unconditionally.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from alignkit.data.audio import has_audio, with_audio_arrays

MEDIA_KEYS = ("pixel_values", "image_sizes", "image_grid_thw", "input_features", "feature_attention_mask")
"""Processor outputs that go to the model's forward besides the ids (LLaVA, Qwen-VL, Qwen2-Audio);
each is concatenated along its first axis across a batch's examples."""


RECENT_RENDERS = 4
_RECENT: dict[Any, tuple[Any, list[int], dict[str, torch.Tensor]]] = {}
"""The most recent ``processor_render`` results (the processor that made each, its ids and media),
oldest first."""


def is_processor(renderer: Any) -> bool:
    """Whether ``renderer`` is a multimodal processor (it wraps a tokenizer and a media processor)."""
    return hasattr(renderer, "tokenizer") and any(
        hasattr(renderer, name) for name in ("image_processor", "feature_extractor", "video_processor")
    )


def text_tokenizer(renderer: Any) -> Any:
    """The tokenizer inside a processor, or ``renderer`` itself: encoding, decoding, special tokens."""
    return renderer.tokenizer if is_processor(renderer) else renderer


def processor_render(
    processor: Any, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool, **kwargs: Any
) -> tuple[list[int], dict[str, torch.Tensor]]:
    """Token ids (image placeholders expanded) and the media tensors of ``messages``, via the processor.

    The last few renders are remembered: rendering a conversation to locate its turns and then for its
    pixel values is one processor call, not two (images are the costly part of a render)."""
    key = (json.dumps(list(messages), sort_keys=True), add_generation_prompt, repr(kwargs))
    hit = _RECENT.get(key)
    if hit is not None and hit[0] is processor:
        return list(hit[1]), dict(hit[2])
    chat = list(messages)
    if has_audio(chat):  # decoded here: transformers would need soundfile or torchcodec for a path
        chat = with_audio_arrays(chat, processor.feature_extractor.sampling_rate)
    out = processor.apply_chat_template(
        chat,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        add_generation_prompt=add_generation_prompt,
        **kwargs,
    )
    ids = out["input_ids"][0].tolist()
    media = {k: out[k] for k in MEDIA_KEYS if k in out}
    _RECENT.pop(key, None)
    _RECENT[key] = (processor, ids, media)
    while len(_RECENT) > RECENT_RENDERS:
        _RECENT.pop(next(iter(_RECENT)))
    return list(ids), dict(media)


def media_token_ids(renderer: Any) -> set[int]:
    """Ids of the tokens a processor expands media into (none for a tokenizer)."""
    if not is_processor(renderer):
        return set()
    ids = {getattr(renderer, f"{kind}_token_id", None) for kind in ("image", "video", "audio")}
    return {int(i) for i in ids if isinstance(i, int)}


def check_media_fits(renderer: Any, ids: Sequence[int], max_length: int) -> None:
    """A cut at ``max_length`` must not fall inside (or before) a picture's tokens: a model can take no
    half picture, and the count of image tokens must match the pixel values it is given."""
    media = media_token_ids(renderer)
    if len(ids) > max_length and any(t in media for t in ids[max_length:]):
        raise ValueError(
            f"a conversation of {len(ids)} tokens, media tokens included, is cut at data.max_length={max_length} "
            f"inside or before its image tokens; raise data.max_length to at least {len(ids)}"
        )


def collate_media(media: Sequence[Mapping[str, torch.Tensor] | None]) -> dict[str, torch.Tensor]:
    """The media tensors of a batch's examples, concatenated (examples without media add nothing)."""
    present = [m for m in media if m]
    keys = sorted({k for m in present for k in m})
    return {k: torch.cat([m[k] for m in present if k in m], dim=0) for k in keys}
