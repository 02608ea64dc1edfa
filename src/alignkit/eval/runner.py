"""Running an eval task: ``alignkit eval run <task> ...`` and ``alignkit.eval.run_task``.

Top to bottom (``evaluate``):

1. Checks, before any folder exists: the config (read by ``config.load_config``: unknown keys, types, every
   model spec), the run folder (``runs.check_run_dir``: never overwritten unless asked), the samples
   (``task.samples()``: a row without a needed field is a ``DataError`` naming file, row and field).
2. The run folder is made and locked; ``config.yaml`` records what ran.
3. Each stage of the task, over every sample: the answer comes from the generation cache when it is
   there, else from the model in batches of ``batch_size``, each answer written to the cache as it
   arrives; samples asking exactly the same (same model, conversation and sampling) share one answer. A
   batch that raises is retried prompt by prompt, so one bad request (an endpoint's 500, a
   timeout) fails its own sample only; a failed sample skips its later stages and is recorded with the
   stage and the error. Models load only when something is left to generate.
4. ``task.score`` on the samples that have every answer; statistics per metric, overall and per
   breakdown (``eval/results.py``); ``samples.jsonl``, ``results.json`` and ``report.html`` are written.
5. The figures are printed. Failures are a warning (the rest is kept and a rerun with
   ``run.resume=true`` asks only for what is missing); a run where every sample failed ends with a
   ``RunFailure`` (exit status 1) after writing what it has.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alignkit.config import ConfigError, dump_yaml, from_dict, to_dict
from alignkit.eval.cache import GenerationCache, generation_key
from alignkit.eval.models import (
    IN_PROCESS,
    ModelSpec,
    build_generator,
    check_model_spec,
    in_process_spec,
    model_identity,
)
from alignkit.eval.results import RESULTS_FILE, SAMPLES_FILE, build_results, write_samples
from alignkit.eval.task import Sample, Scored, Task, TaskConfig, conversation_of
from alignkit.runs import (
    RunFailure,
    RunInterrupted,
    check_run_dir,
    prepare_run_dir,
    release_run_lock,
    write_json,
)


def default_output_dir(task: type[Task]) -> str:
    return f"runs/eval-{task.name}"


class _Model:
    """One role's model: its spec, identity and cache now; its Generator on first need."""

    def __init__(self, spec: ModelSpec, config: TaskConfig, cache_dir: Path) -> None:
        self.spec = spec
        self.config = config
        dtype = getattr(config, "dtype", "auto")
        self.identity = model_identity(spec, dtype)
        self.cache = GenerationCache(cache_dir, self.identity, spec.label) if self.identity else None
        self._generator: Any = None

    def generator(self) -> Any:
        if self._generator is None:
            c = self.config
            self._generator = build_generator(
                self.spec,
                dtype=getattr(c, "dtype", "auto"),
                batch_size=getattr(c, "batch_size", 32),
                timeout=getattr(c, "timeout", 60.0),
                max_concurrency=getattr(c, "max_concurrency", 8),
                seed=c.seed,
            )
        return self._generator

    def generate(self, conversations: list[Any], sampling: Any) -> list[Any]:
        """One completion or one exception per conversation: a batch that raises is retried one by one.
        A model that cannot be loaded is no sample's failure: that error stops the run."""
        generator = self.generator()
        try:
            completions = generator.generate(conversations, sampling, seed=self.config.seed)
            if len(completions) != len(conversations):
                raise RuntimeError(
                    f"the generator returned {len(completions)} answers for {len(conversations)} prompts"
                )
            return list(completions)
        except Exception as exc:  # noqa: BLE001 - any backend's failure is counted against its samples
            if len(conversations) == 1:
                return [exc]
            return [self.generate([c], sampling)[0] for c in conversations]


def _error(stage: str, exc: BaseException) -> dict[str, str]:
    return {"stage": stage, "type": type(exc).__name__, "message": " ".join(str(exc).split())[:1000]}


def run_stages(
    task: Task,
    samples: Sequence[Sample],
    models: Mapping[str, _Model],
    *,
    batch_size: int,
    log: Any = print,
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str] | None]]:
    """Every stage over every sample: (outputs, finish reasons, error or None) per sample."""
    outputs: list[dict[str, str]] = [{} for _ in samples]
    finish: list[dict[str, str]] = [{} for _ in samples]
    errors: list[dict[str, str] | None] = [None for _ in samples]
    default_sampling = getattr(task.config, "sampling", None)
    for stage in task.stages():
        model = models[stage.role]
        sampling = stage.sampling or default_sampling
        pending: list[tuple[list[Any], str]] = []
        same: dict[str, list[int]] = {}  # key -> the samples asking exactly that: asked once, shared
        cached = 0
        for i, sample in enumerate(samples):
            if errors[i] is not None:
                continue
            try:
                messages = stage.prompt(sample, outputs[i])
            except Exception as exc:  # noqa: BLE001 - a prompt built from a bad earlier answer fails its sample
                errors[i] = _error(stage.name, exc)
                continue
            if messages is None:
                continue
            conversation = list(conversation_of(messages))
            key = generation_key(model.identity or "", conversation, sampling, task.config.seed)
            hit = model.cache.get(key) if model.cache else None
            if hit is not None:
                outputs[i][stage.name], finish[i][stage.name] = hit["text"], hit["finish_reason"]
                cached += 1
            elif key in same:
                same[key].append(i)
            else:
                same[key] = [i]
                pending.append((conversation, key))
        failed_before = sum(e is not None for e in errors)
        log(
            f"stage {stage.name} ({stage.role} {model.spec.text}): {cached} cached, {len(pending)} to generate"
        )
        for start in range(0, len(pending), batch_size):
            chunk = pending[start : start + batch_size]
            answers = model.generate([conversation for conversation, _ in chunk], sampling)
            for (conversation, key), answer in zip(chunk, answers, strict=True):
                for i in same[key]:
                    if isinstance(answer, BaseException):
                        errors[i] = _error(stage.name, answer)
                    else:
                        outputs[i][stage.name], finish[i][stage.name] = answer.text, answer.finish_reason
                if model.cache is not None and not isinstance(answer, BaseException):
                    model.cache.put(key, conversation, answer.text, answer.finish_reason)
        newly_failed = sum(e is not None for e in errors) - failed_before
        if newly_failed:
            log(f"stage {stage.name}: {newly_failed} samples failed")
    return outputs, finish, errors


def _record(
    index: int,
    sample: Sample,
    outputs: Mapping[str, str],
    finish: Mapping[str, str],
    error: dict[str, str] | None,
    scored: Scored | None,
) -> dict[str, Any]:
    """One samples.jsonl row: input, every stage's output, every verdict, the scores, or the error."""
    doc = json.dumps([sample.input, sample.target], sort_keys=True, default=str)
    return {
        "doc_id": index,
        "id": sample.id,
        "input": list(sample.input),
        "target": sample.target,
        "metadata": dict(sample.metadata),
        "outputs": dict(outputs),
        "finish_reasons": dict(finish),
        "verdicts": scored.verdicts if scored else {},
        "scores": scored.scores if scored else {},
        "error": error,
        "doc_hash": hashlib.sha256(doc.encode()).hexdigest(),
    }


def _score(task: Task, samples: Sequence[Sample], outputs: Sequence[Mapping[str, str]]) -> list[Scored]:
    if not samples:
        return []
    scored = task.score(samples, outputs)
    if len(scored) != len(samples):
        raise RuntimeError(
            f"task {task.name!r}: score returned {len(scored)} results for {len(samples)} samples"
        )
    return scored


def _check_task(task: Task, samples: Sequence[Sample]) -> None:
    """A task's own mistakes (a bug in its module, not the user's input), found before any folder exists."""
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        repeated = next(i for i in ids if ids.count(i) > 1)
        raise RuntimeError(f"task {task.name!r}: sample id {repeated!r} is used twice; ids must be unique")
    roles = {stage.role for stage in task.stages()}
    unknown = sorted(roles - set(task.config.model_keys()))
    if unknown:
        raise RuntimeError(
            f"task {task.name!r}: stages ask roles {unknown}, which its config does not list in MODEL_KEYS"
        )
    unsampled = [
        s.name for s in task.stages() if s.sampling is None and getattr(task.config, "sampling", None) is None
    ]
    if unsampled:
        raise RuntimeError(f"task {task.name!r}: stages {unsampled} set no sampling and the config has none")


def evaluate(task_cls: type[Task], config: TaskConfig, *, log: Any = print) -> dict[str, Any]:
    """Run ``task_cls`` as configured (see the module docstring); returns the results.json dict."""
    from alignkit.eval.run_report import format_summary, write_run_report

    started, wall = time.time(), time.perf_counter()
    task = task_cls(config)
    out_dir = config.run.output_dir or default_output_dir(task_cls)
    check_run_dir(out_dir, overwrite=config.run.overwrite, resume=config.run.resume)
    every = task.samples()
    samples = every[: config.limit] if config.limit else every
    _check_task(task, samples)
    specs = {role: check_model_spec(getattr(config, role), role) for role in config.model_keys()}

    out = prepare_run_dir(out_dir, overwrite=config.run.overwrite, resume=config.run.resume)
    try:
        (out / "config.yaml").write_text(dump_yaml(config))
        cache_dir = Path(config.cache_dir) if config.cache_dir else out / "generations"
        models = {role: _Model(spec, config, cache_dir) for role, spec in specs.items()}
        try:
            outputs, finish, errors = run_stages(
                task, samples, models, batch_size=getattr(config, "batch_size", 32), log=log
            )
        except KeyboardInterrupt:
            raise RunInterrupted(
                f"interrupted while generating. Every answer received so far is cached in {cache_dir}: run the "
                "same command with run.resume=true to continue from there."
            ) from None
        ok = [i for i, e in enumerate(errors) if e is None]
        scored = dict(zip(ok, _score(task, [samples[i] for i in ok], [outputs[i] for i in ok]), strict=True))
        records = [
            _record(i, s, outputs[i], finish[i], errors[i], scored.get(i)) for i, s in enumerate(samples)
        ]
        main = specs.get("model") or next(iter(specs.values()), None)
        # No generator asked (a judge that is a score model or a function): name the first model key's value.
        named = main.text if main else next((getattr(config, k) for k in config.MODEL_KEYS), None)
        results = build_results(
            task,
            records,
            original=len(every),
            config=to_dict(config),
            run_config={
                "model": named,
                "model_args": {role: spec.text for role, spec in specs.items()},
                "model_identity": {role: m.identity for role, m in models.items()},
                "batch_size": getattr(config, "batch_size", None),
                "limit": config.limit,
                "bootstrap_iters": config.bootstrap_iters,
                "random_seed": config.seed,
                "gen_kwargs": to_dict(getattr(config, "sampling", None)),
                "cache_dir": str(cache_dir),
            },
            extra={
                "date": started,
                "model_name": named,
                "model_source": main.backend if main else None,
                "total_evaluation_time_seconds": f"{time.perf_counter() - wall:.2f}",
                "alignkit_version": _version("alignkit"),
            },
        )
        write_samples(out / SAMPLES_FILE, records)
        write_json(out / RESULTS_FILE, results)
        if config.report:
            write_run_report(out, task, results, records)
        else:  # a resumed run must not leave the previous run's report looking current
            (out / "report.html").unlink(missing_ok=True)
    finally:
        release_run_lock(out)
    log(format_summary(task, results, out))
    failed = [r for r in records if r["error"] is not None]
    if failed and len(failed) == len(records):
        first = failed[0]["error"]
        raise RunFailure(
            f"every one of the {len(records)} samples failed (first, at stage {first['stage']}: "
            f"{first['type']}: {first['message']}); nothing was scored. The errors are in "
            f"{out / SAMPLES_FILE}; fix the cause and rerun with run.resume=true."
        )
    if failed:
        stages = ", ".join(
            f"{k}: {v}" for k, v in results["alignkit"]["failures"][task.name]["by_stage"].items()
        )
        print(
            f"alignkit: warning: {len(failed)} of {len(records)} samples failed ({stages}; first: "
            f"{failed[0]['error']['message'][:200]}). They are in {out / SAMPLES_FILE} and left out of the "
            "metrics; rerun with run.resume=true to retry only them.",
            file=sys.stderr,
        )
    return results


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def resolve_task(name_or_task: str | type[Task] | Task) -> type[Task]:
    """A task class from its registry name (an unknown name lists the tasks), a class, or an instance."""
    if isinstance(name_or_task, Task):
        return type(name_or_task)
    if isinstance(name_or_task, type) and issubclass(name_or_task, Task):
        return name_or_task
    from alignkit.eval.tasks import get_task

    return get_task(str(name_or_task))


def run_task(
    name_or_task: str | type[Task] | Task,
    *,
    model: Any = None,
    config: TaskConfig | None = None,
    log: Any = print,
    **keys: Any,
) -> dict[str, Any]:
    """Evaluate a model on a task from Python; returns the results.json dict.

    ``model`` (and any other model key of the task, e.g. ``baseline``) is a spec string as on the command
    line, or a Generator object (cached only if it has a ``cache_identity`` attribute). Other keys are the
    task's config keys, nested sections as dicts: ``run_task("toyworld-oracle", model="runs/sft",
    limit=20, run={"output_dir": "runs/eval-sft", "overwrite": True})``. ``config`` gives a whole config
    object instead.
    """
    task_cls = resolve_task(name_or_task)
    if model is not None:
        keys["model"] = model
    registered = []
    for key in task_cls.config_class.MODEL_KEYS:
        value = keys.get(key)
        if value is not None and not isinstance(value, str):
            keys[key] = in_process_spec(value)
            registered.append(keys[key])
    try:
        if config is None:
            config = from_dict(task_cls.config_class, keys)
        elif keys:
            raise ConfigError(f"run_task: give either config= or config keys, not both (got {sorted(keys)})")
        if not isinstance(config, task_cls.config_class):
            raise ConfigError(
                f"run_task: task {task_cls.name!r} takes a {task_cls.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        return evaluate(task_cls, dataclasses.replace(config), log=log)
    finally:
        for name in registered:
            IN_PROCESS.pop(name, None)
