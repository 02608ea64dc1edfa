"""Moderation: is a prompt or a response harmful, in which categories, and how severely.

The ``Moderator`` protocol is what safety evaluation and the guard chain call::

    moderate(prompts, responses=None) -> list[SafetyVerdict]

- ``responses=None``: an **input** check; each prompt (a conversation) is judged on its last user turn.
- ``responses`` given: an **output** check; each response is judged in the context of its prompt.
- both: call it twice (a guard checks the prompt before generating and the response after).

A prompt is a conversation (``Message`` records or ``{"role", "content"}`` dicts); a response is its text
or its assistant message(s). A verdict that cannot be read is ``flagged=None`` with the raw output kept,
so callers count it apart instead of dropping it. Backends:

- ``ScorerModerator``: any Scorer, e.g. a trained Safe RLHF cost model (cost > 0 means unsafe);
- ``GenerativeModerator`` (``score/llama_guard.py``): any Generator prompted Llama-Guard style, answering
  ``safe`` / ``unsafe`` and the violated categories;
- ``FunctionModerator``: a Python function (``module:function``), e.g. the toy world's harm oracle;
- ``ClassifierModerator`` (``score/moderation_classifier.py``): a trained multi-label harm classifier with a
  severity head (``alignkit train moderation``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from alignkit.data.templates.beavertails import BEAVERTAILS_CATEGORIES as BEAVERTAILS_CATEGORIES
from alignkit.data.templates.pku_saferlhf import HARM_CATEGORIES
from alignkit.score.base import Scorer, as_response, import_function, message_text

PKU_SAFERLHF_CATEGORIES: tuple[str, ...] = HARM_CATEGORIES
"""PKU-SafeRLHF's 19 harm categories, in the dataset's order (``BEAVERTAILS_CATEGORIES``: BeaverTails' 14)."""


@dataclass(frozen=True)
class SafetyVerdict:
    """One moderation decision."""

    flagged: bool | None
    """True: unsafe; False: safe; None: the moderator's output could not be read (count it apart)."""
    categories: tuple[str, ...] = ()
    """Violated harm categories (names from the moderator's list; unknown codes kept verbatim)."""
    severity: int | None = None
    """1 minor, 2 moderate, 3 severe (PKU-SafeRLHF's scale); None when the moderator gives none."""
    score: float | None = None
    """P(unsafe) when the moderator knows it (a calibrated classifier, Llama Guard's first token)."""
    raw: str = ""
    """What the moderator returned, verbatim, for samples.jsonl and for debugging parse failures."""


@runtime_checkable
class Moderator(Protocol):
    def moderate(
        self, prompts: Sequence[Sequence[Any]], responses: Sequence[str | Sequence[Any]] | None = None
    ) -> list[SafetyVerdict]:
        """One verdict per prompt (input check, ``responses=None``) or per (prompt, response) pair."""
        ...


def response_text(response: str | Sequence[Any]) -> str:
    """A response given as text or as assistant message(s) -> its text."""
    return response if isinstance(response, str) else message_text(response, "assistant")


def check_lengths(prompts: Sequence[Any], responses: Sequence[Any] | None) -> None:
    if responses is not None and len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")


# ----------------------------------------------------------------------------- Scorer


class ScorerModerator:
    """A Scorer as a moderator: ``flagged = raw score > threshold``.

    With ``logit=True`` (a Safe RLHF cost model, whose cost is positive exactly for unsafe responses)
    ``score = sigmoid(raw)`` is read as P(unsafe) and the default threshold 0 is the cost model's own
    sign rule; with ``logit=False`` the scorer must already return a probability in [0, 1] (set
    ``threshold=0.5``). Categories and severity are unknown (empty, None). Output checks only: a response
    scorer has nothing to score in a prompt alone.
    """

    def __init__(self, scorer: Scorer, *, threshold: float = 0.0, logit: bool = True) -> None:
        self.scorer = scorer
        self.threshold = threshold
        self.logit = logit

    def moderate(
        self, prompts: Sequence[Sequence[Any]], responses: Sequence[str | Sequence[Any]] | None = None
    ) -> list[SafetyVerdict]:
        if responses is None:
            raise ValueError(
                "ScorerModerator checks responses only: a reward or cost model scores a response to a prompt, "
                "not a prompt alone; use a GenerativeModerator or a FunctionModerator for input checks"
            )
        check_lengths(prompts, responses)
        messages = [as_response(r) if isinstance(r, str) else r for r in responses]
        raw = [float(x) for x in self.scorer.score(prompts, messages).tolist()]
        return [self._verdict(i, x) for i, x in enumerate(raw)]

    def _verdict(self, index: int, raw: float) -> SafetyVerdict:
        if not math.isfinite(raw):
            return SafetyVerdict(flagged=None, raw=repr(raw))
        if self.logit:
            score = 1 / (1 + math.exp(-raw)) if raw >= 0 else math.exp(raw) / (1 + math.exp(raw))
        elif 0 <= raw <= 1:
            score = raw
        else:
            raise ValueError(f"item {index}: score {raw} is not a probability; construct with logit=True")
        return SafetyVerdict(flagged=raw > self.threshold, score=score, raw=repr(raw))


# ----------------------------------------------------------------------------- Python functions


def to_verdict(value: Any, source: str = "moderator") -> SafetyVerdict:
    """A moderation function's return value as a ``SafetyVerdict``.

    Accepted: a ``SafetyVerdict``; ``None`` (the function could not decide: unparseable); a bool, which
    means **flagged** (True = unsafe); a mapping with ``flagged`` or ``is_safe`` and optional
    ``categories`` (names, or a PKU-SafeRLHF-style ``{name: bool}`` dict), ``severity``, ``score``; or an
    object with ``is_safe``, ``categories`` and ``severity`` attributes (the toy world's ``HarmVerdict``).
    """
    if isinstance(value, SafetyVerdict):
        return value
    if value is None:
        return SafetyVerdict(flagged=None, raw="None")
    if isinstance(value, bool):
        return SafetyVerdict(flagged=value, raw=repr(value))
    if isinstance(value, Mapping):
        fields = dict(value)
    elif hasattr(value, "is_safe"):
        fields = {k: getattr(value, k, None) for k in ("is_safe", "categories", "severity", "score")}
    else:
        raise ValueError(
            f"{source} returned {value!r}; a moderation function must return a SafetyVerdict, a bool "
            "(True = unsafe), None (undecided), a dict with 'flagged' or 'is_safe', or an object with is_safe"
        )
    if "flagged" in fields:
        flagged = fields["flagged"]
    elif "is_safe" in fields:
        flagged = None if fields["is_safe"] is None else not fields["is_safe"]
    else:
        raise ValueError(f"{source} returned {value!r}: a verdict dict needs a 'flagged' or 'is_safe' key")
    categories = fields.get("categories") or ()
    if isinstance(categories, Mapping):
        categories = [name for name, on in categories.items() if on]
    severity, score = fields.get("severity"), fields.get("score")
    return SafetyVerdict(
        flagged=None if flagged is None else bool(flagged),
        categories=tuple(str(c) for c in categories),
        severity=None if severity is None else int(severity),
        score=None if score is None else float(score),
        raw=repr(value),
    )


class FunctionModerator:
    """A Python function as a moderator: ``fn(prompt, response) -> verdict`` (see ``to_verdict``).

    It gets plain text: the prompt's last user message and the response's text, or ``None`` as the
    response for an input check. ``batched=True`` calls ``fn(prompts, responses) -> list`` once.
    The toy world's oracle works as is for output checks (``alignkit.toyworld.oracle:harm``) and, for
    input checks too, as ``alignkit.toyworld.moderation:moderate``.
    """

    def __init__(self, fn: Callable[..., Any], *, batched: bool = False) -> None:
        self.fn = fn
        self.batched = batched
        self.name = getattr(fn, "__qualname__", repr(fn))

    @classmethod
    def from_path(cls, path: str, *, batched: bool = False) -> FunctionModerator:
        return cls(import_function(path), batched=batched)

    def moderate(
        self, prompts: Sequence[Sequence[Any]], responses: Sequence[str | Sequence[Any]] | None = None
    ) -> list[SafetyVerdict]:
        check_lengths(prompts, responses)
        texts = [message_text(p, "user") for p in prompts]
        answers = [None] * len(texts) if responses is None else [response_text(r) for r in responses]
        if self.batched:
            values = list(self.fn(texts, answers))
            if len(values) != len(texts):
                raise ValueError(
                    f"moderator {self.name} returned {len(values)} verdicts for {len(texts)} items"
                )
        else:
            values = [self.fn(p, r) for p, r in zip(texts, answers, strict=True)]
        return [to_verdict(v, f"moderator {self.name} (item {i})") for i, v in enumerate(values)]
