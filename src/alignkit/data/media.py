"""Records that carry images, audio or video, found before a text-only consumer silently drops them.

A text model renders chats through its tokenizer's template and is fed no pixels, so a multimodal record
given to one would train on its text alone; ``refuse_media`` says so instead. Runs on a vision-language
model (one saved with a processor: SFT, DPO, reward, cost, moderation) read such records
(``train.common.read_records(media=True)``). ``refuse_media_messages`` is the same check for a Scorer or
Moderator given chats (message dicts or records) at call time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from alignkit.config import ConfigError
from alignkit.data.records import Message


def refuse_media(records: Sequence[Any], ds: Any, key: str) -> None:
    """Records with images (or audio, video) stop a run on a text model: it renders text through the
    tokenizer's chat template and is fed no pixels, so it would silently learn from the text alone (or
    the template fails on list content deep inside a render)."""
    for record in records:
        part = next((p for m in messages_of(record) for p in m.media()), None)
        if part is not None:
            where = f" ({record.origin})" if getattr(record, "origin", None) else ""
            raise ConfigError(
                f"{key}.source={ds.source!r} (template {ds.template!r}) holds {part.type} data{where}, but "
                f"the model is text-only (no processor saved with it), so it would never be given the "
                f"{part.type}s. Point model.path at a vision- or audio-language model saved with its processor "
                f"(e.g. toyworld://visual/models/tiny-vlm, toyworld://audio/models/tiny-alm; trainers that "
                f"take one: sft, dpo, reward, cost, moderation), or use a text-only dataset."
            )


def media_types(messages: Sequence[Any]) -> list[str]:
    """The media part types (image, audio, video) in a chat of ``Message`` records or chat dicts."""
    found: list[str] = []
    for message in messages:
        if isinstance(message, Message):
            found += [part.type for part in message.media()]
        elif isinstance(message, Mapping) and isinstance(message.get("content"), (list, tuple)):
            found += [
                str(part.get("type"))
                for part in message["content"]
                if isinstance(part, Mapping) and part.get("type", "text") != "text"
            ]
    return found


def refuse_media_messages(
    prompts: Sequence[Sequence[Any]], responses: Sequence[Any] | None, who: str
) -> None:
    """A text-only ``who`` (a score model, a moderation classifier) given chats with pictures raises a
    ``ValueError`` naming the item: it would judge the text alone and never see what the picture shows."""
    for i, prompt in enumerate(prompts):
        response = responses[i] if responses is not None else ()
        types = media_types(list(prompt) + (list(response) if not isinstance(response, str) else []))
        if types:
            raise ValueError(
                f"item {i}: the conversation holds {types[0]} parts, but {who} is text-only (saved without a "
                f"processor), so it would judge the text alone; use a model trained on a vision-language "
                f"model (e.g. `alignkit train reward|cost|moderation model.path=toyworld://visual/models/"
                f"tiny-vlm`), or leave the {types[0]}s out"
            )


def messages_of(record: Any) -> list[Any]:
    """Every chat message a record holds, whatever its type (prompt, responses, chosen, rejected ...)."""
    found: list[Any] = []

    def walk(value: Any) -> None:
        if isinstance(value, Message):
            found.append(value)
        elif isinstance(value, (tuple, list)):
            for item in value:
                walk(item)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name))

    walk(record)
    return found


def media_summary(records: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Per modality: how many parts the records hold, how many distinct files (or embedded blobs), and,
    for images, how many of each size (read from the file headers only, as PIL opens lazily)."""
    summary: dict[str, dict[str, Any]] = {}
    seen: dict[str, set[Any]] = {}
    for record in records:
        for message in messages_of(record):
            for part in message.media():
                entry = summary.setdefault(part.type, {"parts": 0, "distinct": 0})
                entry["parts"] += 1
                key = part.path if part.path is not None else hash(part.data)
                if key in seen.setdefault(part.type, set()):
                    continue
                seen[part.type].add(key)
                entry["distinct"] += 1
                if part.type == "image":
                    size = _image_size(part)
                    sizes = entry.setdefault("sizes", {})
                    sizes[size] = sizes.get(size, 0) + 1
    return summary


def _image_size(part: Any) -> str:
    """``WxH`` of an image part, or ``unreadable``/``remote`` where the header cannot be read here."""
    if part.path is not None and part.path.startswith(("http://", "https://")):
        return "remote"
    try:
        with part.open_image() as image:
            return f"{image.width}x{image.height}"
    except (OSError, ValueError):
        return "unreadable"
