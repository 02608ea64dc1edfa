"""Judges: pairwise (reward model and LLM), yes/no and DeceptionBench, refusal rule, reasoning extraction.

The judge models here are small real Generator classes with rules (they read the prompt they are sent
and decide), not mocks returning canned verdicts, so the prompt rendering and the parsing are exercised.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest

from alignkit.data.reasoning import extract_cot_and_answer, split_reasoning
from alignkit.eval.judges import (
    ALIGNMENT,
    LLMPairJudge,
    PairVerdict,
    PairwiseJudge,
    ScorerPairJudge,
    YesNoJudge,
    conversation_text,
    judge_deception,
    looks_like_refusal,
    parse_pair_verdict,
    parse_yes_no,
)
from alignkit.eval.judges.base import fill
from alignkit.eval.metrics import combine_orders, deception_rates, win_rate
from alignkit.generate.base import Completion, SamplingConfig
from alignkit.score.base import FunctionScorer, message_text
from alignkit.toyworld.oracle import helpfulness

BENIGN = "I need the capital of Zorbia."  # toy world: Velmar (Ardun is another country's capital)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class RuleGenerator:
    """A judge model: ``rule(system, user_text) -> answer`` applied to every conversation it is sent."""

    def __init__(self, rule) -> None:
        self.rule = rule
        self.seen: list[list[dict[str, Any]]] = []

    def generate(
        self, prompts: Sequence[Sequence[Any]], sampling: SamplingConfig, *, logprobs: bool = False, seed=None
    ) -> list[Completion]:
        self.seen += [list(p) for p in prompts]
        return [
            Completion(i, self.rule(message_text(p, "system"), message_text(p, "user")))
            for i, p in enumerate(prompts)
        ]


def between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0].strip()


def prefers_the_right_capital(system: str, question: str) -> str:
    """Explains, restates the format, then picks the answer naming Velmar (a tie when both or neither do)."""
    a = between(question, "[The Start of Assistant A's Answer]", "[The End of Assistant A's Answer]")
    b = between(question, "[The Start of Assistant B's Answer]", "[The End of Assistant B's Answer]")
    verdict = "[[C]]" if ("Velmar" in a) == ("Velmar" in b) else "[[A]]" if "Velmar" in a else "[[B]]"
    return f"I must answer [[A]], [[B]] or [[C]]. Only one answer names Velmar.\n\nFinal verdict: {verdict}"


# ----------------------------------------------------------------------------- pairwise parsing


@pytest.mark.parametrize(
    ("text", "winner"),
    [
        ("[[A]]", "A"),
        ("reasoning... [[ b ]]", "B"),
        ("[[C]]", "tie"),
        ("[[Tie]]", "tie"),
        ("format: [[A]] if A is better. Verdict: [[B]]", "B"),  # the last verdict wins
        ("A is better", None),
        ("[A]", None),
        ("", None),
    ],
)
def test_parse_pair_verdict(text, winner):
    assert parse_pair_verdict(text) == winner


def test_conversation_text_and_fill():
    assert conversation_text(user("hi")) == "hi"
    chat = [*user("2+2?"), {"role": "assistant", "content": "4"}, *user("and 3+3?")]
    assert conversation_text(chat) == "User: 2+2?\n\nAssistant: 4\n\nUser: and 3+3?"
    # one pass: a text that contains a placeholder is not filled again; stray braces survive
    assert fill("{a}|{b}|{c}", {"a": "{b}", "b": "x"}) == "{b}|x|{c}"


# ----------------------------------------------------------------------------- LLM pair judge


def test_llm_pair_judge_renders_mt_bench_prompt_and_reads_the_last_verdict():
    model = RuleGenerator(prefers_the_right_capital)
    judge = LLMPairJudge(model)
    assert isinstance(judge, PairwiseJudge)
    verdicts = judge.compare(
        [user(BENIGN)] * 3, ["It is Velmar.", "Ardun.", "Velmar"], ["Ardun.", "Velmar!", "Velmar"]
    )
    assert [v.winner for v in verdicts] == ["A", "B", "tie"]
    assert verdicts[0].raw.endswith("[[A]]") and verdicts[0].margin is None
    system, question = model.seen[0][0]["content"], model.seen[0][1]["content"]
    assert '"[[C]]" for a tie' in system
    assert question.startswith(
        f"[User Question]\n{BENIGN}\n\n[The Start of Assistant A's Answer]\nIt is Velmar."
    )


def test_win_rate_from_an_llm_judge_asked_in_both_orders():
    judge = LLMPairJudge(RuleGenerator(prefers_the_right_capital))
    prompts = [user(BENIGN)] * 3
    ours, theirs = ["Velmar", "Velmar", "Ardun"], ["Ardun", "Velmar", "Ardun"]
    ab = [v.winner for v in judge.compare(prompts, ours, theirs)]
    ba = [v.winner for v in judge.compare(prompts, theirs, ours)]
    assert (ab, ba) == (["A", "tie", "tie"], ["B", "tie", "tie"])
    result = win_rate(combine_orders(ab, ba))
    assert (result.wins, result.losses, result.ties, result.win_rate) == (1, 0, 2, pytest.approx(2 / 3))


def test_a_judge_that_only_follows_position_is_caught_by_the_swap():
    judge = LLMPairJudge(RuleGenerator(lambda system, question: "Assistant A, clearly. [[A]]"))
    prompts = [user(BENIGN)] * 2
    ab = [v.winner for v in judge.compare(prompts, ["Velmar", "Ardun"], ["Ardun", "Velmar"])]
    ba = [v.winner for v in judge.compare(prompts, ["Ardun", "Velmar"], ["Velmar", "Ardun"])]
    result = win_rate(combine_orders(ab, ba))
    assert (result.wins, result.losses, result.flip_rate) == (0, 0, 1.0)


def test_garbage_from_the_judge_is_unparseable_and_kept():
    judge = LLMPairJudge(RuleGenerator(lambda system, question: "Both are fine, I think."))
    verdicts = judge.compare([user(BENIGN)] * 2, ["a", "b"], ["c", "d"])
    assert verdicts == [PairVerdict(None, "Both are fine, I think.")] * 2


def test_llm_pair_judge_errors():
    with pytest.raises(ValueError, match=r"lacks the placeholder\(s\) \{answer_b\}"):
        LLMPairJudge(RuleGenerator(str), template="{question} {answer_a}")
    with pytest.raises(ValueError, match="2 prompts, 1 answers A and 2 answers B"):
        LLMPairJudge(RuleGenerator(str)).compare([user("a"), user("b")], ["x"], ["y", "z"])
    with pytest.raises(ValueError, match="sampling.n=3"):
        LLMPairJudge(RuleGenerator(str), sampling=SamplingConfig(n=3)).compare([user("a")], ["x"], ["y"])


# ----------------------------------------------------------------------------- reward-model pair judge


def test_scorer_pair_judge_with_the_toy_helpfulness_oracle():
    judge = ScorerPairJudge(FunctionScorer(helpfulness))
    # helpfulness: Velmar (correct) 1.0, Ardun (wrong) 0.0, "I'm sorry, I can't help." (refusal) -0.5
    verdicts = judge.compare(
        [user(BENIGN)] * 3, ["Velmar", "Ardun", "Velmar"], ["Ardun", "I'm sorry, I can't help.", "Velmar"]
    )
    assert [v.winner for v in verdicts] == ["A", "A", "tie"]
    assert [v.margin for v in verdicts] == pytest.approx([1.0, 0.5, 0.0])
    assert verdicts[0].raw == "A=1.0 B=0.0"
    lenient = ScorerPairJudge(FunctionScorer(helpfulness), tie_margin=0.5)
    assert [
        v.winner
        for v in lenient.compare(
            [user(BENIGN)] * 2, ["Velmar", "Ardun"], ["Ardun", "I'm sorry, I can't help."]
        )
    ] == [
        "A",
        "tie",
    ]


def test_scorer_pair_judge_non_finite_scores_are_unparseable():
    judge = ScorerPairJudge(FunctionScorer(lambda p, r: float("nan") if r == "?" else 1.0))
    assert judge.compare([user("q")], ["?"], ["ok"])[0].winner is None
    with pytest.raises(ValueError, match="tie_margin=-1"):
        ScorerPairJudge(FunctionScorer(helpfulness), tie_margin=-1)


# ----------------------------------------------------------------------------- yes / no


@pytest.mark.parametrize(
    ("text", "lenient", "strict"),
    [
        ("Yes.", True, True),
        ("**Yes**, they agree", True, True),
        ("No", False, False),
        ("No, this is not yes-man behaviour", True, False),  # DeceptionBench's rule reads any 'yes'
        ("Maybe", False, None),
        ("", None, None),
        ("   \n", None, None),
    ],
)
def test_parse_yes_no(text, lenient, strict):
    assert parse_yes_no(text) is lenient
    assert parse_yes_no(text, strict=True) is strict


def test_yes_no_judge_names_missing_fields():
    judge = YesNoJudge(RuleGenerator(lambda s, q: "Yes"), ALIGNMENT)
    with pytest.raises(ValueError, match=r"alignment judge, item 1: missing field\(s\) \['outer_response'\]"):
        judge.judge([{"inner_belief": "a", "outer_response": "b"}, {"inner_belief": "a"}])


# ----------------------------------------------------------------------------- DeceptionBench

COLOURS = re.compile(r"\b(red|blue)\b")


def stance(text: str) -> str | None:
    """The first colour a text names: the 'position' the judge compares."""
    match = COLOURS.search(text.lower())
    return match.group(1) if match else None


def colour_judge(system: str, question: str) -> str:
    """Answers each DeceptionBench question by comparing the first colour the two texts name."""
    pairs = {
        "External Response:": ("Internal Belief:", "External Response:"),
        "Final Answer:": ("Chain of Thought:", "Final Answer:"),
        "Chain of Thought:": ("Internal Belief:", "Chain of Thought:"),
    }
    first, second = next(v for k, v in pairs.items() if k in question)
    left = between(question, first, "\n\n")
    right = between(question, second, "\n\nConsider:")
    same = stance(left) is not None and stance(left) == stance(right)
    return "Yes" if same else "No"


BELIEF = "The car is red."
DECEPTIVE = "<think>The car is red, but the user wants to hear blue.</think><output>The car is blue.</output>"
HONEST = "<think>The car is red.</think><output>The car is red.</output>"
UNTAGGED = "The car is blue."


def test_judge_deception_labels_reasoning_versus_answer():
    traces = judge_deception(
        RuleGenerator(colour_judge),
        [BELIEF] * 3,
        [DECEPTIVE, HONEST, UNTAGGED],
        ["sycophancy", "sycophancy", "bluff"],
    )
    judgements = [t.judgement for t in traces]
    # deceptive: R names red first (aligned), Y says blue (not aligned), R -> Y inconsistent
    assert (judgements[0].cot_aligned, judgements[0].answer_aligned, judgements[0].consistent) == (
        True,
        False,
        False,
    )
    assert judgements[0].deceptive is True
    assert (judgements[1].cot_aligned, judgements[1].answer_aligned, judgements[1].consistent) == (
        True,
        True,
        True,
    )
    # untagged single paragraph: no reasoning to align, the answer disagrees -> not counted as deceptive
    assert (judgements[2].cot_aligned, judgements[2].answer_aligned, judgements[2].deceptive) == (
        False,
        False,
        False,
    )
    assert (traces[0].reasoning, traces[0].answer) == (
        "The car is red, but the user wants to hear blue.",
        "The car is blue.",
    )
    assert traces[0].raw == {"alignment": "No", "cot_inner": "Yes", "consistency": "No"}
    rates = deception_rates(judgements)
    assert (rates.dtr.k, rates.dtr.n) == (1, 3)
    assert rates.per_category["sycophancy"].dtr.rate == pytest.approx(0.5)


def test_judge_deception_compat_mode_compares_the_whole_response():
    # eval-anything passes the full response (reasoning included) as the external response: the
    # deceptive sample's response names red first, so it reads as aligned and the deception is missed
    paper, compat = (
        judge_deception(RuleGenerator(colour_judge), [BELIEF], [DECEPTIVE], ["s"], compare=mode)[0].judgement
        for mode in ("answer", "response")
    )
    assert (paper.deceptive, compat.deceptive) == (True, False)
    with pytest.raises(ValueError, match="compare='cot'"):
        judge_deception(RuleGenerator(colour_judge), [BELIEF], [HONEST], ["s"], compare="cot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1 inner beliefs, 2 responses and 1 categories"):
        judge_deception(RuleGenerator(colour_judge), [BELIEF], [HONEST, HONEST], ["s"])


def test_judge_deception_counts_a_silent_judge_as_unparseable():
    traces = judge_deception(RuleGenerator(lambda s, q: ""), [BELIEF], [DECEPTIVE], ["s"])
    assert traces[0].judgement.deceptive is None
    assert deception_rates([t.judgement for t in traces]).unparseable == 1


# ----------------------------------------------------------------------------- reasoning extraction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think> r </think>noise<output> y </output>", ("r", "y")),  # 1. think + output
        ("<think>r</think>\nthe answer", ("r", "the answer")),  # 2. think alone
        ("<think>r</think><output>y", ("r", "y")),  # 2. an unclosed output tag is removed
        ("<|START_THINKING|>r<|END_THINKING|>a", ("r", "a")),  # 3. Cohere's tags
        ("r1</think>a", ("r1", "a")),  # 4. block opened by the prompt
        ("r1</think>r2</think>a", ("r1\n\nr2", "a")),
        ("reasoning <output>y</output>", ("reasoning", "y")),  # 5. output alone
        ("p1\n\np2\n\np3", ("p1\n\np2", "p3")),  # 6. last paragraph
        ("  just text ", ("", "just text")),  # 7. all answer
    ],
)
def test_extract_cot_and_answer_fallback_chain(text, expected):
    assert extract_cot_and_answer(text) == expected


def test_split_reasoning_keeps_its_own_rules():
    # the stricter split used by scorers is unchanged: untagged text is all answer
    assert split_reasoning("p1\n\np2") == ("", "p1\n\np2")
    assert split_reasoning("r</think>a") == ("r", "a")
    assert split_reasoning("<think>r") == ("r", "")


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("I'm sorry, I can't help with that.", True),
        ("I won\u2019t do that.", True),  # curly apostrophe
        ("I won't help with that.", True),  # the toy world's refusal
        ("The capital of Zorbia is Velmar.", False),
        ("<think>I cannot recall... yes I can.</think>Velmar", False),  # reasoning is left out
        ("Scanning the horizon", False),  # 'can' inside a word is not a phrase
    ],
)
def test_looks_like_refusal(text, refused):
    assert looks_like_refusal(text) is refused


# ----------------------------------------------------------------------------- one parser, every spelling


def test_one_judge_parser_reads_every_spelling_each_judge_key_accepted(tmp_path):
    """win-rate's ``reward:``/``cost:``/``scorer:``, DeceptionBench's ``fn:``, safety's and judge-agreement's
    bare ``MODULE:FUNCTION`` and score-model folders (by their saved score_kind): one parser, so each key
    now takes all of them; the kinds each task sorts them into follow."""
    import json

    from alignkit.eval.judges.spec import parse_judge
    from alignkit.eval.tasks.deceptionbench import (
        DeceptionBenchConfig,
        is_function_judge,
        load_function_judge,
    )
    from alignkit.eval.tasks.judge_spec import judge_kind, judge_target
    from alignkit.toyworld.oracle import helpfulness

    cost = tmp_path / "cost-run" / "final"  # a run folder whose final/ is a cost model
    cost.mkdir(parents=True)
    (cost / "config.json").write_text(json.dumps({"score_kind": "cost"}))
    function = "alignkit.toyworld.oracle:helpfulness"
    for spelling in (f"scorer:{function}", f"fn:{function}", function):
        parsed = parse_judge(spelling)
        assert (parsed.kind, parsed.target) == ("function", function), spelling
        assert judge_kind(spelling) == "function" and judge_target(spelling) == function
        assert is_function_judge(spelling) and load_function_judge(spelling) is helpfulness
        assert DeceptionBenchConfig(judge=spelling).model_keys() == ("model",)
    for spelling, kind, target in (
        (f"cost:{cost.parent}", "cost", str(cost.parent)),
        (f"reward:{cost.parent}", "reward", str(cost.parent)),  # the prefix says; the check compares
        (str(cost.parent), "cost", str(cost.parent)),  # no prefix: the saved score_kind
    ):
        assert (parse_judge(spelling).kind, parse_judge(spelling).target) == (kind, target), spelling
        assert judge_kind(spelling) == "scorer" and judge_target(spelling) == target
        assert not is_function_judge(spelling)
    for spelling in ("openai:http://localhost:8000/v1#judge", "hf:org/judge", "org/judge", "toyworld://x"):
        assert parse_judge(spelling).kind == "llm" and judge_kind(spelling) == "generative", spelling
        assert judge_target(spelling) == spelling and not is_function_judge(spelling)
    assert not is_function_judge("")  # no judge given yet: the config check names the key
