"""Rows of the toy world's datasets, in the published schemas alignkit's templates read.

Every label comes from the oracles (never from how a response was made), so the data and the
oracle metrics cannot disagree. Each writer takes its own ``random.Random`` so one split's contents
do not depend on how many rows another split drew.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import cache
from typing import Any

from alignkit.data.sentences import split_sentences
from alignkit.data.templates.aligner import STREAM_END
from alignkit.toyworld.harms import HARMFUL_GOALS
from alignkit.toyworld.oracle import harm, helpfulness
from alignkit.toyworld.world import (
    ADD_DIGITS,
    ANSWER_FORMS,
    COMPLIANCE_FORMS,
    REFUSALS,
    Task,
    all_tasks,
    compliance_response,
    correct_response,
    off_topic_response,
    refusal_response,
    wrong_response,
)

Row = dict[str, Any]


@dataclass(frozen=True)
class SFTMixture:
    """How often the SFT data answers each way: mixed quality on purpose.

    The SFT policy should be imperfect in ways later algorithms can fix and the oracles can measure.
    Greedy decoding follows the majority answer of a prompt, so compliance is concentrated on a
    "leaky" third of the harmful goals (the base model's blind spots) instead of being spread thinly,
    where greedy decoding would never show it.
    """

    benign_wrong: float = 0.10
    """Fraction of benign answers that are wrong."""
    benign_refusal: float = 0.05
    """Fraction of benign requests refused (over-refusal)."""
    leaky_goal_fraction: float = 1 / 3
    """Fraction of harmful goals the data mostly complies with."""
    leaky_compliance: float = 0.8
    """Compliance rate on a leaky goal's requests."""
    other_compliance: float = 0.1
    """Compliance rate on the other goals' requests (the rest are refused)."""

    def leaky_goals(self, seed: int) -> frozenset[str]:
        """The phrases of the goals the SFT data mostly complies with (fixed by the world's seed)."""
        rng = random.Random(f"toyworld-leaky-{seed}")
        count = round(self.leaky_goal_fraction * len(HARMFUL_GOALS))
        return frozenset(goal.phrase for goal in rng.sample(HARMFUL_GOALS, count))


def _sft_response(task: Task, rng: random.Random, mixture: SFTMixture, leaky: frozenset[str]) -> str:
    if task.goal is not None:
        rate = mixture.leaky_compliance if task.goal.phrase in leaky else mixture.other_compliance
        return compliance_response(task.goal) if rng.random() < rate else refusal_response()
    draw = rng.random()
    if draw < mixture.benign_wrong:
        return wrong_response(task, rng)
    if draw < mixture.benign_wrong + mixture.benign_refusal:
        return refusal_response()
    return correct_response(task)


def sft_rows(
    tasks: tuple[Task, ...], rng: random.Random, mixture: SFTMixture, leaky: frozenset[str], repeats: int
) -> list[Row]:
    """TRL conversational rows ``{"messages": [user, assistant]}``, ``repeats`` draws per prompt."""
    rows = [
        {
            "messages": [
                {"role": "user", "content": task.prompt},
                {"role": "assistant", "content": _sft_response(task, rng, mixture, leaky)},
            ]
        }
        for _ in range(repeats)
        for task in tasks
    ]
    rng.shuffle(rows)
    return rows


# Candidate kinds for preference pairs and their weights: (kind, weight) per request type.
BENIGN_CANDIDATES = (
    ("correct", 0.3),
    ("wrong", 0.25),
    ("refusal", 0.2),
    ("harmful", 0.1),
    ("off_topic", 0.15),
)
HARMFUL_CANDIDATES = (("comply", 0.4), ("refusal", 0.35), ("off_topic", 0.15), ("wrong", 0.1))


def candidate_response(task: Task, rng: random.Random) -> tuple[str, str]:
    """(kind, text) of one response drawn from the candidate mixture, in a random surface form."""
    candidates = HARMFUL_CANDIDATES if task.is_harmful else BENIGN_CANDIDATES
    kind = rng.choices([k for k, _ in candidates], weights=[w for _, w in candidates])[0]
    if kind == "correct":
        text = correct_response(task, rng.randrange(len(ANSWER_FORMS)))
    elif kind == "wrong":
        text = wrong_response(task, rng, rng.randrange(len(ANSWER_FORMS)))
    elif kind == "refusal":
        text = refusal_response(rng.randrange(len(REFUSALS)))
    elif kind == "comply":
        assert task.goal is not None
        text = compliance_response(task.goal, rng.randrange(len(COMPLIANCE_FORMS)))
    elif kind == "harmful":  # harmful instructions nobody asked for
        text = compliance_response(rng.choice(HARMFUL_GOALS), rng.randrange(len(COMPLIANCE_FORMS)))
    else:
        text = off_topic_response(rng)
    return kind, text


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _safer_id(prompt: str, r0: str, r1: str, rng: random.Random) -> int:
    """PKU-SafeRLHF's ``safer_response_id``: safe beats unsafe, then lower severity, then fewer
    categories; a full tie (both equally safe) is a coin flip, as an annotator who cannot tell."""
    v0, v1 = harm(prompt, r0), harm(prompt, r1)
    k0 = (not v0.is_safe, v0.severity, len(v0.categories))
    k1 = (not v1.is_safe, v1.severity, len(v1.categories))
    if k0 == k1:
        return rng.randrange(2)
    return 0 if k0 < k1 else 1


def safe_pref_row(task: Task, r0: tuple[str, str], r1: tuple[str, str], rng: random.Random) -> Row:
    """One PKU-SafeRLHF row (the current, full schema) for two candidate (kind, text) responses."""
    (kind0, text0), (kind1, text1) = r0, r1
    h0, h1 = helpfulness(task.prompt, text0), helpfulness(task.prompt, text1)
    assert h0 != h1, "pairs are drawn with different helpfulness"
    v0, v1 = harm(task.prompt, text0), harm(task.prompt, text1)
    return {
        "prompt": task.prompt,
        "response_0": text0,
        "response_1": text1,
        "prompt_source": f"toyworld/{task.family}",
        "response_0_source": f"toyworld/{kind0}",
        "response_1_source": f"toyworld/{kind1}",
        "is_response_0_safe": v0.is_safe,
        "is_response_1_safe": v1.is_safe,
        "response_0_harm_category": v0.category_flags(),
        "response_1_harm_category": v1.category_flags(),
        "response_0_severity_level": v0.severity,
        "response_1_severity_level": v1.severity,
        "better_response_id": 0 if h0 > h1 else 1,
        "safer_response_id": _safer_id(task.prompt, text0, text1, rng),
        "response_0_sha256": _sha256(text0),
        "response_1_sha256": _sha256(text1),
    }


def safe_pref_rows(tasks: tuple[Task, ...], rng: random.Random, pairs_per_prompt: int) -> list[Row]:
    """PKU-SafeRLHF pairs; the two responses of a pair always differ in helpfulness, because
    ``better_response_id`` must say something (the dataset has no ties)."""
    rows = []
    for task in tasks:
        for _ in range(pairs_per_prompt):
            first = candidate_response(task, rng)
            while True:
                second = candidate_response(task, rng)
                if helpfulness(task.prompt, first[1]) != helpfulness(task.prompt, second[1]):
                    break
            rows.append(safe_pref_row(task, first, second, rng))
    rng.shuffle(rows)
    return rows


def _answers_of(family: str) -> list[str]:
    """The right answer of every fact of a benign family (one per fact, so repeats keep their frequency)."""
    return [str(task.answer) for task in all_tasks() if task.family == family and task.template == 0]


def hard_wrong_answer(task: Task, rng: random.Random) -> str:
    """A wrong answer to a benign task that only the facts can rule out.

    Half are the right answer of another fact of the family, so every answer is as often wrong as it is
    right (uniform wrong answers would let a reward model learn that "9" is usually a right sum); for
    sums the other half are near misses (off by one or two), the mistakes a policy actually makes.
    """
    assert task.answer is not None
    if task.family == "add" and rng.random() < 0.5:
        right = int(task.answer)
        misses = [str(right + d) for d in (-2, -1, 1, 2) if 0 <= right + d <= 2 * max(ADD_DIGITS)]
        return rng.choice(misses)
    while True:
        answer = rng.choice(_answers_of(task.family))
        if answer != task.answer:
            return answer


def answer_pref_rows(tasks: tuple[Task, ...], rng: random.Random, pairs_per_prompt: int) -> list[Row]:
    """PKU-SafeRLHF pairs that only the facts can rank: the right and a wrong answer (``hard_wrong_answer``)
    to the same benign request, in the same surface form, so nothing but the answer tells them apart.

    ``safe_pref`` pairs mostly contrast kinds of answer (right vs refusal, compliance vs refusal, ...):
    only about one in seven is right vs wrong, too few for a reward model to learn the facts from, and a
    reward model that cannot tell a right answer from a wrong one is one PPO can hack (``reward_pref``).
    """
    rows = []
    for task in tasks:
        if task.is_harmful:
            continue
        for _ in range(pairs_per_prompt):
            form = ANSWER_FORMS[rng.randrange(len(ANSWER_FORMS))]
            right, wrong = form.format(a=task.answer), form.format(a=hard_wrong_answer(task, rng))
            pair = [("correct", right), ("wrong", wrong)]
            rng.shuffle(pair)
            rows.append(safe_pref_row(task, pair[0], pair[1], rng))
    rng.shuffle(rows)
    return rows


def ideal_response(task: Task) -> str:
    """What an aligned assistant says: the right answer, or a refusal of a harmful request."""
    return refusal_response() if task.is_harmful else correct_response(task)


def _answer_to_correct(task: Task, ideal: str, rng: random.Random, keep_fraction: float) -> str:
    """The answer a corrector is shown: ``ideal`` with probability ``keep_fraction`` (it learns to leave good
    answers alone), else a candidate of a kind the ideal is not. Shared by the Aligner and Stream Aligner
    rows, which draw from ``rng`` in exactly this order."""
    if rng.random() < keep_fraction:
        return ideal
    good = "refusal" if task.is_harmful else "correct"
    kind = good
    while kind == good:
        kind, answer = candidate_response(task, rng)
    return answer


def correction_rows(tasks: tuple[Task, ...], rng: random.Random, keep_fraction: float = 0.1) -> list[Row]:
    """Aligner rows ``{question, answer, correction}``: a flawed candidate answer and its ideal fix.

    Flawed means a kind the ideal is not (a wrong answer, a refusal of a benign request, compliance,
    off-topic chatter). A ``keep_fraction`` of rows already answer ideally (correction == answer), as in aligner-20K, so
    a corrector also learns to leave good answers alone.
    """
    rows = []
    for task in tasks:
        ideal = ideal_response(task)
        answer = _answer_to_correct(task, ideal, rng, keep_fraction)
        rows.append({"question": task.prompt, "answer": answer, "correction": ideal})
    rng.shuffle(rows)
    return rows


NOISE_MARKS: tuple[str, ...] = (".", ",", ">", "!", "?", "-", "'")


def _continuation(task: Task, rng: random.Random) -> str:
    """What an upstream may write after a complete answer: another answer's first sentence, or, a third of
    the time, degenerate text (a run of one punctuation mark, or shuffled world words), as an untrained
    model writes, so the corrector learns that a complete prefix ends the answer whatever follows."""
    draw = rng.random()
    if draw < 2 / 3:
        return split_sentences(candidate_response(task, rng)[1])[0]
    if draw < 5 / 6:
        return rng.choice(NOISE_MARKS) * rng.randint(1, 24)
    words = [
        w for text in (correct_response(t) for t in rng.sample(_benign_tasks(), 3)) for w in text.split()
    ]
    rng.shuffle(words)
    return " ".join(words)


@cache
def _benign_tasks() -> tuple[Task, ...]:
    return tuple(t for t in all_tasks() if not t.is_harmful)


def stream_correction_rows(
    tasks: tuple[Task, ...], rng: random.Random, draws: int = 2, keep_fraction: float = 0.2
) -> list[Row]:
    """Stream Aligner rows ``{question, prefix, last, correction}``: sentence-level corrections.

    Every ideal answer of the world is one sentence, so a stream has two steps. The first sentence of a
    drawn answer (flawed, or with ``keep_fraction`` ideal) is corrected to the ideal given an empty prefix;
    whatever sentence follows an accepted ideal prefix (the answer's own next sentence, or any candidate's
    first) is corrected to ``STREAM_END``: the answer is complete, stop.
    """
    rows = []
    for task in tasks:
        ideal = ideal_response(task)
        for _ in range(draws):
            sentences = split_sentences(_answer_to_correct(task, ideal, rng, keep_fraction))
            rows.append({"question": task.prompt, "prefix": "", "last": sentences[0], "correction": ideal})
            after = sentences[1] if len(sentences) > 1 else _continuation(task, rng)
            rows.append({"question": task.prompt, "prefix": ideal, "last": after, "correction": STREAM_END})
    rng.shuffle(rows)
    return rows


def prompt_rows(tasks: tuple[Task, ...]) -> list[Row]:
    """PKU-SafeRLHF-prompt rows ``{prompt, prompt_source}`` for RL rollouts and evaluation."""
    return [{"prompt": task.prompt, "prompt_source": f"toyworld/{task.family}"} for task in tasks]
