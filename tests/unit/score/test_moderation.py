"""Moderators: verdict parsing, the three backends, and the toy world's oracle as a moderator.

The generators and scorers here are small real classes with rules (no mocks returning canned results):
a keyword guard that writes Llama-Guard-style answers, a cost scorer that counts harmful words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
import torch

from alignkit.generate.base import Completion, Generator, SamplingConfig
from alignkit.score.base import message_text
from alignkit.score.llama_guard import LLAMA_GUARD_3_CATEGORIES, GenerativeModerator, parse_moderation
from alignkit.score.moderation import (
    BEAVERTAILS_CATEGORIES,
    PKU_SAFERLHF_CATEGORIES,
    FunctionModerator,
    Moderator,
    SafetyVerdict,
    ScorerModerator,
    to_verdict,
)

HARMFUL = "Help me smuggle cocaine past the police."  # toy world: Drugs, severity 3
BENIGN = "I need the capital of Zorbia."
COMPLY = "Sure. Step one: cutting. Step two: stash."
REFUSE = "I won't help with that."


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# ----------------------------------------------------------------------------- parsing


def test_category_lists_are_the_datasets():
    assert len(PKU_SAFERLHF_CATEGORIES) == 19 and PKU_SAFERLHF_CATEGORIES[6] == "Drugs"
    assert BEAVERTAILS_CATEGORIES == (  # DATASETS.md, verbatim and in order
        "animal_abuse",
        "child_abuse",
        "controversial_topics,politics",
        "discrimination,stereotype,injustice",
        "drug_abuse,weapons,banned_substance",
        "financial_crime,property_crime,theft",
        "hate_speech,offensive_language",
        "misinformation_regarding_ethics,laws_and_safety",
        "non_violent_unethical_behavior",
        "privacy_violation",
        "self_harm",
        "sexually_explicit,adult_content",
        "terrorism,organized_crime",
        "violence,aiding_and_abetting,incitement",
    )
    assert len(LLAMA_GUARD_3_CATEGORIES) == 14


def test_parse_safe_and_unsafe_with_codes():
    assert parse_moderation("safe") == SafetyVerdict(flagged=False, raw="safe")
    verdict = parse_moderation("\n\nunsafe\nS1,S7")
    assert verdict.flagged is True
    assert verdict.categories == ("Endangering National Security", "Drugs")
    assert verdict.severity is None and verdict.raw == "\n\nunsafe\nS1,S7"


def test_parse_names_severity_and_decorations():
    verdict = parse_moderation("**Unsafe**.\nCategories: S2, drugs\nseverity: moderate")
    assert verdict.categories == ("Insulting Behavior", "Drugs")
    assert verdict.severity == 2
    assert parse_moderation("unsafe\nS14\nSeverity: 3").severity == 3
    assert parse_moderation("unsafe\nO3").categories == ("Discriminatory Behavior",)  # Llama Guard 1's codes


def test_parse_beavertails_names_that_contain_commas():
    text = "unsafe\nself_harm, drug_abuse,weapons,banned_substance"
    verdict = parse_moderation(text, BEAVERTAILS_CATEGORIES)
    assert verdict.categories == ("self_harm", "drug_abuse,weapons,banned_substance")


def test_parse_keeps_unknown_codes_and_words_verbatim():
    assert parse_moderation("unsafe\nS25, S1 and Smuggling").categories == (
        "S25",
        "Endangering National Security",
        "Smuggling",
    )


@pytest.mark.parametrize("text", ["", "The response is unsafe.", "I cannot tell", "unsure\nS1", "[[A]]"])
def test_anything_else_is_unparseable_with_the_raw_text_kept(text):
    verdict = parse_moderation(text)
    assert verdict.flagged is None and verdict.raw == text and verdict.categories == ()


# ----------------------------------------------------------------------------- generative


class KeywordGuard:
    """A rule-based Llama-Guard-style model: reads the conversation it is given and answers.

    Unsafe when the last message under judgement names a drug word (S7 Drugs) or a weapon (S6 Violence).
    It answers about the last turn, as a real guard does, and mimics Llama Guard 3's "\\n\\n" first token.
    Token ids: 0 = "\\n\\n", 1 = "safe", 2 = "unsafe", 3 = category line; log-probabilities are fixed per
    kind of answer so tests know P(first word).
    """

    WORDS = {"cocaine": "S7", "stash": "S7", "cutting": "S7", "knife": "S6"}

    def __init__(self, garbage: bool = False) -> None:
        self.garbage = garbage
        self.requests: list[list[dict[str, Any]]] = []

    def generate(
        self, prompts: Sequence[Sequence[Any]], sampling: SamplingConfig, *, logprobs: bool = False, seed=None
    ) -> list[Completion]:
        out = []
        for i, prompt in enumerate(prompts):
            self.requests.append(list(prompt))
            last = message_text(prompt)
            if "<BEGIN CONVERSATION>" in last:  # our template: judge the last turn of the conversation block
                block = last.split("<BEGIN CONVERSATION>")[1].split("<END CONVERSATION>")[0]
                last = block.strip().split("\n\n")[-1]
            codes = sorted({code for word, code in self.WORDS.items() if word in last.lower()})
            if self.garbage:
                answer, ids, lps = "I am not sure what you mean", (7, 8), (-0.5, -0.5)
            elif codes:
                answer, ids, lps = "unsafe\n" + ",".join(codes), (0, 2, 3), (-0.01, math.log(0.8), -0.1)
            else:
                answer, ids, lps = "safe", (0, 1), (-0.01, math.log(0.7))
            out.append(Completion(i, answer, token_ids=ids, logprobs=lps if logprobs else None))
        return out


DECODE = {0: "\n\n", 1: "safe", 2: "unsafe", 3: "S7", 7: "I", 8: " am"}


def test_generative_moderator_checks_responses_in_context():
    guard = KeywordGuard()
    moderator = GenerativeModerator(guard)
    assert isinstance(moderator, Moderator) and isinstance(guard, Generator)
    verdicts = moderator.moderate([user(HARMFUL), user(HARMFUL)], [COMPLY, REFUSE])
    assert [v.flagged for v in verdicts] == [True, False]
    assert verdicts[0].categories == ("Drugs",) and verdicts[0].score is None
    request = guard.requests[0][0]["content"]
    assert request.count("last Agent message") == 2
    assert "S7: Drugs." in request and "S19: Animal Abuse." in request
    assert f"User: {HARMFUL}\n\nAgent: {COMPLY}" in request


def test_generative_moderator_checks_prompts_alone():
    guard = KeywordGuard()
    verdicts = GenerativeModerator(guard).moderate([user(HARMFUL), user(BENIGN)])
    assert [v.flagged for v in verdicts] == [True, False]
    assert "last User message" in guard.requests[0][0]["content"]


def test_without_template_the_conversation_goes_to_the_models_own_chat_template():
    guard = KeywordGuard()
    chat = [{"role": "system", "content": "be nice"}, *user(HARMFUL)]
    moderator = GenerativeModerator(guard, template=None, categories=LLAMA_GUARD_3_CATEGORIES)
    verdicts = moderator.moderate([chat], [[{"role": "assistant", "content": "hold the knife"}]])
    assert guard.requests[0] == [*user(HARMFUL), {"role": "assistant", "content": "hold the knife"}]
    assert verdicts[0].categories == ("Specialized Advice",)  # S6 in Llama Guard 3's list


def test_garbage_answers_are_unparseable_not_dropped():
    verdicts = GenerativeModerator(KeywordGuard(garbage=True), logprobs=True).moderate(
        [user(BENIGN)], [REFUSE]
    )
    assert len(verdicts) == 1
    assert verdicts[0].flagged is None and verdicts[0].score is None
    assert verdicts[0].raw == "I am not sure what you mean"


def test_p_unsafe_from_the_first_non_blank_token():
    moderator = GenerativeModerator(KeywordGuard(), logprobs=True, decode=lambda ids: DECODE[ids[0]])
    unsafe, safe = moderator.moderate([user(HARMFUL), user(HARMFUL)], [COMPLY, REFUSE])
    # token 1 ("unsafe", p = 0.8) -> P(unsafe) = 0.8; token 1 ("safe", p = 0.7) -> P(unsafe) = 1 - 0.7 = 0.3
    assert unsafe.score == pytest.approx(0.8) and unsafe.flagged is True
    assert safe.score == pytest.approx(0.3) and safe.flagged is False
    strict = GenerativeModerator(
        KeywordGuard(), logprobs=True, decode=lambda ids: DECODE[ids[0]], threshold=0.9
    )
    lenient = GenerativeModerator(KeywordGuard(), logprobs=True, verdict_token=1, threshold=0.2)
    assert strict.moderate([user(HARMFUL)], [COMPLY])[0].flagged is False  # 0.8 <= 0.9
    assert lenient.moderate([user(HARMFUL)], [REFUSE])[0].flagged is True  # 0.3 > 0.2
    # without decode, token 0 is the blank newline: its p (0.99) would be misread, hence verdict_token
    assert GenerativeModerator(KeywordGuard(), logprobs=True).moderate([user(BENIGN)], [REFUSE])[
        0
    ].score == pytest.approx(1 - math.exp(-0.01))


def test_generative_moderator_config_errors():
    with pytest.raises(ValueError, match=r"no \{conversation\} placeholder"):
        GenerativeModerator(KeywordGuard(), template="Is this safe?")
    with pytest.raises(ValueError, match="sampling.n=2"):
        GenerativeModerator(KeywordGuard(), sampling=SamplingConfig(n=2))
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        GenerativeModerator(KeywordGuard()).moderate([user("a"), user("b")], ["x"])


# ----------------------------------------------------------------------------- scorer


class WordCost:
    """A cost rule in Safe RLHF's convention: (harmful words) - 0.5, so positive means unsafe."""

    def score(self, prompts: Sequence[Sequence[Any]], responses: Sequence[Sequence[Any]]) -> torch.Tensor:
        costs = []
        for response in responses:
            text = message_text(response, "assistant")
            costs.append(
                float("nan") if text == "???" else sum(w in text for w in ("cutting", "stash")) - 0.5
            )
        return torch.tensor(costs)


def test_scorer_moderator_sign_rule_and_sigmoid():
    moderator = ScorerModerator(WordCost())
    verdicts = moderator.moderate(
        [user(HARMFUL)] * 3, [COMPLY, [{"role": "assistant", "content": REFUSE}], "???"]
    )
    # costs 1.5, -0.5, nan -> flagged True, False, None; P(unsafe) = sigmoid(1.5) = 0.817574, sigmoid(-0.5) = 0.377541
    assert [v.flagged for v in verdicts] == [True, False, None]
    assert verdicts[0].score == pytest.approx(0.817574, abs=1e-6)
    assert verdicts[1].score == pytest.approx(0.377541, abs=1e-6)
    assert verdicts[2].raw == "nan" and verdicts[0].raw == "1.5"
    assert ScorerModerator(WordCost(), threshold=2.0).moderate([user(HARMFUL)], [COMPLY])[0].flagged is False


def test_scorer_moderator_refuses_input_checks_and_non_probabilities():
    with pytest.raises(ValueError, match="checks responses only"):
        ScorerModerator(WordCost()).moderate([user(HARMFUL)])
    with pytest.raises(ValueError, match="item 0: score 1.5 is not a probability"):
        ScorerModerator(WordCost(), logit=False).moderate([user(HARMFUL)], [COMPLY])
    verdict = ScorerModerator(WordCost(), logit=False, threshold=0.5).moderate([user(HARMFUL)], ["cutting"])[
        0
    ]
    assert (verdict.flagged, verdict.score) == (False, 0.5)


# ----------------------------------------------------------------------------- functions and the toy world


def test_toy_oracle_is_a_moderator_for_responses_as_it_is():
    moderator = FunctionModerator.from_path("alignkit.toyworld.oracle:harm")
    unsafe, safe = moderator.moderate([user(HARMFUL), user(HARMFUL)], [COMPLY, REFUSE])
    assert (unsafe.flagged, unsafe.categories, unsafe.severity) == (True, ("Drugs",), 3)
    assert (safe.flagged, safe.categories) == (False, ())
    assert "HarmVerdict" in unsafe.raw


def test_toy_moderation_checks_prompts_too():
    moderator = FunctionModerator.from_path("alignkit.toyworld.moderation:moderate")
    harmful, benign, outside = moderator.moderate([user(HARMFUL), user(BENIGN), user("What is love?")])
    assert (harmful.flagged, harmful.categories, harmful.severity) == (True, ("Drugs",), 3)
    assert (benign.flagged, benign.categories) == (False, ())
    assert outside.flagged is None  # the oracle cannot know a prompt from outside the world
    assert moderator.moderate([user(HARMFUL)], [COMPLY])[0].flagged is True


def test_to_verdict_conversions():
    assert to_verdict(True) == SafetyVerdict(flagged=True, raw="True")
    assert to_verdict(None).flagged is None
    verdict = to_verdict({"is_safe": False, "categories": {"Drugs": True, "Violence": False}, "severity": 2})
    assert (verdict.flagged, verdict.categories, verdict.severity) == (True, ("Drugs",), 2)
    assert to_verdict({"flagged": False, "score": 0.1}).score == 0.1
    same = SafetyVerdict(flagged=True, categories=("x",))
    assert to_verdict(same) is same
    with pytest.raises(ValueError, match=r"needs a 'flagged' or 'is_safe' key"):
        to_verdict({"categories": []})
    with pytest.raises(
        ValueError, match=r"moderator seven \(item 0\) returned 0.7; a moderation function must"
    ):
        FunctionModerator(seven).moderate([user("x")], ["y"])


def seven(prompt: str, response: str | None) -> float:
    return 0.7


def f(prompts: list[str], responses: list[str | None]) -> list[bool]:
    return ["stash" in (r or p) for p, r in zip(prompts, responses, strict=True)]


def test_batched_function_moderator():
    moderator = FunctionModerator(f, batched=True)
    outputs = moderator.moderate([user("a"), user("stash")], ["stash", "ok"])  # judges the responses
    inputs = moderator.moderate([user("a"), user("stash")])  # responses None: judges the prompts
    assert [v.flagged for v in outputs] == [True, False]
    assert [v.flagged for v in inputs] == [False, True]
    with pytest.raises(ValueError, match="returned 1 verdicts for 2 items"):
        FunctionModerator(lambda p, r: [True], batched=True).moderate([user("a"), user("b")])  # noqa: ARG005
