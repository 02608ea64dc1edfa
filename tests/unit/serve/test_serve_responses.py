"""Stop sequences, token counts and logprobs of a served answer; auth and context budget checks.

A fake tokenizer with one character per token makes every count checkable by hand.
"""

from __future__ import annotations

import pytest

from alignkit.generate.base import Completion
from alignkit.serve import responses
from alignkit.serve.auth import key_matches
from alignkit.serve.chain import ServedModel
from alignkit.serve.errors import APIError
from alignkit.serve.routes import completion_budget

EOT = 0


class CharTokenizer:
    """Token id = ord(character); id 0 is the end-of-turn token (decoded to nothing)."""

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i) for i in ids if i != EOT)

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]


def completion(text: str, *, stopped: bool = True, logprobs: bool = True) -> Completion:
    ids = tuple(ord(c) for c in text) + ((EOT,) if stopped else ())
    lps = tuple(-0.1 * (k + 1) for k in range(len(ids))) if logprobs else None
    return Completion(0, text, ids, lps, "stop" if stopped else "length")


def test_first_stop_finds_the_earliest_of_several_sequences():
    assert responses.first_stop("abc;def.ghi", [".", ";"]) == (3, ";")
    assert responses.first_stop("abc", ["x"]) is None


def test_an_answer_that_stopped_by_itself_counts_its_end_token_but_logs_no_logprob_for_it():
    a = responses.answer(completion("abc"), [], CharTokenizer())
    # 3 text tokens + the end-of-turn token were generated; logprobs cover the 3 text tokens
    assert (a.text, a.finish_reason, a.num_tokens) == ("abc", "stop", 4)
    assert a.tokens == ("a", "b", "c")
    assert a.logprobs == pytest.approx((-0.1, -0.2, -0.3))


def test_a_stop_sequence_cuts_the_text_and_keeps_the_tokens_that_produced_it():
    a = responses.answer(completion("hello world", stopped=False), ["o w"], CharTokenizer())
    # "o w" starts at 4: text "hell"; tokens kept up to the end of the stop sequence: "hello w" = 7
    assert (a.text, a.finish_reason, a.num_tokens) == ("hell", "stop", 7)
    assert a.tokens == tuple("hello w")
    assert len(a.logprobs) == 7 and a.logprobs[-1] == pytest.approx(-0.7)


def test_without_token_ids_the_tokenizer_counts_the_text():
    c = Completion(0, "abcd", None, None, "length")
    assert responses.answer(c, [], CharTokenizer()).num_tokens == 4
    assert responses.answer(c, ["c"], CharTokenizer()).num_tokens == 3  # "ab" + the stop "c"
    assert responses.answer(c, [], None).num_tokens == 0  # nothing to count with


def test_usage_adds_every_choice():
    answers = [responses.Answer("a", "stop", 3), responses.Answer("b", "length", 5)]
    assert responses.usage(7, answers) == {"prompt_tokens": 7, "completion_tokens": 8, "total_tokens": 15}


def test_stream_pieces_join_back_to_the_text():
    a = responses.Answer("ab c", "stop", 4, tokens=(" ", " a", "b", " c"))
    assert responses.token_pieces(a) == ["", "a", "b", " c"]
    assert responses.token_pieces(responses.Answer("xyz", "stop", 1, tokens=("q",))) == ["xyz"]


def test_chat_chunks_carry_role_tokens_finish_and_usage():
    a = responses.answer(completion("ab"), [], CharTokenizer())
    body = responses.chat_body("m", [a], 5, logprobs=True)
    events = responses.chat_chunks(body, [a], include_usage=True)
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "a"}, {"content": "b"}, {}]
    assert events[1]["choices"][0]["logprobs"]["content"][0]["logprob"] == pytest.approx(-0.1)
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    # usage: 5 prompt + 3 completion tokens ("a", "b", end of turn)
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] == 8


def test_bearer_key_matching():
    assert key_matches("sk-1", "Bearer sk-1")
    assert key_matches("sk-1", "bearer sk-1")
    for header in (None, "", "Bearer", "Bearer sk-", "Bearer sk-12", "Basic sk-1", "sk-1"):
        assert not key_matches("sk-1", header), header


def test_completion_budget_against_the_context_window():
    model = ServedModel("m", generator=None, max_model_len=100)
    assert completion_budget(model, 40, 60, 256) == 60  # 40 + 60 = 100 fits exactly
    assert completion_budget(model, 40, None, 256) == 60  # default 256 capped by the 60 left
    assert completion_budget(model, 40, None, 16) == 16
    with pytest.raises(APIError) as error:
        completion_budget(model, 40, 61, 256)  # 101 > 100
    assert (error.value.status, error.value.code) == (400, "context_length_exceeded")
    with pytest.raises(APIError):
        completion_budget(model, 100, None, 256)  # the prompt alone fills the window
    unknown = ServedModel("m", generator=None)
    assert completion_budget(unknown, 10_000, None, 32) == 32  # no limit known: not checked
