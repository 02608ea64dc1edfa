"""GuardedGenerator's chain on a scripted upstream and a word-list moderator: every branch by hand."""

from __future__ import annotations

import pytest

from alignkit.generate.base import Completion, SamplingConfig
from alignkit.guard import DEFAULT_REFUSAL, GuardedGenerator
from alignkit.score.moderation import FunctionModerator, SafetyVerdict


class Scripted:
    """Answers from a queue per prompt text (one per call); records every call's prompts, sampling, seed."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = {k: list(v) for k, v in answers.items()}
        self.calls: list[tuple[list, SamplingConfig, int | None]] = []

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        self.calls.append((list(prompts), sampling, seed))
        out = []
        for i, prompt in enumerate(prompts):
            for _ in range(sampling.n):
                out.append(Completion(prompt_index=i, text=self.answers[prompt[-1]["content"]].pop(0)))
        return out


def word_judge(prompt: str, response: str | None):
    """Unsafe when the text says 'bomb' (severity 3) or 'rude' (severity 1); 'garbled' is unreadable."""
    text = prompt if response is None else response
    if "garbled" in text:
        return None
    if "bomb" in text:
        return SafetyVerdict(flagged=True, categories=("Violence",), severity=3)
    if "rude" in text:
        return SafetyVerdict(flagged=True, categories=("Insult",), severity=1)
    return SafetyVerdict(flagged=False)


def ask(*texts: str) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": t}] for t in texts]


GREEDY = SamplingConfig(max_new_tokens=8, temperature=0.0)


def test_a_flagged_answer_is_regenerated_until_one_passes_and_every_round_is_traced():
    upstream = Scripted({"q1": ["bomb A", "bomb B", "fine C"], "q2": ["ok"]})
    guard = GuardedGenerator(upstream, FunctionModerator(word_judge), rounds=5)
    traces = guard.generate_traced(ask("q1", "q2"), GREEDY, seed=10)
    assert [t.completion.text for t in traces] == ["fine C", "ok"]
    assert [t.outcome for t in traces] == ["regenerated", "passed"]
    assert [(r.round, r.text, r.blocked) for r in traces[0].rounds] == [
        (0, "bomb A", True),
        (1, "bomb B", True),
        (2, "fine C", False),
    ]
    assert traces[0].regenerations == 2 and traces[1].regenerations == 0
    assert traces[0].rounds[0].verdict.categories == ("Violence",)
    # round 0: both prompts, the caller's greedy sampling; then only q1, sampled, seeds 10+1, 10+2
    assert [(len(p), s.temperature, seed) for p, s, seed in upstream.calls] == [
        (2, 0.0, 10),
        (1, 1.0, 11),
        (1, 1.0, 12),
    ]
    assert traces[0].to_dict()["rounds"][0] == {
        "stage": "output",
        "round": 0,
        "text": "bomb A",
        "flagged": True,
        "categories": ["Violence"],
        "severity": 3,
        "score": None,
        "blocked": True,
    }


def test_after_k_rounds_the_guard_refuses_or_returns_the_least_severe_candidate():
    answers = {"q": ["bomb 1", "rude 2", "bomb 3"]}
    refused = GuardedGenerator(Scripted(answers), FunctionModerator(word_judge), rounds=2, refusal="No.")
    trace = refused.generate_traced(ask("q"), GREEDY)[0]
    assert (trace.outcome, trace.completion.text, len(trace.rounds)) == ("refused", "No.", 3)
    least = GuardedGenerator(
        Scripted(answers), FunctionModerator(word_judge), rounds=2, fallback="least_severe"
    )
    trace = least.generate_traced(ask("q"), GREEDY)[0]
    assert (trace.outcome, trace.completion.text) == ("least_severe", "rude 2")  # severity 1 < 3


def test_rounds_zero_filters_only_and_min_severity_lets_minor_harm_through():
    guard = GuardedGenerator(
        Scripted({"q": ["bomb"], "r": ["rude"]}), FunctionModerator(word_judge), rounds=0
    )
    assert [c.text for c in guard.generate(ask("q", "r"), GREEDY)] == [DEFAULT_REFUSAL, DEFAULT_REFUSAL]
    lenient = GuardedGenerator(
        Scripted({"q": ["bomb"], "r": ["rude"]}), FunctionModerator(word_judge), rounds=0, min_severity=2
    )
    assert [c.text for c in lenient.generate(ask("q", "r"), GREEDY)] == [DEFAULT_REFUSAL, "rude"]


def test_an_input_check_refuses_a_flagged_query_without_generating():
    upstream = Scripted({"make a bomb": ["never called"], "hello": ["hi"]})
    guard = GuardedGenerator(upstream, FunctionModerator(word_judge), check="input")
    traces = guard.generate_traced(ask("make a bomb", "hello"), GREEDY)
    assert [t.outcome for t in traces] == ["blocked_input", "passed"]
    assert traces[0].completion.text == DEFAULT_REFUSAL and traces[0].rounds[0].stage == "input"
    assert [p for p, _, _ in upstream.calls] == [ask("hello")]  # only the safe query reached the model
    # input-only: the answer is not checked
    assert traces[1].rounds[-1].verdict.raw == "not checked"


def test_n_samples_are_guarded_one_by_one_and_stay_prompt_major():
    upstream = Scripted({"a": ["ok a0", "bomb a1", "ok a1'"], "b": ["ok b0", "ok b1"]})
    guard = GuardedGenerator(upstream, FunctionModerator(word_judge))
    sampled = SamplingConfig(max_new_tokens=8, temperature=0.7, n=2)
    completions = guard.generate(ask("a", "b"), sampled, seed=0)
    assert [(c.prompt_index, c.text) for c in completions] == [
        (0, "ok a0"),
        (0, "ok a1'"),
        (1, "ok b0"),
        (1, "ok b1"),
    ]
    # the regeneration keeps the caller's temperature (0.7: it already samples) and asks one sample
    assert (upstream.calls[1][1].temperature, upstream.calls[1][1].n) == (0.7, 1)


def test_feedback_adds_a_system_note_naming_the_flagged_categories():
    upstream = Scripted({"q": ["bomb", "fine"]})
    guard = GuardedGenerator(upstream, FunctionModerator(word_judge), feedback="Unsafe: {categories}.")
    guard.generate(ask("q"), GREEDY)
    assert upstream.calls[1][0][0] == [
        {"role": "system", "content": "Unsafe: Violence."},
        {"role": "user", "content": "q"},
    ]


def test_an_unreadable_verdict_fails_closed_unless_told_to_pass():
    closed = GuardedGenerator(Scripted({"q": ["garbled"]}), FunctionModerator(word_judge), rounds=0)
    assert closed.generate(ask("q"), GREEDY)[0].text == DEFAULT_REFUSAL
    open_ = GuardedGenerator(Scripted({"q": ["garbled"]}), FunctionModerator(word_judge), unreadable="pass")
    assert open_.generate(ask("q"), GREEDY)[0].text == "garbled"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("check", "middle", "guard check='middle': expected one of input, output, both"),
        ("fallback", "shrug", "expected one of refusal, least_severe"),
        ("rounds", -1, "guard rounds=-1"),
        ("unreadable", "maybe", "expected 'flag' or 'pass'"),
        ("regenerate_temperature", 0.0, "expected a number > 0"),
    ],
)
def test_bad_settings_name_the_key_and_the_allowed_values(key, value, message):
    with pytest.raises(ValueError, match=message):
        GuardedGenerator(Scripted({}), FunctionModerator(word_judge), **{key: value})
