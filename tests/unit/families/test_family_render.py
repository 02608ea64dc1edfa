"""Released chat templates of each family: which tokens carry loss, where scores are read, where turns end.

Every expectation is written out here by hand from the family's released layout: the labelled tokens
of each assistant turn, decoded, are the assistant's text plus the family's end-of-turn token, nothing of
the prompt and nothing the template writes after the turn (ChatML's newline, Phi-3's trailing EOS).
"""

from __future__ import annotations

import pytest
from family_models import FAMILIES, family_tokenizer

from alignkit.data.render import (
    IGNORE_INDEX,
    ChatOptions,
    ChatTemplateError,
    assistant_spans,
    end_of_turn_ids,
    render_conversation,
    render_prompt,
    render_response,
    set_chat_options,
)

SINGLE = [{"role": "user", "content": "add 3 and 4"}, {"role": "assistant", "content": "The answer is 7."}]
MULTI = [
    *SINGLE,
    {"role": "user", "content": "reverse the word cat"},
    {"role": "assistant", "content": "tac"},
]
EMPTY_THINK = "<think>\n\n</think>\n\n"


def tokenizer_for(name: str, template: str | None = None, **options):
    family = FAMILIES[name]
    tokenizer = family_tokenizer(family, template=template)
    set_chat_options(tokenizer, ChatOptions(template_kwargs=family.template_kwargs, **options))
    return tokenizer


def labelled_turns(tokenizer, example) -> list[str]:
    """Decoded runs of consecutive labelled tokens."""
    runs, current = [], []
    for token, label in zip(example.input_ids, example.labels, strict=True):
        if label != IGNORE_INDEX:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


def expected_turn(name: str, content: str, *, newest: bool) -> str:
    """The assistant's text plus the end-of-turn token, as each released template lays a turn out."""
    family = FAMILIES[name]
    lead = " " if name == "mistral" else ""  # Mistral writes '[/INST] ' + answer: the space is generated
    think = EMPTY_THINK if family.thinking and newest and name == "qwen3" else ""
    return f"{lead}{think}{content}{family.eot}"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_single_turn_labels_are_the_answer_and_its_end_of_turn_token(name):
    tokenizer = tokenizer_for(name)
    example = render_conversation(tokenizer, SINGLE, 10_000)
    assert labelled_turns(tokenizer, example) == [expected_turn(name, "The answer is 7.", newest=True)]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_multi_turn_labels_each_assistant_turn_and_nothing_else(name):
    tokenizer = tokenizer_for(name)
    example = render_conversation(tokenizer, MULTI, 10_000)
    assert labelled_turns(tokenizer, example) == [
        expected_turn(name, "The answer is 7.", newest=False),
        expected_turn(name, "tac", newest=True),
    ]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_response_labels_only_the_judged_response_and_end_on_the_end_of_turn_token(name):
    """Reward/cost models read their score at the last labelled token: the family's end-of-turn token."""
    from alignkit.models.score_model import closing_token_id, score_example, score_pad_token_id

    tokenizer = tokenizer_for(name)
    family = FAMILIES[name]
    eot = tokenizer.convert_tokens_to_ids(family.eot)
    example = render_response(tokenizer, MULTI[:3], MULTI[3:], 10_000)
    assert labelled_turns(tokenizer, example) == [expected_turn(name, "tac", newest=True)]
    scored = score_example(tokenizer, MULTI[:3], MULTI[3:], 10_000)
    assert scored.input_ids[-1] == eot  # the score is read at the end-of-turn token
    assert closing_token_id(tokenizer) == eot
    assert score_pad_token_id(tokenizer) != eot


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_end_of_turn_token_comes_from_the_template(name):
    tokenizer = tokenizer_for(name)
    assert FAMILIES[name].eot in tokenizer.convert_ids_to_tokens(end_of_turn_ids(tokenizer))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_no_double_bos(name):
    """The template writes BOS where the family has one; rendering never adds a second (the tokenizer adds
    BOS on encode for Llama, Gemma, Mistral, Phi-3 and DeepSeek, but a rendered chat is not re-encoded)."""
    tokenizer = tokenizer_for(name)
    family = FAMILIES[name]
    ids = render_conversation(tokenizer, MULTI, 10_000).input_ids
    if family.adds_bos:  # the family's tokenizer really does add BOS to plain text
        assert tokenizer("hi")["input_ids"][0] == tokenizer.bos_token_id
    writes_bos = "bos_token" in tokenizer.chat_template
    bos_count = ids.count(tokenizer.bos_token_id) if tokenizer.bos_token_id is not None else 0
    assert bos_count == (1 if writes_bos else 0)
    if writes_bos:
        assert ids[0] == tokenizer.bos_token_id
        assert render_prompt(tokenizer, MULTI[:1]).count(tokenizer.bos_token_id) == 1


TAGGED = [
    (name, FAMILIES[name].training_template)
    for name in sorted(FAMILIES)
    if FAMILIES[name].training_template is not None
]
TAG_HEADER = {"qwen2.5": "\n"}
"""What TRL's tags put inside the generation block that the prompt already holds (ChatML's newline after
'assistant'); the prompt-based start excludes it, as it is prompt, not response."""


@pytest.mark.parametrize(("name", "template"), TAGGED)
@pytest.mark.parametrize("conversation", [SINGLE, MULTI], ids=["single", "multi"])
def test_generation_tags_and_prompt_prefixes_mark_the_same_tokens(name, template, conversation):
    """Both ways of locating a turn, on one template that supports both, token for token."""
    tokenizer = tokenizer_for(name, template)
    ids, by_prompt = assistant_spans(tokenizer, conversation, method="prefix")
    tag_ids, by_tags = assistant_spans(tokenizer, conversation, method="tags")
    assert tag_ids == ids
    header = len(tokenizer.encode(TAG_HEADER.get(name, ""), add_special_tokens=False))
    if name == "qwen3-nothink":  # the prompt pre-fills the empty think block the tags wrap
        header = len(tokenizer.encode(EMPTY_THINK, add_special_tokens=False))
    assert [(a - header, b) for a, b in by_prompt] == by_tags


@pytest.mark.parametrize(("name", "template"), TAGGED)
def test_released_and_training_templates_label_the_same_tokens(name, template):
    """TRL's training copy only adds tags, so the released template must give the very same example."""
    released = render_conversation(tokenizer_for(name), SINGLE, 10_000)
    training = render_conversation(tokenizer_for(name, template), SINGLE, 10_000)
    assert training == released


def test_qwen3_reasoning_carries_loss_by_default_and_can_be_left_out():
    conversation = [
        SINGLE[0],
        {"role": "assistant", "content": "<think>\nthree plus four\n</think>\n\nIt is 7."},
    ]
    with_reasoning = render_conversation(tokenizer_for("qwen3"), conversation, 10_000)
    tokenizer = tokenizer_for("qwen3", reasoning_loss=False)
    without = render_conversation(tokenizer, conversation, 10_000)
    assert labelled_turns(tokenizer, with_reasoning) == [
        "<think>\nthree plus four\n</think>\n\nIt is 7.<|im_end|>"
    ]
    assert labelled_turns(tokenizer, without) == ["\n\nIt is 7.<|im_end|>"]
    assert without.input_ids == with_reasoning.input_ids


def test_deepseek_r1_prompt_opens_the_reasoning_block_and_the_turn_starts_inside_it():
    """The distills' generation prompt ends with '<think>\\n': the model generates from inside the block."""
    tokenizer = tokenizer_for("deepseek-r1-distill")
    conversation = [
        SINGLE[0],
        {"role": "assistant", "content": "<think>\nthree plus four\n</think>\n\nIt is 7."},
    ]
    example = render_conversation(tokenizer, conversation, 10_000)
    assert labelled_turns(tokenizer, example) == [
        "three plus four\n</think>\n\nIt is 7.<｜end▁of▁sentence｜>"
    ]
    assert tokenizer.decode(render_prompt(tokenizer, conversation[:1])).endswith("<｜Assistant｜><think>\n")


def test_released_deepseek_r1_template_that_drops_reasoning_is_refused_with_the_fix():
    tokenizer = tokenizer_for("deepseek-r1-distill", "deepseek_r1_distill.jinja")
    conversation = [
        SINGLE[0],
        {"role": "assistant", "content": "<think>\nthree plus four\n</think>\n\nIt is 7."},
    ]
    with pytest.raises(ChatTemplateError, match=r"drops <think> blocks.*model.chat_template"):
        render_conversation(tokenizer, conversation, 10_000)


def test_template_that_rewrites_earlier_turns_is_refused_with_the_fix():
    """Mistral's template moves the system message into the newest user turn, so a turn's prompt is not
    how the same history renders inside the longer conversation."""
    tokenizer = tokenizer_for("mistral")
    conversation = [{"role": "system", "content": "Be brief."}, *MULTI]
    with pytest.raises(ChatTemplateError) as err:
        render_conversation(tokenizer, conversation, 10_000)
    message = str(err.value)
    assert "assistant turn 1" in message
    assert "{% generation %}" in message and "model.chat_template" in message


def test_template_refusing_a_role_is_a_chat_template_error():
    tokenizer = tokenizer_for("gemma2")
    with pytest.raises(ChatTemplateError, match="System role not supported"):
        render_conversation(tokenizer, [{"role": "system", "content": "Be brief."}, *SINGLE], 10_000)


def test_reasoning_loss_off_needs_single_think_tokens():
    with pytest.raises(ChatTemplateError, match="single tokens"):
        tokenizer_for("llama3", reasoning_loss=False)
