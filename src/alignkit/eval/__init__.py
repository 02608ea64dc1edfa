"""Evaluation: eval tasks (``alignkit eval run``), comparisons of runs, judges' held-out accuracy, reports.

``run_task(name_or_task, model=..., **config) -> results dict`` is the Python entry point (see
``eval/runner.py``); importing this package costs nothing until it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alignkit.eval.runner import run_task

__all__ = ["run_task"]


def __getattr__(name: str) -> Any:
    if name == "run_task":
        from alignkit.eval.runner import run_task

        return run_task
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
