"""``alignkit eval run lm-eval:TASK`` and ``alignkit eval run inspect:TASK``: other harnesses' tasks on an
alignkit model, with their configs. Neither package is imported here: only when such a task is run.

- ``lm-eval:TASK[,TASK...]``: lm-evaluation-harness tasks by name (``arc_easy``, ``hellaswag``, or tasks in
  your own YAML folder: ``include_path=``), on ``AlignkitLM`` (``eval/interop/lm_harness.py``). The run
  folder gets lm-eval's own results dict as ``results.json`` and its per-sample records as
  ``samples.jsonl``.
- ``inspect:TASK``: an inspect_ai task as inspect names it (``path/to/file.py@task_name``, a registered
  task such as ``inspect_evals/gsm8k``), on the ``alignkit`` model provider
  (``eval/interop/inspect_provider.py``). Inspect's own log goes to ``inspect-logs/`` (``inspect view``
  reads it); its scores are written as ``results.json`` in lm-eval's shape (``metric,scorer`` keys).

The model is any alignkit model spec (``eval/models.py``): generation goes through its Generator; lm-eval's
log-likelihood requests (multiple choice, perplexity) need a local Hugging Face model.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from alignkit.config import ConfigError, check
from alignkit.eval.task import EvalOutputConfig

PACKAGES: dict[str, tuple[str, str, str]] = {
    "lm-eval": ("lm_eval", "lm-eval", "lm-evaluation-harness tasks"),
    "inspect": ("inspect_ai", "inspect", "inspect_ai tasks"),
}
"""Prefix -> (module, alignkit extra, what it runs)."""


@dataclass
class ExternalEvalConfig:
    """Keys shared by lm-eval and inspect runs."""

    model: str = ""
    """The model: a local Hugging Face folder or hub name, a run folder (its final/), toyworld://...,
    vllm:PATH, or openai:URL#MODEL (generation only)."""
    limit: int | None = None
    """Evaluate only the first N samples of each task (null: all)."""
    seed: int = 0
    """Seed of sampling and of the harness's own randomness (few-shot draws, shuffles)."""
    max_new_tokens: int = 256
    """Longest answer when the task does not set one."""
    batch_size: int = 16
    """Prompts per generate call and sequences per log-likelihood forward."""
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    """Local models: the dtype weights load in."""
    timeout: float = 60.0
    """openai: seconds to wait for one answer."""
    max_concurrency: int = 8
    """openai: requests in flight at once."""
    run: EvalOutputConfig = field(default_factory=EvalOutputConfig)
    """Where results go (run.output_dir; null: runs/eval-<harness>-<task>)."""

    def validate(self, prefix: str) -> None:
        from alignkit.eval.models import check_model_spec

        check_model_spec(self.model, f"{prefix}model")
        check(
            self.limit is None or self.limit > 0, f"{prefix}limit", self.limit, "a positive integer or null"
        )
        check(self.max_new_tokens > 0, f"{prefix}max_new_tokens", self.max_new_tokens, "a positive integer")
        check(self.batch_size > 0, f"{prefix}batch_size", self.batch_size, "a positive integer")


@dataclass
class LMEvalConfig(ExternalEvalConfig):
    """``alignkit eval run lm-eval:TASK[,TASK...] model=SPEC``."""

    num_fewshot: int | None = None
    """Few-shot examples per prompt (null: each task's own default)."""
    include_path: str | None = None
    """A folder of your own lm-eval task YAMLs, found beside (or, with builtin_tasks=false, instead of)
    lm-eval's library."""
    builtin_tasks: bool = True
    """Index lm-eval's own task library (thousands of YAMLs, seconds to scan); false: include_path only."""
    apply_chat_template: bool = False
    """Render prompts as chats: generation then sends the chat to the model, log-likelihoods score the
    tokenizer's rendering of it."""
    bootstrap_iters: int = 1000
    """lm-eval's bootstrap resamples for stderrs of non-mean metrics (0: none)."""

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        check(
            self.builtin_tasks or bool(self.include_path),
            f"{prefix}include_path",
            self.include_path,
            "a folder of task YAMLs when builtin_tasks=false",
        )


@dataclass
class InspectConfig(ExternalEvalConfig):
    """``alignkit eval run inspect:TASK model=SPEC``."""

    temperature: float = 0.0
    """Decoding temperature when the task does not set one (0: greedy, as alignkit evals)."""


def split_external(name: str) -> tuple[str, str] | None:
    """``("lm-eval", "arc_easy")`` for ``lm-eval:arc_easy``; None for an alignkit task name."""
    prefix, sep, rest = name.partition(":")
    if not sep or prefix not in PACKAGES:
        return None
    if not rest.strip():
        raise ConfigError(f"{name!r}: name the task after '{prefix}:', e.g. {prefix}:{_EXAMPLES[prefix]}")
    return prefix, rest.strip()


_EXAMPLES = {"lm-eval": "arc_easy", "inspect": "path/to/tasks.py@my_task"}


def require(prefix: str) -> None:
    """A ``ConfigError`` saying what to install when the harness's package is missing."""
    module, extra, what = PACKAGES[prefix]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"{prefix}: tasks are {what}, which need the '{module}' package; install it with "
            f"`pip install 'alignkit[{extra}]'`"
        )


def external_command(name: str) -> tuple[type, Callable[[Any], Any]] | None:
    """``(config class, run(config))`` for ``lm-eval:``/``inspect:`` task names, else None (an alignkit
    task). The package is checked here, its modules imported only when the run starts."""
    found = split_external(name)
    if found is None:
        return None
    prefix, task = found
    require(prefix)
    if prefix == "lm-eval":
        tasks = [t.strip() for t in task.split(",") if t.strip()]

        def run_lm(config: LMEvalConfig) -> Any:
            from alignkit.eval.interop.lm_harness import run_lm_eval

            return run_lm_eval(tasks, config)

        return LMEvalConfig, run_lm

    def run_inspect_task(config: InspectConfig) -> Any:
        from alignkit.eval.interop.inspect_provider import run_inspect

        return run_inspect(task, config)

    return InspectConfig, run_inspect_task
