"""What the server serves: a Generator built from a model spec, optionally wrapped (a chain), plus what
the HTTP layer needs to know about it (its name, a tokenizer to count tokens, its context length).

A chain is a list of wrapper classes, innermost first; each is built as ``Class(inner, **options)`` and
must itself be a Generator. A wrapper is named by ``package.module:Class`` or by a short name registered
in ``WRAPPERS`` (the guard and Aligner packages add theirs there: ``register_wrapper``), so a serve.yaml
reads ``use: guard`` rather than a module path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alignkit.config import ConfigError
from alignkit.generate.base import Generator
from alignkit.score.base import import_function

WRAPPERS: dict[str, str] = {
    "guard": "alignkit.guard.chain:guard_wrapper",
    "aligner": "alignkit.guard.chain:corrector_wrapper",
}
"""Short wrapper name -> ``package.module:Class`` (a string: serve imports no wrapper package itself);
options are the ``guard:`` / ``corrector:`` keys of ``alignkit.guard.chain``."""


def register_wrapper(name: str, target: str) -> None:
    """Let serve configs name ``target`` (``package.module:Class``) as ``use: name``."""
    WRAPPERS[name] = target


@dataclass
class ServedModel:
    """One model behind the server."""

    name: str
    """The id clients send as ``model``."""
    generator: Any
    """The Generator (or chain) that answers."""
    tokenizer: Any = None
    """The innermost model's tokenizer: counts prompt and completion tokens, names logprob tokens.
    None (e.g. an openai: upstream): usage counts only what the Generator reports."""
    max_model_len: int = 0
    """Prompt + completion tokens allowed (0: unknown, not checked)."""
    created: int = field(default_factory=lambda: int(time.time()))
    renderer: Any = None
    """What renders prompts when it is not the tokenizer: a vision-language model's processor."""

    @property
    def accepts_images(self) -> bool:
        from alignkit.data.processor import is_processor

        return self.renderer is not None and is_processor(self.renderer)


def import_object(target: str, key: str) -> Any:
    """``package.module:Name`` -> the object, or a ConfigError naming ``key``."""
    try:
        return import_function(target)
    except ValueError as error:
        raise ConfigError(f"{key}={target!r}: {error}") from error


def resolve_wrapper(use: str, key: str) -> Any:
    """A wrapper's class from its registered name or ``package.module:Class``."""
    if ":" not in use and use not in WRAPPERS:
        known = ", ".join(sorted(WRAPPERS)) or "none registered yet"
        raise ConfigError(f"{key}={use!r}: not a registered wrapper ({known}); or write package.module:Class")
    return import_object(WRAPPERS.get(use, use), key)


def wrap(generator: Any, wrappers: Sequence[tuple[str, dict[str, Any]]], key: str = "wrappers") -> Any:
    """Apply ``(use, options)`` wrappers in order: innermost first."""
    classes = [resolve_wrapper(use, f"{key}[{i}].use") for i, (use, _) in enumerate(wrappers)]
    for i, (cls, (use, options)) in enumerate(zip(classes, wrappers, strict=True)):
        try:
            generator = cls(generator, **options)
        except TypeError as error:
            raise ConfigError(f"{key}[{i}]: {use} does not take these options ({error})") from error
        if not isinstance(generator, Generator):
            raise ConfigError(
                f"{key}[{i}].use={use!r} built a {type(generator).__name__}, which has no generate()"
            )
    return generator


def context_length(model: Any) -> int:
    """A Hugging Face model's context window from its config (0 when it names none)."""
    config = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return 0


def build_served_model(
    spec_text: str,
    *,
    name: str = "",
    wrappers: Sequence[tuple[str, dict[str, Any]]] = (),
    dtype: str = "auto",
    batch_size: int = 64,
    max_model_len: int = 0,
) -> ServedModel:
    """Load the model a spec names, wrap it, and read its tokenizer and context length."""
    from alignkit.generate.specs import build_generator, check_model_spec

    spec = check_model_spec(spec_text, "model")
    for i, (use, _) in enumerate(wrappers):  # a mistake in the chain is found before the model loads
        resolve_wrapper(use, f"wrappers[{i}].use")
    base = build_generator(spec, dtype=dtype, batch_size=batch_size)
    tokenizer = getattr(base, "tokenizer", None)
    limit = max_model_len or context_length(getattr(base, "model", None))
    renderer = getattr(base, "renderer", None)
    return ServedModel(
        name=name or spec.label,
        generator=wrap(base, wrappers),
        tokenizer=tokenizer,
        max_model_len=limit,
        renderer=None if renderer is tokenizer else renderer,
    )
