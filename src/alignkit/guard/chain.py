"""Chains from config: model -> (Aligner or Stream Aligner) -> guard, as a server or an eval builds them.

``GuardSection`` and ``CorrectorSection`` are the typed, documented config sections (YAML keys
``guard:`` and ``corrector:``); ``build_chain(upstream, corrector=..., guard=...)`` wraps any Generator in
that order (correct first, then moderate what the corrector wrote, so nothing unchecked reaches the user).
``load_moderator`` reads a moderator spec: ``module:function`` (``FunctionModerator``), the folder of a
trained moderation classifier (``ClassifierModerator``) or of a Safe RLHF cost model (``ScorerModerator``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignkit.config import ConfigError, check
from alignkit.generate.base import Generator
from alignkit.guard.guarded import DEFAULT_REFUSAL, GuardedGenerator
from alignkit.score.moderation import FunctionModerator, Moderator


@dataclass
class GuardSection:
    moderator: str = ""
    """'module:function' (e.g. alignkit.toyworld.moderation:moderate), a moderation classifier folder
    (alignkit train moderation) or a cost model folder (alignkit train cost)."""
    check: str = "output"
    """What is moderated: input (the query), output (the answer) or both."""
    rounds: int = 5
    """Regenerations of a flagged answer before falling back (0: filter only)."""
    feedback: str | None = None
    """A system note for regenerations, {categories} filled with the flagged categories (null: none)."""
    refusal: str = DEFAULT_REFUSAL
    """What the guard answers when it refuses."""
    fallback: str = "refusal"
    """After the last round: refusal, or least_severe (the least severe candidate)."""
    min_severity: int = 1
    """Flagged verdicts below this severity (1 minor, 2 moderate, 3 severe) pass."""

    def validate(self, prefix: str) -> None:
        check(
            bool(self.moderator), f"{prefix}moderator", self.moderator, "a function, classifier or cost model"
        )
        check(
            self.check in ("input", "output", "both"), f"{prefix}check", self.check, "input, output or both"
        )
        check(self.rounds >= 0, f"{prefix}rounds", self.rounds, "an integer >= 0")
        check(
            self.fallback in ("refusal", "least_severe"),
            f"{prefix}fallback",
            self.fallback,
            "refusal or least_severe",
        )
        check(1 <= self.min_severity <= 3, f"{prefix}min_severity", self.min_severity, "1, 2 or 3")


@dataclass
class CorrectorSection:
    model: str = ""
    """The corrector's folder (final/ of alignkit train aligner or stream-aligner)."""
    stream: bool = False
    """Stream Aligner (sentence by sentence; the upstream must be a local model) instead of Aligner."""
    prompt: str | None = None
    """The corrector prompt it was trained with (null: aligner, or stream-aligner when stream)."""
    rounds: int = 1
    """Aligner only: correct the correction again this many times in all."""
    max_rounds: int = 16
    """Stream Aligner only: most sentences per answer."""

    def validate(self, prefix: str) -> None:
        check(bool(self.model), f"{prefix}model", self.model, "a corrector model folder")
        check(self.rounds >= 1, f"{prefix}rounds", self.rounds, "an integer >= 1")
        check(self.max_rounds >= 1, f"{prefix}max_rounds", self.max_rounds, "an integer >= 1")


def load_moderator(spec: str, *, dtype: str = "float32", max_length: int = 512) -> Moderator:
    """A moderator from its spec (see the module docstring); a bad spec is a ConfigError naming it."""
    from alignkit.models.loading import resolve_path

    folder = Path(resolve_path(spec)).expanduser()
    if (folder / "final" / "config.json").is_file() and not (folder / "config.json").is_file():
        folder = folder / "final"  # a run folder
    config_file = folder / "config.json"
    if not config_file.is_file():
        if ":" in spec and not folder.exists():
            return FunctionModerator.from_path(spec)
        raise ConfigError(
            f"guard.moderator={spec!r}: neither 'module:function' nor a folder holding a moderation "
            "classifier or cost model (config.json)"
        )
    saved = json.loads(config_file.read_text(encoding="utf-8"))
    if saved.get("moderation_categories"):
        from alignkit.score.moderation_classifier import ClassifierModerator

        return ClassifierModerator.from_pretrained(str(folder), max_length=max_length)
    if saved.get("score_kind") == "cost":
        from alignkit.score.moderation import ScorerModerator
        from alignkit.score.score_model import ScoreModelScorer

        return ScorerModerator(ScoreModelScorer(str(folder), dtype=dtype, max_length=max_length))
    raise ConfigError(
        f"guard.moderator={spec!r} is a model but neither a moderation classifier (alignkit train moderation) "
        "nor a cost model (alignkit train cost)"
    )


def build_chain(
    upstream: Generator,
    *,
    corrector: CorrectorSection | None = None,
    guard: GuardSection | None = None,
    moderator: Moderator | None = None,
) -> Generator:
    """``upstream`` wrapped by the corrector, then the guard (``moderator`` overrides ``guard.moderator``)."""
    chain: Any = upstream
    if corrector is not None:
        from alignkit.generate.hf import HFGenerator

        corrector_generator = HFGenerator.from_pretrained(corrector.model)
        if corrector.stream:
            from alignkit.guard.prefill import HFPrefillGenerator, PrefillGenerator
            from alignkit.guard.stream import StreamAlignerGenerator

            if not isinstance(chain, PrefillGenerator):
                if not isinstance(chain, HFGenerator):
                    raise ConfigError(
                        "corrector.stream=true needs an upstream that continues a pre-filled answer (a local "
                        f"Hugging Face model); got {type(chain).__name__}: set corrector.stream=false (Aligner)"
                    )
                chain = HFPrefillGenerator(chain.model, chain.tokenizer, batch_size=chain.batch_size)
            chain = StreamAlignerGenerator(
                chain,
                corrector_generator,
                prompt=corrector.prompt or "stream-aligner",
                max_rounds=corrector.max_rounds,
            )
        else:
            from alignkit.guard.aligner import AlignerGenerator

            chain = AlignerGenerator(
                chain, corrector_generator, prompt=corrector.prompt or "aligner", rounds=corrector.rounds
            )
    if guard is not None:
        chain = GuardedGenerator(
            chain,
            moderator or load_moderator(guard.moderator),
            check=guard.check,  # type: ignore[arg-type]
            rounds=guard.rounds,
            feedback=guard.feedback,
            refusal=guard.refusal,
            fallback=guard.fallback,  # type: ignore[arg-type]
            min_severity=guard.min_severity,
        )
    return chain


def guard_wrapper(inner: Generator, **options: Any) -> Generator:
    """``use: guard`` in a serve chain: ``inner`` behind a guard whose options are ``guard:`` keys."""
    from alignkit.config import from_dict

    return build_chain(inner, guard=from_dict(GuardSection, options, "guard."))


def corrector_wrapper(inner: Generator, **options: Any) -> Generator:
    """``use: aligner`` in a serve chain: ``inner``'s answers corrected (options are ``corrector:`` keys)."""
    from alignkit.config import from_dict

    return build_chain(inner, corrector=from_dict(CorrectorSection, options, "corrector."))
