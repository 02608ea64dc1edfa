"""``alignkit serve``'s config: which Generator (a model spec, optionally wrapped) and how to serve it.

A YAML file (``--config serve.yaml``), ``key=value`` overrides, or just ``alignkit serve MODEL``::

    model: runs/toyworld-sft            # any model spec (alignkit.generate.specs)
    name: toy-sft                       # the id clients send as "model" (default: from the spec)
    wrappers:                           # a chain: each wraps the Generator built so far, in order
      - use: guard                      # a name from serve.chain.WRAPPERS, or module:Class
        options: {rounds: 3}            # keyword arguments of the class: Class(inner, **options)
    moderator: alignkit.toyworld.moderation:moderate   # /v1/moderations (module:function)
    port: 8000
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alignkit.config import ConfigError, check

API_KEY_ENV = "ALIGNKIT_API_KEY"
"""Environment variable holding the bearer token clients must send (``--api-key`` wins over it)."""


@dataclass
class WrapperConfig:
    use: str = ""
    """A Generator class that wraps another: a name from ``alignkit.serve.chain.WRAPPERS`` or
    ``package.module:Class``; it is built as ``Class(inner_generator, **options)``."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of that class, as YAML values (strings, numbers, lists, mappings)."""

    def validate(self, prefix: str) -> None:
        check(bool(self.use), f"{prefix}use", self.use, "a wrapper name or package.module:Class")


@dataclass
class ServeConfig:
    model: str = ""
    """The model to serve: a model spec (a local folder, a run folder, toyworld://..., hf:, vllm:,
    openai:URL#MODEL)."""
    name: str = ""
    """The model id clients send in ``model`` and /v1/models lists ('' : the spec's short label)."""
    wrappers: list[WrapperConfig] = field(default_factory=list)
    """Generators wrapping the model, innermost first (e.g. an Aligner, then a guard)."""
    moderator: str = ""
    """The Moderator behind /v1/moderations: ``package.module:function`` (a ``FunctionModerator``, e.g.
    alignkit.toyworld.moderation:moderate) or ``package.module:Class`` of a Moderator built with no
    arguments; '' : the endpoint answers 404."""
    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0: every interface; give an api_key then)."""
    port: int = 8000
    """TCP port (0: any free port, printed at start)."""
    api_key: str = ""
    """Bearer token every /v1 request must send ('' : the ALIGNKIT_API_KEY environment variable; both
    empty: no authentication)."""
    dtype: str = "auto"
    """Weights' dtype for a local model: auto, float32, bfloat16, float16."""
    max_batch_size: int = 64
    """Most prompts (times n) one generate call takes across concurrent requests."""
    batch_wait_ms: float = 5.0
    """How long the batcher waits for more requests after the first one arrives (latency for throughput)."""
    max_model_len: int = 0
    """Prompt + completion tokens a request may ask for (0: the model config's max_position_embeddings)."""
    default_max_tokens: int = 256
    """Completion tokens when a request gives neither max_tokens nor max_completion_tokens (capped by
    what the context leaves)."""
    max_body_bytes: int = 1_000_000
    """Largest request body accepted; bigger ones get 413."""

    def validate(self, prefix: str) -> None:
        check(bool(self.model), f"{prefix}model", self.model, "a model spec, e.g. toyworld://models/tiny")
        check(0 <= self.port <= 65535, f"{prefix}port", self.port, "a TCP port in [0, 65535]")
        check(self.max_batch_size > 0, f"{prefix}max_batch_size", self.max_batch_size, "a positive integer")
        check(self.batch_wait_ms >= 0, f"{prefix}batch_wait_ms", self.batch_wait_ms, "a number >= 0")
        check(self.max_model_len >= 0, f"{prefix}max_model_len", self.max_model_len, "an integer >= 0")
        check(
            self.default_max_tokens > 0,
            f"{prefix}default_max_tokens",
            self.default_max_tokens,
            "an integer > 0",
        )
        check(self.max_body_bytes > 0, f"{prefix}max_body_bytes", self.max_body_bytes, "an integer > 0")
        allowed = ("auto", "float32", "bfloat16", "float16")
        if self.dtype not in allowed:
            raise ConfigError(
                f"{prefix}dtype={self.dtype!r} is not allowed: choose one of {', '.join(allowed)}"
            )
