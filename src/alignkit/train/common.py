"""Set-up that every trainer shares: the accelerator, the run folder, reading data into records.

Kept apart from the loop (``engine.py``) because it is about *starting* a run: nothing here runs per step.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignkit.config import ConfigError, dump_yaml
from alignkit.data.errors import EXCLUDED, INVALID
from alignkit.data.media import refuse_media
from alignkit.runs import check_run_dir, prepare_run_dir, write_json
from alignkit.sections import DataConfig, DatasetConfig, ModelConfig, RunConfig, TrainerConfig


def make_accelerator(cfg: TrainerConfig) -> Any:
    """An Accelerator for this run. Launch-time settings (DDP, DeepSpeed, FSDP) come from ``accelerate launch``.

    accelerate keeps global singletons; resetting the gradient/accelerator state (never the process
    group) lets one Python process run several trainings in a row, as tests and the demo do.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import InitProcessGroupKwargs, set_seed

    AcceleratorState._reset_state()
    GradientState._reset_state()
    import torch

    # Without a GPU, accelerate only forms a multi-process (gloo) group when told it runs on CPU;
    # otherwise each launched process silently trains alone with world size 1.
    # DeepSpeed on CPU must be handed the gloo backend explicitly, or accelerate finds none and again
    # falls back to one process per launch.
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    no_gpu = not torch.cuda.is_available()
    handlers = [InitProcessGroupKwargs(backend="gloo")] if deepspeed and no_gpu else []
    accelerator = Accelerator(
        cpu=no_gpu and not deepspeed,
        kwargs_handlers=handlers,
        gradient_accumulation_steps=cfg.grad_accum_steps,
        mixed_precision=cfg.mixed_precision,
    )
    set_seed(cfg.seed)
    return accelerator


def make_optimizer(model: Any, cfg: TrainerConfig) -> Any:
    """AdamW over the trainable parameters only (just the adapters under LoRA), as every trainer builds it."""
    import torch

    return torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg.lr,
        betas=tuple(cfg.adam_betas),
        weight_decay=cfg.weight_decay,
    )


def allow_unused_media_parameters(accelerator: Any, model: Any) -> bool:
    """Let DDP reduce a multimodal model's gradients when some trainable parameters get none this step.

    A micro-batch without pictures (or clips) never runs the projector, nor an unfrozen tower: on a
    text-only rank those parameters have no gradient while the other rank's do, and DDP's reducer then
    waits for buckets that never fill (gloo: "collective mismatch"). ``find_unused_parameters`` marks
    them ready with a zero contribution, so the average stays sum / world exactly; a parameter no rank
    used keeps no gradient, as in one process. ``static_graph`` cannot do it: the set changes per step.
    A frozen tower needs nothing (DDP never registers parameters without ``requires_grad``). Text models
    keep DDP's default, which skips the extra graph traversal per backward. Returns whether it was set.
    """
    from accelerate.utils import DistributedDataParallelKwargs

    config = getattr(model, "config", None)
    multimodal = any(getattr(config, key, None) is not None for key in ("vision_config", "audio_config"))
    if not multimodal or accelerator.num_processes == 1 or accelerator.ddp_handler is not None:
        return False
    accelerator.ddp_handler = DistributedDataParallelKwargs(find_unused_parameters=True)
    return True


def prepare_training(accelerator: Any, model: Any, cfg: TrainerConfig) -> tuple[Any, Any]:
    """Optimizer, DeepSpeed keys and accelerate's wrapping: the last step before every trainer's loop."""
    from alignkit.train.engine import configure_deepspeed

    optimizer = make_optimizer(model, cfg)
    configure_deepspeed(accelerator, cfg)
    allow_unused_media_parameters(accelerator, model)
    return accelerator.prepare(model, optimizer)


def load_run_tokenizer(
    model: ModelConfig, data: DataConfig | None = None, run: RunConfig | None = None
) -> Any:
    """The run's tokenizer with its chat options, its template checked on a probe chat before any work.

    Called before the run folder exists, so a template that cannot mark assistant turns stops the run
    with a ``ChatTemplateError`` that says how to fix it, and leaves nothing behind.
    """
    from alignkit.data.render import check_chat_template
    from alignkit.models.loading import load_tokenizer

    if run is not None:  # the cheapest check first: a run folder that must not be touched
        check_run_dir(run.output_dir, overwrite=run.overwrite, resume=run.resume)
    check_model_paths(model)

    tokenizer = load_tokenizer(
        model.tokenizer or model.path,
        trust_remote_code=model.trust_remote_code,
        chat_template=model.chat_template,
        template_kwargs=model.chat_template_kwargs or None,  # None: what the checkpoint was trained with
        reasoning_loss=data.reasoning_loss if data is not None else True,
    )
    check_chat_template(tokenizer)
    return tokenizer


def changed_keys(saved_yaml: str, new_yaml: str) -> list[str]:
    """Dotted keys whose values differ between two saved configs, ``run.*`` left out: where and how a
    run is kept (run.resume itself, progress...) is no change to what it trains."""
    import yaml

    def flat(data: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(data, dict):
            return {prefix[:-1]: data}
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flat(v, f"{prefix}{k}."))
        return out

    old, new = flat(yaml.safe_load(saved_yaml)), flat(yaml.safe_load(new_yaml))
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return [k for k in keys if not k.startswith("run.")]


def check_model_paths(model: ModelConfig) -> None:
    """``model.path`` must hold a model and ``model.tokenizer`` (or, unset, ``model.path``) a tokenizer:
    a missing folder, a file, or a folder with no model is a config error before any run folder exists."""
    from alignkit.models.loading import TOKENIZER_FILES, check_model_source

    check_model_source(model.path, "model.path")
    key = "model.tokenizer" if model.tokenizer else "model.path"
    check_model_source(model.tokenizer or model.path, key, files=TOKENIZER_FILES, what="tokenizer")


def check_enough_examples(
    num_examples: int, cfg: TrainerConfig, processes: int, name: str = "data.train"
) -> None:
    """One optimizer step needs a whole global batch; say so before the run folder is made, not in the loop."""
    global_batch = cfg.micro_batch_size * cfg.grad_accum_steps * processes
    if num_examples < global_batch:
        raise ConfigError(
            f"{name} gives {num_examples} training examples, fewer than one global batch of {global_batch} "
            f"(trainer.micro_batch_size={cfg.micro_batch_size} x trainer.grad_accum_steps="
            f"{cfg.grad_accum_steps} x {processes} processes): lower the batch or add data"
        )


def start_run(run: RunConfig, config: Any, accelerator: Any) -> Path:
    """Create the run folder (refusing to clobber one, or to share it with a live run: the main process
    takes its lock) and save the resolved config in it."""
    path = Path(run.output_dir)
    if accelerator.is_main_process:
        prepare_run_dir(path, overwrite=run.overwrite, resume=run.resume)
        saved = path / "config.yaml"
        text = dump_yaml(config)
        if run.resume and saved.exists():  # config.yaml stays what started the run
            changed = changed_keys(saved.read_text(), text)
            if changed:
                (path / "config.resumed.yaml").write_text(text)
                accelerator.print(
                    f"resume: the config differs from {saved} in {', '.join(changed)}; the new one is saved "
                    "as config.resumed.yaml"
                )
        else:
            saved.write_text(text)
    accelerator.wait_for_everyone()
    return path


NO_RESPONSE_ROOM = "the prompt fills data.max_length, leaving no response token (raise data.max_length)"
"""Why a tokenized example is dropped: nothing of its response fits, so there is nothing to learn or score."""


@dataclass
class DataReport:
    """Everything reading the data left out or changed, so nothing is ever dropped silently.

    ``skipped``: rows that became no record, each with its file, row, field, reason and ``kind``
    (``invalid``: malformed, skipped under data.skip_invalid; ``excluded``: left out on purpose, e.g. a
    tie). ``truncated``: examples cut to data.max_length, per split. ``dropped``: examples left out
    after tokenizing, per split and reason. ``warnings``: anything suspicious about the data as a whole
    (an eval set that repeats the training set).
    """

    read: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    truncated: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    _seen: dict[str, set[Any]] = field(default_factory=dict, repr=False, compare=False)

    def drop(self, split: str, count: int, reason: str = NO_RESPONSE_ROOM) -> None:
        """Count ``count`` examples of ``split`` left out after reading, for ``reason``."""
        if count:
            reasons = self.dropped.setdefault(split, {})
            reasons[reason] = reasons.get(reason, 0) + count

    def summary(self) -> str:
        lines = [f"read {n} records from {split}" for split, n in self.read.items()]
        for kind, heading in (
            (EXCLUDED, "left out {n} rows on purpose (reported, never trained on):"),
            (INVALID, "skipped {n} invalid rows (data.skip_invalid=true):"),
        ):
            rows = [row for row in self.skipped if row.get("kind", INVALID) == kind]
            if rows:
                reasons = Counter(_reason_key(row) for row in rows)
                lines.append(heading.format(n=len(rows)))
                lines += [f"  {n} x {reason}" for reason, n in reasons.most_common()]
        lines += [
            f"truncated {n} {split} examples to data.max_length" for split, n in self.truncated.items() if n
        ]
        for split, reasons in self.dropped.items():
            lines += [f"dropped {n} {split} examples: {reason}" for reason, n in reasons.items()]
        lines += [f"warning: {text}" for text in self.warnings]
        return "\n".join(lines)

    def publish(self, accelerator: Any, run_dir: Path) -> None:
        """Write data_report.json and print the summary, once (main process)."""
        if accelerator.is_main_process:
            self.save(run_dir)
            accelerator.print(self.summary())

    def save(self, run_dir: Path) -> None:
        write_json(
            run_dir / "data_report.json",
            {
                "read": self.read,
                "skipped": self.skipped,
                "truncated": self.truncated,
                "dropped": self.dropped,
                "warnings": self.warnings,
            },
        )

    def compare_with_train(self, split: str, records: Sequence[Any]) -> None:
        """Remember the training records; warn when the eval split repeats them.

        An eval set equal to (or inside) the training set measures memory, not generalisation, and is
        the usual result of pointing eval at the training file; records are compared by content, their
        origin aside, so the same rows in two files count as repeats too.
        """
        if split == "train":
            self._seen["train"] = {_content_key(record) for record in records}
            return
        train = self._seen.get("train")
        if not train or not records:
            return
        repeated = sum(_content_key(record) in train for record in records)
        if repeated == len(records):
            self.warnings.append(
                f"every one of the {len(records)} {split} records is also a training record: {split} metrics "
                f"will measure memorisation; point data.{split} at held-out data"
            )
        elif repeated:
            self.warnings.append(
                f"{repeated} of the {len(records)} {split} records are also training records: their {split} "
                "metrics measure memorisation"
            )


def _reason_key(row: Mapping[str, Any]) -> str:
    return row["reason"] if row.get("field") is None else f"field '{row['field']}': {row['reason']}"


def _content_key(record: Any) -> Any:
    """What a record says, without where it came from (records are frozen, hashable dataclasses)."""
    if dataclasses.is_dataclass(record) and any(f.name == "origin" for f in dataclasses.fields(record)):
        record = dataclasses.replace(record, origin=None)
    try:
        hash(record)
    except TypeError:
        return repr(record)
    return record


def load_run_renderer(model: ModelConfig, tokenizer: Any) -> Any:
    """What the run renders chats with: the model's processor for a vision/audio-language model (sharing
    ``tokenizer``), else ``tokenizer`` itself (``alignkit.data.render`` takes either)."""
    from alignkit.models.loading import load_processor

    processor = load_processor(model.path, tokenizer, trust_remote_code=model.trust_remote_code)
    return tokenizer if processor is None else processor


def read_records(
    ds: DatasetConfig, data: DataConfig, report: DataReport, name: str, *, media: bool = False
) -> list[Any]:
    """Records of one dataset section; invalid rows raise, or are recorded in ``report`` when skipping.

    ``media``: whether the run's model takes images/audio (it has a processor); records holding them are
    refused otherwise, naming the row.

    Reading nothing is an error: a split whose every row was skipped leaves nothing to train or
    evaluate on, and saying so now beats a run of zero steps.
    """
    from alignkit.data import DataError, load_records
    from alignkit.models.loading import resolve_path

    result = load_records(
        resolve_path(ds.source),
        ds.template,
        split=ds.split,
        skip_invalid=data.skip_invalid,
        column_map=ds.column_map or None,
        subset=ds.subset,
        **ds.options,
    )
    records = list(result.records)
    if ds.max_rows is not None:
        records = records[: ds.max_rows]
    if not records:
        raise DataError(
            ds.source,
            None,
            None,
            f"at least one {name} record",
            f"none: all {result.rows_read} rows were left out\n{result.format_skipped()}",
        )
    if not media:
        refuse_media(records, ds, f"data.{name}" if name in ("train", "eval") else name)
    report.read[name] = len(records)
    report.skipped += [row.to_dict() for row in result.skipped]
    if name in ("train", "eval"):
        report.compare_with_train(name, records)
    return records


def require_records(records: Sequence[Any], kind: type, source: str, template: str) -> None:
    """Each trainer reads one record type; say clearly when a template yields another."""
    wrong = next((r for r in records if not isinstance(r, kind)), None)
    if wrong is not None:
        raise ConfigError(
            f"{source!r} read with template {template!r} gives {type(wrong).__name__} records, "
            f"but this trainer needs {kind.__name__}. Choose a template that yields {kind.__name__}."
        )


SplitTokenizer = Callable[[list[Any], DatasetConfig], tuple[list[Any], int, int]]
"""(one split's records, its dataset section) -> (examples, how many were truncated, how many dropped)."""


def read_splits(
    data: DataConfig, report: DataReport, tokenize: SplitTokenizer, *, media: bool = False
) -> dict[str, list[Any]]:
    """The examples of data.train (and data.eval when set), as an offline trainer reads them: records
    (``read_records``), then the trainer's ``tokenize``, whose truncated and dropped counts go to ``report``."""
    examples: dict[str, list[Any]] = {}
    for name, ds in data.splits().items():
        records = read_records(ds, data, report, name, media=media)
        examples[name], report.truncated[name], dropped = tokenize(records, ds)
        report.drop(name, dropped)
    return examples


def start_offline_run(
    train_examples: int,
    report: DataReport,
    run: RunConfig,
    config: Any,
    trainer: TrainerConfig,
    accelerator: Any,
) -> Path:
    """The run folder of an offline trainer, made only once its data passed every check (enough examples
    for one global batch), with the data report published in it."""
    check_enough_examples(train_examples, trainer, accelerator.num_processes)
    run_dir = start_run(run, config, accelerator)
    report.publish(accelerator, run_dir)
    return run_dir
