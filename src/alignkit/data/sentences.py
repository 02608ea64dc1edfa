"""Splitting an answer into sentences, as Stream Aligner's rounds need (arXiv 2501.05336).

A sentence ends at ``.``, ``?`` or ``!`` (with any closing quotes or brackets) followed by whitespace or
the end of the text, except after a known abbreviation (``e.g.``, ``i.e.``, ``Dr.``, ...) or a list number
(``1.`` at the start of a line or of the text), which do not end a sentence. Pure and dependency-free.
"""

from __future__ import annotations

import re

ABBREVIATIONS: frozenset[str] = frozenset(
    {
        "e.g.",
        "i.e.",
        "etc.",
        "vs.",
        "mr.",
        "mrs.",
        "ms.",
        "dr.",
        "prof.",
        "st.",
        "no.",
        "fig.",
        "approx.",
        "cf.",
    }
)
"""Tokens ending in a period that do not end a sentence (compared lower-case)."""

_END = re.compile(r"[.?!]+[\"')\]]*(?=\s|$)")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` in order, each stripped; text after the last end mark is a last sentence."""
    sentences: list[str] = []
    start = 0
    for match in _END.finditer(text):
        word = text[start : match.end()].split()[-1].lower() if text[start : match.end()].split() else ""
        line_start = text.rfind("\n", 0, match.start()) + 1
        numbered = re.fullmatch(r"\s*\d+\.", text[max(line_start, start) : match.end()]) is not None
        if word in ABBREVIATIONS or numbered:
            continue
        sentence = text[start : match.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    rest = text[start:].strip()
    return [*sentences, rest] if rest else sentences


def first_sentence(text: str) -> tuple[str, str]:
    """``(first sentence, the rest)`` of ``text``; ``("", "")`` for blank text."""
    sentences = split_sentences(text)
    return (sentences[0], " ".join(sentences[1:])) if sentences else ("", "")
