"""Aligner corrections (``aligner/aligner-20K``) and Stream Aligner (``htlou/stream-aligner``).

Aligner learns to rewrite a whole answer; Stream Aligner rewrites the last sentence given the
already-corrected ``prefix``. Both are ``Correction`` records; the prefix is empty for Aligner.

The corrector is trained by plain SFT: ``aligner-chat`` and ``stream-aligner-chat`` read the same rows as
one-turn conversations, the user turn being the corrector's input prompt (``ALIGNER_PROMPTS``) and the
assistant turn the correction, so the loss falls on the correction only (−log μ(y_c | x, y_o), arXiv
2402.02416). The prompt is an option because a checkpoint only works with the prompt it was trained on;
``AlignerGenerator`` fills the same one at inference (``aligner_prompt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from alignkit.data.errors import TemplateError
from alignkit.data.records import Conversation, Correction, Message
from alignkit.data.templates import fields
from alignkit.data.templates.base import RowContext, Template

ALIGNER_PROMPTS: dict[str, str] = {
    "aligner": "##Question: {question}\n##Answer: {answer}\n##Correction: ",
    "aligner-7b": (
        "Edit the following Question-Answer pair to make it more helpful and harmless: {question} | {answer}"
    ),
    "stream-aligner": "##Question: {question}\n##Answer prefix: {prefix}\n##Last sentence: {last}\n##Correction: ",
}
"""Built-in corrector prompts. ``aligner``: the PKU-Alignment/aligner repo's training layout (its
USER/ASSISTANT frame is the model's own chat template here); ``aligner-7b``: the released Aligner-7B's;
``stream-aligner``: question, accepted prefix and last sentence in labelled fields (htlou/stream-aligner)."""

STREAM_END = "<end>"
"""The correction that tells Stream Aligner to stop: the answer so far is complete."""


def resolve_prompt(prompt: str, slots: tuple[str, ...]) -> str:
    """A built-in prompt's text, or ``prompt`` itself when it is a format string naming every slot."""
    text = ALIGNER_PROMPTS.get(prompt, prompt)
    missing = [s for s in slots if "{" + s + "}" not in text]
    if missing:
        raise TemplateError(
            f"corrector prompt {prompt!r} is neither a built-in ({', '.join(ALIGNER_PROMPTS)}) nor a format "
            f"string with the slots {', '.join('{' + s + '}' for s in slots)} (missing {missing})"
        )
    return text


def aligner_prompt(question: str, answer: str, prompt: str = "aligner", prefix: str = "") -> str:
    """The corrector's input for one answer: ``prompt`` (a built-in name or a format string) filled in.

    With a Stream Aligner prompt, ``answer`` is the last sentence and ``prefix`` the accepted text before it.
    """
    text = ALIGNER_PROMPTS.get(prompt, prompt)
    # str.replace, not str.format: questions and answers may hold braces
    return (
        text.replace("{question}", question)
        .replace("{answer}", answer)
        .replace("{last}", answer)
        .replace("{prefix}", prefix)
    )


@dataclass
class Aligner(Template):
    """``{question, answer, correction}`` -> ``Correction``."""

    name: ClassVar[str] = "aligner"
    yields: ClassVar[tuple[type, ...]] = (Correction,)

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> Correction:
        return Correction(
            question=fields.text(row, "question"),
            answer=fields.text(row, "answer"),
            correction=fields.text(row, "correction"),
        )


@dataclass
class StreamAligner(Template):
    """``{question, prefix, last, correction}`` -> ``Correction`` with ``answer = last``."""

    name: ClassVar[str] = "stream-aligner"
    yields: ClassVar[tuple[type, ...]] = (Correction,)

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> Correction:
        return Correction(
            question=fields.text(row, "question"),
            answer=fields.text(row, "last"),
            correction=fields.text(row, "correction"),
            prefix=fields.text(row, "prefix", allow_empty=True),
        )


def _conversation(record: Correction, prompt: str, identity: bool) -> Conversation:
    user = aligner_prompt(record.question, record.answer, prompt, record.prefix)
    target = record.answer if identity else record.correction
    return Conversation((Message("user", user), Message("assistant", target)))


@dataclass
class AlignerChat(Aligner):
    """Aligner rows as SFT conversations for the corrector: user = ``prompt`` filled, assistant = correction.

    ``identity=True`` targets the answer itself (correction := answer): the paper's warm-up stage, run as a
    first SFT before the correction data."""

    name: ClassVar[str] = "aligner-chat"
    yields: ClassVar[tuple[type, ...]] = (Conversation,)
    prompt: str = "aligner"
    """A built-in corrector prompt (``aligner``, ``aligner-7b``) or a format string with {question}, {answer}."""
    identity: bool = False
    """Warm-up data: learn to copy the answer (correction := answer)."""

    def __post_init__(self) -> None:
        resolve_prompt(self.prompt, ("question", "answer"))

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> Conversation:  # type: ignore[override]
        return _conversation(super().parse(row, ctx), self.prompt, self.identity)


@dataclass
class StreamAlignerChat(StreamAligner):
    """Stream Aligner rows as SFT conversations: user = ``prompt`` with question, prefix and last sentence."""

    name: ClassVar[str] = "stream-aligner-chat"
    yields: ClassVar[tuple[type, ...]] = (Conversation,)
    prompt: str = "stream-aligner"
    """A built-in prompt (``stream-aligner``) or a format string with {question}, {prefix}, {last}."""
    identity: bool = False
    """Warm-up data: learn to copy the last sentence."""

    def __post_init__(self) -> None:
        resolve_prompt(self.prompt, ("question", "prefix", "last"))

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> Conversation:  # type: ignore[override]
        return _conversation(super().parse(row, ctx), self.prompt, self.identity)
