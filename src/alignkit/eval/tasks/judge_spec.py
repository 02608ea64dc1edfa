"""One config key for a judge that may be a function, a score model or a generative model.

A safety moderator or an agreement judge is, depending on the user, a Python rule (the toy oracle), a
trained reward or cost model (scored inside ``Task.score``), or a chat model prompted as a judge (asked
as a stage, so its verdicts are cached like any generation). The spec is read by the one judge parser,
``eval.judges.spec.parse_judge``, and sorted into the three kinds these tasks use:

- ``module:function`` (also ``fn:module:function`` or ``scorer:module:function``): a function;
- a local folder (or a run folder's ``final/``) whose ``config.json`` names a ``score_kind``, or
  ``reward:PATH`` / ``cost:PATH``: a score model;
- a known model scheme (``hf:``, ``vllm:``, ``openai:``, ``python:``) or anything else (a chat model's
  folder, a hub name, ``toyworld://...``): a generative judge.
"""

from __future__ import annotations

from typing import Literal

from alignkit.config import ConfigError

JudgeKind = Literal["function", "scorer", "generative"]
KINDS: dict[str, JudgeKind] = {"function": "function", "reward": "scorer", "cost": "scorer"}
"""``parse_judge`` kinds -> the kinds here; any other (an LLM or a python: object) is generative."""


def judge_kind(spec: str) -> JudgeKind:
    """Which kind of judge ``spec`` names (see the module docstring)."""
    from alignkit.eval.judges.spec import parse_judge

    return KINDS.get(parse_judge(spec).kind, "generative")


def judge_target(spec: str) -> str:
    """What a function or score-model judge loads: ``spec`` without a ``fn:`` / ``scorer:`` / ``reward:`` /
    ``cost:`` prefix (a generative judge's spec is returned as it is)."""
    from alignkit.eval.judges.spec import parse_judge

    parsed = parse_judge(spec)
    return parsed.target if parsed.kind in KINDS else spec


def check_judge(spec: str, key: str, *, score_kind: str | None) -> None:
    """Before any run folder: a function must import, a score model must be of ``score_kind`` (a reward
    model where a cost model belongs is refused, naming the key; None: either kind). Model specs are checked as models are
    (``check_model_spec``, through the config's ``model_keys``)."""
    from alignkit.score.base import import_function

    kind, target = judge_kind(spec), judge_target(spec)
    if kind == "function":
        try:
            import_function(target)
        except ValueError as err:
            raise ConfigError(f"{key}: {err}") from None
    elif kind == "scorer":
        from alignkit.eval.judges.spec import parse_judge
        from alignkit.eval.models import run_model_folder
        from alignkit.models.score_model import check_score_model

        declared = parse_judge(spec).kind  # reward:/cost: say which kind; a bare folder its saved one
        check_score_model(run_model_folder(target), key, declared)
        check_score_model(run_model_folder(target), key, score_kind)
