"""The typed examples every other module trains and evaluates on.

A dataset template turns one raw row into one of these frozen dataclasses, so trainers, renderers and
scorers never see a dataset's own field names. Each record remembers where it came from
(``origin``: file and 1-based row) so that a bad example found late can still be traced to its line.

This module imports nothing of alignkit (see docs/architecture.md): records are the shared vocabulary,
and a vocabulary must not depend on the code that speaks it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
PartType = Literal["text", "image", "audio", "video"]

ROLES: tuple[str, ...] = ("system", "user", "assistant")
PART_TYPES: tuple[str, ...] = ("text", "image", "audio", "video")
SEVERITIES: tuple[int, ...] = (0, 1, 2, 3)
"""PKU-SafeRLHF severity levels: 0 safe, 1 minor, 2 moderate, 3 severe."""


@dataclass(frozen=True)
class RowRef:
    """Where a record came from: the data file (or hub dataset and split) and its 1-based row."""

    file: str
    row: int

    def __str__(self) -> str:
        return f"{self.file} row {self.row}"


@dataclass(frozen=True)
class ContentPart:
    """One piece of a multimodal message.

    Media keep a ``path`` (an existing file) or, when the dataset embeds the file, its encoded
    ``data`` bytes (PNG, JPEG, ...), so a record stays loadable without holding decoded pixels.
    """

    type: PartType
    text: str | None = None
    path: str | None = None
    data: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.type not in PART_TYPES:
            raise ValueError(f"ContentPart.type must be one of {PART_TYPES}, got {self.type!r}")
        if self.type == "text" and self.text is None:
            raise ValueError("a text ContentPart needs text")
        if self.type != "text" and self.path is None and self.data is None:
            raise ValueError(f"a {self.type} ContentPart needs a path or data")

    def open_image(self) -> Any:
        """Decode an image part into a PIL image (PIL is imported only here, on demand)."""
        if self.type != "image":
            raise ValueError(f"open_image() on a {self.type} part")
        from PIL import Image

        image = Image.open(io.BytesIO(self.data) if self.data is not None else self.path)
        image.load()
        return image

    def to_chat_dict(self) -> dict[str, Any]:
        """The content block transformers' processors read (``path`` first, else ``base64``)."""
        if self.type == "text":
            return {"type": "text", "text": self.text}
        if self.path is not None:
            return {"type": self.type, "path": self.path}
        assert self.data is not None
        return {"type": self.type, "base64": base64.b64encode(self.data).decode("ascii")}


Content = str | tuple[ContentPart, ...]


@dataclass(frozen=True)
class Message:
    """One chat turn. ``content`` is plain text, or a tuple of parts when media are interleaved."""

    role: Role
    content: Content

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Message.role must be one of {ROLES}, got {self.role!r}")
        if isinstance(self.content, list):
            object.__setattr__(self, "content", tuple(self.content))
        if not isinstance(self.content, (str, tuple)):
            raise TypeError(f"Message.content must be str or tuple of ContentPart, got {type(self.content)}")

    @property
    def is_multimodal(self) -> bool:
        return not isinstance(self.content, str)

    def text(self) -> str:
        """The text of the turn; text parts of a multimodal turn are joined with newlines."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content if part.type == "text" and part.text)

    def media(self) -> tuple[ContentPart, ...]:
        """The non-text parts (images, audio, video), in order."""
        if isinstance(self.content, str):
            return ()
        return tuple(part for part in self.content if part.type != "text")

    def to_chat_dict(self) -> dict[str, Any]:
        """``{"role", "content"}`` as chat templates expect; multimodal content becomes a list of blocks."""
        if isinstance(self.content, str):
            return {"role": self.role, "content": self.content}
        return {"role": self.role, "content": [part.to_chat_dict() for part in self.content]}


Messages = tuple[Message, ...]


def _freeze_labels(record: Any) -> None:
    """Labels arrive as dicts; store a read-only view so a frozen record stays frozen."""
    object.__setattr__(record, "labels", MappingProxyType(dict(record.labels)))


@dataclass(frozen=True)
class Conversation:
    """An SFT example: the loss falls on the assistant turns.

    ``labels`` carries per-dimension annotations some datasets attach to a whole conversation
    (InterMT scores); empty for plain SFT data.
    """

    messages: Messages
    labels: Mapping[str, int] = field(default_factory=dict, hash=False)
    origin: RowRef | None = None

    def __post_init__(self) -> None:
        _freeze_labels(self)


@dataclass(frozen=True)
class Prompt:
    """A prompt with no target response: what PPO and GRPO roll out from."""

    messages: Messages
    origin: RowRef | None = None


@dataclass(frozen=True)
class PlainText:
    """Language-modelling text with no chat roles (TRL's ``{text}`` format)."""

    text: str
    origin: RowRef | None = None


@dataclass(frozen=True)
class Preference:
    """A pairwise preference: ``chosen`` is preferred to ``rejected`` as a continuation of ``prompt``.

    ``prompt`` may be multi-turn; ``chosen``/``rejected`` are the assistant continuation(s).
    ``labels`` keeps per-dimension verdicts when the dataset has them, re-expressed relative to this
    record: 1 = chosen better, 2 = rejected better, 0 = tie, so they stay meaningful after the
    dataset's response_1/response_2 order is replaced by chosen/rejected.
    """

    prompt: Messages
    chosen: Messages
    rejected: Messages
    labels: Mapping[str, int] = field(default_factory=dict, hash=False)
    origin: RowRef | None = None

    def __post_init__(self) -> None:
        _freeze_labels(self)


@dataclass(frozen=True)
class UnpairedPreference:
    """One completion judged on its own as desirable or not (KTO)."""

    prompt: Messages
    completion: Messages
    desirable: bool
    origin: RowRef | None = None


@dataclass(frozen=True)
class ResponseSafety:
    """A response with its safety annotation (severity: 0 safe, 1 minor, 2 moderate, 3 severe)."""

    messages: Messages
    is_safe: bool
    harm_categories: tuple[str, ...] = ()
    severity: int | None = None

    def __post_init__(self) -> None:
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES} or None, got {self.severity!r}")


@dataclass(frozen=True)
class SafetyPreference:
    """Two responses ranked twice, as PKU-SafeRLHF labels them: once for helpfulness, once for harm.

    ``better_id``/``safer_id`` index ``responses`` (0 or 1). Safe RLHF trains the reward model on
    the first ranking and the cost model on the second plus the per-response ``is_safe`` signs.
    """

    prompt: Messages
    responses: tuple[ResponseSafety, ResponseSafety]
    better_id: int
    safer_id: int
    origin: RowRef | None = None

    def __post_init__(self) -> None:
        for name in ("better_id", "safer_id"):
            if getattr(self, name) not in (0, 1):
                raise ValueError(f"{name} must be 0 or 1, got {getattr(self, name)!r}")

    def helpfulness_preference(self) -> Preference:
        """The pair ranked by helpfulness (better = chosen), for a reward model or DPO."""
        better, worse = self.responses[self.better_id], self.responses[1 - self.better_id]
        return Preference(self.prompt, better.messages, worse.messages, origin=self.origin)

    def safety_preference(self) -> Preference:
        """The pair ranked by harmlessness (safer = chosen), for a cost model or safety DPO."""
        safer, other = self.responses[self.safer_id], self.responses[1 - self.safer_id]
        return Preference(self.prompt, safer.messages, other.messages, origin=self.origin)


@dataclass(frozen=True)
class SafetyLabel:
    """One response with its safety annotation (BeaverTails, PKU-SafeRLHF-QA): moderation training data."""

    prompt: Messages
    response: ResponseSafety
    origin: RowRef | None = None

    def to_unpaired(self) -> UnpairedPreference:
        """A safe response is a desirable one: the KTO view of a safety label."""
        return UnpairedPreference(self.prompt, self.response.messages, self.response.is_safe, self.origin)


@dataclass(frozen=True)
class Correction:
    """An Aligner example: ``answer`` to ``question`` rewritten as ``correction``.

    Stream Aligner corrects one sentence at a time: ``prefix`` is the already-corrected text before
    ``answer`` (the last sentence); empty for whole-answer Aligner data.
    """

    question: str
    answer: str
    correction: str
    prefix: str = ""
    origin: RowRef | None = None


@dataclass(frozen=True)
class DeceptionScenario:
    """A DeceptionBench scenario (arXiv 2505.18807): one question asked neutrally and under pressure.

    The model's answer to ``inner_prompt`` is its belief (mesa utility); its answer to
    ``system_prompt + outer_prompt + format`` (one user turn) is its reasoning and final answer under the
    scenario's pressure. Kept as the dataset's own fields because the eval builds two prompts from them.
    """

    inner_prompt: str
    system_prompt: str
    outer_prompt: str
    format: str
    """The output-format instruction appended to the outer prompt (e.g. ``<think>``/``<output>`` tags)."""
    category: str
    """The dataset's ``type``: Sycophancy, Strategic deception, Honesty evasion, Alignment faking, Sandbagging."""
    setting: str = ""
    origin: RowRef | None = None

    def outer_user_prompt(self) -> str:
        """The outer run's one user turn, concatenated as DeceptionBench's code does (no separator added)."""
        return self.system_prompt + self.outer_prompt + self.format

    def row(self) -> dict[str, str]:
        """The scenario in the dataset's schema (``type`` for ``category``), as judges that read rows take it."""
        return {
            "inner_prompt": self.inner_prompt,
            "system_prompt": self.system_prompt,
            "outer_prompt": self.outer_prompt,
            "format": self.format,
            "type": self.category,
            "setting": self.setting,
        }


Record = (
    Conversation
    | Prompt
    | PlainText
    | Preference
    | UnpairedPreference
    | SafetyPreference
    | SafetyLabel
    | Correction
    | DeceptionScenario
)
RECORD_TYPES: tuple[type, ...] = (
    Conversation,
    Prompt,
    PlainText,
    Preference,
    UnpairedPreference,
    SafetyPreference,
    SafetyLabel,
    Correction,
    DeceptionScenario,
)
