"""Anthropic HH-RLHF (``Anthropic/hh-rlhf``): two whole transcripts that differ in the last reply.

Each of ``chosen``/``rejected`` is "\\n\\nHuman: ...\\n\\nAssistant: ..." text. As TRL and safe-rlhf do,
the prompt is the text both share up to its last "\\n\\nAssistant:"; the rest of each transcript is
its response. The prompt is then split into user/assistant turns, so multi-turn context survives.
A response must be that one last reply: transcripts that differ before their last Assistant turn, or
end on a Human turn, hold no single pair of replies to compare and are refused, as are identical
transcripts and empty replies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from alignkit.data.errors import RowError
from alignkit.data.records import Message, Preference
from alignkit.data.templates import fields
from alignkit.data.templates.base import RowContext, Template

ASSISTANT = "\n\nAssistant:"
_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLE = {"Human": "user", "Assistant": "assistant"}


def parse_transcript(transcript: str, field: str) -> tuple[Message, ...]:
    """Split "\\n\\nHuman: a\\n\\nAssistant: b" into messages; text before the first marker is an error."""
    pieces = _TURN.split(transcript)
    if pieces[0].strip():
        raise RowError(field, 'a transcript starting with "\\n\\nHuman:"', repr(pieces[0][:40]))
    turns = []
    for speaker, text in zip(pieces[1::2], pieces[2::2], strict=True):
        turns.append(Message(_ROLE[speaker], text.strip()))
    return tuple(turns)


@dataclass
class HhRlhf(Template):
    """``{chosen, rejected}`` transcripts -> ``Preference`` with a multi-turn prompt."""

    name: ClassVar[str] = "hh-rlhf"
    yields: ClassVar[tuple[type, ...]] = (Preference,)

    def parse(self, row: Mapping[str, Any], ctx: RowContext) -> Preference:
        chosen = fields.text(row, "chosen")
        rejected = fields.text(row, "rejected")
        if chosen.strip() == rejected.strip():
            raise RowError("rejected", "a transcript different from 'chosen'", "the same transcript")
        n = 0
        while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
            n += 1
        cut = chosen.rfind(ASSISTANT, 0, n)  # the last marker lying wholly inside the shared text
        if cut < 0:
            raise RowError(
                "chosen", 'a transcript sharing a prefix ending in "\\n\\nAssistant:" with rejected', "none"
            )
        end = cut + len(ASSISTANT)
        prompt = parse_transcript(chosen[:cut], "chosen")
        if not prompt or prompt[-1].role != "user":
            raise RowError("chosen", "a prompt ending with a Human turn", repr(chosen[:end][-40:]))
        replies = {
            name: _last_reply(text, end, name) for name, text in (("chosen", chosen), ("rejected", rejected))
        }
        return Preference(
            prompt,
            (Message("assistant", replies["chosen"]),),
            (Message("assistant", replies["rejected"]),),
        )


def _last_reply(transcript: str, start: int, field: str) -> str:
    """The reply after the shared prompt: one non-empty Assistant turn that ends the transcript."""
    reply = transcript[start:]
    markers = _TURN.findall(reply)
    if markers:
        ends_on_human = parse_transcript(transcript, field)[-1].role == "user"
        got = (
            "a transcript ending on a Human turn"
            if ends_on_human
            else "a transcript that differs from the other before its last Assistant turn"
        )
        raise RowError(
            field, "a transcript whose last turn is the only one that differs: an Assistant reply", got
        )
    if not reply.strip():
        raise RowError(field, "a non-empty last Assistant reply", "an empty reply")
    return reply.strip()
