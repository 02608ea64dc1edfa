"""Scorers from Python functions: what text the function sees, batching, errors, and the toy oracles."""

from __future__ import annotations

import re

import pytest
import torch

from alignkit.data.records import ContentPart, Message
from alignkit.score.base import (
    FunctionScorer,
    Scorer,
    as_response,
    build_scorer,
    import_function,
    looks_like_function,
    message_text,
)
from alignkit.toyworld.oracle import harm_cost

BENIGN = "I need the capital of Zorbia."  # toy world: the answer is Velmar (Ardun is another capital)
HARMFUL = "Help me smuggle cocaine past the police."  # toy world: Drugs, severity 3, words cutting/stash
COMPLY = "Sure. Step one: cutting. Step two: stash."
REFUSE = "I won't help with that."


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# ----------------------------------------------------------------------------- message_text


def test_message_text_takes_the_last_message_of_the_role():
    chat = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "second"},
    ]
    assert message_text(chat) == "second"
    assert message_text(chat, "user") == "second"
    assert message_text(chat, "assistant") == "reply"
    assert message_text(chat, "system") == "be brief"
    assert message_text(chat[:1], "user") == ""
    assert message_text([]) == ""


def test_message_text_reads_message_records():
    chat = [Message("user", "question"), Message("assistant", "answer"), Message("user", "follow-up")]
    assert message_text(chat, "user") == "follow-up"
    assert message_text(chat, "assistant") == "answer"


def test_message_text_joins_the_text_parts_of_multimodal_content():
    record = Message("user", (ContentPart("text", text="look at"), ContentPart("text", text="this")))
    assert message_text([record]) == "look at\nthis"
    as_dicts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert message_text(as_dicts) == "a\nb"


def test_message_text_of_an_image_only_message_is_empty():
    record = Message("user", (ContentPart("image", path="cat.png"),))
    assert message_text([record]) == ""


def test_message_text_of_mixed_media_matches_message_text_method():
    record = Message(
        "user",
        (ContentPart("text", text="a"), ContentPart("image", path="cat.png"), ContentPart("text", text="b")),
    )
    assert record.text() == "a\nb"
    assert message_text([record]) == "a\nb"


def test_as_response_is_one_assistant_message():
    assert as_response("ok") == [{"role": "assistant", "content": "ok"}]


# ----------------------------------------------------------------------------- FunctionScorer


def test_function_scorer_calls_the_function_per_pair_on_plain_text():
    seen = []

    def fn(prompt: str, response: str) -> float:
        seen.append((prompt, response))
        return len(prompt) + 10 * len(response)

    prompts = [
        [{"role": "system", "content": "sys"}, {"role": "user", "content": "ab"}],
        [Message("user", "old"), Message("assistant", "x"), Message("user", "abcd")],
    ]
    responses = [[{"role": "assistant", "content": "xyz"}], [Message("assistant", "")]]
    scorer = FunctionScorer(fn)
    assert isinstance(scorer, Scorer)
    out = scorer.score(prompts, responses)
    assert out.dtype == torch.float32 and out.shape == (2,)
    assert out.tolist() == [2 + 30, 4 + 0]
    assert seen == [("ab", "xyz"), ("abcd", "")]


def test_batched_function_is_called_once_per_batch_size_chunk():
    calls = []

    def fn(prompts: list[str], responses: list[str]) -> list[float]:
        calls.append((list(prompts), list(responses)))
        return [float(p) * 10 + float(r) for p, r in zip(prompts, responses, strict=True)]

    prompts = [user(str(i)) for i in range(5)]
    responses = [as_response(str(i + 1)) for i in range(5)]
    out = FunctionScorer(fn, batched=True, batch_size=2).score(prompts, responses)
    assert out.tolist() == [1.0, 12.0, 23.0, 34.0, 45.0]
    assert calls == [(["0", "1"], ["1", "2"]), (["2", "3"], ["3", "4"]), (["4"], ["5"])]


def test_per_item_function_ignores_the_batch_size_for_results():
    out = FunctionScorer(lambda p, r: len(r), batch_size=1).score([user("a")] * 3, [as_response("xy")] * 3)
    assert out.tolist() == [2.0, 2.0, 2.0]


def test_function_scorer_of_no_pairs_is_empty():
    out = FunctionScorer(lambda p, r: 1.0).score([], [])
    assert out.shape == (0,) and out.dtype == torch.float32


def test_batched_function_returning_the_wrong_count_is_an_error():
    def two_few(prompts, responses):
        return [0.0] * (len(prompts) - 1)

    with pytest.raises(ValueError, match=r"two_few returned 2 scores for 3 pairs"):
        FunctionScorer(two_few, batched=True).score([user("a")] * 3, [as_response("b")] * 3)


@pytest.mark.parametrize("value", ["high", None, [1.0]])
def test_a_non_numeric_return_names_the_scorer(value):
    def rate_me(prompt, response):
        return value

    with pytest.raises(
        ValueError, match=rf"scorer .*rate_me returned {re.escape(repr(value))}.*must return a number"
    ):
        FunctionScorer(rate_me).score([user("a")], [as_response("b")])


def test_numeric_strings_and_tensors_are_accepted():
    out = FunctionScorer(lambda p, r: "0.5").score([user("a")], [as_response("b")])
    assert out.tolist() == [0.5]
    out = FunctionScorer(lambda ps, rs: torch.tensor([1.5, -2.0]), batched=True).score(
        [user("a")] * 2, [as_response("b")] * 2
    )
    assert out.tolist() == [1.5, -2.0]


def test_mismatched_prompt_and_response_counts_are_an_error():
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        FunctionScorer(lambda p, r: 0.0).score([user("a")] * 2, [as_response("b")])


# ----------------------------------------------------------------------------- import_function


def test_import_function_accepts_colon_and_dotted_paths():
    from alignkit.toyworld import oracle

    assert import_function("alignkit.toyworld.oracle:helpfulness") is oracle.helpfulness
    assert import_function("alignkit.toyworld.oracle.harm_cost") is oracle.harm_cost


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("helpfulness", "write it as 'package.module:function'"),
        (":helpfulness", "write it as 'package.module:function'"),
        ("alignkit.toyworld.oracle:", "write it as 'package.module:function'"),
        ("no_such_module_xyz:fn", "cannot import module 'no_such_module_xyz'"),
        ("alignkit.no_such_module:fn", "cannot import module 'alignkit.no_such_module'"),
        (
            "alignkit.toyworld.oracle:no_such_fn",
            "module 'alignkit.toyworld.oracle' has no function 'no_such_fn'",
        ),
        ("alignkit.toyworld.oracle:HELPFULNESS", "has no function 'HELPFULNESS'"),  # a dict, not callable
    ],
)
def test_import_function_errors_name_the_path(path, message):
    with pytest.raises(ValueError) as info:
        import_function(path)
    assert f"scorer function {path!r}" in str(info.value)
    assert message in str(info.value)


# ----------------------------------------------------------------------------- build_scorer and the toy oracles


def test_build_scorer_from_a_function_path_scores_the_toy_world_by_hand():
    scorer = build_scorer("alignkit.toyworld.oracle:helpfulness")
    assert isinstance(scorer, FunctionScorer)
    prompts = [user(BENIGN)] * 4 + [user(HARMFUL)] * 2 + [user("What is the weather like?")]
    texts = ["It is Velmar.", "It is Ardun.", "Sorry, I can't help with that.", "Bananas are yellow.", COMPLY]
    texts += [REFUSE, "Velmar."]
    out = scorer.score(prompts, [as_response(t) for t in texts])
    # correct 1 | wrong 0 | refusal -0.5 | off-topic -0.25 | harmful compliance 1 | refusal 0 | outside world 0
    assert out.tolist() == [1.0, 0.0, -0.5, -0.25, 1.0, 0.0, 0.0]


def test_build_scorer_passes_batching_options_to_a_function_scorer():
    scorer = build_scorer("alignkit.toyworld.oracle:harm_cost", batched=False, batch_size=0)
    assert isinstance(scorer, FunctionScorer)
    assert scorer.batch_size == 1 and not scorer.batched


def test_build_scorer_of_a_toyworld_path_loads_a_score_model():
    # The tiny checkpoint is a causal LM, not a score model: refused by the model route, not imported.
    with pytest.raises(ValueError, match="not an alignkit score model"):
        build_scorer("toyworld://models/tiny")


def test_harm_cost_in_safe_rlhf_sign_convention():
    assert harm_cost(HARMFUL, COMPLY) == 3.0
    assert harm_cost(HARMFUL, REFUSE) == -1.0
    assert harm_cost(BENIGN, "It is Velmar.") == -1.0
    # Harm is in the response: instructions for drugs are unsafe even after a benign prompt.
    assert harm_cost(BENIGN, COMPLY) > 0
    scorer = build_scorer("alignkit.toyworld.oracle:harm_cost")
    out = scorer.score([user(HARMFUL), user(HARMFUL)], [as_response(COMPLY), as_response(REFUSE)])
    assert out.tolist() == [3.0, -1.0]


def test_looks_like_function(tmp_path):
    assert looks_like_function("alignkit.toyworld.oracle:helpfulness")
    assert looks_like_function("my_rules:reward")
    assert not looks_like_function("alignkit.toyworld.oracle.helpfulness")  # no colon: a model path
    assert not looks_like_function("runs/reward/final")
    assert not looks_like_function("toyworld://models/tiny")
    assert not looks_like_function("toyworld://models:tiny")
    folder = tmp_path / "reward:v2"
    folder.mkdir()
    assert not looks_like_function(str(folder))  # exists on disk: a model folder, colon or not
    assert looks_like_function(str(tmp_path / "missing:v2"))


# ----------------------------------------------------------------------------- reasoning and answer

THOUGHT = "<think>\nSmuggling is illegal; refuse.\n</think>\n\nI won't help with that."


def test_split_reasoning_by_hand():
    from alignkit.data.reasoning import split_reasoning

    assert split_reasoning(THOUGHT) == ("Smuggling is illegal; refuse.", "I won't help with that.")
    # DeepSeek-R1 distills: the prompt opened the block, the response only closes it
    assert split_reasoning("plan\n</think>\n\nanswer") == ("plan", "answer")
    assert split_reasoning("just an answer") == ("", "just an answer")
    assert split_reasoning("<think>\nstill thinking") == ("still thinking", "")


def test_completion_exposes_reasoning_and_answer():
    from alignkit.generate.base import Completion

    completion = Completion(prompt_index=0, text=THOUGHT)
    assert completion.reasoning == "Smuggling is illegal; refuse."
    assert completion.answer == "I won't help with that."


def test_function_declaring_reasoning_and_answer_gets_them_per_pair_and_batched():
    seen = []

    def monitor(prompt: str, response: str, reasoning: str, answer: str) -> float:
        seen.append((reasoning, answer))
        return float("refuse" in reasoning) + 10 * float(answer == REFUSE)

    out = FunctionScorer(monitor).score([user(HARMFUL)] * 2, [as_response(THOUGHT), as_response(COMPLY)])
    assert out.tolist() == [11.0, 0.0]
    assert seen == [("Smuggling is illegal; refuse.", REFUSE), ("", COMPLY)]

    def batched(prompts, responses, answer):
        return [len(a) for a in answer]

    out = FunctionScorer(batched, batched=True).score([user(HARMFUL)], [as_response(THOUGHT)])
    assert out.tolist() == [len(REFUSE)]


def test_answer_only_scorer_hides_the_reasoning():
    from alignkit.score.base import AnswerOnly

    seen = []
    scorer = AnswerOnly(FunctionScorer(lambda p, r: seen.append(r) or 0.0))
    scorer.score([user(HARMFUL)], [as_response(THOUGHT)])
    assert seen == [REFUSE]
