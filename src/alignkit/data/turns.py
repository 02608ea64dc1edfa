"""Which tokens of a rendered conversation each assistant turn produced: one rule for every family.

Released templates differ (ChatML for Qwen, headers and ``<|eot_id|>`` for Llama 3, ``<start_of_turn>``
for Gemma, ``[INST]`` for Mistral, ``<|end|>`` plus a trailing EOS for Phi-3, reasoning blocks for Qwen3
and DeepSeek-R1 distills), and most have no ``{% generation %}`` tags. One rule marks the tokens an
assistant turn produced, whatever the family:

1. **A turn starts where its prompt and the conversation part ways.** The conversation up to the turn,
   rendered with ``add_generation_prompt=True``, and the whole conversation share a token prefix; the
   turn starts at the first token where they differ. For most templates that is the whole prompt (the
   header ``<|im_start|>assistant\\n`` is prompt: the model never generates it); where the prompt ends
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

Multi-turn conversations get one span per assistant turn, in one sequence. Templates that drop earlier
turns' reasoning (Qwen3 keeps ``<think>`` only after the last user message, DeepSeek-R1 distills drop it
always) are trained on the history as they render it.

**Renders a conversation costs.** The whole conversation once, and each assistant turn's prompt once
(shared with the other conversations of a ``shared_renders()`` block: a DPO pair's sides). The history
without the generation prompt is rendered only when the split falls inside the prompt (prefill), as only
then can it lie before the generation prompt's own tokens; the ``{% generation %}`` tags only when the
prompt rule fails. A single-turn example is two renders, a DPO pair three.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alignkit.data.chat_template import (
    FIX_HINT,
    ChatTemplateError,
    chat_options,
    end_of_turn_ids,
    has_generation_tags,
    render_ids,
    shared_renders,
)
from alignkit.data.processor import text_tokenizer
from alignkit.data.reasoning import split_reasoning

PROBE_CHAT = (
    {"role": "user", "content": "First question"},
    {"role": "assistant", "content": "First answer"},
    {"role": "user", "content": "Second question"},
    {"role": "assistant", "content": "Second answer"},
)


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


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the usual case (a prompt that prefixes its conversation), compared at C speed
        return n
    return next((k for k in range(n) if a[k] != b[k]), n)


def assistant_spans(
    tokenizer: Any, messages: Sequence[dict[str, Any]], *, method: str = "auto"
) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of the conversation and one ``[start, end)`` span per assistant turn (module rule).

    ``method``: 'prefix' locates turns by rendering prompts, 'tags' by the template's ``{% generation %}``
    tags, 'auto' (what training uses) by prompts, falling back to tags where the template has them.
    """
    with shared_renders():  # an error message renders a prompt again: the same render
        return _assistant_spans(tokenizer, messages, method)


def _assistant_spans(
    tokenizer: Any, messages: Sequence[dict[str, Any]], method: str
) -> tuple[list[int], list[tuple[int, int]]]:
    ids = render_ids(tokenizer, messages, add_generation_prompt=False)
    stops = set(end_of_turn_ids(tokenizer))
    tagged = method == "tags" or (method == "auto" and has_generation_tags(tokenizer))
    runs: list[tuple[int, int]] | None = None  # rendered when first needed
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        turn = len(spans) + 1
        start = None if method == "tags" else _prompt_end(tokenizer, ids, messages, i, cursor)
        if start is None and tagged:
            runs = _tag_runs(tokenizer, messages) if runs is None else runs
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
    start = common_prefix(prompt, ids)
    if start < cursor:
        return None
    if start == len(prompt):
        # The whole prompt prefixes the conversation: the split is past all the prompt's tokens, so past
        # its shared prefix with the history (at most the prompt's length); no need to render the history.
        return start
    history = render_ids(tokenizer, messages[:i], add_generation_prompt=False)
    return start if start >= common_prefix(prompt, history) else None


def _prefix_problem(
    tokenizer: Any, ids: list[int], messages: Sequence[dict[str, Any]], i: int, turn: int
) -> str:
    if i == 0:
        return f"assistant turn {turn} opens the conversation, so it has no prompt to start after. {FIX_HINT}"
    prompt = render_ids(tokenizer, messages[:i], add_generation_prompt=True)
    diverge = common_prefix(prompt, ids)
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


def check_chat_template(tokenizer: Any) -> None:
    """Fail fast, before any work, when the template cannot mark the turns of a plain two-turn chat."""
    assistant_spans(tokenizer, list(PROBE_CHAT))
