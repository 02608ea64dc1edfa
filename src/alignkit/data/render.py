"""Records -> token ids and loss masks, through the tokenizer's own chat template.

Why the chat template: a model is trained on exactly the text layout it will see at inference, so the
template that ships with the tokenizer is the only correct source of that layout. Which tokens an
assistant turn produced is one rule for every family, ``alignkit.data.turns`` (its docstring is the
contract): a turn starts where its rendered prompt and the conversation part ways, ends at its end-of-turn
token inclusive, and must contain the assistant's answer, else ``ChatTemplateError`` names the fix. One
render through the template (``render_ids``), the run's ``ChatOptions`` and the end-of-turn tokens are
``alignkit.data.chat_template``'s; this module turns spans into examples, and is where callers import all of
it from.

Reward and cost models read their score at the last labelled token, i.e. at the end-of-turn token for
every family (see ``alignkit.models.score_model``), which is also where a rollout stops.

Reasoning (``<think>...</think>``) carries loss by default; ``ChatOptions.reasoning_loss=False``
(``data.reasoning_loss=false``) takes it out, from ``<think>`` (or the turn's start, when the prompt
opened the block) through ``</think>``, so only the answer and the end-of-turn token are learned.

**Multimodal conversations** render through the model's processor (``data/processor.py``) wherever a
tokenizer is taken here: the ids are the processor's, image placeholders already expanded into the
model's count of image tokens, so the same prefix rule marks the assistant turns, and image tokens are
never labelled (they are prompt). ``TokenizedExample.media`` then holds the pixel values. A text model
is the special case with no processor: every text path is unchanged.

Tokenising a dataset: wrap the loop in ``shared_renders()`` so conversations that share a prompt (a DPO
pair's sides) render it once; the examples are the same with or without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alignkit.data.chat_template import (
    FIX_HINT,
    GENERATION_TAG,
    PROBE_ANSWER,
    ChatOptions,
    ChatTemplateError,
    chat_dicts,
    chat_options,
    end_of_turn_ids,
    has_generation_tags,
    render_ids,
    set_chat_options,
    shared_renders,
    single_token_id,
)
from alignkit.data.processor import check_media_fits, is_processor, processor_render
from alignkit.data.reasoning import THINK_CLOSE, THINK_OPEN
from alignkit.data.turns import PROBE_CHAT, assistant_spans, check_chat_template

__all__ = [
    "FIX_HINT",
    "GENERATION_TAG",
    "IGNORE_INDEX",
    "PROBE_ANSWER",
    "PROBE_CHAT",
    "ChatOptions",
    "ChatTemplateError",
    "TokenizedExample",
    "assistant_spans",
    "assistant_token_mask",
    "chat_dicts",
    "chat_options",
    "check_chat_template",
    "end_of_turn_ids",
    "has_generation_tags",
    "render_conversation",
    "render_ids",
    "render_prompt",
    "render_prompt_inputs",
    "render_response",
    "set_chat_options",
    "shared_renders",
]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    """``input_ids`` where the token carries loss, ``IGNORE_INDEX`` elsewhere."""
    truncated: bool = False
    media: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    """Tensors the model's forward takes besides the ids (``pixel_values``...); None for text."""

    @property
    def num_loss_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def _reasoning_positions(
    ids: list[int], start: int, end: int, opening: int | None, close: int | None
) -> range:
    closes = [j for j in range(start, end) if ids[j] == close]
    if not closes:
        return range(0)
    opens = [j for j in range(start, closes[0]) if ids[j] == opening]
    return range(opens[0] if opens else start, closes[0] + 1)


def _labels(tokenizer: Any, ids: list[int], spans: Sequence[tuple[int, int]]) -> list[int]:
    labels = [IGNORE_INDEX] * len(ids)
    reasoning_loss = chat_options(tokenizer).reasoning_loss
    if not reasoning_loss:
        opening, close = single_token_id(tokenizer, THINK_OPEN), single_token_id(tokenizer, THINK_CLOSE)
    for start, end in spans:
        labels[start:end] = ids[start:end]
        if not reasoning_loss:
            for j in _reasoning_positions(ids, start, end, opening, close):
                labels[j] = IGNORE_INDEX
    return labels


def assistant_token_mask(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> tuple[list[int], list[bool]]:
    """Token ids of the whole conversation and, per token, whether it carries loss (module rule)."""
    ids, spans = assistant_spans(tokenizer, messages)
    return ids, [label != IGNORE_INDEX for label in _labels(tokenizer, ids, spans)]


def _truncate(
    ids: list[int], labels: list[int], max_length: int, renderer: Any = None, messages: Any = None
) -> TokenizedExample:
    if not is_processor(renderer):
        return TokenizedExample(
            input_ids=ids[:max_length], labels=labels[:max_length], truncated=len(ids) > max_length
        )
    check_media_fits(renderer, ids, max_length)
    media = processor_render(
        renderer, messages, add_generation_prompt=False, **chat_options(renderer).template_kwargs
    )[1]
    return TokenizedExample(ids[:max_length], labels[:max_length], len(ids) > max_length, media or None)


def render_conversation(tokenizer: Any, messages: Sequence[Any], max_length: int) -> TokenizedExample:
    """An SFT example: loss on every assistant turn only, truncated on the right to ``max_length``.

    ``tokenizer`` may be a processor: the example then carries the pictures' ``media`` tensors."""
    dicts = chat_dicts(messages)
    ids, spans = assistant_spans(tokenizer, dicts)
    return _truncate(ids, _labels(tokenizer, ids, spans), max_length, tokenizer, dicts)


def render_prompt(tokenizer: Any, messages: Sequence[Any]) -> list[int]:
    """Token ids of a prompt ready for generation (the assistant turn opened, nothing in it yet)."""
    return render_ids(tokenizer, chat_dicts(messages), add_generation_prompt=True)


def render_prompt_inputs(renderer: Any, messages: Sequence[Any]) -> tuple[list[int], dict[str, Any]]:
    """A prompt's ids and media tensors (``{}`` for a tokenizer or a prompt without pictures)."""
    if not is_processor(renderer):
        return render_prompt(renderer, messages), {}
    return processor_render(
        renderer, chat_dicts(messages), add_generation_prompt=True, **chat_options(renderer).template_kwargs
    )


def render_response(
    tokenizer: Any, prompt: Sequence[Any], response: Sequence[Any], max_length: int
) -> TokenizedExample:
    """A prompt followed by one response: loss/score positions are the response's assistant tokens only.

    Used by reward and cost models (score at the last labelled token: the end-of-turn token) and by DPO
    (summed log-probs over the labelled tokens). Assistant turns inside a multi-turn ``prompt`` carry no
    label: only the response being judged does.
    """
    prompt_dicts = chat_dicts(prompt)
    dicts = prompt_dicts + chat_dicts(response)
    ids, spans = assistant_spans(tokenizer, dicts)
    in_prompt = sum(m["role"] == "assistant" for m in prompt_dicts)
    return _truncate(ids, _labels(tokenizer, ids, spans[in_prompt:]), max_length, tokenizer, dicts)
