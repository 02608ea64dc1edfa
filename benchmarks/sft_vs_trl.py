"""Time alignkit's SFT loop against TRL's ``SFTTrainer`` on the same model, data and settings.

    .venv/bin/python benchmarks/sft_vs_trl.py --steps 100 --repeats 3
    python benchmarks/sft_vs_trl.py --model Qwen/Qwen2.5-0.5B-Instruct \
        --data HuggingFaceH4/ultrachat_200k --split train_sft --max-length 1024 --micro-batch 8 --lr 1e-5

Both trainers run in this one process, alternating (alignkit, TRL, alignkit, TRL, ...) after one short
warm-up run of each, and the report gives the median over the repeats. What is held equal, and why:

- **Same examples in the same order.** alignkit's data order is a pure function of (seed, step)
  (``engine.global_batch_indices``), so we compute it here and hand TRL a dataset already in that order
  with a sequential sampler. TRL tokenizes the messages itself (``assistant_only_loss=True`` through the
  chat template's ``{% generation %}`` tags); we then check its input ids and labels against alignkit's,
  example by example, so "same batches" is verified rather than assumed.
- **Same optimisation.** fp32 weights, no autocast, no gradient checkpointing (TRL defaults to bf16 and
  checkpointing: both are switched off), micro-batch x 1 accumulation, constant LR without warm-up, the
  same clipping, and the *same optimizer implementation*: TRL gets a ``torch.optim.AdamW`` built exactly
  as alignkit builds its own (TRL's default would be the fused AdamW; ``--trl-default-optim`` uses it).
- **Each trainer's own layout.** alignkit packs a micro-batch's examples into shared rows with
  block-diagonal attention and runs its LM head only on loss positions (``data.packing``, its default;
  ``--no-packing`` pads instead); TRL pads (``packing=False``, ``padding_free=False``: TRL's packing would
  regroup examples across steps, and its padding-free mode is documented for FlashAttention only). Both
  compute the same losses; the table's "padded tokens/s" counts padded rows, the JSON also alignkit's
  packed-row tokens.
- **Same bookkeeping.** Both log every step (alignkit's ``log_every=1`` default; TRL ``logging_steps=1``),
  neither evaluates, neither saves inside the timed region, and neither prints per step (no progress bars;
  TRL's stdout printer callback is removed, alignkit's TensorBoard is off).

What is timed: optimizer steps 2..N of each run (the first step carries one-off costs such as lazy
allocation of the optimizer state). For alignkit this is ``elapsed_s`` of step N minus that of step 1
from ``metrics.jsonl``; for TRL the same interval from ``on_step_end`` callbacks. Both include batch
collation and host-device copies; neither includes tokenization, model loading or alignkit's final save.
The wall time of the whole call (set-up and save included) is reported too, for context, and so is the
process CPU time per step (``time.process_time`` at the same points, all threads): on a shared, loaded host
wall-clock throughput swings with the neighbours, CPU time much less, so compare both.

Memory: on CUDA, ``torch.cuda.max_memory_allocated`` over the call (reset just before it). On CPU, the
growth of the process's resident set: a background thread samples ``/proc/self/statm`` every few ms and
we report peak RSS minus the RSS just before the call, measured after ``gc.collect()`` and
``malloc_trim(0)`` so memory freed by the previous run is handed back to the OS first. It counts
everything the call allocates (Python objects, the tokenized data, weights, optimizer state, activations),
not only torch tensors, and an allocator that keeps freed pages can understate later runs.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from _common import (
    RESULTS,
    StepLossRecorder,
    add_common_arguments,
    alignkit_common_sections,
    alternating_runs,
    benchmark_parser,
    first_loss_identical,
    loss_curve_diff,
    memory_key_and_label,
    paired_medians,
    parameter_count,
    parse_checked,
    print_table,
    profile_each,
    quiet_libraries,
    ratios,
    report_header,
    run_alignkit_timed,
    sized_model,
    start_run,
    step_batches,
    timed_summary,
    timing_rows,
    train_trl_timed,
    trl_common_args,
    trl_optimizer_name,
    write_report,
)


# -------------------------------------------------------------------------------------------------- data
@dataclass
class Workload:
    """The examples both trainers see, in alignkit's order, and the token counts of every step."""

    messages: list[list[dict[str, Any]]]
    """Row k is the conversation of example k in step order (step s holds rows s*B .. s*B+B-1)."""
    input_ids: list[list[int]]
    labels: list[list[int]]
    loss_tokens: list[int] = field(default_factory=list)
    """Per step: tokens that carry loss (labels shifted by one, as both losses count them)."""
    total_tokens: list[int] = field(default_factory=list)
    """Per step: non-padding tokens."""
    padded_tokens: list[int] = field(default_factory=list)
    """Per step: batch x longest row, what the model computes on with padded rows (TRL here)."""
    packed_tokens: list[int] = field(default_factory=list)
    """Per step: rows x width of alignkit's packed micro-batch (``data.packing``), padding included."""
    truncated: int = 0
    dropped_no_loss: int = 0
    num_examples: int = 0


def build_workload(args: argparse.Namespace, steps: int) -> Workload:
    """Read and tokenize the data exactly as ``alignkit.train.sft.train`` does, then lay it out in step order."""
    from alignkit.data.collate import collate_packed
    from alignkit.data.render import IGNORE_INDEX, chat_dicts, render_conversation
    from alignkit.models.loading import load_tokenizer
    from alignkit.sections import DataConfig, DatasetConfig
    from alignkit.train.common import DataReport, read_records

    tokenizer = load_tokenizer(args.model)
    ds = DatasetConfig(source=args.data, template=args.template, split=args.split)
    records = read_records(ds, DataConfig(train=ds, max_length=args.max_length), DataReport(), "train")
    rendered = [render_conversation(tokenizer, r.messages, args.max_length) for r in records]
    kept = [(r, e) for r, e in zip(records, rendered, strict=True) if e.num_loss_tokens > 0]
    work = Workload(
        messages=[],
        input_ids=[],
        labels=[],
        truncated=sum(e.truncated for e in rendered),
        dropped_no_loss=len(records) - len(kept),
        num_examples=len(kept),
    )
    for batch in step_batches(kept, args, steps):
        for record, example in batch:
            work.messages.append(chat_dicts(record.messages))
            work.input_ids.append(list(example.input_ids))
            work.labels.append(list(example.labels))
        examples = [e for _, e in batch]
        work.loss_tokens.append(sum(sum(t != IGNORE_INDEX for t in e.labels[1:]) for e in examples))
        work.total_tokens.append(sum(len(e.input_ids) for e in examples))
        work.padded_tokens.append(len(examples) * max(len(e.input_ids) for e in examples))
        work.packed_tokens.append(collate_packed(examples, 0)["input_ids"].numel())
    return work


# ---------------------------------------------------------------------------------------------- trainers
def run_alignkit(args: argparse.Namespace, steps: int, run_dir: Path) -> dict[str, Any]:
    """One call of the public ``alignkit.train.sft.train``; timings come from its metrics.jsonl."""
    from alignkit.config import from_dict
    from alignkit.train.sft import SFTConfig, train

    config = from_dict(SFTConfig, alignkit_common_sections(args, args.model, steps, run_dir))
    return run_alignkit_timed(train, config, steps)


def run_trl(args: argparse.Namespace, steps: int, work: Workload, out_dir: Path) -> dict[str, Any]:
    """One ``SFTTrainer.train()`` on the pre-ordered conversations; returns timings, losses and a token check."""
    from trl import SFTConfig, SFTTrainer

    class LossRecorder(StepLossRecorder, SFTTrainer):
        pass

    config = SFTConfig(
        **trl_common_args(args, steps, out_dir),
        packing=False,
        assistant_only_loss=True,
        shuffle_dataset=False,
        train_sampling_strategy="sequential",
    )
    n_rows = steps * args.micro_batch
    rows = [{"messages": m} for m in work.messages[:n_rows]]
    trainer, timing = train_trl_timed(LossRecorder, args, args.model, config, rows)
    ds = trainer.train_dataset
    mismatches = sum(
        ds[i]["input_ids"] != work.input_ids[i] or ds[i]["labels"] != work.labels[i] for i in range(n_rows)
    )
    logged = [h for h in trainer.state.log_history if "num_tokens" in h and "loss" in h]
    return {
        **timing,
        "losses": [float(x) for x in trainer.step_losses],
        "total_tokens_logged": [h["num_tokens"] for h in logged],
        "tokenization_mismatches": mismatches + abs(len(ds) - n_rows),
        "used_our_generation_tags": trainer.chat_template is None,
        "optimizer": trl_optimizer_name(trainer, args.trl_default_optim),
    }


# ---------------------------------------------------------------------------------------------- analysis
def summarise_run(raw: dict[str, Any], work: Workload, steps: int) -> dict[str, Any]:
    """Throughput over steps 2..N (the interval between the end of step 1 and the end of step N)."""
    out = timed_summary(raw, steps)
    seconds = out["timed_s"]
    return out | {
        "loss_tokens_per_s": sum(work.loss_tokens[1:steps]) / seconds,
        "total_tokens_per_s": sum(work.total_tokens[1:steps]) / seconds,
        "padded_tokens_per_s": sum(work.padded_tokens[1:steps]) / seconds,
    }


def main() -> None:
    p = benchmark_parser(__doc__)
    p.add_argument(
        "--model", default=None, help="hub name, folder or toyworld:// path (overrides --model-size)"
    )
    p.add_argument(
        "--data", default="toyworld://data/sft", help="dataset of conversations (TRL messages format)"
    )
    p.add_argument("--template", default="trl-messages", help="alignkit data template for --data")
    add_common_arguments(p, steps=100, warmup=10, micro_batch=32, lr=3e-3)
    p.add_argument("--profile", action="store_true", help="afterwards, cProfile one run of each (untimed)")
    p.add_argument("--out", type=Path, default=RESULTS / "sft_vs_trl.json")
    args = parse_checked(p)
    quiet_libraries(progress_bars=False)
    device, tmp = start_run(args, "sft_vs_trl-")
    args.model = args.model or sized_model(args.model_size)
    print(f"model: {args.model} ({parameter_count(args.model) / 1e6:.2f}M parameters)")
    work = build_workload(args, max(args.steps, args.warmup_steps))
    print(
        f"data: {work.num_examples} examples ({work.truncated} truncated to {args.max_length}, "
        f"{work.dropped_no_loss} without loss tokens dropped); micro-batch {args.micro_batch}, {args.steps} steps; "
        f"padding: {1 - sum(work.total_tokens) / sum(work.padded_tokens):.0%} of padded rows, "
        f"{1 - sum(work.total_tokens) / sum(work.packed_tokens):.0%} of alignkit's packed rows"
    )

    checks: dict[str, Any] = {}

    def once(name: str, steps: int, tag: str) -> dict[str, Any]:
        if name == "alignkit":
            raw = run_alignkit(args, steps, tmp / f"alignkit-{tag}")
            assert raw["units_logged"] == [float(n) for n in work.loss_tokens[:steps]], (
                "alignkit's logged loss-token counts differ from the workload's: batches are not what we think"
            )
        else:
            raw = run_trl(args, steps, work, tmp / f"trl-{tag}")
            expect = list(torch.tensor(work.total_tokens[:steps]).cumsum(0).tolist())
            checks.setdefault("trl_tokenization_mismatches", raw["tokenization_mismatches"])
            checks.setdefault("trl_used_our_generation_tags", raw["used_our_generation_tags"])
            checks.setdefault("trl_total_tokens_match", raw["total_tokens_logged"] == expect)
            checks.setdefault("trl_optimizer", raw["optimizer"])
        return raw

    runs, raws = alternating_runs(
        once,
        lambda raw: summarise_run(raw, work, args.steps),
        args,
        lambda r: (
            f"{r['steps_per_s']:7.2f} steps/s {r['loss_tokens_per_s']:10.0f} loss tok/s  "
            f"first loss {r['first_loss']:.6f}"
        ),
    )

    summary, a, t = paired_medians(runs)
    ratio = a["loss_tokens_per_s"] / t["loss_tokens_per_s"]
    same_first = first_loss_identical(runs)
    first_diff = abs(a["first_loss"] - t["first_loss"])
    last_diff = abs(a["last_loss"] - t["last_loss"])
    steps_curve_diff = loss_curve_diff(raws)

    mem_key, _ = memory_key_and_label()
    rows = [
        ("steps/s", "steps_per_s", "{:.2f}"),
        ("loss tokens/s", "loss_tokens_per_s", "{:,.0f}"),
        ("total tokens/s", "total_tokens_per_s", "{:,.0f}"),
        ("padded tokens/s", "padded_tokens_per_s", "{:,.0f}"),
        *timing_rows(args.steps),
        ("loss at step 1", "first_loss", "{:.6f}"),
        (f"loss at step {args.steps}", "last_loss", "{:.6f}"),
    ]
    print_table(f"median of {args.repeats} runs each ({device}):", a, t, rows)
    print(
        f"\nthroughput ratio alignkit/TRL (loss tokens/s): {ratio:.3f}\n"
        f"first-step loss |alignkit - TRL| = {first_diff:.2e}; max |diff| over the {args.steps}-step "
        f"loss curve = {steps_curve_diff:.2e}\n"
        f"checks: TRL tokenization == alignkit's on all {args.steps * args.micro_batch} rows: "
        f"{checks['trl_tokenization_mismatches'] == 0}; TRL used our {{% generation %}} template: "
        f"{checks['trl_used_our_generation_tags']}; TRL token counts match: {checks['trl_total_tokens_match']}; "
        f"TRL optimizer: {checks['trl_optimizer']}"
    )

    report = {
        **report_header(args, device),
        "model_parameters": parameter_count(args.model),
        "data": {
            "examples": work.num_examples,
            "truncated": work.truncated,
            "dropped_no_loss": work.dropped_no_loss,
            "loss_tokens_timed": sum(work.loss_tokens[1 : args.steps]),
            "total_tokens_timed": sum(work.total_tokens[1 : args.steps]),
            "padded_tokens_timed": sum(work.padded_tokens[1 : args.steps]),
            "alignkit_packed_tokens_timed": sum(work.packed_tokens[1 : args.steps]),
        },
        "checks": checks
        | {
            "first_loss_abs_diff": first_diff,
            "last_loss_abs_diff": last_diff,
            "max_loss_curve_abs_diff": steps_curve_diff,
            "alignkit_first_loss_identical_across_repeats": same_first,
        },
        "ratio_alignkit_over_trl": ratios(
            a, t, ("loss_tokens_per_s", "total_tokens_per_s", "steps_per_s", mem_key)
        ),
        "median": summary,
        "runs": runs,
    }
    write_report(args.out, report)

    if args.profile:
        profile_each(
            {
                "alignkit": lambda: run_alignkit(args, args.steps, tmp / "alignkit-profile"),
                "trl": lambda: run_trl(args, args.steps, work, tmp / "trl-profile"),
            },
            lambda name: args.out.with_name(f"{args.out.stem}_profile_{name}.txt"),
            25,
            lambda name, path: f"\ncProfile of one {name} run (whole call), top by own time -> {path}",
            head=40,
        )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
