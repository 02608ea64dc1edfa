"""One render through a chat template, and what a run sets once about its template.

What ``data/render.py`` and ``data/turns.py`` build on: the run's ``ChatOptions`` (set on the tokenizer
so every renderer agrees), ``render_ids`` (the template's token ids of a conversation, through the
tokenizer or a multimodal processor), the end-of-turn tokens read off a probe render, and
``shared_renders``, which lets the renders of one tokenising pass be reused.

Why reuse renders: a render (Jinja plus the tokenizer) is most of what tokenising a dataset costs, and the
turn rule renders each assistant turn's prompt besides the whole conversation. A DPO pair's two sides share
that prompt, as do a KTO example and its mismatched KL sequence, so within ``shared_renders()`` the second
render of the same messages by the same tokenizer, options and template is the first one's ids.
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from alignkit.data.processor import is_processor, processor_render, text_tokenizer
from alignkit.data.reasoning import THINK_CLOSE, THINK_OPEN

GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
"""A ``{% generation %}`` tag; the word alone is in every template (``add_generation_prompt``)."""
PROBE_ANSWER = "Probe answer 42"
"""Content of the probe turn ``end_of_turn_ids`` renders to see what a template writes after an answer."""
FIX_HINT = (
    "Fix: give the model a template whose prompts prefix its conversations, or one with "
    "{% generation %} ... {% endgeneration %} around each assistant turn (TRL ships such '*_training.jinja' "
    "copies for released families), via model.chat_template=PATH.jinja."
)


class ChatTemplateError(ValueError):
    """The chat template cannot say which tokens an assistant turn produced (raised before any training)."""


@dataclass(frozen=True)
class ChatOptions:
    """How a run renders chats; set once on the tokenizer (``set_chat_options``) so every renderer agrees."""

    template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra variables for the template, e.g. ``{"enable_thinking": False}`` for Qwen3."""
    reasoning_loss: bool = True
    """Whether ``<think>...</think>`` tokens in assistant turns carry loss."""


_OPTIONS_ATTR = "_alignkit_chat_options"
_STOPS_ATTR = "_alignkit_end_of_turn"


def set_chat_options(tokenizer: Any, options: ChatOptions) -> None:
    if not options.reasoning_loss:
        missing = [t for t in (THINK_OPEN, THINK_CLOSE) if single_token_id(tokenizer, t) is None]
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


def template_text(tokenizer: Any) -> str:
    template = getattr(tokenizer, "chat_template", None) or ""
    return template if isinstance(template, str) else " ".join(template.values())


@functools.lru_cache(maxsize=16)
def _tagged(template: str) -> bool:
    return bool(GENERATION_TAG.search(template))


def has_generation_tags(tokenizer: Any) -> bool:
    return _tagged(template_text(tokenizer))  # searched once per template, not once per conversation


SHARED_RENDERS = 16
"""How many recent renders ``shared_renders`` keeps: a pair's or a KTO example's prompt is rendered again
within a few renders of the first time."""
_SHARED: ContextVar[OrderedDict[Any, tuple[Any, list[int]]] | None] = ContextVar(
    "alignkit_shared_renders", default=None
)


@contextmanager
def shared_renders() -> Iterator[None]:
    """Within the block, ``render_ids`` of messages it rendered lately returns those ids without a render.

    The key is the messages, ``add_generation_prompt``, the template text and the chat options' variables,
    and the tokenizer object itself, so a hit is the very render it replaces. Nested blocks share the
    outermost one's renders. Only text chats are shared (see ``_shared_key``)."""
    token = _SHARED.set(OrderedDict()) if _SHARED.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _SHARED.reset(token)


def _shared_key(tokenizer: Any, messages: Sequence[dict[str, Any]], add_generation_prompt: bool) -> Any:
    """A hashable key for a text chat (every field a string), else None: pictures, audio or tool calls are
    rendered every time (a processor keeps its own recent renders, ``processor_render``)."""
    if not all(type(v) is str for m in messages for v in m.values()):
        return None
    text = tuple(tuple(m.items()) for m in messages)
    kwargs = repr(sorted(chat_options(tokenizer).template_kwargs.items()))
    return (id(tokenizer), text, add_generation_prompt, template_text(tokenizer), kwargs)


def render_ids(
    tokenizer: Any, messages: Sequence[dict[str, Any]], *, add_generation_prompt: bool
) -> list[int]:
    """The template's token ids for ``messages`` (no tokenizer-added BOS: the template writes its own)."""
    shared = _SHARED.get()
    key = None if shared is None else _shared_key(tokenizer, messages, add_generation_prompt)
    if shared is None or key is None:
        return _render(tokenizer, messages, add_generation_prompt)
    hit = shared.get(key)
    if hit is not None and hit[0] is tokenizer:
        shared.move_to_end(key)
        return list(hit[1])
    ids = _render(tokenizer, messages, add_generation_prompt)
    shared[key] = (tokenizer, list(ids))  # the tokenizer is held, so its id is not reused meanwhile
    while len(shared) > SHARED_RENDERS:
        shared.popitem(last=False)
    return ids


def _render(tokenizer: Any, messages: Sequence[dict[str, Any]], add_generation_prompt: bool) -> list[int]:
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


def single_token_id(tokenizer: Any, token: str) -> int | None:
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
    if cached is not None and cached[0] == template_text(tokenizer):
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
    setattr(tokenizer, _STOPS_ATTR, (template_text(tokenizer), stops))
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
