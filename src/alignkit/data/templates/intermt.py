"""InterMT (``PKU-Alignment/InterMT``): multi-turn conversations with interleaved images and text.

Two item shapes, told apart by their keys (schemas from align-anything ``projects/intermt``):

* Pair comparison: shared history ``front_convs`` (rounds of prompt/response with images) and
  ``paired_convs`` (the next round's prompt and two candidate responses), judged per dimension in
  ``overall_preference`` (global) and/or ``local_overall_preference`` (local), 1|2|0 (0 = tie).
  -> ``Preference`` whose prompt is the whole history plus the round's prompt; chosen/rejected follow
  the ``dimension`` option, ties on it are skipped and reported (kept, response_1 first, with
  ``keep_ties``), and every dimension's verdict is kept in ``labels`` re-expressed as 1 = chosen
  better, 2 = rejected better, 0 = tie.
  The ``level`` option says what the two sides cover. ``local`` (the default): the round's response
  alone, after the whole history as prompt, so a DPO or score-model loss sees only the judged turn.
  ``global``: the conversation after its first user message, so every assistant turn is labelled (the
  history's answers, shared by both sides, then the round's response).
* Conversation items (score evaluation, crucial-step recognition): ``conversations`` of rounds ->
  ``Conversation`` with the integer annotations in ``labels`` (global ones by name, per-round local
  ones as ``round<r>.<dim>``).

Empty image slots (``""``) are skipped. Images come before the text of their turn, as the InterMT
bench renders them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from alignkit.data.errors import MissingField, RowError
from alignkit.data.records import Conversation, Message, Preference
from alignkit.data.templates import fields
from alignkit.data.templates.base import OPTION_HINT, RowContext, Template

LOCAL_DIMENSIONS: tuple[str, ...] = (
    "local_image_text_consistency",
    "visual_perceptual_quality",
    "text_quality",
    "context_coherence",
)
GLOBAL_DIMENSIONS: tuple[str, ...] = (
    "context_awareness",
    "helpfulness",
    "crucial_step_recognition",
    "global_image_text_consistency",
    "style_coherence",
)
LABEL_FIELDS = ("overall_preference", "local_overall_preference")
LEVELS = ("local", "global")


@dataclass
class InterMT(Template):
    """InterMT pair items -> ``Preference``; conversation items -> ``Conversation``."""

    name: ClassVar[str] = "intermt"
    yields: ClassVar[tuple[type, ...]] = (Preference, Conversation)
    dimension: str = "helpfulness"
    """The dimension whose verdict picks chosen/rejected (one of the 9; local files need a local one)."""
    keep_ties: bool = False
    """Keep the pairs tied on ``dimension`` instead of skipping them: response_1 is then ``chosen`` and the
    labels stay as given (0 on ``dimension``). For evaluation, which counts ties itself (judge agreement
    reads every dimension of every pair); never for training, where a tie has no chosen response."""
    level: str = "local"
    """What a pair's chosen/rejected cover: ``local``, the judged round's response only (loss on that
    turn; the history is prompt); ``global``, the whole conversation after its first user message (loss
    on every assistant turn). ``global`` needs a global ``dimension``: a local verdict judges one turn."""

    def __post_init__(self) -> None:
        if self.dimension not in LOCAL_DIMENSIONS + GLOBAL_DIMENSIONS:
            raise ValueError(
                f"intermt option dimension: expected one of {', '.join(LOCAL_DIMENSIONS + GLOBAL_DIMENSIONS)}, "
                f"got {self.dimension!r}"
            )
        if self.level not in LEVELS:
            raise ValueError(f"intermt option level: expected one of {', '.join(LEVELS)}, got {self.level!r}")
        if self.level == "global" and self.dimension in LOCAL_DIMENSIONS:
            raise ValueError(
                f"intermt option level 'global' trains on the whole conversation, but dimension "
                f"{self.dimension!r} judges one turn: set level=local, or a global dimension "
                f"({', '.join(GLOBAL_DIMENSIONS)})"
            )

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> Preference | Conversation:
        if "paired_convs" in row:
            return self._pair(row, ctx)
        if "conversations" in row:
            return self._conversation(row, ctx)
        raise RowError(
            "paired_convs", "an InterMT pair item (front_convs, paired_convs) or 'conversations'", "neither"
        )

    def _pair(self, row: Mapping[str, Any], ctx: RowContext) -> Preference:
        front = fields.as_list(
            row.get("front_convs", []), "front_convs", ctx, "a list of rounds", non_empty=False
        )
        history: list[Message] = []
        for i, turn in enumerate(front):
            history.extend(_round(turn, f"front_convs[{i}]", ctx))
        pair = fields.as_mapping(
            row["paired_convs"], "paired_convs", ctx, "a dict with prompt, response_1, response_2"
        )
        history.append(fields.user(_turn_content(pair, "prompt", "paired_convs", ctx)))
        responses = {
            k: (fields.assistant(_turn_content(pair, f"response_{k}", "paired_convs", ctx)),) for k in (1, 2)
        }
        fields.distinct(responses[2], responses[1], "paired_convs.response_2", "paired_convs.response_1")

        labels: dict[str, int] = {}
        for key in LABEL_FIELDS:
            if key in row:
                verdicts = fields.as_mapping(row[key], key, ctx, "a dict of dimension -> 1, 2 or 0")
                labels.update(
                    {dim: fields.as_int(v, f"{key}.{dim}", (1, 2, 0)) for dim, v in verdicts.items()}
                )
        field = f"{'local_' if self.dimension in LOCAL_DIMENSIONS else ''}overall_preference.{self.dimension}"
        if self.dimension not in labels:
            raise MissingField(
                field,
                f"a 1|2|0 verdict for '{self.dimension}' (choose a judged dimension with template option "
                f"dimension, set {OPTION_HINT})",
            )
        tied = self.keep_ties and labels[self.dimension] == 0
        winner = 1 if tied else fields.pick_winner(labels, self.dimension, field)
        # global: the prompt is the first user message and each side carries the rest of the conversation.
        cut = 1 if self.level == "global" else len(history)
        prompt, shared = tuple(history[:cut]), tuple(history[cut:])
        return Preference(
            prompt,
            shared + responses[winner],
            shared + responses[3 - winner],
            fields.orient_labels(labels, winner),
        )

    @staticmethod
    def _conversation(row: Mapping[str, Any], ctx: RowContext) -> Conversation:
        rounds = fields.as_list(row["conversations"], "conversations", ctx, "a non-empty list of rounds")
        messages: list[Message] = []
        labels: dict[str, int] = {}
        for i, item in enumerate(rounds):
            name = f"conversations[{i}]"
            item = fields.as_mapping(item, name, ctx, "a round dict")
            turn = item.get("round_conversations", item)
            if "prompt" in turn:
                messages.extend(
                    _round(turn, f"{name}.round_conversations" if turn is not item else name, ctx)
                )
            annotations = fields.as_mapping(item.get("annotations", {}), f"{name}.annotations", ctx, "a dict")
            prefix = f"round{item['round']}." if "prompt" in turn and "round" in item else ""
            for dim, score in annotations.items():
                labels[prefix + dim] = fields.as_int(score, f"{name}.annotations.{dim}")
        annotation = fields.as_mapping(row.get("annotation", {}), "annotation", ctx, "a dict")
        labels.update(
            {
                k: fields.as_int(v, f"annotation.{k}")
                for k, v in annotation.items()
                if not k.startswith("reason")
            }
        )
        if not messages:
            raise RowError("conversations", "at least one round with a prompt and response", "none")
        return Conversation(tuple(messages), labels)


def _turn_content(turn: Mapping[str, Any], key: str, name: str, ctx: RowContext) -> str | tuple:
    """``turn[key]`` text with the images of ``turn[key + '_images']`` before it."""
    text = fields.as_text(fields.get(turn, key, "a non-empty string", name), f"{name}.{key}")
    images = fields.image_list(turn.get(f"{key}_images", []), f"{name}.{key}_images", ctx)
    return fields.with_images(images, text)


def _round(turn: Any, name: str, ctx: RowContext) -> tuple[Message, Message]:
    turn = fields.as_mapping(turn, name, ctx, "a round dict with prompt and response")
    return fields.user(_turn_content(turn, "prompt", name, ctx)), fields.assistant(
        _turn_content(turn, "response", name, ctx)
    )
