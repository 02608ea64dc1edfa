"""Which judge decides a pairwise comparison, from one config string (``judge=``).

=============================  ==================================================================
spec                           judge
=============================  ==================================================================
``reward:PATH``                a reward model (its ``final/`` folder or its training run folder):
                               the higher reward wins (``ScorerPairJudge``)
``cost:PATH``                  a cost model: the lower cost wins (a harmlessness comparison)
``scorer:MODULE:FUNCTION``     a Python function ``fn(prompt, response) -> float`` as a Scorer
                               (``FunctionScorer``), e.g. ``scorer:alignkit.toyworld.oracle:helpfulness``;
                               also spelled ``fn:MODULE:FUNCTION`` or ``MODULE:FUNCTION``
a score model's folder         a reward or cost model by the ``score_kind`` it was saved with (its
                               ``final/`` folder or its run folder): as ``reward:`` / ``cost:``
any other model spec           an LLM judge (``PATH``, a run folder, ``hf:``, ``vllm:``,
                               ``openai:URL#MODEL``, ``toyworld://``) asked MT-Bench's pairwise prompt
=============================  ==================================================================

:func:`parse_judge` is the one parser of every eval key that names a judge (win-rate's ``judge``,
safety's ``moderator``, judge-agreement's and DeceptionBench's ``judge``): each task then takes the kinds
it can use (``eval/tasks/judge_spec.py`` for the moderator-style keys, DeceptionBench's function judge).

In Python, ``judge=`` also takes an object (``run_task`` files it under a ``python:`` spec): a
``PairwiseJudge`` (has ``compare``), a Generator (has ``generate``: an LLM judge) or a Scorer (``score``).

Why one key with prefixes rather than one key per kind: the kind of judge is the first thing a reader
of a results file needs, and ``judge=reward:runs/rm`` says it where the value is. The prefixes are not
model schemes, so an LLM judge keeps the whole model-spec syntax (``eval/models.py``) unchanged.
An LLM judge is asked through the eval runner as stages (cached, one failed request fails one sample);
the scoring judges built here run inside the task's ``score``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from alignkit.config import ConfigError

JudgeKind = Literal["reward", "cost", "function", "llm", "scorer", "pairwise"]
"""``reward``/``cost``: a saved score model; ``function``: ``scorer:MODULE:FUNCTION``; ``llm``: a model
asked the judge prompt (a spec or a Generator object); ``scorer``/``pairwise``: a Python object."""

SCORE_PREFIXES = ("reward", "cost", "scorer", "fn")
"""``PREFIX:rest``: ``reward``/``cost`` a score model, ``scorer``/``fn`` (two spellings) a Python function."""
GENERATIVE_SCHEMES = ("hf:", "vllm:", "openai:", "python:")
"""Model schemes: always a generative (LLM) judge, whatever follows."""
EXPECTED = (
    "reward:PATH (a reward model: higher reward wins), cost:PATH (a cost model: lower cost wins), "
    "scorer:MODULE:FUNCTION (a Python function fn(prompt, response) -> float; also fn:MODULE:FUNCTION or "
    "MODULE:FUNCTION), a score model's folder (by its score_kind), or any model spec for an "
    "LLM judge (a model folder, a run folder, hf:NAME, vllm:PATH, openai:URL#MODEL)"
)


@dataclass(frozen=True)
class PairJudgeSpec:
    """A parsed ``judge=`` value."""

    text: str
    """As the user wrote it."""
    kind: JudgeKind
    target: str
    """reward/cost: the model path; function: ``MODULE:FUNCTION``; llm: the model spec; objects: the
    ``python:`` name."""

    @property
    def asks_model(self) -> bool:
        """An LLM judge: its prompts are stages of the eval (role ``judge``), not a call in ``score``."""
        return self.kind == "llm"


def parse_judge(text: str, key: str = "judge") -> PairJudgeSpec:
    """The kind of judge ``text`` names, in any spelling an eval key accepts (the module docstring). No
    checks beyond reading a local folder's ``score_kind``: :func:`check_pair_judge` and the tasks check."""
    from alignkit.eval.models import IN_PROCESS
    from alignkit.score.base import looks_like_function

    if not text:
        raise ConfigError(f"{key} is empty: give the judge: {EXPECTED}")
    prefix, sep, rest = text.partition(":")
    if sep and prefix in SCORE_PREFIXES:
        if not rest:
            raise ConfigError(f"{key}={text!r}: give what follows '{prefix}:'. Expected: {EXPECTED}")
        return PairJudgeSpec(text, prefix if prefix in ("reward", "cost") else "function", rest)  # type: ignore[arg-type]
    if text.startswith("python:") and text in IN_PROCESS:
        judge = IN_PROCESS[text]
        if callable(getattr(judge, "compare", None)):
            return PairJudgeSpec(text, "pairwise", text)
        if callable(getattr(judge, "generate", None)):
            return PairJudgeSpec(text, "llm", text)
        if callable(getattr(judge, "score", None)):
            return PairJudgeSpec(text, "scorer", text)
        raise ConfigError(
            f"{key}: a {type(judge).__name__} object is no judge: give a PairwiseJudge (compare), a "
            "Generator (generate: an LLM judge) or a Scorer (score)"
        )
    if text.startswith(GENERATIVE_SCHEMES):
        return PairJudgeSpec(text, "llm", text)
    if looks_like_function(text):
        return PairJudgeSpec(text, "function", text)
    score_kind = saved_score_kind(text)
    if score_kind in ("reward", "cost"):
        return PairJudgeSpec(text, score_kind, text)  # type: ignore[arg-type]
    return PairJudgeSpec(text, "llm", text)


parse_pair_judge = parse_judge
"""The name win-rate's code has always used."""


def saved_score_kind(path: str) -> str | None:
    """The ``score_kind`` a local model folder (or a run folder's final/) was saved with, if any."""
    import json
    from pathlib import Path

    from alignkit.eval.models import run_model_folder
    from alignkit.models.loading import resolve_path

    config = Path(resolve_path(run_model_folder(path))).expanduser() / "config.json"
    if not config.is_file():
        return None
    try:
        kind = json.loads(config.read_text(encoding="utf-8")).get("score_kind")
    except (ValueError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


def check_pair_judge(text: str, key: str = "judge") -> PairJudgeSpec:
    """Parse and check before any run folder: a score model's folder holds a model of the right kind, a
    function imports, an LLM judge's model spec can load (its error also lists the scoring judges)."""
    spec = parse_pair_judge(text, key)
    if spec.kind == "llm":
        from alignkit.eval.models import check_model_spec

        try:
            check_model_spec(text, key)
        except ConfigError as exc:
            raise ConfigError(
                f"{exc} (as an LLM judge); or a scoring judge: reward:PATH, cost:PATH, scorer:MODULE:FUNCTION"
            ) from None
    if spec.kind in ("reward", "cost"):
        from alignkit.eval.models import run_model_folder
        from alignkit.models.score_model import check_score_model

        other = "cost" if spec.kind == "reward" else "reward"
        check_score_model(
            run_model_folder(spec.target),
            key,
            spec.kind,
            f"; write {key}={other}:{spec.target} to judge by its {other}",
        )
    elif spec.kind == "function":
        from alignkit.score.base import import_function

        try:
            import_function(spec.target)
        except ValueError as exc:
            raise ConfigError(f"{key}={text!r}: {exc}") from None
    return spec


class LowerIsBetter:
    """A cost model as a judge's Scorer: its score negated, so the safer answer scores higher."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    def score(self, prompts: Any, responses: Any) -> Any:
        return -self.scorer.score(prompts, responses)


def build_pair_judge(spec: PairJudgeSpec, *, tie_margin: float = 0.0, batch_size: int = 32) -> Any:
    """The ``PairwiseJudge`` of a scoring judge (an LLM judge is asked as stages, never built here)."""
    from alignkit.eval.judges.pairwise import ScorerPairJudge
    from alignkit.eval.models import IN_PROCESS, run_model_folder

    if spec.kind == "pairwise":
        return IN_PROCESS[spec.target]
    if spec.kind == "scorer":
        return ScorerPairJudge(IN_PROCESS[spec.target], tie_margin=tie_margin)
    if spec.kind == "function":
        from alignkit.score.base import FunctionScorer

        return ScorerPairJudge(FunctionScorer.from_path(spec.target), tie_margin=tie_margin)
    if spec.kind in ("reward", "cost"):
        from alignkit.models.loading import resolve_path
        from alignkit.score.score_model import ScoreModelScorer

        scorer = ScoreModelScorer(resolve_path(run_model_folder(spec.target)), batch_size=batch_size)
        return ScorerPairJudge(
            scorer if spec.kind == "reward" else LowerIsBetter(scorer), tie_margin=tie_margin
        )
    raise ValueError(f"judge {spec.text!r} is an LLM judge: it is asked as eval stages, not built here")
