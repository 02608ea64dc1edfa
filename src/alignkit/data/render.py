"""Records -> token ids and loss masks, through the tokenizer's own chat template.

Why the chat template: a model is trained on exactly the text layout it will see at inference, so the
template that ships with the tokenizer is the only correct source of that layout. Released templates
differ (ChatML for Qwen, headers and ``<|eot_id|>`` for Llama 3, ``<start_of_turn>`` for Gemma,
``[INST]`` for Mistral, ``<|end|>`` plus a trailing EOS for Phi-3, reasoning blocks for Qwen3 and
DeepSeek-R1 distills), and most have no ``{% generation %}`` tags. One rule marks the tokens an
assistant turn produced, whatever the family:

1. **A turn starts where its prompt and the conversation part ways.** The conversation up to the turn,
   rendered with ``add_generation_prompt=True``, and the whole conversation share a token prefix; the
   turn starts at the first token where they differ. For most templates that is the whole prompt (the
   header ``<|im_start|>assistant\n`` is prompt: the model never generates it); where the prompt ends
   with prefill the conversation does not repeat (Qwen3's empty ``<think></think>`` under
   ``enable_thinking=False``, DeepSeek-R1's ``<think>``), the turn starts before it. The split must lie
   in the generation prompt's own tokens: a template that renders the *history* differently has no
   well-defined turn start, unless it has ``{% generation %}`` tags, which then give it.
2. **A turn ends at its end-of-turn token, inclusive** (``end_of_turn_ids``): the special token the
   template writes right after an assistant's content (``<|im_end|>``, ``<|eot_id|>``,
   ``<end_of_turn>``, ``<|end|>``, ``</s>``, ``<｜end▁of▁sentence｜>``) or the tokenizer's EOS. It must
   carry loss or the model never learns to stop. What a template writes after it (ChatML's newline,
   Phi-3's closing EOS) is layout between turns, not response: no loss, and the same cut applies to
   ``{% generation %}`` spans (TRL's training templates put that newline inside the tags).
3. **The turn must contain the assistant's answer.** A template that rewrites or drops the text (or
   whose prompts do not prefix the conversation, e.g. one that renders history differently from the
   newest turn) raises ``ChatTemplateError`` before any training, naming the turn and the fix.

Reward and cost models read their score at the last labelled token, i.e. at this end-of-turn token for
every family (see ``alignkit.models.score_model``), which is also where a rollout stops.

Multi-turn conversations get one span per assistant turn, in one sequence. Templates that drop earlier
turns' reasoning (Qwen3 keeps ``<think>`` only after the last user message, DeepSeek-R1 distills drop it
always) are trained on the history as they render it.

Reasoning (``<think>...</think>``) carries loss by default; ``ChatOptions.reasoning_loss=False``
(``data.reasoning_loss=false``) takes it out, from ``<think>`` (or the turn's start, when the prompt
opened the block) through ``</think>``, so only the answer and the end-of-turn token are learned.

**Multimodal conversations** render through the model's processor (``data/processor.py``) wherever a
tokenizer is taken here: the ids are the processor's, image placeholders already expanded into the
model's count of image tokens, so the same prefix rule marks the assistant turns, and image tokens are
never labelled (they are prompt). ``TokenizedExample.media`` then holds the pixel values. A text model
is the special case with no processor: every text path is unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alignkit.data.processor import check_media_fits, is_processor, processor_render, text_tokenizer
from alignkit.data.reasoning import THINK_CLOSE, THINK_OPEN, split_reasoning

IGNORE_INDEX = -100
GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
"""A ``{% generation %}`` tag; the word alone is in every template (``add_generation_prompt``)."""
PROBE_ANSWER = "Probe answer 42"
"""Content of the probe turn ``end_of_turn_ids`` renders to see what a template writes after an answer."""


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


@dataclass(frozen=True)
class ChatOptions:
    """How a run renders chats; set once on the tokenizer (``set_chat_options``) so every renderer agrees."""

    template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra variables for the template, e.g. ``{"enable_thinking": False}`` for Qwen3."""
    reasoning_loss: bool = True
    """Whether ``<think>...</think>`` tokens in assistant turns carry loss."""


_OPTIONS_ATTR = "_alignkit_chat_options"
_STOPS_ATTR = "_alignkit_end_of_turn"


class ChatTemplateError(ValueError):
    """The chat template cannot say which tokens an assistant turn produced (raised before any training)."""


FIX_HINT = (
    "Fix: give the model a template whose prompts prefix its conversations, or one with "
    "{% generation %} ... {% endgeneration %} around each assistant turn (TRL ships such '*_training.jinja' "
    "copies for released families), via model.chat_template=PATH.jinja."
)


def set_chat_options(tokenizer: Any, options: ChatOptions) -> None:
    if not options.reasoning_loss:
        missing = [t for t in (THINK_OPEN, THINK_CLOSE) if _single_token_id(tokenizer, t) is None]
        if missing:
            raise ChatTemplateError(
                f"data.reasoning_loss=false needs {' and '.join(missing)} as single tokens of the tokenizer "
                "(as in Qwen3 and DeepSeek-R1 distills) to find the reasoning; this tokenizer splits them."
            )
    for target in {
        id(tokenizer): tokenizer,
        id(text_tokenizer(tokenizer)): text_tokenizer(tokenizer),
    }.values():
        setattr(target, _OPTIONS_ATTR, options)
        if hasattr(target, _STOPS_ATTR):
            delattr(target, _STOPS_ATTR)


def chat_options(tokenizer: Any) -> ChatOptions:
    return getattr(tokenizer, _OPTIONS_ATTR, None) or ChatOptions()


def chat_dicts(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """Messages as the ``{"role", "content"}`` dicts chat templates take (records or plain dicts)."""
    return [m.to_chat_dict() if hasattr(m, "to_chat_dict") else dict(m) for m in messages]


def _template_text(tokenizer: Any) -> str:
    template = getattr(tokenizer, "chat_template", None) or ""
    return template if isinstance(template, str) else " ".join(template.values())


def has_generation_tags(tokenizer: Any) -> bool:
    return bool(GENERATION_TAG.search(_template_text(tokenizer)))


def render_ids(
    tokenizer: Any, messages: Sequence[dict[str, Any]], *, add_generation_prompt: bool
) -> list[int]:
    """The template's token ids for ``messages`` (no tokenizer-added BOS: the template writes its own)."""
    from jinja2 import TemplateError

    try:
        if is_processor(tokenizer):
            return processor_render(
                tokenizer,
                messages,
                add_generation_prompt=add_generation_prompt,
                **chat_options(tokenizer).template_kwargs,
            )[0]
        out = tokenizer.apply_chat_template(
            list(messages),
            tokenize=True,
            add_generation_prompt=add_generation_prompt,
            return_dict=True,
            **chat_options(tokenizer).template_kwargs,
        )
    except TemplateError as exc:  # the template's own raise_exception, e.g. 'System role not supported'
        roles = "/".join(m.get("role", "?") for m in messages)
        raise ChatTemplateError(
            f"the chat template refuses a conversation with roles {roles}: {exc}. Convert the data to what the "
            "model's template accepts (e.g. fold a system message into the first user turn for Gemma 2) or "
            "set model.chat_template."
        ) from None
    return list(out["input_ids"])


def _single_token_id(tokenizer: Any, token: str) -> int | None:
    ids = text_tokenizer(tokenizer).encode(token, add_special_tokens=False)
    return ids[0] if len(ids) == 1 else None


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """Tokens that close an assistant turn: the template's own closing token, plus the tokenizer's EOS.

    The template's closing token is read off the template itself: the special token it writes right
    after an assistant's content in a probe conversation (``<|im_end|>``, ``<|eot_id|>``,
    ``<end_of_turn>``, ``<|end|>``, ``</s>`` ...). Released tokenizers do not always name it as EOS
    (Qwen2.5's base EOS is ``<|endoftext|>``, Phi-3's is ``<|endoftext|>`` while turns end with
    ``<|end|>``), so EOS alone would miss the end of every turn. A processor's are its tokenizer's.
    """
    tokenizer = text_tokenizer(tokenizer)
    cached = getattr(tokenizer, _STOPS_ATTR, None)
    if cached is not None and cached[0] == _template_text(tokenizer):
        return list(cached[1])
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    closing = _closing_token(tokenizer)
    if closing is not None:
        ids.add(closing)
    if not ids:
        raise ChatTemplateError(
            "the chat template writes no special token after an assistant's answer and the tokenizer has no "
            "EOS, so nothing marks where a turn ends; set tokenizer eos_token or use a template that closes turns"
        )
    stops = sorted(ids)
    setattr(tokenizer, _STOPS_ATTR, (_template_text(tokenizer), stops))
    return stops


def _closing_token(tokenizer: Any) -> int | None:
    probe = [{"role": "user", "content": "Probe question"}, {"role": "assistant", "content": PROBE_ANSWER}]
    text = tokenizer.apply_chat_template(probe, tokenize=False, **chat_options(tokenizer).template_kwargs)
    at = text.rfind(PROBE_ANSWER)
    if at < 0:
        return None
    after = text[at + len(PROBE_ANSWER) :]
    specials = set(tokenizer.get_added_vocab()) | set(getattr(tokenizer, "all_special_tokens", []))
    matches = [s for s in specials if s and after.startswith(s)]
    if not matches:
        return None
    return int(tokenizer.convert_tokens_to_ids(max(matches, key=len)))


def _tag_runs(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """``[start, end)`` runs of tokens inside ``{% generation %}`` tags."""
    enc = tokenizer.apply_chat_template(
        list(messages),
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
        **chat_options(tokenizer).template_kwargs,
    )
    runs, start = [], None
    mask = [bool(m) for m in enc["assistant_masks"]] + [False]
    for i, inside in enumerate(mask):
        if inside and start is None:
            start = i
        elif not inside and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    return next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def assistant_spans(
    tokenizer: Any, messages: Sequence[dict[str, Any]], *, method: str = "auto"
) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of the conversation and one ``[start, end)`` span per assistant turn (module rule).

    ``method``: 'prefix' locates turns by rendering prompts, 'tags' by the template's ``{% generation %}``
    tags, 'auto' (what training uses) by prompts, falling back to tags where the template has them.
    """
    ids = render_ids(tokenizer, messages, add_generation_prompt=False)
    stops = set(end_of_turn_ids(tokenizer))
    tagged = method == "tags" or (method == "auto" and has_generation_tags(tokenizer))
    runs = _tag_runs(tokenizer, messages) if tagged else None
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        turn = len(spans) + 1
        start = None if method == "tags" else _prompt_end(tokenizer, ids, messages, i, cursor)
        if start is None and runs is not None:
            start = next((a for a, _ in runs if a >= cursor), None)
        if start is None:
            raise ChatTemplateError(_prefix_problem(tokenizer, ids, messages, i, turn))
        end = next((j + 1 for j in range(start, len(ids)) if ids[j] in stops), None)
        if end is None:
            names = ", ".join(repr(tokenizer.convert_ids_to_tokens(s)) for s in sorted(stops))
            raise ChatTemplateError(
                f"assistant turn {turn} is not closed by an end-of-turn token ({names}) in the rendered "
                f"conversation, so the model could not learn to stop. {FIX_HINT}"
            )
        newest = all(m["role"] != "assistant" for m in messages[i + 1 :])
        _check_answer(tokenizer, ids[start:end], message, turn, newest=newest)
        spans.append((start, end))
        cursor = end
    return ids, spans


def _prompt_end(
    tokenizer: Any, ids: list[int], messages: Sequence[dict[str, Any]], i: int, cursor: int
) -> int | None:
    """Where assistant turn ``messages[i]`` starts in ``ids``, or None when its prompt does not lead there.

    The turn starts where the rendered prompt (``add_generation_prompt=True``) and the conversation part
    ways. That must be inside the generation prompt's own tokens (past everything the history renders,
    and past the previous turn): then the history is rendered the same in both, and what the prompt has
    beyond the split is prefill the conversation does not repeat (Qwen3's empty ``<think></think>`` with
    ``enable_thinking=False``, DeepSeek-R1's ``<think>``), which the model never generates here.
    """
    if i == 0:
        return None
    prompt = render_ids(tokenizer, messages[:i], add_generation_prompt=True)
    history = render_ids(tokenizer, messages[:i], add_generation_prompt=False)
    start = _common_prefix(prompt, ids)
    return start if start >= max(_common_prefix(prompt, history), cursor) else None


def _prefix_problem(
    tokenizer: Any, ids: list[int], messages: Sequence[dict[str, Any]], i: int, turn: int
) -> str:
    if i == 0:
        return f"assistant turn {turn} opens the conversation, so it has no prompt to start after. {FIX_HINT}"
    prompt = render_ids(tokenizer, messages[:i], add_generation_prompt=True)
    diverge = _common_prefix(prompt, ids)
    expected = text_tokenizer(tokenizer).decode(prompt[diverge : diverge + 12])
    found = text_tokenizer(tokenizer).decode(ids[diverge : diverge + 12])
    return (
        f"the chat template renders the prompt of assistant turn {turn} (add_generation_prompt=True) "
        f"differently from the same history inside the whole conversation: from token {diverge} the prompt "
        f"has {expected!r} but the conversation has {found!r}. The template rewrites earlier turns depending "
        f"on what follows them (e.g. moves the system message into the newest user turn), so the assistant's "
        f"tokens cannot be located. {FIX_HINT}"
    )


def _squash(text: str) -> str:
    return "".join(text.split())


def _check_answer(
    tokenizer: Any, span: list[int], message: dict[str, Any], turn: int, *, newest: bool
) -> None:
    content = message.get("content")
    if not isinstance(content, str):
        return  # multimodal parts: the text check is the processor's business
    reasoning, answer = split_reasoning(content)
    tokenizer = text_tokenizer(tokenizer)
    rendered = _squash(tokenizer.decode(span, skip_special_tokens=False, clean_up_tokenization_spaces=False))
    if _squash(answer) not in rendered:
        problem = f"which does not contain the assistant's answer {answer[:80]!r}: the template rewrites or drops it"
    elif newest and _squash(reasoning) not in rendered:
        # Earlier turns may lose their reasoning (that is how Qwen3 renders history); the newest may not.
        problem = f"without the turn's reasoning {reasoning[:80]!r}: the template drops <think> blocks"
    else:
        return
    raise ChatTemplateError(
        f"assistant turn {turn} renders as {tokenizer.decode(span)!r}, {problem}, so training would teach "
        f"other text than the data's. {FIX_HINT}"
    )


def _reasoning_positions(tokenizer: Any, ids: list[int], start: int, end: int) -> range:
    close = _single_token_id(tokenizer, THINK_CLOSE)
    closes = [j for j in range(start, end) if ids[j] == close]
    if not closes:
        return range(0)
    opening = _single_token_id(tokenizer, THINK_OPEN)
    opens = [j for j in range(start, closes[0]) if ids[j] == opening]
    return range(opens[0] if opens else start, closes[0] + 1)


def _labels(tokenizer: Any, ids: list[int], spans: Sequence[tuple[int, int]]) -> list[int]:
    labels = [IGNORE_INDEX] * len(ids)
    reasoning_loss = chat_options(tokenizer).reasoning_loss
    for start, end in spans:
        labels[start:end] = ids[start:end]
        if not reasoning_loss:
            for j in _reasoning_positions(tokenizer, ids, start, end):
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


PROBE_CHAT = (
    {"role": "user", "content": "First question"},
    {"role": "assistant", "content": "First answer"},
    {"role": "user", "content": "Second question"},
    {"role": "assistant", "content": "Second answer"},
)


def check_chat_template(tokenizer: Any) -> None:
    """Fail fast, before any work, when the template cannot mark the turns of a plain two-turn chat."""
    assistant_spans(tokenizer, list(PROBE_CHAT))
