"""The eval task: samples + what is generated (stages) + scoring + metrics, and each task's config.

Shaped after lm-evaluation-harness (a task has a name, a version, a config, metrics with
``higher_is_better`` and an aggregation) and inspect_ai (dataset -> solver -> scorer -> metrics). A
benchmark is one small subclass of :class:`Task` in ``eval/tasks/`` plus one line in its registry; the
runner (``eval/runner.py``) does everything else: checks, the run folder, batching, the generation
cache, counting failures, statistics, ``results.json``, ``samples.jsonl`` and ``report.html``.

Why stages are declared rather than called: a stage says *what* to ask *which* model; the runner then
batches every sample's request, caches each answer as it arrives (a crash or a rerun never asks twice),
and counts a sample whose request fails (an endpoint's 500 or timeout) as failed instead of stopping
the run. A task never sees a Generator, so it cannot bypass the cache.
"""

from __future__ import annotations

import abc
import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from alignkit.config import check
from alignkit.eval.stats import Statistic, mean
from alignkit.generate.base import SamplingConfig

Conversation = tuple[dict[str, Any], ...]
"""A chat as ``{"role", "content"}`` dicts (JSON as it is: cached, hashed and written as given)."""


@dataclass(frozen=True)
class Sample:
    """One item of a benchmark."""

    id: str
    """Stable across runs of the same data: ``eval compare`` pairs two runs' samples by it."""
    input: Conversation
    """What the model under test is asked (stages may build other prompts from it)."""
    target: Any = None
    """The reference answer or label, when the benchmark has one."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Anything scoring or a breakdown needs (category, severity, source row)."""

    @property
    def prompt_text(self) -> str:
        """The last user turn's text: what rule judges (the toy oracles) read."""
        for message in reversed(self.input):
            if message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                return "\n".join(b.get("text", "") for b in content if b.get("type") == "text")
        return ""


Prompter = Callable[[Sample, Mapping[str, str]], Sequence[Any] | None]
"""(sample, outputs of the earlier stages) -> the conversation to send, or None to skip this sample."""


@dataclass(frozen=True)
class Stage:
    """One request per sample to one model; its answer is ``outputs[name]`` for later stages and scoring."""

    name: str
    prompt: Prompter
    role: str = "model"
    """The config key holding the model spec to ask (``model``, ``baseline``, ``judge`` ...)."""
    sampling: SamplingConfig | None = None
    """None: the config's ``sampling`` (a judge stage usually fixes temperature 0 here)."""


@dataclass(frozen=True)
class Metric:
    """One number a task reports, aggregated from per-sample items (``None`` items are left out)."""

    name: str
    higher_is_better: bool
    doc: str
    aggregate: Statistic = mean
    """Items -> value: ``mean`` of per-sample floats, or a corpus-level function (kappa over
    (label, prediction) pairs). Its uncertainty follows (``eval/results.py``): the standard error is the
    analytic one of a mean (lm-eval's ``_stderr``) or else the bootstrap's, and the 95% interval is
    always the percentile bootstrap's (it stays inside the values a rate can take, even on 3 samples)."""


@dataclass
class Scored:
    """What scoring says about one sample."""

    scores: dict[str, Any]
    """Metric name -> this sample's item (a float for a mean; None where the metric does not apply)."""
    verdicts: dict[str, Any] = field(default_factory=dict)
    """Every judge's raw verdict (parsed or not), written to samples.jsonl as it is."""


# ----------------------------------------------------------------------------- configs


@dataclass
class EvalOutputConfig:
    """The ``run.*`` keys of ``alignkit eval run``: the run folder and what to do when it exists."""

    output_dir: str | None = None
    """The run folder (results.json, samples.jsonl, report.html, generations/); null: runs/eval-<task>."""
    overwrite: bool = False
    """Delete an existing run folder of the same name and start over (its cached generations too)."""
    resume: bool = False
    """Reuse the folder of an earlier run of this task: answers already in its generations/ cache are
    not asked again (a rerun after a crash, failed samples retried, or re-scoring with another judge)."""

    def validate(self, prefix: str) -> None:
        from alignkit.sections import check_output_dir

        check(self.output_dir != "", f"{prefix}output_dir", self.output_dir, "a folder path, or null")
        if self.output_dir:
            check_output_dir(self.output_dir, f"{prefix}output_dir")
        check(
            not (self.overwrite and self.resume),
            f"{prefix}resume",
            self.resume,
            "not both resume and overwrite",
        )


@dataclass
class TaskConfig:
    """Keys every task has. A task's own config subclasses this (or :class:`ModelTaskConfig`)."""

    limit: int | None = None
    """Evaluate only the first N samples (null: all)."""
    seed: int = 0
    """Seed of sampling and of the bootstrap: a rerun reproduces every number."""
    bootstrap_iters: int = 1000
    """Resamples behind each bootstrap interval."""
    cache_dir: str | None = None
    """Folder of cached generations (one jsonl per model); null: <run.output_dir>/generations. Point it at
    another run's generations/ to re-score that run's answers without generating again."""
    report: bool = True
    """Write report.html with its plots (a few seconds of matplotlib); false: results.json and
    samples.jsonl only."""
    run: EvalOutputConfig = field(default_factory=EvalOutputConfig)
    """Where results go."""

    # Keys holding model specs: checked when the config is read, named by stages as their role.
    MODEL_KEYS: ClassVar[tuple[str, ...]] = ()

    def model_keys(self) -> tuple[str, ...]:
        """The ``MODEL_KEYS`` this config asks: all of them, unless a key may instead name something that
        is not a Generator (a judge given as a score model or a function runs in ``Task.score``, not as a
        stage), in which case the task's config leaves that key out here."""
        return self.MODEL_KEYS

    def validate(self, prefix: str) -> None:
        from alignkit.eval.models import check_model_spec

        check(
            self.limit is None or self.limit > 0, f"{prefix}limit", self.limit, "a positive integer or null"
        )
        check(0 <= self.seed < 2**31, f"{prefix}seed", self.seed, "an integer in [0, 2**31)")
        check(
            self.bootstrap_iters > 0, f"{prefix}bootstrap_iters", self.bootstrap_iters, "a positive integer"
        )
        check(self.cache_dir != "", f"{prefix}cache_dir", self.cache_dir, "a folder path, or null")
        for key in self.model_keys():
            check_model_spec(getattr(self, key), f"{prefix}{key}")


def greedy() -> SamplingConfig:
    """Eval's default decoding: the model's most likely answer, not sampling noise."""
    return SamplingConfig(temperature=0.0, max_new_tokens=256)


@dataclass
class ModelTaskConfig(TaskConfig):
    """A task that asks a model under test (``model=...``)."""

    model: str = ""
    """The model under test: a local Hugging Face folder or hub name, a run folder (its final/ is used),
    toyworld://..., vllm:PATH (vLLM, where installed), or openai:URL#MODEL (any OpenAI-compatible server)."""
    sampling: SamplingConfig = field(default_factory=greedy)
    """Decoding of the model under test (temperature 0: greedy)."""
    batch_size: int = 32
    """Prompts per generate call: a memory knob, and how often the cache is written."""
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    """Local models: the dtype weights load in ('auto': the checkpoint's own)."""
    timeout: float = 60.0
    """openai: seconds to wait for one answer; a request that takes longer counts as a failed sample."""
    max_concurrency: int = 8
    """openai: requests in flight at once."""

    MODEL_KEYS: ClassVar[tuple[str, ...]] = ("model",)

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        check(self.batch_size > 0, f"{prefix}batch_size", self.batch_size, "a positive integer")
        check(self.timeout > 0, f"{prefix}timeout", self.timeout, "a positive number of seconds")
        check(
            self.max_concurrency > 0, f"{prefix}max_concurrency", self.max_concurrency, "a positive integer"
        )
        check(
            self.sampling.n == 1,
            f"{prefix}sampling.n",
            self.sampling.n,
            "1 (eval tasks score one answer per request)",
        )


# ----------------------------------------------------------------------------- the task


class Task(abc.ABC):
    """A benchmark. Subclass it, set the class attributes, write ``samples``, ``stages`` and ``score``.

    The runner calls ``samples()`` (before any run folder exists, so bad data stops with nothing written),
    runs each stage over every sample (through the cache), calls ``score`` once on the samples whose
    stages all succeeded, aggregates each :class:`Metric` with its interval, overall and per value of each
    ``breakdowns`` metadata key, and writes results.json, samples.jsonl and report.html.

    How the benchmarks of issue 11 map onto it:

    - **Oracle / safety** (``toyworld-oracle``, a moderation eval): one stage ``answer`` (role ``model``);
      ``score`` runs the judge (the toy oracle, a moderation model via the ``Moderator`` protocol) over
      all answers in one batch; ``verdicts`` keeps its raw output (unparseable counted as its own metric,
      never dropped); ``breakdowns = ("category", "severity")`` gives the per-category results and bars;
      refusal on benign prompts is one more metric over the benign samples (None on the others).
    - **Win rate** (model A against model B): the config has ``MODEL_KEYS = ("model", "baseline")`` (and
      ``"judge"`` for an LLM judge); stages ``a`` (role model) and ``b`` (role baseline) answer the prompt;
      an LLM judge is two more stages, ``judge_ab`` and ``judge_ba`` (role judge, temperature 0), asked in
      both orders, so its verdicts are cached like any generation; a reward-model judge scores both
      answers in ``score``. Per sample: win/loss/tie after both orders, flip, lengths.
    - **DeceptionBench**: two stages on the same model, ``mesa`` (the neutral inner prompt) then ``outer``
      (system + outer prompt + format); the judge's three questions are three stages whose prompts are
      built from the earlier outputs; ``score`` parses yes/no and gives per-sample indicators whose means
      are the deception tendency rate and the diagnostic rates, broken down by ``category``.
    - **Judge agreement** (InterMT-Bench style): no model under test; an LLM judge is the only stage (role
      ``judge``; the prompt function puts the two responses in an order drawn from the sample id, and
      ``score`` maps the verdict back), or a reward model runs in ``score``; each sample's item is a
      (human label, judge label) pair and the metrics are corpus-level aggregates of the pairs (accuracy,
      Cohen's kappa, Pearson r: ``Metric.aggregate``), whose intervals are bootstrapped.
    - **Libra leaderboard**: not a task but ``alignkit eval leaderboard`` (``eval/leaderboard.py``), which
      reads finished runs (``read_run``), one or more per model, and combines their capability and safety
      metrics into the Libra score.

    The class docstring's first paragraph is what ``alignkit eval list`` prints.
    """

    name: ClassVar[str] = ""
    """Registry name (``alignkit eval run NAME``); also the key in results.json."""
    version: ClassVar[int] = 1
    """Bump when samples, prompts or scoring change, so older results are not compared as equal."""
    config_class: ClassVar[type[TaskConfig]] = TaskConfig
    metrics: ClassVar[tuple[Metric, ...]] = ()
    breakdowns: ClassVar[tuple[str, ...]] = ()
    """Sample metadata keys whose values each get their own results entry (``task/key=value``)."""

    def __init__(self, config: TaskConfig) -> None:
        self.config = config

    @abc.abstractmethod
    def samples(self) -> list[Sample]:
        """Every sample of the benchmark, in a fixed order; bad data raises ``DataError`` naming the row."""

    def stages(self) -> list[Stage]:
        """What is asked of which model, in order; [] when nothing is generated."""
        return []

    @abc.abstractmethod
    def score(self, samples: Sequence[Sample], outputs: Sequence[Mapping[str, str]]) -> list[Scored]:
        """One :class:`Scored` per sample (batched: a judge model scores them all at once)."""

    def report_sections(self, records: Sequence[Mapping[str, Any]], plots_dir: Any) -> list[Any]:
        """Extra ``eval.report.Section`` s for report.html (e.g. a confusion matrix); ``records`` are the
        samples.jsonl rows, ``plots_dir`` a folder for PNGs."""
        return []

    @classmethod
    def doc(cls) -> str:
        """The first paragraph of the class docstring, on one line."""
        text = inspect.getdoc(cls) or ""
        return " ".join(text.split("\n\n")[0].split())

    @classmethod
    def metric(cls, name: str) -> Metric:
        found = next((m for m in cls.metrics if m.name == name), None)
        if found is None:
            raise KeyError(f"task {cls.name!r} has no metric {name!r}")
        return found


# ----------------------------------------------------------------------------- samples from data


def conversation_of(messages: Sequence[Any]) -> Conversation:
    """Records' ``Message`` s (or dicts) as JSON-ready chat dicts."""
    return tuple(m.to_chat_dict() if hasattr(m, "to_chat_dict") else dict(m) for m in messages)


def content_id(conversation: Conversation, seen: dict[str, int]) -> str:
    """A sample id from the conversation's content (stable when rows are reordered or filtered); the
    n-th repeat of the same conversation gets ``-n`` appended. ``seen`` counts ids so far."""
    digest = hashlib.sha256(json.dumps(conversation, sort_keys=True).encode()).hexdigest()[:16]
    seen[digest] = seen.get(digest, 0) + 1
    return digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"


def record_prompt(record: Any, key: str) -> Conversation:
    """The conversation a model answers, from any record with a prompt: a ``Prompt``, a ``Conversation``
    without its trailing assistant turns, or a pair's ``prompt``. A record without one is a data error
    naming its file and row and the templates that give prompts."""
    from alignkit.data.errors import DataError
    from alignkit.data.records import Conversation as ConversationRecord
    from alignkit.data.records import Prompt

    if isinstance(record, Prompt):
        messages = list(record.messages)
    elif isinstance(record, ConversationRecord):
        messages = list(record.messages)
        while messages and messages[-1].role == "assistant":
            messages.pop()
    else:
        messages = list(getattr(record, "prompt", None) or ())
    if not messages:
        origin = getattr(record, "origin", None)
        raise DataError(
            origin.file if origin else key,
            origin.row if origin else None,
            "prompt",
            f"a record with a prompt for {key} (templates trl-prompt, trl, pku-saferlhf, beavertails ...)",
            f"a {type(record).__name__} record without one",
        )
    return conversation_of(messages)


def read_records(ds: Any, **options: Any) -> list[Any]:
    """The first ``ds.max_rows`` records of a task's dataset section (a ``DatasetConfig``: source,
    template, split, subset, column_map, options), read by the data layer; ``options`` are set on top of
    the section's own (a task's default a user may still override in ``data.options``)."""
    from alignkit.data import load_records
    from alignkit.models.loading import resolve_path

    loaded = load_records(
        resolve_path(ds.source),
        ds.template,
        split=ds.split,
        column_map=ds.column_map or None,
        subset=ds.subset,
        **{**options, **ds.options},
    )
    return list(loaded.records)[: ds.max_rows]


def prompt_samples(ds: Any, describe: Callable[[Sample], tuple[Any, Mapping[str, Any]]]) -> list[Sample]:
    """One sample per record of ``ds`` (key ``data``), asking the record's prompt (``record_prompt``), its
    id from the prompt's content; ``describe(sample) -> (target, metadata)`` fills in the rest."""
    samples, seen = [], {}
    for record in read_records(ds):
        conversation = record_prompt(record, "data")
        sample = Sample(content_id(conversation, seen), conversation)
        target, metadata = describe(sample)
        samples.append(Sample(sample.id, conversation, target=target, metadata=metadata))
    return samples
