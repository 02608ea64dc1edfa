"""Records -> token ids and loss masks, through the tokenizer's own chat template.

Why the chat template: a model is trained on exactly the text layout it will see at inference, so the
template that ships with the tokenizer is the only correct source of that layout. Which tokens carry
loss (the assistant's) comes from the template's ``{% generation %}`` tags when it has them; most
released templates (Qwen, Llama) do not, so we fall back to rendering the conversation prefix by prefix
and marking what each assistant turn appends. Both give the assistant content plus the tokens that close
the turn, which must be learned too or the model never learns to stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    """``input_ids`` where the token carries loss, ``IGNORE_INDEX`` elsewhere."""
    truncated: bool = False

    @property
    def num_loss_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def chat_dicts(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """Messages as the ``{"role", "content"}`` dicts chat templates take (records or plain dicts)."""
    return [m.to_chat_dict() if hasattr(m, "to_chat_dict") else dict(m) for m in messages]


def _template_text(tokenizer: Any) -> str:
    template = getattr(tokenizer, "chat_template", None) or ""
    return template if isinstance(template, str) else " ".join(template.values())


def assistant_token_mask(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> tuple[list[int], list[bool]]:
    """Token ids of the whole conversation and, per token, whether an assistant turn produced it."""
    if "generation" in _template_text(tokenizer):
        enc = tokenizer.apply_chat_template(
            list(messages), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids = list(enc["input_ids"])
        return ids, [bool(m) for m in enc["assistant_masks"]]
    ids = _ids(tokenizer, messages, add_generation_prompt=False)
    mask = [False] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(_ids(tokenizer, messages[:i], add_generation_prompt=True)) if i else 0
        end = len(_ids(tokenizer, messages[: i + 1], add_generation_prompt=False))
        for t in range(start, min(end, len(ids))):
            mask[t] = True
    return ids, mask


def _ids(tokenizer: Any, messages: Sequence[dict[str, Any]], *, add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        list(messages), tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=True
    )
    return list(out["input_ids"])


def render_conversation(tokenizer: Any, messages: Sequence[Any], max_length: int) -> TokenizedExample:
    """An SFT example: loss on assistant tokens only, truncated on the right to ``max_length``."""
    ids, mask = assistant_token_mask(tokenizer, chat_dicts(messages))
    truncated = len(ids) > max_length
    ids, mask = ids[:max_length], mask[:max_length]
    labels = [tok if keep else IGNORE_INDEX for tok, keep in zip(ids, mask, strict=True)]
    return TokenizedExample(input_ids=ids, labels=labels, truncated=truncated)


def render_prompt(tokenizer: Any, messages: Sequence[Any]) -> list[int]:
    """Token ids of a prompt ready for generation (the assistant turn opened, nothing in it yet)."""
    return _ids(tokenizer, chat_dicts(messages), add_generation_prompt=True)


def render_response(
    tokenizer: Any, prompt: Sequence[Any], response: Sequence[Any], max_length: int
) -> TokenizedExample:
    """A prompt followed by one response: loss/score positions are the response's assistant tokens only.

    Used by reward and cost models (score at the last labelled token) and by DPO (summed log-probs over
    the labelled tokens). Assistant turns inside a multi-turn ``prompt`` carry no label: only the
    response being judged does.
    """
    prompt_dicts = chat_dicts(prompt)
    ids, mask = assistant_token_mask(tokenizer, prompt_dicts + chat_dicts(response))
    start = len(_ids(tokenizer, prompt_dicts, add_generation_prompt=True))
    labels = [
        tok if keep and i >= start else IGNORE_INDEX
        for i, (tok, keep) in enumerate(zip(ids, mask, strict=True))
    ]
    truncated = len(ids) > max_length
    return TokenizedExample(input_ids=ids[:max_length], labels=labels[:max_length], truncated=truncated)
