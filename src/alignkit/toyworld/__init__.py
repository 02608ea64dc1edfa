"""The bundled offline world every test and the demo run on.

A small world of requests with oracles standing in for human annotators: benign requests with one
checkable answer, harmful requests mapped onto PKU-SafeRLHF's 19 harm categories, a tokenizer and a
random-init tiny Llama, and datasets in the real schemas (TRL conversational SFT, PKU-SafeRLHF,
Aligner, PKU-SafeRLHF-prompt). See ``build`` for the layout and ``oracle`` for the scales.

Importing this package is cheap (no torch); ``evaluate_policy`` imports torch on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alignkit.toyworld.build import VERSION, ToyWorld, build, default_root, default_world, resolve
from alignkit.toyworld.harms import HARM_CATEGORIES, HARMFUL_GOALS, HarmfulGoal
from alignkit.toyworld.oracle import HarmVerdict, classify, harm, helpfulness
from alignkit.toyworld.store import home
from alignkit.toyworld.world import Task, find_task, split_tasks

if TYPE_CHECKING:
    from alignkit.toyworld.evaluate import evaluate_policy, generate_responses, score_responses

__all__ = [
    "HARMFUL_GOALS",
    "HARM_CATEGORIES",
    "VERSION",
    "HarmVerdict",
    "HarmfulGoal",
    "Task",
    "ToyWorld",
    "build",
    "classify",
    "default_root",
    "default_world",
    "evaluate_policy",
    "find_task",
    "generate_responses",
    "harm",
    "helpfulness",
    "home",
    "resolve",
    "score_responses",
    "split_tasks",
]

_LAZY = {"evaluate_policy", "generate_responses", "score_responses"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from alignkit.toyworld import evaluate

        return getattr(evaluate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
