"""What the audio preference tests share: the oracle's answer pairs on the held-out clips, and the best a
score that reads only the answer word can do on them (the baseline an audio-hearing model must beat)."""

from __future__ import annotations

import itertools

from alignkit.data import load_records
from alignkit.toyworld import resolve
from alignkit.toyworld.audio_world import ANSWER_FORM, COUNT_WORDS, PITCHES, task_for

ALM = "toyworld://audio/models/tiny-alm"

HeldOutPair = tuple[list, str, str, str]
"""(prompt with its clip, right answer word, wrong answer word, question family)."""


def held_out_pairs() -> list[HeldOutPair]:
    """Every wrong answer word of every held-out question against the right one, from the oracle: 13
    clips x (1 pitch pair + 2 count pairs) = 39 pairs."""
    records = load_records(str(resolve("toyworld://audio/data/prompts/test.jsonl")), "trl").records
    pairs = []
    for record in records:
        turn = record.messages[-1]
        task = task_for(turn.media()[0].path, turn.text())
        words = COUNT_WORDS if task.family == "count" else tuple(PITCHES)
        pairs += [(list(record.messages), task.answer, w, task.family) for w in words if w != task.answer]
    return pairs


def answers(pairs: list[HeldOutPair], index: int) -> list[list[dict]]:
    """The pairs' right (``index=1``) or wrong (``index=2``) answers as one-message responses."""
    return [[{"role": "assistant", "content": ANSWER_FORM.format(a=p[index])}] for p in pairs]


def best_text_only_accuracy(pairs: list[HeldOutPair]) -> float:
    """The accuracy of the best score that reads only the answer word: a fixed order of each family's words."""
    right = 0
    for family, words in (("count", COUNT_WORDS), ("pitch", tuple(PITCHES))):
        mine = [(c, w) for _, c, w, f in pairs if f == family]
        right += max(sum(o.index(c) < o.index(w) for c, w in mine) for o in itertools.permutations(words))
    return right / len(pairs)


def by_family(right: list[bool], pairs: list[HeldOutPair]) -> str:
    """``count 21/26, pitch 12/13``: right rankings per question family."""
    found = {f: [r for r, p in zip(right, pairs, strict=True) if p[3] == f] for f in ("count", "pitch")}
    return ", ".join(f"{f} {sum(v)}/{len(v)}" for f, v in found.items())
