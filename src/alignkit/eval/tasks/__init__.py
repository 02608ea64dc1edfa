"""The eval task registry: ``alignkit eval run NAME`` and ``alignkit eval list`` read it.

Adding a benchmark: write one module here with a ``Task`` subclass (see ``alignkit.eval.task.Task`` and
``toyworld_oracle.py``), then add one line below. Modules are imported when a task is used or listed,
so a task's dependencies cost nothing to the others.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from alignkit.config import ConfigError

TASKS: dict[str, str] = {
    "toyworld-oracle": "alignkit.eval.tasks.toyworld_oracle:ToyworldOracle",
    "toyworld-visual-oracle": "alignkit.eval.tasks.toyworld_visual_oracle:ToyworldVisualOracle",
    "win-rate": "alignkit.eval.tasks.win_rate:WinRate",
    "safety": "alignkit.eval.tasks.safety:Safety",
    "judge-agreement": "alignkit.eval.tasks.judge_agreement:JudgeAgreement",
    "deceptionbench": "alignkit.eval.tasks.deceptionbench:DeceptionBench",
}
"""Task name -> ``module:Class``."""


def get_task(name: str) -> Any:
    """The task class registered as ``name``; an unknown name is a ``ConfigError`` listing every task."""
    if name not in TASKS:
        close = difflib.get_close_matches(name, list(TASKS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listing = "; ".join(f"{n}: {cls.doc()}" for n, cls in ((n, _load(n)) for n in TASKS))
        raise ConfigError(
            f"unknown eval task {name!r}{hint}. Tasks (`alignkit eval list` describes them): {listing}"
        )
    return _load(name)


def _load(name: str) -> Any:
    module, _, cls = TASKS[name].partition(":")
    task = getattr(importlib.import_module(module), cls)
    if task.name != name:
        raise RuntimeError(f"TASKS[{name!r}] points at {TASKS[name]}, whose name is {task.name!r}")
    return task


def task_list() -> str:
    """Every task with its version, doc and keys: what ``alignkit eval list`` prints."""
    import dataclasses

    from alignkit.config import field_docs

    blocks = []
    for name in TASKS:
        task = _load(name)
        docs = field_docs(task.config_class)
        own = [f for f in dataclasses.fields(task.config_class) if f.name in docs]
        keys = ", ".join(f.name for f in own)
        example = " ".join(f"{key}=PATH" for key in task.config_class.MODEL_KEYS[:1])
        metrics = ", ".join(f"{m.name} {'↑' if m.higher_is_better else '↓'}" for m in task.metrics)
        blocks.append(
            f"{name} (v{task.version})\n  {task.doc()}\n  metrics: {metrics}\n  keys: {keys}\n"
            f"  e.g. alignkit eval run {name} {example}   (--show-config lists every key with its doc)"
        )
    return "\n\n".join(blocks)
