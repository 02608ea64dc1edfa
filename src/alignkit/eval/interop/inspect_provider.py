"""An alignkit model as an inspect_ai model provider, and running an inspect task on it.

``AlignkitModelAPI`` is an inspect ``ModelAPI`` whose answers come from any alignkit Generator: inspect
tasks (solver chains, scorers, multi-turn) then run on a local Hugging Face model, a run folder, an
OpenAI-compatible endpoint or a guarded chain exactly as on a hosted model. Importing this module registers
it as the provider ``alignkit`` (``get_model("alignkit/<model spec>")``, ``inspect eval ... --model
alignkit/runs/sft``); the package's entry point (``[project.entry-points.inspect_ai]``) lets inspect find
it by itself once alignkit is installed.

What maps how: each message's text goes as ``{"role", "content"}`` (tool calls are not supported: an alignkit
Generator answers text); ``max_tokens``, ``temperature`` (none given: the config's, greedy by default),
``top_p``, ``top_k`` and ``seed`` become the sampling config; ``stop_seqs`` cut the answer; an answer cut
at the token limit has stop reason ``max_tokens``. A local model answers one request at a time (it is not
safe to call from two threads); an endpoint takes ``max_concurrency`` at once.

This module imports ``inspect_ai`` at once; nothing in alignkit imports it unless inspect is asked for.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from alignkit.generate.base import SamplingConfig, missing_backend

try:
    from inspect_ai.model import GenerateConfig, ModelAPI, ModelOutput, modelapi
except ImportError:  # pragma: no cover - exercised where inspect_ai is absent
    raise missing_backend("inspect_ai", "inspect", "running inspect_ai tasks") from None

PROVIDER = "alignkit"


class AlignkitModelAPI(ModelAPI):
    """inspect's model interface over an alignkit Generator (``generator=``) or a model spec (the model
    name: ``alignkit/runs/sft``, ``alignkit/openai:http://host/v1#model``); ``model_args`` (``-M``):
    ``dtype``, ``batch_size``, ``timeout``, ``max_concurrency``, ``max_new_tokens``, ``temperature``."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 - inspect's own signature
        generator: Any = None,
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config)
        self.max_new_tokens = int(model_args.pop("max_new_tokens", 256))
        self.temperature = float(model_args.pop("temperature", 0.0))
        self.concurrency = int(model_args.get("max_concurrency", 8))
        self.remote = generator is None and model_name.startswith("openai:")
        self.generator = generator if generator is not None else _build(model_name, model_args)
        self._lock = asyncio.Lock()

    def sampling(self, config: GenerateConfig) -> SamplingConfig:
        """inspect's generation config as alignkit decoding (unset fields: this provider's defaults)."""
        return SamplingConfig(
            max_new_tokens=config.max_tokens or self.max_new_tokens,
            temperature=self.temperature if config.temperature is None else float(config.temperature),
            top_p=1.0 if config.top_p is None else float(config.top_p),
            top_k=config.top_k or 0,
        )

    async def generate(
        self, input: list[Any], tools: list[Any], tool_choice: Any, config: GenerateConfig
    ) -> Any:  # noqa: A002
        if tools:
            raise ValueError(
                f"the task offers tools ({', '.join(t.name for t in tools)}); alignkit models answer text "
                "and make no tool calls: run tasks without tools on them"
            )
        chat = [{"role": _role(message), "content": message.text} for message in input]
        sampling = self.sampling(config)

        def call() -> Any:
            return self.generator.generate([chat], sampling, seed=config.seed)[0]

        if self.remote:
            completion = await asyncio.to_thread(call)
        else:  # one local forward at a time
            async with self._lock:
                completion = await asyncio.to_thread(call)
        text = completion.text
        for stop in config.stop_seqs or []:
            text = text.split(stop, 1)[0]
        reason = "max_tokens" if completion.finish_reason == "length" else "stop"
        return ModelOutput.from_content(self.model_name, text, stop_reason=reason)

    def max_connections(self) -> int:
        return self.concurrency if self.remote else 1


def _role(message: Any) -> str:
    if message.role == "tool":
        raise ValueError("a tool message reached an alignkit model; alignkit models make no tool calls")
    return str(message.role)


def _build(spec_text: str, model_args: dict[str, Any]) -> Any:
    from alignkit.eval.models import build_generator, check_model_spec

    known = {"dtype", "batch_size", "timeout", "max_concurrency", "seed"}
    unknown = sorted(set(model_args) - known)
    if unknown:
        raise ValueError(
            f"alignkit model args {unknown} are not known; known: {sorted(known | {'max_new_tokens', 'temperature'})}"
        )
    return build_generator(check_model_spec(spec_text, "model"), **model_args)


@modelapi(name=PROVIDER)
def alignkit_provider() -> type[ModelAPI]:
    """inspect's registry entry: ``get_model("alignkit/<spec>")``."""
    return AlignkitModelAPI


def model_for(config: Any, generator: Any = None) -> Any:
    """An inspect ``Model`` over ``config.model`` (or over a Generator object), through inspect's registry."""
    from inspect_ai.model import get_model

    args: dict[str, Any] = {"max_new_tokens": config.max_new_tokens, "temperature": config.temperature}
    if generator is None:
        args |= {
            "dtype": config.dtype,
            "batch_size": config.batch_size,
            "timeout": config.timeout,
            "max_concurrency": config.max_concurrency,
            "seed": config.seed,
        }
    name = config.model or type(generator).__name__
    return get_model(f"{PROVIDER}/{name}", memoize=False, generator=generator, **args)


def results_from_log(log: Any, seed: int | None = None) -> dict[str, Any]:
    """An inspect ``EvalLog`` as lm-eval's results shape: one entry per task, ``metric,scorer`` keys (the
    scorer is lm-eval's "filter" slot), a ``stderr`` metric as the ``metric_stderr,scorer`` of the
    scorer's first metric."""
    task = log.eval.task
    entry: dict[str, Any] = {"alias": task, "name": task}
    results = log.results
    entry["sample_len"] = results.completed_samples if results else 0
    for score in results.scores if results else []:
        metrics = {name: m.value for name, m in score.metrics.items()}
        stderr = metrics.pop("stderr", None)
        for name, value in metrics.items():
            entry[f"{name},{score.name}"] = value
        if stderr is not None and metrics:
            entry[f"{next(iter(metrics))}_stderr,{score.name}"] = stderr
    return {
        "results": {task: entry},
        "group_subtasks": {task: []},
        "configs": {task: {"task": task, "version": log.eval.task_version, "inspect_task": log.eval.task}},
        "versions": {task: log.eval.task_version},
        "n-shot": {task: 0},
        "higher_is_better": {task: {}},
        "n-samples": {
            task: {"original": log.eval.dataset.samples or 0, "effective": entry["sample_len"]},
        },
        "config": {"model": log.eval.model, "random_seed": seed, "limit": log.eval.config.limit},
        "model_name": log.eval.model,
        "model_source": PROVIDER,
        "date": log.eval.created,
        "alignkit": {"inspect_log": log.location, "status": log.status},
    }


def run_inspect(task: Any, config: Any, *, generator: Any = None, log: Any = print) -> dict[str, Any]:
    """Run an inspect task (a ``file.py@name`` / registry name, or a ``Task`` object) on ``config.model``
    (or a Generator object) into a run folder: inspect's log in ``inspect-logs/``, ``results.json`` in
    lm-eval's shape and ``samples.jsonl`` (id, input, target, output, scores). Returns the results dict."""
    from inspect_ai import eval as inspect_eval

    from alignkit.config import dump_yaml
    from alignkit.eval.interop.folders import default_output_dir
    from alignkit.runs import RunFailure, check_run_dir, prepare_run_dir, release_run_lock

    name = task if isinstance(task, str) else getattr(task, "name", "task")
    out_dir = config.run.output_dir or default_output_dir("inspect", str(name))
    check_run_dir(out_dir, overwrite=config.run.overwrite, resume=config.run.resume)
    model = model_for(config, generator)
    out = prepare_run_dir(out_dir, overwrite=config.run.overwrite, resume=config.run.resume)
    try:
        (out / "config.yaml").write_text(dump_yaml(config))
        (eval_log,) = inspect_eval(
            task,
            model=model,
            limit=config.limit,
            seed=config.seed,
            log_dir=str(out / "inspect-logs"),
            display="none",
            log_format="json",
        )
        if eval_log.status != "success":
            message = eval_log.error.message if eval_log.error else eval_log.status
            raise RunFailure(
                f"inspect task {name} ended {eval_log.status}: {message} (log: {eval_log.location})"
            )
        results = results_from_log(eval_log, config.seed)
        with (out / "samples.jsonl").open("w", encoding="utf-8") as file:
            for sample in eval_log.samples or []:
                row = {
                    "id": sample.id,
                    "epoch": sample.epoch,
                    "input": sample.input
                    if isinstance(sample.input, str)
                    else [m.model_dump() for m in sample.input],
                    "target": sample.target,
                    "output": sample.output.completion,
                    "scores": {k: s.model_dump() for k, s in (sample.scores or {}).items()},
                    "error": sample.error.message if sample.error else None,
                }
                file.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    finally:
        release_run_lock(out)
    entry = results["results"][eval_log.eval.task]
    for key, value in entry.items():
        if "," in key:
            log(f"  {key:<28} {value}")
    log(f"results: {out / 'results.json'}; inspect log: {eval_log.location}")
    return results
