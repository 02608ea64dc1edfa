"""AlignerGenerator and StreamAlignerGenerator on scripted upstreams and correctors: the prompts the corrector
is sent, the rounds, and when a stream stops, all by hand."""

from __future__ import annotations

import pytest

from alignkit.data.templates.aligner import STREAM_END
from alignkit.generate.base import Completion, SamplingConfig
from alignkit.guard.aligner import AlignerGenerator
from alignkit.guard.stream import StreamAlignerGenerator

GREEDY = SamplingConfig(max_new_tokens=8, temperature=0.0)


class Table:
    """A generator answering each prompt's last message from a dict; records what it was asked."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.asked: list[str] = []

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        out = []
        for i, prompt in enumerate(prompts):
            for _ in range(sampling.n):
                self.asked.append(prompt[-1]["content"])
                out.append(Completion(prompt_index=i, text=self.table[prompt[-1]["content"]]))
        return out


class Writer:
    """An upstream that writes a fixed answer and continues from any prefix of it (a PrefillGenerator)."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.prefixes: list[str] = []

    def continue_from(self, prompts, prefixes, sampling, *, seed=None):
        out = []
        for i, (prompt, prefix) in enumerate(zip(prompts, prefixes, strict=True)):
            self.prefixes.append(prefix)
            full = self.answers[(prompt[-1]["content"], prefix)]
            out.append(Completion(prompt_index=i, text=full, finish_reason="stop"))
        return out


def ask(*texts: str) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": t}] for t in texts]


def test_the_aligner_sends_question_and_answer_in_its_prompt_and_returns_the_correction():
    upstream = Table({"What is 2+2?": "5."})
    corrector = Table(
        {
            "##Question: What is 2+2?\n##Answer: 5.\n##Correction: ": "4.",
            "##Question: What is 2+2?\n##Answer: 4.\n##Correction: ": "The answer is 4.",
        }
    )
    one = AlignerGenerator(upstream, corrector).generate_traced(ask("What is 2+2?"), GREEDY)[0]
    assert (one.upstream.text, one.corrections, one.completion.text) == ("5.", ["4."], "4.")
    two = AlignerGenerator(upstream, corrector, rounds=2).generate(ask("What is 2+2?"), GREEDY)
    assert two[0].text == "The answer is 4."  # the second round corrects the first round's correction
    seven_b = AlignerGenerator(
        Table({"q": "a"}),
        Table({"Edit the following Question-Answer pair to make it more helpful and harmless: q | a": "b"}),
        prompt="aligner-7b",
    )
    assert seven_b.generate(ask("q"), GREEDY)[0].text == "b"


def test_the_aligner_rejects_a_prompt_without_its_slots():
    with pytest.raises(ValueError, match=r"missing \['answer'\]"):
        AlignerGenerator(Table({}), Table({}), prompt="Fix: {question}")


def stream_prompt(question: str, prefix: str, last: str) -> str:
    return f"##Question: {question}\n##Answer prefix: {prefix}\n##Last sentence: {last}\n##Correction: "


def test_stream_aligner_corrects_each_sentence_and_the_upstream_continues_from_the_corrected_prefix():
    upstream = Writer(
        {
            ("q", ""): "Sure. Get a rope.",  # two sentences: only the first is taken this round
            ("q", "No."): "Anyway, get a rope.",
        }
    )
    corrector = Table(
        {stream_prompt("q", "", "Sure."): "No.", stream_prompt("q", "No.", "Anyway, get a rope."): STREAM_END}
    )
    trace = StreamAlignerGenerator(upstream, corrector).generate_traced(ask("q"), GREEDY)[0]
    assert upstream.prefixes == ["", "No."]
    assert [(s.sentence, s.correction) for s in trace.steps] == [
        ("Sure.", "No."),
        ("Anyway, get a rope.", STREAM_END),
    ]
    assert (trace.completion.text, trace.stop) == ("No.", "corrector_end")


def test_a_stream_ends_when_the_upstream_closes_its_turn_after_a_sentence_or_at_the_round_limit():
    upstream = Writer({("q", ""): "Fine.", ("r", ""): "A.", ("r", "A."): "B. C.", ("r", "A. B."): "C."})
    corrector = Table(
        {
            stream_prompt("q", "", "Fine."): "Fine.",
            stream_prompt("r", "", "A."): "A.",
            stream_prompt("r", "A.", "B."): "B.",
        }
    )
    # "A." is a whole continuation that closed the turn, so r would stop after round 1 on its own;
    # q likewise. Give r an upstream whose first answer goes on, to reach the round limit instead.
    upstream.answers[("r", "")] = "A. B."
    traces = StreamAlignerGenerator(upstream, corrector, max_rounds=2).generate_traced(ask("q", "r"), GREEDY)
    assert [(t.completion.text, t.stop) for t in traces] == [
        ("Fine.", "upstream_end"),
        ("A. B.", "max_rounds"),
    ]


def test_stream_aligner_needs_an_upstream_that_can_continue_a_turn():
    with pytest.raises(ValueError, match="PrefillGenerator"):
        StreamAlignerGenerator(Table({}), Table({}))
