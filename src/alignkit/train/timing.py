"""Where a step's time goes, measured by the trainers themselves: ``timing/<phase>`` seconds per step.

Every trainer wraps its phases (``rollout``, ``scoring``, ``reference``, ``update``, ... online; ``data``,
``forward_backward``, ``optimizer`` offline) in ``timer("phase")`` and logs ``timer.pop()`` with the step's
metrics, so a profile of a run is in its ``metrics.jsonl`` and the benchmarks read it from there instead of
patching the trainers' internals. On CUDA the timer synchronises at each phase boundary, so a phase is
charged for the kernels it launched, not for the ones the next phase waits on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

PREFIX = "timing/"


class PhaseTimer:
    def __init__(self, device: Any = None) -> None:
        self.sync = torch.device(device).type == "cuda" if device is not None else False
        self.totals: dict[str, float] = {}

    def _now(self) -> float:
        if self.sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        """Add the block's wall time to ``phase`` (nested phases are each charged their own time)."""
        start = self._now()
        try:
            yield
        finally:
            self.totals[phase] = self.totals.get(phase, 0.0) + self._now() - start

    def pop(self) -> dict[str, float]:
        """``timing/<phase>`` seconds since the last pop, and start again."""
        out = {f"{PREFIX}{phase}": seconds for phase, seconds in self.totals.items()}
        self.totals = {}
        return out
