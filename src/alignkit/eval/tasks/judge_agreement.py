"""``judge-agreement``: how far a judge agrees with human preference labels (InterMT-Bench style).

No model is under test: the judge is. Each labelled pair is shown to the judge once, in an order drawn at
random (seeded by ``seed`` and the pair: InterMT-Bench swaps positions with p = 0.5 so a judge's position
bias cannot pass for agreement), and the label follows the swap (``3 - label``, as InterMT-Bench's loader
does), so agreement is measured in the positions the judge saw; every verdict is also mapped back to the
dataset's own order in samples.jsonl. One sample per (pair, labelled dimension); ``turn`` is the number of
user turns in the prompt, so the breakdowns give the agreement per dimension and per turn.

Labels: PKU-SafeRLHF rows give two dimensions (``helpfulness`` from better_response_id, ``harmlessness``
from safer_response_id); InterMT pair items each dimension they judge, 1|2|0; any other pairwise template
one dimension, ``preference`` (the chosen response is better). **Ties in the labels (0) are excluded from
every agreement metric, as InterMT-Bench does, and counted** (``label_tie_rate``; the judge is not asked).

The judge (``judge``): a reward model or a ``module:function`` scoring (prompt, response) -> float
(``ScorerPairJudge``: the higher score wins, within ``judge_tie_margin`` a tie; a cost model's lower cost
wins), run inside ``score``; or any model spec, asked as a stage (``judge``, temperature 0, cached) with an
MT-Bench-style prompt (``judge_template``, ``[[A]]``/``[[B]]``/``[[C]]``, read by ``parse_pair_verdict``).
A judge's tie is a prediction that agrees with no label; an unreadable verdict is counted in
``unparseable_rate`` and left out of the other metrics (never dropped silently).

Metrics over the (label, prediction) pairs, labels in {1 = first shown better, 2 = second}: ``accuracy``
(exact match), ``cohen_kappa`` (over the labels {1, 2, tie}), ``pearson`` (a tie counts 1.5, between the
two), each with a bootstrap 95% interval; the report adds Pearson's Fisher-z interval, F1 and the
confusion matrix per dimension.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from alignkit.config import ConfigError, check
from alignkit.eval.judges.base import JUDGE_SAMPLING
from alignkit.eval.judges.pairwise import PAIRWISE_SYSTEM, PAIRWISE_TEMPLATE
from alignkit.eval.metrics import cohen_kappa, pearson
from alignkit.eval.task import Metric, Sample, Scored, Stage, Task, TaskConfig, conversation_of, read_records
from alignkit.eval.tasks.judge_agreement_report import PREDICTION_VALUE, agreement_sections
from alignkit.eval.tasks.judge_spec import JudgeKind, check_judge, judge_kind, judge_target
from alignkit.generate.base import SamplingConfig
from alignkit.sections import DatasetConfig

WINNER_LABEL = {"A": 1, "B": 2, "tie": 0}
"""A judge's verdict (positions as shown) as a label: 1 = the first shown is better, 2 = the second, 0 tie."""


def kappa_of(items: Sequence[Sequence[int]]) -> float:
    """Cohen's kappa of (label, prediction) items; nan when undefined (one label only on both sides)."""
    value = cohen_kappa([int(a) for a, _ in items], [int(b) for _, b in items])
    return float("nan") if value is None else value


def pearson_of(items: Sequence[Sequence[float]]) -> float:
    """Pearson's r of (label, prediction value) items; nan below 4 items or when a side is constant."""
    found = pearson([float(a) for a, _ in items], [float(b) for _, b in items])
    return float("nan") if found is None else found.r


@dataclass
class JudgeAgreementConfig(TaskConfig):
    data: DatasetConfig = field(
        default_factory=lambda: DatasetConfig(
            source="toyworld://data/safe_pref", template="pku-saferlhf", split="test"
        )
    )
    """Labelled pairs: pku-saferlhf (dimensions helpfulness and harmlessness), intermt pair items (each
    judged dimension; its ties are kept to be counted) or any pairwise template (hh-rlhf, ultrafeedback,
    trl ...: dimension 'preference'). Default: the toy world's held-out pairs, labelled by its oracles."""
    dimensions: list[str] = field(default_factory=list)
    """Which labelled dimensions to measure (empty: every one the data labels)."""
    judge: str = ""
    """The judge: a reward (or cost) model folder, 'module:function' scoring fn(prompt, response) -> float,
    or any model spec (path, hf:, vllm:, openai:URL#MODEL) asked as an LLM judge."""
    judge_tie_margin: float = 0.0
    """Scoring judge: scores closer than this are a tie."""
    judge_max_length: int = 512
    """Score model: longest tokenized prompt + response (as it was trained)."""
    judge_template: str = PAIRWISE_TEMPLATE
    """LLM judge: the user turn, with {question}, {answer_a}, {answer_b} and optionally {dimension} (then the
    judge is asked once per dimension; without it, once per pair and its verdict counts for each)."""
    judge_system: str | None = PAIRWISE_SYSTEM
    """LLM judge: the system prompt (MT-Bench's pairwise instructions, ending in [[A]]/[[B]]/[[C]])."""
    judge_sampling: SamplingConfig = field(default_factory=lambda: replace(JUDGE_SAMPLING))
    """LLM judge's decoding: greedy, room to explain before the verdict."""
    swap: bool = True
    """Show each pair in a random order (seeded); false: always response 1 first."""
    batch_size: int = 32
    """Requests per generate call (LLM judge) or pairs per forward (score model)."""
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    """Local judge models: the dtype weights load in ('auto': the checkpoint's own; score models float32)."""
    timeout: float = 60.0
    """openai judge: seconds to wait for one verdict; longer counts as a failed sample."""
    max_concurrency: int = 8
    """openai judge: requests in flight at once."""

    # ``judge`` holds a model spec only when it names an LLM judge (see ``model_keys``).
    MODEL_KEYS: ClassVar[tuple[str, ...]] = ("judge",)

    def judge_kind(self) -> JudgeKind:
        return judge_kind(self.judge)

    def model_keys(self) -> tuple[str, ...]:
        return ("judge",) if self.judge_kind() == "generative" else ()

    def validate(self, prefix: str) -> None:
        from alignkit.eval.judges.base import check_template

        check(
            bool(self.judge), f"{prefix}judge", self.judge, "a reward model, 'module:function' or model spec"
        )
        super().validate(prefix)
        check_judge(self.judge, f"{prefix}judge", score_kind=None)
        check(self.judge_tie_margin >= 0, f"{prefix}judge_tie_margin", self.judge_tie_margin, "a number >= 0")
        check(
            self.judge_max_length > 0,
            f"{prefix}judge_max_length",
            self.judge_max_length,
            "a positive integer",
        )
        try:
            check_template(self.judge_template, ("question", "answer_a", "answer_b"), "judge_template")
        except ValueError as err:
            raise ConfigError(f"{prefix}judge_template: {err}") from None
        check(self.judge_sampling.n == 1, f"{prefix}judge_sampling.n", self.judge_sampling.n, "1")
        check(self.batch_size > 0, f"{prefix}batch_size", self.batch_size, "a positive integer")
        check(self.timeout > 0, f"{prefix}timeout", self.timeout, "a positive number of seconds")
        check(
            self.max_concurrency > 0, f"{prefix}max_concurrency", self.max_concurrency, "a positive integer"
        )


# ----------------------------------------------------------------------------- labelled pairs


@dataclass(frozen=True)
class LabelledPair:
    """Two responses to one prompt and the labels on them: dimension -> 1 (response 1 better) | 2 | 0 (tie)."""

    prompt: tuple[dict[str, Any], ...]
    responses: tuple[str, str]
    labels: Mapping[str, int]


def labelled_pair(record: Any, source: str) -> LabelledPair:
    """A pairwise record as a ``LabelledPair`` (see the module docstring for the dimensions)."""
    from alignkit.data.errors import DataError
    from alignkit.data.records import Preference, SafetyPreference
    from alignkit.score.base import message_text

    if isinstance(record, SafetyPreference):
        texts = tuple(message_text(r.messages, "assistant") for r in record.responses)
        labels = {"helpfulness": record.better_id + 1, "harmlessness": record.safer_id + 1}
        return LabelledPair(conversation_of(record.prompt), texts, labels)  # type: ignore[arg-type]
    if isinstance(record, Preference):
        texts = (message_text(record.chosen, "assistant"), message_text(record.rejected, "assistant"))
        return LabelledPair(conversation_of(record.prompt), texts, dict(record.labels) or {"preference": 1})
    origin = getattr(record, "origin", None)
    raise DataError(
        origin.file if origin else source,
        origin.row if origin else None,
        None,
        "a labelled pair (templates pku-saferlhf, intermt, hh-rlhf, ultrafeedback-binarized, trl-preference ...)",
        f"a {type(record).__name__} record",
    )


def pair_id(pair: LabelledPair, seen: dict[str, int]) -> str:
    """A stable id from the pair's content (prompt and both responses); the n-th repeat of the same pair
    gets ``-n`` appended (``seen`` counts them), as ``eval.task.content_id`` does for prompts."""
    text = json.dumps([pair.prompt, pair.responses], sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    seen[digest] = seen.get(digest, 0) + 1
    return digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"


def swapped(seed: int, pair: str) -> bool:
    """Whether the pair is shown response 2 first: a fair coin seeded by (seed, pair id)."""
    return random.Random(f"{seed}:{pair}").random() < 0.5


def shown_label(label: int, is_swapped: bool) -> int:
    """A label in the positions shown: swapping turns 1 into 2 and 2 into 1 (InterMT's 3 - label); 0 stays."""
    return 3 - label if is_swapped and label in (1, 2) else label


# ----------------------------------------------------------------------------- the task


class JudgeAgreement(Task):
    """Agreement of a judge (a reward model or an LLM judge) with human preference labels, InterMT-Bench
    style: accuracy, Cohen's kappa and Pearson r with 95% intervals, per dimension and per turn, each pair
    shown in a random (seeded) order with the label following the swap; ties in the labels excluded and
    counted.

    The judge is the model under test: set judge=... (and data=... for your labels).
    """

    name = "judge-agreement"
    version = 1
    config_class = JudgeAgreementConfig
    breakdowns = ("dimension", "turn")
    metrics = (
        Metric("accuracy", True, "the judge prefers the response the label prefers (a judge tie: a miss)"),
        Metric("cohen_kappa", True, "agreement beyond chance, over {first, second, tie}", aggregate=kappa_of),
        Metric("pearson", True, "Pearson r of label and verdict (a judge tie: 1.5)", aggregate=pearson_of),
        Metric("judge_tie_rate", False, "verdicts that call a labelled preference a tie"),
        Metric("unparseable_rate", False, "verdicts that could not be read (left out of the above)"),
        Metric("label_tie_rate", False, "items whose label is a tie (excluded, the judge not asked)"),
    )
    config: JudgeAgreementConfig

    def samples(self) -> list[Sample]:
        ds = self.config.data
        # ties are counted here, not skipped by the loader (unless data.options says otherwise)
        defaults = {"keep_ties": True} if ds.template == "intermt" else {}
        pairs = [labelled_pair(r, ds.source) for r in read_records(ds, **defaults)]
        found = list(dict.fromkeys(d for p in pairs for d in p.labels))
        unknown = [d for d in self.config.dimensions if d not in found]
        if unknown:
            raise ConfigError(
                f"dimensions: {unknown} not labelled in {ds.source}; its dimensions: {', '.join(found)}"
            )
        wanted = self.config.dimensions or found
        samples: list[Sample] = []
        seen: dict[str, int] = {}
        for pair in pairs:
            pid = pair_id(pair, seen)
            is_swapped = self.config.swap and swapped(self.config.seed, pid)
            shown = pair.responses[::-1] if is_swapped else pair.responses
            turn = sum(m.get("role") == "user" for m in pair.prompt)
            for dimension in (d for d in wanted if d in pair.labels):
                label = pair.labels[dimension]
                metadata = {
                    "dimension": dimension,
                    "turn": turn,
                    "pair": pid,
                    "label": label,
                    "swapped": is_swapped,
                    "shown": list(shown),
                }
                samples.append(
                    Sample(f"{pid}:{dimension}", pair.prompt, shown_label(label, is_swapped), metadata)
                )
        return samples

    def stages(self) -> list[Stage]:
        if self.config.judge_kind() != "generative":
            return []
        from alignkit.eval.judges.base import fill, judge_conversation
        from alignkit.eval.judges.pairwise import pair_question

        c = self.config

        def ask(sample: Sample, outputs: Mapping[str, str]) -> list[dict[str, str]] | None:
            if sample.target == 0:
                return None  # a tie in the labels: excluded, so not asked
            template = fill(c.judge_template, {"dimension": sample.metadata["dimension"]})
            first, second = sample.metadata["shown"]
            return judge_conversation(pair_question(sample.input, first, second, template), c.judge_system)

        return [Stage("judge", ask, role="judge", sampling=c.judge_sampling)]

    def verdicts(self, samples: Sequence[Sample], outputs: Sequence[Mapping[str, str]]) -> list[Any]:
        """One ``PairVerdict`` (positions as shown) per sample, None for a tie in the labels."""
        from alignkit.eval.judges.pairwise import PairVerdict, parse_pair_verdict

        asked = [i for i, s in enumerate(samples) if s.target != 0]
        found: list[Any] = [None] * len(samples)
        if self.config.judge_kind() == "generative":
            for i in asked:
                text = outputs[i]["judge"]
                found[i] = PairVerdict(parse_pair_verdict(text), text)
            return found
        by_pair: dict[str, Sample] = {}
        for i in asked:  # a scoring judge's verdict does not depend on the dimension: score each pair once
            by_pair.setdefault(samples[i].metadata["pair"], samples[i])
        shown = [s.metadata["shown"] for s in by_pair.values()]
        compared = self._scoring_judge().compare(
            [s.input for s in by_pair.values()], [a for a, _ in shown], [b for _, b in shown]
        )
        judged = dict(zip(by_pair, compared, strict=True))
        for i in asked:
            found[i] = judged[samples[i].metadata["pair"]]
        return found

    def _scoring_judge(self) -> Any:
        from alignkit.eval.judges.pairwise import ScorerPairJudge
        from alignkit.eval.models import run_model_folder
        from alignkit.score.base import build_scorer

        c = self.config
        target = judge_target(c.judge)
        path = target if self.config.judge_kind() == "function" else run_model_folder(target)
        scorer = build_scorer(path, batch_size=c.batch_size, max_length=c.judge_max_length)
        if getattr(scorer, "kind", None) == "cost":
            scorer = LowerIsBetter(scorer)
        return ScorerPairJudge(scorer, tie_margin=c.judge_tie_margin)

    def score(self, samples: Sequence[Sample], outputs: Sequence[Mapping[str, str]]) -> list[Scored]:
        scored = []
        for sample, verdict in zip(samples, self.verdicts(samples, outputs), strict=True):
            label = sample.target
            if label == 0:
                excluded = {m.name: None for m in self.metrics}
                scored.append(Scored({**excluded, "label_tie_rate": 1.0}, {"judge": None}))
                continue
            predicted = WINNER_LABEL.get(verdict.winner) if verdict.winner else None
            is_swapped = sample.metadata["swapped"]
            judge = {
                "winner": verdict.winner,
                "predicted": predicted,
                "prefers_response": None if predicted is None else shown_label(predicted, is_swapped),
                "margin": verdict.margin,
                "raw": verdict.raw,
            }
            readable = predicted is not None
            scores = {
                "accuracy": float(predicted == label) if readable else None,
                "cohen_kappa": [label, predicted] if readable else None,
                "pearson": [label, PREDICTION_VALUE[predicted]] if readable else None,
                "judge_tie_rate": float(predicted == 0) if readable else None,
                "unparseable_rate": float(not readable),
                "label_tie_rate": 0.0,
            }
            scored.append(Scored(scores, {"judge": judge}))
        return scored

    def report_sections(self, records: Sequence[Mapping[str, Any]], plots_dir: Any) -> list[Any]:
        return agreement_sections(records, Path(plots_dir))


class LowerIsBetter:
    """A cost model as a judge: the response with the lower cost is the better one (its score negated)."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    def score(self, prompts: Sequence[Sequence[Any]], responses: Sequence[Sequence[Any]]) -> Any:
        return -self.scorer.score(prompts, responses)
