"""``win-rate``: model A (``model=``) against model B (``baseline=``) on a prompt set, judged in both orders.

Both models answer every prompt (stages ``a`` and ``b``, same decoding). The judge (``judge=``, see
``eval/judges/spec.py``) then compares the two answers twice, once with A's answer shown first and once
with B's, because judges favour a position: a reward model or any Scorer (``reward:PATH``,
``cost:PATH``, ``scorer:MODULE:FUNCTION``) compares them inside ``score``; an LLM judge is asked
MT-Bench's pairwise prompt (``PAIRWISE_SYSTEM`` + ``PAIRWISE_TEMPLATE``, verdict ``[[A]]``/``[[B]]``/
``[[C]]``) as two more stages, ``judge_ab`` and ``judge_ba``, so its verdicts are cached like any answer
and a failed request fails its own sample only.

Per prompt the two verdicts give one outcome (``eval.metrics.combine_orders``): a win or a loss only
when both orders agree, a tie when both say tie or the orders disagree (``inconsistent``: the verdict
followed the position), ``unparseable`` when either verdict could not be read; unparseable prompts are
counted apart (``unparseable_rate``), never dropped and never counted as ties. Every metric is a mean
of per-prompt items, so it equals ``eval.metrics.win_rate`` / ``length_stats`` over the outcomes (one
definition) and gets its bootstrap interval from the runner; the report adds the Wilson interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from alignkit.config import check
from alignkit.eval.judges.base import JUDGE_SAMPLING, conversation_text, fill
from alignkit.eval.judges.pairwise import PAIRWISE_SYSTEM, PAIRWISE_TEMPLATE, PairVerdict, parse_pair_verdict
from alignkit.eval.judges.spec import build_pair_judge, check_pair_judge, parse_pair_judge
from alignkit.eval.metrics.pairwise import Outcome, combine_orders, word_count
from alignkit.eval.task import (
    Metric,
    ModelTaskConfig,
    Sample,
    Scored,
    Stage,
    Task,
    prompt_samples,
)
from alignkit.generate.base import SamplingConfig
from alignkit.sections import DatasetConfig


def asks_model(judge: str) -> bool:
    """Whether ``judge`` names an LLM judge (a model the runner loads and asks); never raises: a bad spec
    is reported by ``validate``."""
    try:
        return parse_pair_judge(judge).asks_model
    except Exception:  # noqa: BLE001 - validate() names the problem; here only the keys are decided
        return True


@dataclass
class WinRateConfig(ModelTaskConfig):
    baseline: str = ""
    """Model B, which model A (``model``) is compared with: any model spec, as ``model``."""
    judge: str = ""
    """Who decides which answer is better: reward:PATH (a reward model or its run folder: the higher
    reward wins), cost:PATH (a cost model: the lower cost wins), scorer:MODULE:FUNCTION (a Python function
    fn(prompt, response) -> float, e.g. scorer:alignkit.toyworld.oracle:helpfulness), or any model spec
    for an LLM judge asked MT-Bench's pairwise prompt (e.g. openai:http://localhost:8000/v1#judge-model)."""
    data: DatasetConfig = field(
        default_factory=lambda: DatasetConfig(
            source="toyworld://data/prompts", template="trl-prompt", split="test"
        )
    )
    """Prompts both models answer: the toy world's held-out prompts by default; any template whose
    records have a prompt (trl-prompt, trl, pku-saferlhf, beavertails ...)."""
    sampling: SamplingConfig = field(
        default_factory=lambda: SamplingConfig(temperature=0.0, max_new_tokens=24)
    )
    """Decoding of both models (greedy; 24 new tokens suit the toy world: set sampling.max_new_tokens=512
    or more for real models, or their answers are cut short; the report counts cut answers)."""
    judge_sampling: SamplingConfig = field(default_factory=lambda: replace(JUDGE_SAMPLING))
    """Decoding of an LLM judge (greedy, up to 1024 tokens, as MT-Bench judges)."""
    tie_margin: float = 0.0
    """Scoring judges: answers whose scores differ by at most this much tie."""

    MODEL_KEYS = ("model", "baseline", "judge")

    def model_keys(self) -> tuple[str, ...]:
        """The judge is a model to load only when it is an LLM judge (a reward model or a function judges
        in ``Task.score``)."""
        return self.MODEL_KEYS if asks_model(self.judge) else ("model", "baseline")

    def validate(self, prefix: str) -> None:
        check_pair_judge(self.judge, f"{prefix}judge")
        super().validate(prefix)
        check(self.tie_margin >= 0, f"{prefix}tie_margin", self.tie_margin, "a number >= 0")
        check(
            self.judge_sampling.n == 1,
            f"{prefix}judge_sampling.n",
            self.judge_sampling.n,
            "1 (one verdict per order)",
        )


OUTCOMES: tuple[Outcome, ...] = ("win", "tie", "inconsistent", "loss", "unparseable")
"""Model A's outcomes in the order the report stacks them."""
_POINTS: dict[str, float] = {"win": 1.0, "tie": 0.5, "inconsistent": 0.5, "loss": 0.0}


def outcome_scores(outcome: Outcome, length_a: int, length_b: int) -> dict[str, float | None]:
    """One prompt's metric items; None where a metric does not apply (an unparseable prompt is in no
    rate but ``unparseable_rate``, the lengths and the mean lengths)."""
    judged = outcome != "unparseable"
    tie = outcome in ("tie", "inconsistent")
    longer = None
    if judged and length_a != length_b:
        longer = 0.5 if tie else float((outcome == "win") == (length_a > length_b))
    return {
        "win_rate": _POINTS[outcome] if judged else None,
        "decisive_win_rate": None if not judged or tie else float(outcome == "win"),
        "win_share": float(outcome == "win") if judged else None,
        "loss_share": float(outcome == "loss") if judged else None,
        "tie_share": float(tie) if judged else None,
        "flip_rate": float(outcome == "inconsistent") if judged else None,
        "unparseable_rate": float(not judged),
        "longer_win_rate": longer,
        "length_a": float(length_a),
        "length_b": float(length_b),
    }


def judge_conversation(
    prompt: Sequence[Any],
    first: str,
    second: str,
    *,
    template: str = PAIRWISE_TEMPLATE,
    system: str | None = PAIRWISE_SYSTEM,
) -> list[dict[str, str]]:
    """What an LLM judge is sent for one order: exactly ``LLMPairJudge``'s request (system, then the
    question and the two answers in the order shown)."""
    question = fill(template, {"question": conversation_text(prompt), "answer_a": first, "answer_b": second})
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": question}]


def _verdict_dict(verdict: PairVerdict) -> dict[str, Any]:
    return {"winner": verdict.winner, "raw": verdict.raw, "margin": verdict.margin}


class WinRate(Task):
    """Model A (model=) against model B (baseline=) on a prompt set, judged in both orders by a reward
    model, any Scorer or an LLM judge (judge=): wins, losses, ties, win rate, decisive win rate, position
    flip rate, unparseable verdicts and answer lengths.

    A win counts only when both orders agree; orders that disagree are ties (and flips).
    """

    name = "win-rate"
    version = 1
    config_class = WinRateConfig
    breakdowns = ("request", "family")
    metrics = (
        Metric("win_rate", True, "(wins + ties/2) / judged prompts: 0.5 = no difference"),
        Metric("decisive_win_rate", True, "wins / (wins + losses): among prompts with a winner"),
        Metric("win_share", True, "judged prompts A wins in both orders"),
        Metric("loss_share", False, "judged prompts B wins in both orders"),
        Metric("tie_share", False, "judged prompts tied: both orders say tie, or the orders disagree"),
        Metric("flip_rate", False, "judged prompts whose verdict followed the position (orders disagree)"),
        Metric("unparseable_rate", False, "prompts with a verdict the judge's output did not give"),
        Metric(
            "longer_win_rate",
            False,
            "length bias: (longer answer wins + ties/2) over judged prompts of unequal lengths; 0.5 = none",
        ),
        Metric("length_a", False, "words in model A's answer (diagnostic)"),
        Metric("length_b", False, "words in model B's answer (diagnostic)"),
    )
    config: WinRateConfig

    def samples(self) -> list[Sample]:
        from alignkit.toyworld import find_task

        def describe(sample: Sample) -> tuple[None, dict[str, Any]]:
            task = find_task(sample.prompt_text)  # toy-world prompts get their family; others none
            return None, {
                "request": ("harmful" if task.is_harmful else "benign") if task else None,
                "family": task.family if task else None,
            }

        return prompt_samples(self.config.data, describe)

    def stages(self) -> list[Stage]:
        stages = [
            Stage("a", lambda sample, outputs: sample.input),
            Stage("b", lambda sample, outputs: sample.input, role="baseline"),
        ]
        if parse_pair_judge(self.config.judge).asks_model:
            sampling = self.config.judge_sampling
            stages += [
                Stage(
                    "judge_ab",
                    lambda s, out: judge_conversation(s.input, out["a"], out["b"]),
                    "judge",
                    sampling,
                ),
                Stage(
                    "judge_ba",
                    lambda s, out: judge_conversation(s.input, out["b"], out["a"]),
                    "judge",
                    sampling,
                ),
            ]
        return stages

    def verdicts(
        self, samples: Sequence[Sample], outputs: Sequence[Mapping[str, str]]
    ) -> tuple[list[PairVerdict], list[PairVerdict]]:
        """Both orders' verdicts, in the judge's position terms: (A's answer first, B's answer first)."""
        spec = parse_pair_judge(self.config.judge)
        if spec.asks_model:
            ab = [PairVerdict(parse_pair_verdict(o["judge_ab"]), o["judge_ab"]) for o in outputs]
            ba = [PairVerdict(parse_pair_verdict(o["judge_ba"]), o["judge_ba"]) for o in outputs]
            return ab, ba
        judge = build_pair_judge(spec, tie_margin=self.config.tie_margin, batch_size=self.config.batch_size)
        prompts = [list(s.input) for s in samples]
        answers_a, answers_b = [o["a"] for o in outputs], [o["b"] for o in outputs]
        return judge.compare(prompts, answers_a, answers_b), judge.compare(prompts, answers_b, answers_a)

    def score(self, samples: Sequence[Sample], outputs: Sequence[Mapping[str, str]]) -> list[Scored]:
        ab, ba = self.verdicts(samples, outputs)
        outcomes = combine_orders([v.winner for v in ab], [v.winner for v in ba])
        kind = parse_pair_judge(self.config.judge).kind
        scored = []
        for out, first, second, outcome in zip(outputs, ab, ba, outcomes, strict=True):
            length_a, length_b = word_count(out["a"]), word_count(out["b"])
            verdict = {
                "kind": kind,
                "ab": _verdict_dict(first),
                "ba": _verdict_dict(second),
                "outcome": outcome,
            }
            scored.append(Scored(outcome_scores(outcome, length_a, length_b), {"judge": verdict}))
        return scored

    def report_sections(self, records: Sequence[Mapping[str, Any]], plots_dir: Any) -> list[Any]:
        from alignkit.eval.tasks.win_rate_report import win_rate_sections

        c = self.config
        return win_rate_sections(records, plots_dir, model=c.model, baseline=c.baseline, judge=c.judge)
