"""TRL's dataset formats (https://huggingface.co/docs/trl/dataset_formats), standard and conversational.

Every TRL shape is recognised by its columns; strings are the *standard* form and lists of
``{role, content}`` the *conversational* one, per field:

=====================  ==================================  =========================
shape                  columns                             record
=====================  ==================================  =========================
preference             prompt?, chosen, rejected           ``Preference``
unpaired (KTO)         prompt, completion, label           ``UnpairedPreference``
prompt-completion      prompt, completion                  ``Conversation``
messages               messages                            ``Conversation``
text                   text                                ``PlainText``
prompt-only            prompt                              ``Prompt``
=====================  ==================================  =========================

``trl`` detects the shape of each row in that order (first match wins); ``trl-preference``,
``trl-unpaired``, ``trl-completion``, ``trl-messages``, ``trl-text`` and ``trl-prompt`` insist on one
shape, so a row of another shape is an error rather than a different record type. Without a
``prompt`` column a preference has an *implicit prompt*: the shared start of chosen and rejected.
Vision rows may hold an ``images`` column whose entries fill ``{"type": "image"}`` placeholders in
order; images left over are put before the text of the first user turn.

``trl`` never guesses: a row with a prompt and part of another shape (``chosen`` without
``rejected``, ``label`` without ``completion``) is refused rather than read as a bare prompt, and so is
TRL's stepwise-supervision shape (``prompt, completions, labels``), which alignkit does not train on.
A preference whose ``chosen`` and ``rejected`` both start with the ``prompt`` (the implicit-prompt
format with a prompt column left in) is refused too: the model would be taught to repeat the prompt.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from alignkit.data.errors import MissingField, RowError
from alignkit.data.records import (
    Conversation,
    Message,
    Messages,
    PlainText,
    Preference,
    Prompt,
    Record,
    UnpairedPreference,
)
from alignkit.data.templates import fields
from alignkit.data.templates.base import RowContext, Template

SHAPES: dict[str, tuple[str, ...]] = {
    "preference": ("chosen", "rejected"),
    "unpaired": ("prompt", "completion", "label"),
    "completion": ("prompt", "completion"),
    "messages": ("messages",),
    "text": ("text",),
    "prompt": ("prompt",),
}


PARTIAL_SHAPES = ("preference", "unpaired", "completion")
"""Shapes whose columns beside ``prompt`` mean a row is not prompt-only, even with one missing."""
STEPWISE = "completions"
"""The column of TRL's stepwise-supervision format (prompt, completions, labels)."""


def detect_shape(row: Mapping[str, Any]) -> str:
    """The first TRL shape whose columns the row has; a row that is half of one shape is an error."""
    if STEPWISE in row:
        raise RowError(
            STEPWISE,
            "one of the TRL formats alignkit reads: (prompt,) chosen, rejected | prompt, completion(, label) "
            "| messages | text | prompt (stepwise supervision, with 'completions' and 'labels', is not one)",
            "a stepwise-supervision row",
        )
    for shape, columns in SHAPES.items():
        if all(column in row for column in columns):
            if shape == "prompt":
                _refuse_partial(row)
            return shape
    raise RowError(
        "columns",
        "the columns of a TRL format: (prompt,) chosen, rejected | prompt, completion(, label) | messages | text | prompt",
        f"columns {sorted(row)}",
    )


def _refuse_partial(row: Mapping[str, Any]) -> None:
    """A prompt row that also has some columns of another shape is that shape with a column missing."""
    for shape in PARTIAL_SHAPES:
        columns = SHAPES[shape]
        present = [c for c in columns if c in row and c != "prompt"]
        if present:
            missing = next(c for c in columns if c not in row)
            raise MissingField(
                missing,
                f"a value: the row has {', '.join(map(repr, present))} of TRL's {shape} format "
                f"({', '.join(columns)}), so it is not a prompt-only row",
            )


def _check_not_repeating(
    row: Mapping[str, Any], prompt: Messages, chosen: Messages, rejected: Messages
) -> None:
    """Refuse a pair whose responses start with the whole prompt: the prompt column was left in them.

    Conversational: a response's first turns are the prompt's turns. Standard strings: *both* texts
    start with the prompt text, since one reply may quote a short prompt, but two replies that both do
    are the implicit-prompt format with a prompt column added.
    """
    if isinstance(row["chosen"], str) and isinstance(row["rejected"], str):
        head = row["prompt"].strip() if isinstance(row["prompt"], str) else None
        repeats = (
            ["chosen"]
            if head and all(row[k].lstrip().startswith(head) for k in ("chosen", "rejected"))
            else []
        )
    else:
        sides = (("chosen", chosen), ("rejected", rejected))
        repeats = [
            name for name, turns in sides if len(turns) >= len(prompt) and turns[: len(prompt)] == prompt
        ]
    if repeats:
        raise RowError(
            repeats[0],
            "only the response (the 'prompt' column holds the prompt; without a 'prompt' column the "
            "shared start of chosen and rejected is the prompt)",
            "a response that starts with the prompt",
        )


def _turns(value: Any, name: str, ctx: RowContext, role: str, images: Iterator[Any]) -> Messages:
    """A standard string as one ``role`` message, or a conversational list as messages."""
    if isinstance(value, str):
        return (Message(role, fields.as_text(value, name)),)  # type: ignore[arg-type]
    return fields.messages(value, name, ctx, images)


def _implicit_prompt(chosen: str, rejected: str) -> tuple[str, str, str]:
    """TRL's ``extract_prompt`` for strings: the longest shared start, not splitting a word's space."""
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    if 0 < n < len(chosen) and chosen[n - 1] == " ":
        n -= 1
    if n == 0:
        raise RowError(
            "chosen", "text sharing a prompt prefix with rejected (no 'prompt' column)", "no shared prefix"
        )
    for name, rest in (("chosen", chosen[n:]), ("rejected", rejected[n:])):
        if not rest.strip():
            raise RowError(
                name, "a response after the prompt it shares with the other side", "nothing after it"
            )
    return chosen[:n], chosen[n:], rejected[n:]


@dataclass
class Trl(Template):
    """Any TRL format, detected per row."""

    name: ClassVar[str] = "trl"
    yields: ClassVar[tuple[type, ...]] = (Preference, UnpairedPreference, Conversation, PlainText, Prompt)
    shape: ClassVar[str] = "auto"

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> Record:
        shape = detect_shape(row) if self.shape == "auto" else self.shape
        for column in SHAPES[shape]:
            fields.get(row, column, f"a value (TRL {shape} format)")
        pending = fields.as_list(row.get("images", []), "images", ctx, "a list of images", non_empty=False)
        images = iter(pending)
        record = self._parse(shape, row, ctx, images)
        leftover = tuple(
            fields.image_part(image, "images", ctx) for image in images if image not in ("", None)
        )
        return _with_leading_images(record, leftover) if leftover else record

    def _parse(self, shape: str, row: Mapping[str, Any], ctx: RowContext, images: Iterator[Any]) -> Record:
        if shape == "text":
            return PlainText(fields.text(row, "text"))
        if shape == "messages":
            messages = fields.messages(row["messages"], "messages", ctx, images)
            if not any(m.role == "assistant" for m in messages):
                raise RowError("messages", "at least one assistant turn to learn from", "none")
            return Conversation(messages)
        if shape == "preference" and "prompt" not in row:
            return self._implicit(row, ctx, images)
        prompt = _turns(row["prompt"], "prompt", ctx, "user", images)
        if shape == "prompt":
            return Prompt(prompt)
        if shape == "preference":
            chosen = _turns(row["chosen"], "chosen", ctx, "assistant", images)
            rejected = _turns(row["rejected"], "rejected", ctx, "assistant", images)
            fields.distinct(rejected, chosen, "rejected", "chosen")
            _check_not_repeating(row, prompt, chosen, rejected)
            return Preference(prompt, chosen, rejected)
        completion = _turns(row["completion"], "completion", ctx, "assistant", images)
        if shape == "unpaired":
            return UnpairedPreference(prompt, completion, fields.boolean(row, "label"))
        return Conversation(prompt + completion)

    @staticmethod
    def _implicit(row: Mapping[str, Any], ctx: RowContext, images: Iterator[Any]) -> Preference:
        chosen, rejected = row["chosen"], row["rejected"]
        if isinstance(chosen, str) and isinstance(rejected, str):
            if chosen.strip() == rejected.strip():
                raise RowError(
                    "rejected", "a response different from 'chosen'", "the same response as 'chosen'"
                )
            prompt, chosen_text, rejected_text = _implicit_prompt(chosen, rejected)
            return Preference(
                (Message("user", prompt),),
                (Message("assistant", chosen_text),),
                (Message("assistant", rejected_text),),
            )
        chosen_turns = fields.messages(chosen, "chosen", ctx, images)
        rejected_turns = fields.messages(rejected, "rejected", ctx, images)
        return Preference(*fields.split_pair(chosen_turns, rejected_turns, ("chosen", "rejected")))


def _with_leading_images(record: Record, images: tuple) -> Record:
    """Put unplaced row images before the text of the first user turn of the record's prompt."""
    key = "messages" if isinstance(record, (Conversation, Prompt)) else "prompt"
    turns = getattr(record, key, None)
    if not turns or not any(m.role == "user" for m in turns):
        raise RowError(
            "images", "images placed by {'type': 'image'} blocks or a user turn to attach them to", "none"
        )
    i = next(i for i, m in enumerate(turns) if m.role == "user")
    first = turns[i]
    content = (*images, *first.content) if first.is_multimodal else fields.with_images(images, first.content)
    return replace(record, **{key: (*turns[:i], Message("user", content), *turns[i + 1 :])})


@dataclass
class TrlPreference(Trl):
    """TRL preference format only (explicit or implicit prompt) -> ``Preference``."""

    name: ClassVar[str] = "trl-preference"
    yields: ClassVar[tuple[type, ...]] = (Preference,)
    shape: ClassVar[str] = "preference"


@dataclass
class TrlUnpaired(Trl):
    """TRL unpaired preference (KTO) format only -> ``UnpairedPreference``."""

    name: ClassVar[str] = "trl-unpaired"
    yields: ClassVar[tuple[type, ...]] = (UnpairedPreference,)
    shape: ClassVar[str] = "unpaired"


@dataclass
class TrlCompletion(Trl):
    """TRL prompt-completion format only -> ``Conversation``."""

    name: ClassVar[str] = "trl-completion"
    yields: ClassVar[tuple[type, ...]] = (Conversation,)
    shape: ClassVar[str] = "completion"


@dataclass
class TrlMessages(Trl):
    """TRL conversational language modelling (``{messages}``) only -> ``Conversation``."""

    name: ClassVar[str] = "trl-messages"
    yields: ClassVar[tuple[type, ...]] = (Conversation,)
    shape: ClassVar[str] = "messages"


@dataclass
class TrlText(Trl):
    """TRL standard language modelling (``{text}``) only -> ``PlainText``."""

    name: ClassVar[str] = "trl-text"
    yields: ClassVar[tuple[type, ...]] = (PlainText,)
    shape: ClassVar[str] = "text"


@dataclass
class TrlPrompt(Trl):
    """TRL prompt-only format -> ``Prompt``."""

    name: ClassVar[str] = "trl-prompt"
    yields: ClassVar[tuple[type, ...]] = (Prompt,)
    shape: ClassVar[str] = "prompt"
