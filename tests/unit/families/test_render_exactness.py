"""Rendering with fewer template passes gives the very examples the four-pass rule gave, token for token.

``data/turns.py`` renders a conversation once and each assistant turn's prompt once (shared by a pair's
sides), the history only when the split falls inside the prompt, and the ``{% generation %}`` tags only when
the prompt rule fails. ``legacy_*`` below is the rule as it was (whole conversation, tags, prompt and
history for every turn, every time), kept here as the reference: ids, labels, truncation and error
messages must not change, on the toy world's SFT, DPO, KTO and multi-turn data and on released families.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from family_models import FAMILIES, family_tokenizer

from alignkit.data import load_records
from alignkit.data.pair_examples import (
    mismatched_partners,
    to_preference,
    to_unpaired,
    tokenize_pairs,
    tokenize_unpaired,
)
from alignkit.data.records import Message
from alignkit.data.render import (
    IGNORE_INDEX,
    ChatOptions,
    ChatTemplateError,
    TokenizedExample,
    assistant_spans,
    chat_dicts,
    chat_options,
    check_chat_template,
    end_of_turn_ids,
    has_generation_tags,
    render_conversation,
    render_ids,
    render_response,
    set_chat_options,
    shared_renders,
)
from alignkit.data.turns import _check_answer, _prefix_problem, _tag_runs
from alignkit.models.loading import load_tokenizer, resolve_path
from alignkit.train.sft import tokenize as sft_tokenize

MAX_LENGTH = 28
"""Below the longest toy conversations (20 to 36 tokens), so truncation is compared too."""
LONG = 256
"""Above the longest multi-turn toy conversation: every round is labelled."""


# --- the rule before this change: four renders per single-turn conversation -------------------------------


def legacy_common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    return next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def legacy_prompt_end(
    tokenizer: Any, ids: list[int], messages: list[dict], i: int, cursor: int
) -> int | None:
    if i == 0:
        return None
    prompt = render_ids(tokenizer, messages[:i], add_generation_prompt=True)
    history = render_ids(tokenizer, messages[:i], add_generation_prompt=False)
    start = legacy_common_prefix(prompt, ids)
    return start if start >= max(legacy_common_prefix(prompt, history), cursor) else None


def legacy_spans(tokenizer: Any, messages: list[dict], method: str = "auto") -> tuple[list[int], list]:
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
        start = None if method == "tags" else legacy_prompt_end(tokenizer, ids, messages, i, cursor)
        if start is None and runs is not None:
            start = next((a for a, _ in runs if a >= cursor), None)
        if start is None:
            raise ChatTemplateError(_prefix_problem(tokenizer, ids, messages, i, turn))
        end = next((j + 1 for j in range(start, len(ids)) if ids[j] in stops), None)
        if end is None:
            raise ChatTemplateError(f"assistant turn {turn} is not closed")
        newest = all(m["role"] != "assistant" for m in messages[i + 1 :])
        _check_answer(tokenizer, ids[start:end], message, turn, newest=newest)
        spans.append((start, end))
        cursor = end
    return ids, spans


def legacy_labels(tokenizer: Any, ids: list[int], spans: Sequence[tuple[int, int]]) -> list[int]:
    labels = [IGNORE_INDEX] * len(ids)
    close = tokenizer.encode("</think>", add_special_tokens=False)
    opening = tokenizer.encode("<think>", add_special_tokens=False)
    for start, end in spans:
        labels[start:end] = ids[start:end]
        if chat_options(tokenizer).reasoning_loss:
            continue
        closes = [j for j in range(start, end) if [ids[j]] == close]
        if closes:
            opens = [j for j in range(start, closes[0]) if [ids[j]] == opening]
            for j in range(opens[0] if opens else start, closes[0] + 1):
                labels[j] = IGNORE_INDEX
    return labels


def legacy_example(
    tokenizer: Any, prompt: Sequence[Any], response: Sequence[Any] = (), max_length: int = MAX_LENGTH
) -> TokenizedExample:
    """``render_response`` as it was; ``response=()`` labels every turn (``render_conversation``)."""
    prompt_dicts = chat_dicts(prompt)
    dicts = prompt_dicts + chat_dicts(response)
    ids, spans = legacy_spans(tokenizer, dicts)
    skip = sum(m["role"] == "assistant" for m in prompt_dicts) if response else 0
    labels = legacy_labels(tokenizer, ids, spans[skip:])
    return TokenizedExample(ids[:max_length], labels[:max_length], len(ids) > max_length)


# --- the toy world --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy():
    tokenizer = load_tokenizer(resolve_path("toyworld://models/tiny"))
    check_chat_template(tokenizer)
    return tokenizer


@pytest.fixture(scope="module")
def toy_sft():
    return list(load_records(resolve_path("toyworld://data/sft"), "trl", split="train").records)[:600]


@pytest.fixture(scope="module")
def toy_pairs():
    records = load_records(resolve_path("toyworld://data/safe_pref"), "pku-saferlhf", split="train").records
    return [to_preference(r, "helpfulness") for r in list(records)[:300]]


def multi_turn(records: Sequence[Any]) -> list[list[Any]]:
    """Three toy conversations chained into one of three rounds; every other one opens with a system turn."""
    system = [Message("system", "You are a helpful assistant.")]
    return [
        [*(system if k % 2 else []), *(m for r in records[k : k + 3] for m in r.messages)]
        for k in range(0, len(records) - 2, 3)
    ]


def labelled_runs(labels: Sequence[int]) -> int:
    """Runs of consecutive labelled tokens: one per assistant turn that carries loss."""
    before = [IGNORE_INDEX, *labels[:-1]]
    return sum(b != IGNORE_INDEX and a == IGNORE_INDEX for a, b in zip(before, labels, strict=True))


def count_renders(monkeypatch, tokenizer) -> dict[str, int]:
    calls = {"n": 0}
    render = tokenizer.apply_chat_template

    def counted(*args, **kwargs):
        calls["n"] += 1
        return render(*args, **kwargs)

    monkeypatch.setattr(tokenizer, "apply_chat_template", counted)
    return calls


def test_toy_sft_examples_are_the_four_pass_ones(toy, toy_sft):
    examples, truncated = sft_tokenize(toy_sft, toy, MAX_LENGTH)
    expected = [legacy_example(toy, r.messages) for r in toy_sft]
    assert examples == [e for e in expected if e.num_loss_tokens > 0]
    assert truncated == sum(e.truncated for e in expected) > 0  # the cut is exercised too


def test_toy_multi_turn_examples_are_the_four_pass_ones(toy, toy_sft):
    conversations = multi_turn(toy_sft[:300])
    with shared_renders():
        examples = [render_conversation(toy, c, LONG) for c in conversations]
    assert examples == [legacy_example(toy, c, max_length=LONG) for c in conversations]
    assert {labelled_runs(e.labels) for e in examples} == {3}  # every round's answer, nothing else


def test_toy_dpo_and_kto_examples_are_the_four_pass_ones(toy, toy_pairs):
    examples, _, _ = tokenize_pairs(toy_pairs, toy, MAX_LENGTH, "helpfulness")
    expected = [
        (legacy_example(toy, p.prompt, p.chosen), legacy_example(toy, p.prompt, p.rejected))
        for p in toy_pairs
    ]
    kept = [(c, r) for c, r in expected if c.num_loss_tokens and r.num_loss_tokens]
    assert [(e.chosen, e.rejected) for e in examples] == kept

    unpaired, _, _ = tokenize_unpaired(toy_pairs[:100], toy, MAX_LENGTH, "helpfulness", seed=0)
    flat = to_unpaired(toy_pairs[:100], "helpfulness")
    partners = mismatched_partners([repr([m.to_chat_dict() for m in u.prompt]) for u in flat], 0)
    expected = [
        (legacy_example(toy, u.prompt, u.completion), legacy_example(toy, u.prompt, flat[j].completion))
        for u, j in zip(flat, partners, strict=True)
    ]
    kept = [(c, kl) for c, kl in expected if c.num_loss_tokens and kl.num_loss_tokens]
    assert [(e.completion, e.kl) for e in unpaired] == kept


def test_toy_multi_turn_pairs_are_the_four_pass_ones(toy, toy_sft, toy_pairs):
    """A pair whose prompt holds earlier rounds: only the judged response is labelled, as before."""
    pairs = [
        dataclasses.replace(p, prompt=(*h.messages, *p.prompt))
        for p, h in zip(toy_pairs[:120], toy_sft[:120], strict=True)
    ]
    examples, _, _ = tokenize_pairs(pairs, toy, LONG, "helpfulness")
    expected = [
        tuple(legacy_example(toy, p.prompt, side, LONG) for side in (p.chosen, p.rejected)) for p in pairs
    ]
    assert [(e.chosen, e.rejected) for e in examples] == expected
    assert {labelled_runs(e.chosen.labels) for e in examples} == {1}


def test_renders_per_example(toy, toy_sft, toy_pairs, monkeypatch):
    """What this saves, counted: a single-turn conversation is 2 renders (was 4: the history and the tags
    too), a three-round one 1 + 3 (was 1 + 1 + 2 * 3), a DPO pair 3 (was 8: the sides share their prompt)."""
    calls = count_renders(monkeypatch, toy)
    render_conversation(toy, toy_sft[0].messages, MAX_LENGTH)
    assert calls["n"] == 2
    calls["n"] = 0
    render_conversation(toy, multi_turn(toy_sft[:3])[0], MAX_LENGTH)
    assert calls["n"] == 4
    calls["n"] = 0
    tokenize_pairs(toy_pairs[:10], toy, MAX_LENGTH, "helpfulness")
    assert calls["n"] == 3 * 10
    calls["n"] = 0
    for p in toy_pairs[:10]:  # outside a shared_renders block each side renders its own prompt
        legacy_example(toy, p.prompt, p.chosen)
        legacy_example(toy, p.prompt, p.rejected)
    assert calls["n"] == 8 * 10


# --- released families ----------------------------------------------------------------------------------

SINGLE = [{"role": "user", "content": "add 3 and 4"}, {"role": "assistant", "content": "The answer is 7."}]
MULTI = [
    *SINGLE,
    {"role": "user", "content": "reverse the word cat"},
    {"role": "assistant", "content": "tac"},
]
SYSTEM = [{"role": "system", "content": "Be brief."}, *MULTI]
THINKING = [
    SINGLE[0],
    {"role": "assistant", "content": "<think>\nthree plus four\n</think>\n\nIt is 7."},
    MULTI[2],
    {"role": "assistant", "content": "<think>\nbackwards\n</think>\n\ntac"},
]
CASES = [
    (name, template, options)
    for name in sorted(FAMILIES)
    for template in dict.fromkeys([None, FAMILIES[name].training_template])
    for options in ({}, {"reasoning_loss": False})
    if not options or FAMILIES[name].thinking
]


def outcome(fn, *args, **kwargs) -> Any:
    """What a render gives: its result, or the error it raises (type and message)."""
    try:
        return fn(*args, **kwargs)
    except ChatTemplateError as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize(("name", "template", "options"), CASES)
def test_family_examples_and_errors_are_the_four_pass_ones(name, template, options):
    family = FAMILIES[name]
    tokenizer = family_tokenizer(family, template=template)
    set_chat_options(tokenizer, ChatOptions(template_kwargs=family.template_kwargs, **options))
    for conversation in (SINGLE, MULTI, SYSTEM, THINKING):
        expected = outcome(legacy_example, tokenizer, conversation)
        assert outcome(render_conversation, tokenizer, conversation, MAX_LENGTH) == expected
        expected = outcome(legacy_example, tokenizer, conversation[:-1], conversation[-1:])
        with shared_renders():
            assert (
                outcome(render_response, tokenizer, conversation[:-1], conversation[-1:], MAX_LENGTH)
                == expected
            )
        for method in ("prefix", "tags") if has_generation_tags(tokenizer) else ("prefix",):
            expected = outcome(legacy_spans, tokenizer, conversation, method=method)
            assert outcome(assistant_spans, tokenizer, conversation, method=method) == expected


COLON_CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + ':' + m['content'] + '<|im_end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant:' }}{% endif %}"
)


def test_shared_renders_follow_the_template_and_its_options():
    """Within one block a changed template variable or template is a new render, not the last one's ids."""
    tokenizer = family_tokenizer(FAMILIES["qwen3"])
    examples, expected = [], []
    with shared_renders():
        for change in (
            lambda: None,
            lambda: set_chat_options(tokenizer, ChatOptions(template_kwargs={"enable_thinking": False})),
            lambda: setattr(tokenizer, "chat_template", COLON_CHATML),
        ):
            change()
            examples.append(render_conversation(tokenizer, SINGLE, MAX_LENGTH))
            expected.append(legacy_example(tokenizer, SINGLE))
    assert examples == expected
    assert len({(tuple(e.input_ids), tuple(e.labels)) for e in examples}) == 3  # a stale render would repeat
