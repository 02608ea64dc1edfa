"""Sentence splitting for Stream Aligner and the corrector templates that turn Aligner rows into SFT data."""

from __future__ import annotations

import pytest

from alignkit.data.errors import TemplateError
from alignkit.data.records import Conversation, Message
from alignkit.data.sentences import first_sentence, split_sentences
from alignkit.data.templates import get_template
from alignkit.data.templates.base import RowContext

CTX = RowContext(file="rows.jsonl", row=0)


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        (
            "Sure. First get the rope, then use the knife.",
            ["Sure.", "First get the rope, then use the knife."],
        ),
        (
            "Use e.g. a pen. Then stop! Why? ok",
            ["Use e.g. a pen.", "Then stop!", "Why?", "ok"],
        ),  # abbreviation
        ("1. Mix it.\n2. Bake it.", ["1. Mix it.", "2. Bake it."]),  # list numbers do not end a sentence
        ("It is 3.5 today.", ["It is 3.5 today."]),  # no space after the point: not an end
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),  # closing quote stays with it
        ("   ", []),
    ],
)
def test_split_sentences(text, sentences):
    assert split_sentences(text) == sentences


def test_first_sentence_and_the_rest():
    assert first_sentence("A b. C d. E.") == ("A b.", "C d. E.")
    assert first_sentence("") == ("", "")


def test_aligner_chat_renders_the_corrector_prompt_with_the_correction_as_the_answer():
    row = {"question": "What is 2+2?", "answer": "5.", "correction": "4."}
    record = get_template("aligner-chat").parse(row, CTX)
    assert record == Conversation(
        (
            Message("user", "##Question: What is 2+2?\n##Answer: 5.\n##Correction: "),
            Message("assistant", "4."),
        )
    )
    warm_up = get_template("aligner-chat", prompt="Q={question} A={answer}", identity=True).parse(row, CTX)
    assert [m.text() for m in warm_up.messages] == ["Q=What is 2+2? A=5.", "5."]


def test_stream_aligner_chat_lays_out_question_prefix_and_last_sentence():
    row = {"question": "q?", "prefix": "One.", "last": "Two.", "correction": "2."}
    record = get_template("stream-aligner-chat").parse(row, CTX)
    assert [m.text() for m in record.messages] == [
        "##Question: q?\n##Answer prefix: One.\n##Last sentence: Two.\n##Correction: ",
        "2.",
    ]


def test_a_corrector_prompt_missing_a_slot_is_a_template_error_naming_it():
    with pytest.raises(TemplateError, match=r"missing \['prefix'\]"):
        get_template("stream-aligner-chat", prompt="{question} {last}")
