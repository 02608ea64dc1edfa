"""win-rate with rule models and rule judges (real Generator and Scorer classes), counted by hand.

Six prompts; model A and model B answer each from a table, so the word counts are known:

    prompt  A's answer (words)   B's answer (words)   longer
    q1      one two three (3)    one (1)              A
    q2      x y (2)              x (1)                A
    q3      a b c d (4)          a b (2)              A
    q4      p (1)                p q r (3)            B
    q5      s (1)                s t (2)              B
    q6      same len (2)         also two (2)         equal

A judge that prefers the longer answer therefore gives W3 L2 T1 in both orders.
"""

from __future__ import annotations

import abc
import json
import re

import pytest

from alignkit.config import ConfigError
from alignkit.eval import run_task
from alignkit.eval.judges.pairwise import LLMPairJudge
from alignkit.eval.judges.spec import parse_pair_judge
from alignkit.eval.metrics import combine_orders, length_stats, win_rate
from alignkit.eval.tasks.win_rate import WinRate, WinRateConfig, judge_conversation, outcome_scores
from alignkit.generate.base import Completion, Generator, SamplingConfig
from alignkit.score.base import FunctionScorer, Scorer

ANSWERS_A = {
    "q1": "one two three",
    "q2": "x y",
    "q3": "a b c d",
    "q4": "p",
    "q5": "s",
    "q6": "same len",
}
ANSWERS_B = {"q1": "one", "q2": "x", "q3": "a b", "q4": "p q r", "q5": "s t", "q6": "also two"}
SHOWN = re.compile(r"\[The Start of Assistant (A|B)'s Answer\]\n(.*?)\n\[The End", re.S)


class TableModel:
    """Answers each prompt from a table (a real Generator); counts the prompts it is asked."""

    def __init__(self, answers: dict[str, str], name: str) -> None:
        self.answers = answers
        self.cache_identity = f"table-{name}-v1"
        self.asked = 0

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        self.asked += len(prompts)
        return [Completion(i, self.answers[p[-1]["content"]]) for i, p in enumerate(prompts)]


class RuleJudge(abc.ABC):
    """An LLM judge by rule: reads the two answers out of the MT-Bench prompt and writes a verdict."""

    cache_identity: str = "rule-judge"

    def __init__(self) -> None:
        self.asked: list[list[dict]] = []

    @abc.abstractmethod
    def decide(self, first: str, second: str) -> str:
        """The verdict token for the answers shown first and second."""

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        self.asked += [list(p) for p in prompts]
        out = []
        for i, prompt in enumerate(prompts):
            shown = dict(SHOWN.findall(prompt[-1]["content"]))
            out.append(Completion(i, self.decide(shown["A"], shown["B"])))
        return out


class LongerJudge(RuleJudge):
    """Consistent: the longer answer wins wherever it is shown; equal lengths tie."""

    cache_identity = "longer-judge-v1"

    def decide(self, first, second):
        a, b = len(first.split()), len(second.split())
        return "Comparing lengths. " + ("[[A]]" if a > b else "[[B]]" if b > a else "[[C]]")


class FirstJudge(RuleJudge):
    """Biased to position: the first answer shown always wins."""

    cache_identity = "first-judge-v1"

    def decide(self, first, second):
        return "Assistant A answered first, so [[A]]."


class UnsureJudge(LongerJudge):
    """As LongerJudge, but writes no verdict when the first answer shown is one word long."""

    cache_identity = "unsure-judge-v1"

    def decide(self, first, second):
        return "I cannot tell." if len(first.split()) == 1 else super().decide(first, second)


def write_prompts(folder):
    folder.mkdir(parents=True, exist_ok=True)
    rows = [json.dumps({"prompt": [{"role": "user", "content": q}]}) for q in ANSWERS_A]
    (folder / "test.jsonl").write_text("\n".join(rows) + "\n")
    return {"source": str(folder / "test.jsonl"), "template": "trl-prompt", "split": "test"}


def quiet(*args):
    pass


def evaluate(tmp_path, judge, out="run", *, a=None, b=None, **keys):
    a = a or TableModel(ANSWERS_A, "a")
    b = b or TableModel(ANSWERS_B, "b")
    return run_task(
        "win-rate",
        model=a,
        baseline=b,
        judge=judge,
        data=write_prompts(tmp_path / "data"),
        report=keys.pop("report", False),
        run={"output_dir": str(tmp_path / out)},
        log=quiet,
        **keys,
    )


def entry(results):
    return {k.removesuffix(",none"): v for k, v in results["results"]["win-rate"].items()}


def rows(tmp_path, out="run"):
    lines = (tmp_path / out / "samples.jsonl").read_text().splitlines()
    return {r["input"][-1]["content"]: r for r in map(json.loads, lines)}


def test_the_fakes_are_generators_and_scorers():
    assert isinstance(TableModel({}, "x"), Generator) and isinstance(LongerJudge(), Generator)
    assert isinstance(FunctionScorer(lambda p, r: 0.0), Scorer)


def test_a_consistent_llm_judge_counts_three_wins_two_losses_one_tie(tmp_path):
    results = evaluate(tmp_path, LongerJudge())
    e = entry(results)
    # W3 L2 T1 over n = 6: win rate (3 + 1/2) / 6; decisive 3 / (3 + 2); no flips, nothing unparseable
    assert e["win_rate"] == pytest.approx(3.5 / 6)
    assert e["decisive_win_rate"] == pytest.approx(3 / 5)
    assert (e["win_share"], e["loss_share"], e["tie_share"]) == pytest.approx((3 / 6, 2 / 6, 1 / 6))
    assert e["flip_rate"] == 0.0 and e["unparseable_rate"] == 0.0
    # lengths: A 3+2+4+1+1+2 = 13 words, B 1+1+2+3+2+2 = 11; the longer answer won all 5 unequal prompts
    assert (e["length_a"], e["length_b"]) == pytest.approx((13 / 6, 11 / 6))
    assert e["longer_win_rate"] == 1.0
    assert results["alignkit"]["metric_counts"]["win-rate"]["longer_win_rate"] == 5
    low, high = e["win_rate_ci"]
    assert low < 3.5 / 6 < high
    by_prompt = rows(tmp_path)
    q4 = by_prompt["q4"]  # A "p" vs B "p q r": B longer, so B wins when shown second and when shown first
    assert q4["outputs"]["a"] == "p" and q4["outputs"]["b"] == "p q r"
    assert q4["verdicts"]["judge"]["ab"]["winner"] == "B" and q4["verdicts"]["judge"]["ba"]["winner"] == "A"
    assert q4["verdicts"]["judge"]["outcome"] == "loss" and q4["verdicts"]["judge"]["kind"] == "llm"
    assert q4["outputs"]["judge_ab"].endswith("[[B]]") and q4["outputs"]["judge_ba"].endswith("[[A]]")


def test_a_judge_biased_to_the_first_position_gives_all_ties_and_flip_rate_one(tmp_path):
    e = entry(evaluate(tmp_path, FirstJudge()))
    # every prompt: [[A]] in order (A, B) and [[A]] in order (B, A) = B first: the orders disagree
    assert e["flip_rate"] == 1.0 and e["tie_share"] == 1.0 and e["win_rate"] == 0.5
    assert e["win_share"] == 0.0 and e["loss_share"] == 0.0
    assert e["decisive_win_rate"] is None  # no prompt has a winner: undefined, not 0
    assert e["longer_win_rate"] == 0.5  # 5 unequal prompts, all ties: 5 x 1/2 / 5


def test_unparseable_verdicts_are_counted_apart_never_dropped_or_tied(tmp_path):
    results = evaluate(tmp_path, UnsureJudge())
    e = entry(results)
    # no verdict when the first answer shown has one word: order (A, B) on q4 ("p"), q5 ("s"); order
    # (B, A) on q1 ("one"), q2 ("x"). Judged: q3 (win), q6 (tie): W1 L0 T1, n = 2.
    assert e["unparseable_rate"] == pytest.approx(4 / 6)
    assert e["win_rate"] == pytest.approx((1 + 0.5) / 2)
    assert e["decisive_win_rate"] == 1.0 and e["flip_rate"] == 0.0
    assert results["n-samples"]["win-rate"]["effective"] == 6  # every prompt is in the run
    assert results["alignkit"]["metric_counts"]["win-rate"]["win_rate"] == 2
    outcomes = {q: r["verdicts"]["judge"]["outcome"] for q, r in rows(tmp_path).items()}
    assert [q for q, o in outcomes.items() if o == "unparseable"] == ["q1", "q2", "q4", "q5"]
    assert rows(tmp_path)["q4"]["verdicts"]["judge"]["ab"] == {
        "winner": None,
        "raw": "I cannot tell.",
        "margin": None,
    }


def test_metrics_equal_the_pure_win_rate_and_length_stats_of_the_outcomes(tmp_path):
    evaluate(tmp_path, UnsureJudge())
    records = list(rows(tmp_path).values())
    ab = [r["verdicts"]["judge"]["ab"]["winner"] for r in records]
    ba = [r["verdicts"]["judge"]["ba"]["winner"] for r in records]
    outcomes = combine_orders(ab, ba)
    w = win_rate(outcomes)
    lengths = length_stats(
        outcomes, [r["outputs"]["a"] for r in records], [r["outputs"]["b"] for r in records]
    )
    e = entry(json.loads((tmp_path / "run" / "results.json").read_text()))
    assert e["win_rate"] == pytest.approx(w.win_rate) and e["decisive_win_rate"] == pytest.approx(
        w.decisive_win_rate
    )
    assert e["unparseable_rate"] == pytest.approx(w.unparseable / len(records))
    assert e["longer_win_rate"] == pytest.approx(lengths.longer_win_rate)
    assert e["length_a"] == pytest.approx(lengths.mean_length_a)


def test_outcome_scores_of_each_outcome():
    assert outcome_scores("win", 3, 1)["win_rate"] == 1.0
    assert outcome_scores("loss", 3, 1)["longer_win_rate"] == 0.0  # A longer and lost: the shorter won
    assert outcome_scores("inconsistent", 1, 3)["flip_rate"] == 1.0
    assert outcome_scores("inconsistent", 1, 3)["decisive_win_rate"] is None
    unparseable = outcome_scores("unparseable", 2, 2)
    assert unparseable["unparseable_rate"] == 1.0 and unparseable["win_rate"] is None
    assert unparseable["length_a"] == 2.0  # lengths count every answer


def test_the_llm_judge_is_asked_llm_pair_judges_prompt_in_both_orders(tmp_path):
    judge = LongerJudge()
    evaluate(tmp_path, judge)
    assert len(judge.asked) == 12  # 6 prompts x 2 orders
    reference = LongerJudge()
    LLMPairJudge(reference).compare([[{"role": "user", "content": "q4"}]], ["p"], ["p q r"])
    assert reference.asked[0] in judge.asked  # order (A, B) is exactly LLMPairJudge's request
    swapped = judge_conversation([{"role": "user", "content": "q4"}], "p q r", "p")
    assert swapped in judge.asked and swapped != reference.asked[0]


def test_a_rerun_asks_no_model_and_no_judge(tmp_path):
    a, b, judge = TableModel(ANSWERS_A, "a"), TableModel(ANSWERS_B, "b"), LongerJudge()
    first = evaluate(tmp_path, judge, a=a, b=b)
    assert (a.asked, b.asked, len(judge.asked)) == (6, 6, 12)
    a2, b2, judge2 = TableModel(ANSWERS_A, "a"), TableModel(ANSWERS_B, "b"), LongerJudge()
    again = evaluate(tmp_path, judge2, "rescore", a=a2, b=b2, cache_dir=str(tmp_path / "run" / "generations"))
    assert (a2.asked, b2.asked, len(judge2.asked)) == (0, 0, 0)
    assert again["results"] == first["results"]


def test_a_scorer_judges_with_a_tie_margin_and_keeps_both_scores(tmp_path):
    words = FunctionScorer(lambda prompt, response: len(response.split()))
    e = entry(evaluate(tmp_path, words))
    assert e["win_rate"] == pytest.approx(3.5 / 6) and e["flip_rate"] == 0.0  # as the longer-answer judge
    # tie_margin 1: |3-1|=2 win (q1), |2-1|=1 tie (q2), 2 win (q3), 2 loss (q4), 1 tie (q5), 0 tie (q6)
    e = entry(evaluate(tmp_path, words, "margin", tie_margin=1.0))
    assert (e["win_share"], e["loss_share"], e["tie_share"]) == pytest.approx((2 / 6, 1 / 6, 3 / 6))
    q2 = rows(tmp_path, "margin")["q2"]["verdicts"]["judge"]
    assert q2["kind"] == "scorer" and q2["ab"] == {"winner": "tie", "raw": "A=2.0 B=1.0", "margin": 1.0}
    assert q2["ba"]["margin"] == -1.0  # B's answer shown first


def test_a_failed_judge_request_fails_its_prompt_only(tmp_path):
    class FlakyJudge(LongerJudge):
        cache_identity = "flaky-judge-v1"

        def decide(self, first, second):
            if first == "a b c d":  # q3 in order (A, B)
                raise RuntimeError("HTTP 500 from the judge endpoint")
            return super().decide(first, second)

    results = evaluate(tmp_path, FlakyJudge())
    assert results["alignkit"]["failures"]["win-rate"]["by_stage"] == {"judge_ab": 1}
    e = entry(results)
    assert e["win_rate"] == pytest.approx(2.5 / 5)  # q3's win is missing: W2 L2 T1


def test_the_report_has_the_outcome_chart_and_the_flips(tmp_path):
    evaluate(tmp_path, FirstJudge(), report=True)
    html = (tmp_path / "run" / "report.html").read_text()
    assert "outcomes of model A against model B" in html and "Flipped and unparseable verdicts" in html
    assert html.count("data:image/png;base64") >= 2  # the metrics' bars and the outcome bars


def test_judge_specs_name_their_kind_and_bad_ones_are_config_errors(tmp_path):
    assert parse_pair_judge("reward:runs/rm").kind == "reward"
    assert parse_pair_judge("cost:runs/cm").kind == "cost"
    assert parse_pair_judge("scorer:alignkit.toyworld.oracle:helpfulness").target == (
        "alignkit.toyworld.oracle:helpfulness"
    )
    assert parse_pair_judge("openai:http://localhost:8000/v1#judge").kind == "llm"
    base = {"model": "toyworld://models/tiny", "baseline": "toyworld://models/tiny"}
    config = WinRateConfig(**base, judge="scorer:alignkit.toyworld.oracle:helpfulness")
    assert config.model_keys() == ("model", "baseline")  # a scoring judge is not loaded as a model
    assert WinRateConfig(**base, judge="toyworld://models/tiny").model_keys() == (
        "model",
        "baseline",
        "judge",
    )
    sampling = {"sampling": SamplingConfig(temperature=0.0, max_new_tokens=24)}
    for judge, message in (
        ("", "reward:PATH"),
        ("reward:", "what follows 'reward:'"),
        (f"reward:{tmp_path / 'missing'}", "missing"),
        ("scorer:no_such_module:fn", "cannot import module"),
        ("scorer:alignkit.toyworld.oracle:no_such_fn", "no function"),
        ("http://localhost:8000/v1", "write openai:http://localhost:8000/v1#MODEL"),
        ("http://localhost:8000/v1", "or a scoring judge: reward:PATH"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            run_task(WinRate, **base, **sampling, judge=judge, run={"output_dir": str(tmp_path / "x")})
    assert not (tmp_path / "x").exists()
