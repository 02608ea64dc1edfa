"""One config key for a judge that may be a function, a score model or a generative model.

A safety moderator or an agreement judge is, depending on the user, a Python rule (the toy oracle), a
trained reward or cost model (scored inside ``Task.score``), or a chat model prompted as a judge (asked
as a stage, so its verdicts are cached like any generation). The spec string tells which:

- a known model scheme (``hf:``, ``vllm:``, ``openai:``, ``python:``): a generative judge;
- ``module:function`` (a colon, no such path, no ``://``): a function;
- a local folder (or a run folder's ``final/``) whose ``config.json`` names a ``score_kind``: a score model;
- anything else (a chat model's folder, a hub name, ``toyworld://...``): a generative judge.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from alignkit.config import ConfigError

JudgeKind = Literal["function", "scorer", "generative"]
GENERATIVE_SCHEMES = ("hf:", "vllm:", "openai:", "python:")


def _score_kind(path: str) -> str | None:
    """The ``score_kind`` a local model folder (or a run folder's final/) was saved with, if any."""
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


def judge_kind(spec: str) -> JudgeKind:
    """Which kind of judge ``spec`` names (see the module docstring)."""
    from alignkit.score.base import looks_like_function

    if spec.startswith(GENERATIVE_SCHEMES):
        return "generative"
    if looks_like_function(spec):
        return "function"
    return "scorer" if _score_kind(spec) is not None else "generative"


def check_judge(spec: str, key: str, *, score_kind: str | None) -> None:
    """Before any run folder: a function must import, a score model must be of ``score_kind`` (a reward
    model where a cost model belongs is refused, naming the key; None: either kind). Model specs are checked as models are
    (``check_model_spec``, through the config's ``model_keys``)."""
    from alignkit.score.base import import_function

    kind = judge_kind(spec)
    if kind == "function":
        try:
            import_function(spec)
        except ValueError as err:
            raise ConfigError(f"{key}: {err}") from None
    elif kind == "scorer":
        from alignkit.eval.models import run_model_folder
        from alignkit.models.score_model import check_score_model

        check_score_model(run_model_folder(spec), key, score_kind)
