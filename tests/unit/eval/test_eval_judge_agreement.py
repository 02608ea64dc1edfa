"""The ``judge-agreement`` task with judges written here: a scoring rule (count the '!') and an MT-Bench-style
LLM judge that prefers the longer answer. Every figure is counted by hand.

PKU-SafeRLHF-shaped pairs (response 1, response 2; labels as better / safer response, 1 or 2), the rule's
verdict and the (label, prediction) items (``swap=false``: positions as in the data):

    pair  responses        '!'  verdict   helpfulness   harmlessness
    p1    good!! / bad     2/0  1         1 -> (1, 1)   1 -> (1, 1)
    p2    meh / great!     0/1  2         2 -> (2, 2)   1 -> (1, 2)
    p3    a! / b!          1/1  tie (0)   1 -> (1, 0)   2 -> (2, 0)
    p4    x!!! / y         3/0  1         2 -> (2, 1)   2 -> (2, 1)
"""

from __future__ import annotations

import json
import math
import re

import pytest

from alignkit.config import ConfigError, from_dict
from alignkit.data.errors import DataError
from alignkit.eval import run_task
from alignkit.eval.judges import LLMPairJudge, judge_conversation, pair_question
from alignkit.eval.tasks.judge_agreement import (
    JudgeAgreementConfig,
    kappa_of,
    pearson_of,
    shown_label,
    swapped,
)
from alignkit.generate.base import Completion

PAIRS = [("good!!", "bad", 0, 0), ("meh", "great!", 1, 0), ("a!", "b!", 0, 1), ("x!!!", "y", 1, 1)]
"""(response 0, response 1, better_response_id, safer_response_id)."""


def exclamations(prompt: str, response: str) -> float:
    """The scoring judge: more '!' is better."""
    return float(response.count("!"))


def pku_row(i: int, first: str, second: str, better: int, safer: int) -> dict:
    return {
        "prompt": f"Question {i}?",
        "response_0": first,
        "response_1": second,
        "is_response_0_safe": True,
        "is_response_1_safe": True,
        "better_response_id": better,
        "safer_response_id": safer,
    }


@pytest.fixture
def pku_pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(pku_row(i, *p)) + "\n" for i, p in enumerate(PAIRS)))
    return {"source": str(path), "template": "pku-saferlhf", "split": "train"}


def entry(results, name="judge-agreement"):
    return {k[: -len(",none")]: v for k, v in results["results"][name].items() if k.endswith(",none")}


def test_agreement_of_a_scoring_judge_by_hand(pku_pairs, tmp_path):
    """Overall (8 items): 3 agree -> accuracy 3/8; ties 2/8. Labels [1,2,1,2,1,1,2,2], predictions
    [1,2,0,1,1,2,0,1]: p_o = 3/8, p_e = (4*4 + 4*2 + 0*2)/64 = 3/8 -> kappa 0; Pearson with a tie as 1.5:
    dx = ±.5, dy = y - 11/8, sum dx*dy = .1875+.3125-.0625-.1875+.1875-.3125+.0625-.1875 = 0 -> r = 0.

    Helpfulness (1,1),(2,2),(1,0),(2,1): accuracy 1/2; p_o = 1/2, p_e = (2*2 + 2*1)/16 = 3/8 ->
    kappa = (1/2 - 3/8)/(5/8) = 0.2; r: dx = [-.5,.5,-.5,.5], dy = [-.375,.625,.125,-.375] (mean 1.375),
    sxy = .25, sxx = 1, syy = .6875 -> r = .25/sqrt(.6875) = 0.3015113.
    Harmlessness (1,1),(1,2),(2,0),(2,1): accuracy 1/4; p_o = 1/4, p_e = 3/8 -> kappa = -0.2.
    """
    results = run_task(
        "judge-agreement",
        judge=f"{__name__}:exclamations",
        data=pku_pairs,
        swap=False,
        bootstrap_iters=50,
        run={"output_dir": str(tmp_path / "run")},
    )
    assert results["model_name"] == f"{__name__}:exclamations"  # the judge is what is evaluated
    overall = entry(results)
    assert overall["accuracy"] == pytest.approx(3 / 8)
    assert overall["judge_tie_rate"] == pytest.approx(2 / 8)
    assert overall["cohen_kappa"] == pytest.approx(0.0, abs=1e-12)
    assert overall["pearson"] == pytest.approx(0.0, abs=1e-12)
    assert (overall["unparseable_rate"], overall["label_tie_rate"]) == (0.0, 0.0)
    helpful = entry(results, "judge-agreement/dimension=helpfulness")
    assert helpful["accuracy"] == pytest.approx(1 / 2)
    assert helpful["cohen_kappa"] == pytest.approx(0.2)
    assert helpful["pearson"] == pytest.approx(0.25 / math.sqrt(0.6875))
    harmless = entry(results, "judge-agreement/dimension=harmlessness")
    assert (harmless["accuracy"], harmless["cohen_kappa"]) == (pytest.approx(1 / 4), pytest.approx(-0.2))
    assert entry(results, "judge-agreement/turn=1")["accuracy"] == pytest.approx(3 / 8)
    assert "Agreement" in (tmp_path / "run" / "report.html").read_text()


def test_the_swap_moves_the_label_with_the_answers(pku_pairs, tmp_path):
    """With swap on, each pair is shown in the order the seeded coin says, the item's label is the position
    of the better answer as shown (InterMT's 3 - label), and a position-free judge agrees exactly as often."""
    runs = {}
    for swap in (False, True):
        out = tmp_path / f"swap-{swap}"
        keys = {"judge": f"{__name__}:exclamations", "data": pku_pairs, "swap": swap, "report": False}
        runs[swap] = (
            run_task("judge-agreement", run={"output_dir": str(out)}, bootstrap_iters=20, **keys),
            out,
        )
    rows = {
        swap: {r["id"]: r for r in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}
        for swap, (_, out) in runs.items()
    }
    flips = 0
    for sample_id, row in rows[True].items():
        plain = rows[False][sample_id]
        pair = row["metadata"]["pair"]
        assert row["metadata"]["swapped"] == swapped(0, pair)
        flips += row["metadata"]["swapped"]
        expected_shown = (
            plain["metadata"]["shown"][::-1] if row["metadata"]["swapped"] else plain["metadata"]["shown"]
        )
        assert row["metadata"]["shown"] == expected_shown
        assert row["target"] == shown_label(plain["target"], row["metadata"]["swapped"])
        # mapped back to the data's order, the verdict is the same
        assert row["verdicts"]["judge"]["prefers_response"] == plain["verdicts"]["judge"]["prefers_response"]
    assert 0 < flips < len(rows[True])  # the coin fell both ways on these pairs
    assert entry(runs[True][0])["accuracy"] == entry(runs[False][0])["accuracy"]


# ----------------------------------------------------------------------------- an LLM judge on InterMT pairs

_ANSWER = re.compile(r"\[The Start of Assistant ([AB])'s Answer\]\n(.*?)\n\[The End", re.S)


class LongerIsBetter:
    """An MT-Bench-style judge: prefers the longer answer ([[A]] / [[B]], [[C]] when as long); asked about
    'context_awareness' for the pair 'aaa' / 'bbb' it rambles without a verdict."""

    cache_identity = "longer-judge-v1"

    def __init__(self) -> None:
        self.asked = 0

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        self.asked += len(prompts)
        out = []
        for i, prompt in enumerate(prompts):
            text = prompt[-1]["content"]
            answers = dict(_ANSWER.findall(text))
            if "context_awareness" in text and {answers["A"], answers["B"]} == {"aaa", "bbb"}:
                verdict = "Both answers have merit."
            elif len(answers["A"]) == len(answers["B"]):
                verdict = "Format: [[A]] or [[B]]. Equally good: [[C]]"  # the last verdict counts
            else:
                verdict = "[[A]]" if len(answers["A"]) > len(answers["B"]) else "[[B]]"
            out.append(Completion(i, verdict))
        return out


def intermt_item(rounds: int, prompt: str, first: str, second: str, labels: dict) -> dict:
    front = [
        {
            "round": r,
            "prompt": f"earlier {r}",
            "prompt_images": [""],
            "response": f"reply {r}",
            "response_images": [""],
        }
        for r in range(1, rounds)
    ]
    pair = {
        "round": rounds,
        "prompt": prompt,
        "prompt_images": [""],
        "response_1": first,
        "response_1_images": [""],
    }
    pair |= {"response_2": second, "response_2_images": [""]}
    return {"front_convs": front, "paired_convs": pair, "overall_preference": labels}


@pytest.fixture
def intermt_pairs(tmp_path):
    """Three InterMT pair items (labels 1|2|0 by dimension):

    item  turn  responses           helpfulness  context_awareness
    1     1     long answer / short 1            0 (tie: excluded, not asked)
    2     2     no / yes yes        2            2
    3     2     aaa / bbb           1            1
    """
    items = [
        intermt_item(1, "Q1", "long answer", "short", {"helpfulness": 1, "context_awareness": 0}),
        intermt_item(2, "Q2", "no", "yes yes", {"helpfulness": 2, "context_awareness": 2}),
        intermt_item(2, "Q3", "aaa", "bbb", {"helpfulness": 1, "context_awareness": 1}),
    ]
    path = tmp_path / "intermt.json"
    path.write_text(json.dumps(items))
    return {"source": str(path), "template": "intermt", "split": "train"}


PER_DIMENSION = "Judge the answers on {dimension} only.\n\n{question}\n[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"


def test_an_llm_judge_on_intermt_pairs_per_dimension_and_turn(intermt_pairs, tmp_path):
    """Items: 1/helpfulness agree (longer); 1/context_awareness a label tie (excluded, not asked);
    2/both agree ('yes yes' is longer and preferred); 3/helpfulness a judge tie (a miss);
    3/context_awareness no verdict (unreadable). Overall: label ties 1/6, unreadable 1/5, accuracy 3/4,
    judge ties 1/4. Turn 1: accuracy 1/1, label ties 1/2; turn 2: accuracy 2/3, unreadable 1/4.
    Helpfulness: 2/3; context_awareness: 1/1, unreadable 1/2, label ties 1/3."""
    out = tmp_path / "run"
    judge = LongerIsBetter()
    keys = {"data": intermt_pairs, "judge_template": PER_DIMENSION, "bootstrap_iters": 20}
    results = run_task("judge-agreement", judge=judge, run={"output_dir": str(out)}, **keys)
    assert judge.asked == 5  # 6 items, the tie not asked; {dimension} makes each request distinct
    overall = entry(results)
    assert overall["label_tie_rate"] == pytest.approx(1 / 6)
    assert overall["unparseable_rate"] == pytest.approx(1 / 5)
    assert overall["accuracy"] == pytest.approx(3 / 4)
    assert overall["judge_tie_rate"] == pytest.approx(1 / 4)
    turn1, turn2 = entry(results, "judge-agreement/turn=1"), entry(results, "judge-agreement/turn=2")
    assert (turn1["accuracy"], turn1["label_tie_rate"]) == (1.0, pytest.approx(1 / 2))
    assert (turn2["accuracy"], turn2["unparseable_rate"]) == (pytest.approx(2 / 3), pytest.approx(1 / 4))
    helpful = entry(results, "judge-agreement/dimension=helpfulness")
    aware = entry(results, "judge-agreement/dimension=context_awareness")
    assert helpful["accuracy"] == pytest.approx(2 / 3)
    assert (aware["accuracy"], aware["unparseable_rate"], aware["label_tie_rate"]) == (
        1.0,
        pytest.approx(1 / 2),
        pytest.approx(1 / 3),
    )
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    tie = next(r for r in rows if r["metadata"]["label"] == 0)
    assert "judge" not in tie["outputs"] and tie["verdicts"]["judge"] is None
    again = LongerIsBetter()
    rerun = run_task("judge-agreement", judge=again, run={"output_dir": str(out), "resume": True}, **keys)
    assert again.asked == 0 and rerun["results"] == results["results"]


def test_without_dimension_in_the_template_each_pair_is_asked_once(intermt_pairs, tmp_path):
    """The default MT-Bench prompt does not name the dimension, so the requests for a pair's dimensions are
    identical: asked once (items 1, 2, 3: three requests for five items) and the verdict shared."""
    judge = LongerIsBetter()
    run_task(
        "judge-agreement",
        judge=judge,
        data=intermt_pairs,
        report=False,
        bootstrap_iters=20,
        run={"output_dir": str(tmp_path / "run")},
    )
    assert judge.asked == 3


def test_the_stage_request_is_what_llm_pair_judge_sends():
    sent = []

    class Recorder:
        def generate(self, prompts, sampling, *, logprobs=False, seed=None):
            sent.extend(prompts)
            return [Completion(i, "[[A]]") for i in range(len(prompts))]

    prompt = [{"role": "user", "content": "Which is right?"}]
    LLMPairJudge(Recorder()).compare([prompt], ["yes"], ["no"])
    from alignkit.eval.judges import PAIRWISE_SYSTEM

    assert sent == [judge_conversation(pair_question(prompt, "yes", "no"), PAIRWISE_SYSTEM)]


# ----------------------------------------------------------------------------- pieces and errors


def test_pure_pieces_by_hand():
    assert [shown_label(label, True) for label in (1, 2, 0)] == [2, 1, 0]
    assert [shown_label(label, False) for label in (1, 2, 0)] == [1, 2, 0]
    # kappa of labels [1,1,2,2] and predictions [1,2,2,2]: p_o = 3/4, p_e = (2*1 + 2*3)/16 = 1/2 -> 1/2
    assert kappa_of([(1, 1), (1, 2), (2, 2), (2, 2)]) == pytest.approx(0.5)
    assert math.isnan(kappa_of([(1, 1), (1, 1)]))  # one label on both sides: undefined
    # r of x = [1,1,2,2], y = [1,2,2,2]: dx = ±.5, dy = [-.75,.25,.25,.25]; sxy = .5, sxx = 1, syy = .75
    assert pearson_of([(1, 1), (1, 2), (2, 2), (2, 2)]) == pytest.approx(0.5 / math.sqrt(0.75))
    assert math.isnan(pearson_of([(1, 1), (2, 2), (1, 1)]))  # n < 4
    assert swapped(0, "pair") == swapped(0, "pair")


def test_plain_pairs_have_one_dimension_and_other_records_are_refused(tmp_path):
    plain = tmp_path / "plain.jsonl"
    plain.write_text(
        json.dumps({"prompt": "Hi?", "chosen": "Hello!!", "rejected": "Go."})
        + "\n"
        + json.dumps({"prompt": "Bye?", "chosen": "Bye!", "rejected": "No."})
        + "\n"
    )
    data = {"source": str(plain), "template": "trl-preference", "split": "train"}
    results = run_task(
        "judge-agreement",
        judge=f"{__name__}:exclamations",
        data=data,
        report=False,
        bootstrap_iters=20,
        run={"output_dir": str(tmp_path / "run")},
    )
    assert results["group_subtasks"]["judge-agreement"] == [
        "judge-agreement/dimension=preference",
        "judge-agreement/turn=1",
    ]
    assert entry(results)["accuracy"] == 1.0
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "Hi?"}) + "\n")
    bad = {"source": str(prompts), "template": "trl-prompt", "split": "train"}
    with pytest.raises(DataError, match=r"prompts.jsonl row 1.*labelled pair"):
        run_task(
            "judge-agreement",
            judge=f"{__name__}:exclamations",
            data=bad,
            run={"output_dir": str(tmp_path / "x")},
        )
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="dimensions.*preference"):
        run_task(
            "judge-agreement",
            judge=f"{__name__}:exclamations",
            data=data,
            dimensions=["helpfulness"],
            run={"output_dir": str(tmp_path / "y")},
        )


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"judge": ""}, "judge"),
        ({"judge": "no_such_module:score"}, "judge"),
        ({"judge_template": "{question} {answer_a}"}, "judge_template"),
        ({"judge_tie_margin": -1}, "judge_tie_margin"),
    ],
)
def test_bad_judge_keys_are_config_errors_naming_the_key(override, named):
    with pytest.raises(ConfigError, match=named):
        from_dict(JudgeAgreementConfig, {"judge": "alignkit.toyworld.oracle:helpfulness", **override})
