"""Inference-time safety: chains that wrap any Generator and are Generators themselves.

- ``GuardedGenerator``: moderate the query and the answer, regenerate flagged answers, refuse at last;
- ``AlignerGenerator``: a trained corrector rewrites each upstream answer (Aligner, arXiv 2402.02416);
- ``StreamAlignerGenerator``: the corrector revises sentence by sentence while the upstream writes
  (Stream Aligner, arXiv 2501.05336).

None needs the upstream's weights, so they stack on any backend (a local model, vLLM, an HTTP endpoint)
and can be evaluated and served like a model.
"""

from __future__ import annotations

from alignkit.guard.aligner import AlignerGenerator, AlignerTrace
from alignkit.guard.chain import CorrectorSection, GuardSection, build_chain, load_moderator
from alignkit.guard.guarded import DEFAULT_REFUSAL, GuardedGenerator, GuardRound, GuardTrace
from alignkit.guard.prefill import HFPrefillGenerator, PrefillGenerator
from alignkit.guard.stream import StreamAlignerGenerator, StreamStep, StreamTrace

__all__ = [
    "DEFAULT_REFUSAL",
    "CorrectorSection",
    "GuardSection",
    "build_chain",
    "load_moderator",
    "AlignerGenerator",
    "AlignerTrace",
    "GuardRound",
    "GuardTrace",
    "GuardedGenerator",
    "HFPrefillGenerator",
    "PrefillGenerator",
    "StreamAlignerGenerator",
    "StreamStep",
    "StreamTrace",
]
