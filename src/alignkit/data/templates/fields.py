"""Typed readers for raw row fields, shared by every template.

Each reader either returns the value in the type the record needs or raises ``RowError`` naming the
field (with its path inside nested values, e.g. ``chosen[1].role``) and what was expected. Numbers and
booleans are also accepted as text ("1", "true") because CSV cells and some datasets (BeaverTails-V's
``is_response_1_safe``) store them that way.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from alignkit.data.audio import audio_part
from alignkit.data.errors import MissingField, RowError, RowSkipped, describe
from alignkit.data.records import ROLES, ContentPart, Message, Messages
from alignkit.data.templates.base import RowContext

_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}
_INT = re.compile(r"^-?\d+$")


def get(row: Mapping[str, Any], key: str, expected: str, parent: str = "") -> Any:
    """``row[key]``, or ``MissingField`` naming ``parent.key`` and what should have been there."""
    if key not in row:
        raise MissingField(f"{parent}.{key}" if parent else key, expected)
    return row[key]


def as_text(value: Any, name: str, *, allow_empty: bool = False) -> str:
    expected = "a string" if allow_empty else "a non-empty string"
    if not isinstance(value, str):
        raise RowError(name, expected, describe(value))
    if not allow_empty and not value.strip():
        raise RowError(name, expected, "an empty string")
    return value


def text(row: Mapping[str, Any], key: str, *, allow_empty: bool = False) -> str:
    expected = "a string" if allow_empty else "a non-empty string"
    return as_text(get(row, key, expected), key, allow_empty=allow_empty)


def as_int(value: Any, name: str, choices: Sequence[int] | None = None) -> int:
    expected = "an integer" if choices is None else " or ".join(str(c) for c in choices)
    if (
        isinstance(value, str)
        and _INT.match(value.strip())
        or isinstance(value, float)
        and value.is_integer()
    ):
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (choices is not None and value not in choices)
    ):
        raise RowError(name, expected, describe(value))
    return value


def integer(row: Mapping[str, Any], key: str, choices: Sequence[int] | None = None) -> int:
    expected = "an integer" if choices is None else " or ".join(str(c) for c in choices)
    return as_int(get(row, key, expected), key, choices)


def as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise RowError(name, "true or false", describe(value))


def boolean(row: Mapping[str, Any], key: str) -> bool:
    return as_bool(get(row, key, "true or false"), key)


def number(row: Mapping[str, Any], key: str) -> float:
    """A real number (ratings, scores); text that reads as one is accepted, like integers are."""
    value = get(row, key, "a number")
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise RowError(key, "a number", describe(value))
    return float(value)


def _decoded(value: Any, ctx: RowContext) -> Any:
    """Decode a JSON-encoded CSV cell that should hold a list or dict; leave anything else alone."""
    if ctx.json_strings and isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def as_list(value: Any, name: str, ctx: RowContext, expected: str, *, non_empty: bool = True) -> list[Any]:
    value = _decoded(value, ctx)
    if not isinstance(value, (list, tuple)):
        raise RowError(name, expected, describe(value))
    if non_empty and not value:
        raise RowError(name, expected, "an empty list")
    return list(value)


def as_mapping(value: Any, name: str, ctx: RowContext, expected: str) -> Mapping[str, Any]:
    value = _decoded(value, ctx)
    if not isinstance(value, Mapping):
        raise RowError(name, expected, describe(value))
    return value


def flagged(value: Any, name: str, ctx: RowContext) -> tuple[str, ...]:
    """The keys set to true in a ``{category: bool}`` dict, in the dataset's order."""
    categories = as_mapping(value, name, ctx, "a dict of category name -> true/false")
    return tuple(key for key, flag in categories.items() if as_bool(flag, f"{name}.{key}"))


def _is_pil_image(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "save")


def image_part(value: Any, name: str, ctx: RowContext) -> ContentPart:
    """An image as a loadable part: an existing path, a URL, embedded bytes, or a decoded PIL image.

    Relative paths are resolved against the data file's folder and must exist, so a typo fails at
    load time rather than mid-training. Hub datasets hand over PIL images; those without a file on
    disk are re-encoded as PNG bytes so the record holds no decoded pixels.
    """
    expected = "an image (existing path, {'bytes', 'path'} dict or PIL image)"
    if _is_pil_image(value):
        filename = getattr(value, "filename", "")
        if filename and Path(filename).is_file():
            return ContentPart("image", path=str(filename))
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return ContentPart("image", data=buffer.getvalue())
    if isinstance(value, (bytes, bytearray)) and value:
        return _readable_image(ContentPart("image", data=bytes(value)), name, "the embedded bytes")
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return _readable_image(
                ContentPart("image", data=bytes(value["bytes"])), f"{name}.bytes", "the bytes"
            )
        if value.get("path"):
            return image_part(value["path"], f"{name}.path", ctx)
        raise RowError(name, expected, "a dict with neither 'bytes' nor 'path'")
    if isinstance(value, str) and value.strip():
        if value.startswith(("http://", "https://")):
            return ContentPart("image", path=value)
        path = Path(value)
        if not path.is_absolute() and ctx.base_dir is not None:
            path = ctx.base_dir / path
        if not path.is_file():
            raise RowError(name, "an existing image file", f"{value!r} (no file at {path})")
        return _readable_image(ContentPart("image", path=str(path)), name, repr(value))
    raise RowError(name, expected, describe(value))


def _readable_image(part: ContentPart, name: str, shown: str) -> ContentPart:
    """``part`` if PIL can identify its image, so a ``.png`` that is not one fails now, not mid-training.

    Only the header is read (PIL opens lazily): cheap enough to do for every row.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(part.path if part.data is None else io.BytesIO(part.data)):
            pass
    except (UnidentifiedImageError, OSError, ValueError) as error:
        reason = "not an image file" if isinstance(error, UnidentifiedImageError) else str(error)
        raise RowError(name, "an image PIL can read (PNG, JPEG, WebP, ...)", f"{shown}: {reason}") from None
    return part


def image_list(value: Any, name: str, ctx: RowContext) -> tuple[ContentPart, ...]:
    """A list of images where empty slots (``""`` or None, as InterMT writes them) are skipped."""
    items = as_list(value, name, ctx, "a list of images", non_empty=False)
    return tuple(
        image_part(item, f"{name}[{i}]", ctx) for i, item in enumerate(items) if item not in ("", None)
    )


def content(value: Any, name: str, ctx: RowContext, images: Iterator[Any] | None = None) -> str | tuple:
    """Message content: a string, or a list of ``{"type": ..., ...}`` blocks (chat-template style).

    Image blocks carry their image (``path``/``url``/``image``/``base64``), or are TRL-style
    placeholders (``{"type": "image"}``) filled in order from the row's ``images`` column.
    """
    value = _decoded(value, ctx)
    if isinstance(value, str):
        return value
    blocks = as_list(value, name, ctx, "a string or a list of content blocks")
    parts: list[ContentPart] = []
    for i, block in enumerate(blocks):
        where = f"{name}[{i}]"
        if isinstance(block, str):
            parts.append(ContentPart("text", text=block))
            continue
        block = as_mapping(block, where, ctx, "a content block dict with a 'type'")
        kind = get(block, "type", "one of text, image, audio, video", where)
        if kind == "text":
            parts.append(
                ContentPart(
                    "text",
                    text=as_text(get(block, "text", "a string", where), f"{where}.text", allow_empty=True),
                )
            )
        elif kind == "image":
            source = next(
                (block[k] for k in ("path", "url", "image", "base64") if block.get(k) not in (None, "")), None
            )
            if source is None:
                source = next(images, None) if images is not None else None
                if source is None:
                    raise RowError(
                        where, "an image block with a path, or a row 'images' entry for it", "neither"
                    )
            parts.append(image_part(source, where, ctx))
        elif kind == "audio":
            parts.append(audio_part(block.get("path") or block.get("url"), f"{where}.path", ctx.base_dir))
        elif kind == "video":
            path = as_text(block.get("path") or block.get("url"), f"{where}.path")
            parts.append(ContentPart(kind, path=path))
        else:
            raise RowError(f"{where}.type", "one of text, image, audio, video", describe(kind))
    return tuple(parts)


def messages(
    value: Any, name: str, ctx: RowContext, images: Iterator[Any] | None = None, *, non_empty: bool = True
) -> Messages:
    """A list of ``{"role", "content"}`` dicts as messages; roles must be system, user or assistant."""
    items = as_list(value, name, ctx, "a non-empty list of messages", non_empty=non_empty)
    result = []
    for i, item in enumerate(items):
        item = as_mapping(item, f"{name}[{i}]", ctx, "a message dict with 'role' and 'content'")
        role = get(item, "role", "system, user or assistant", f"{name}[{i}]")
        if role not in ROLES:
            raise RowError(f"{name}[{i}].role", "system, user or assistant", describe(role))
        get(item, "content", "a string or a list of content blocks", f"{name}[{i}]")
        message = Message(role, content(item["content"], f"{name}[{i}].content", ctx, images))
        if role != "system" and is_empty(message):
            raise RowError(
                f"{name}[{i}].content", f"a non-empty {role} turn (text or media)", "an empty turn"
            )
        result.append(message)
    return tuple(result)


def is_empty(message: Message) -> bool:
    """No text but whitespace and no media: a turn that says nothing (an empty reply is no response)."""
    return not message.text().strip() and not message.media()


def _said(turns: Messages) -> tuple:
    return tuple((m.role, m.text().strip(), m.media()) for m in turns)


def distinct(first: Messages, second: Messages, name: str, other: str) -> None:
    """Refuse a pair whose two responses say the same thing: it holds no preference to learn.

    Compared after stripping surrounding whitespace, which no model is asked to prefer.
    """
    if _said(first) == _said(second):
        raise RowError(name, f"a response different from '{other}'", f"the same response as '{other}'")


def user(value: str | tuple) -> Message:
    return Message("user", value)


def assistant(value: str | tuple) -> Message:
    return Message("assistant", value)


def with_images(images: tuple[ContentPart, ...], text_value: str) -> str | tuple[ContentPart, ...]:
    """Content with the images before the text, or plain text when there are no images."""
    if not images:
        return text_value
    return (*images, ContentPart("text", text=text_value))


def shared_prefix(a: Messages, b: Messages) -> int:
    """How many leading messages two conversations share."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def split_pair(
    chosen: Messages, rejected: Messages, names: tuple[str, str]
) -> tuple[Messages, Messages, Messages]:
    """Split two full conversations into (shared prompt, chosen continuation, rejected continuation).

    The prompt ends before the first assistant turn where they differ, so continuations start with
    an assistant turn and the prompt ends with the user's last turn.
    """
    n = shared_prefix(chosen, rejected)
    while n > 0 and chosen[n - 1].role == "assistant" and (n == len(chosen) or n == len(rejected)):
        n -= 1  # identical responses: keep the last assistant turn as the response, not the prompt
    for conversation, name in zip((chosen, rejected), names, strict=True):
        if n == 0:
            raise RowError(name, "a conversation sharing a prompt with the other response", "no shared turns")
        if n == len(conversation) or conversation[n].role != "assistant":
            raise RowError(name, "an assistant turn after the shared prompt", "none")
    distinct(chosen[n:], rejected[n:], names[1], names[0])
    return chosen[:n], chosen[n:], rejected[n:]


def pick_winner(labels: Mapping[str, int], dimension: str, field: str) -> int:
    """Which response (1 or 2) a per-dimension verdict prefers; a tie (0) skips the row, with a reason.

    Ties carry no preference for a pairwise loss, so the row is left out, but reported, never dropped
    silently: the load summary counts them per dimension.
    """
    winner = labels[dimension]
    if winner == 0:
        raise RowSkipped(field, f"tie on dimension '{dimension}' (label 0), no chosen response")
    return winner


def orient_labels(labels: Mapping[str, int], winner: int) -> dict[str, int]:
    """Re-express response_1/response_2 verdicts (1|2|0) so that 1 = chosen better, 2 = rejected better."""
    if winner == 1:
        return dict(labels)
    return {key: {1: 2, 2: 1}.get(value, value) for key, value in labels.items()}
