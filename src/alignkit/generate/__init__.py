"""Generators: conversations in, sampled responses out (see ``base`` for the protocol and its contract).

``HFGenerator`` is imported eagerly (torch and transformers are core dependencies). ``OpenAIGenerator``
and ``VLLMGenerator`` load on first access, so ``import alignkit.generate`` never pulls in vLLM (an
optional, GPU-only install) and costs nothing for code that uses neither.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from alignkit.generate.base import Completion, Generator, SamplingConfig
from alignkit.generate.hf import HFGenerator

if TYPE_CHECKING:
    from alignkit.generate.openai_http import OpenAIGenerator
    from alignkit.generate.vllm_engine import VLLMGenerator

_LAZY = {
    "OpenAIGenerator": "alignkit.generate.openai_http",
    "VLLMGenerator": "alignkit.generate.vllm_engine",
}

__all__ = ["Completion", "Generator", "HFGenerator", "OpenAIGenerator", "SamplingConfig", "VLLMGenerator"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
