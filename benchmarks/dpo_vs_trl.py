"""Time alignkit's DPO loop against TRL's ``DPOTrainer`` on the same policy, pairs and settings.

    .venv/bin/python benchmarks/dpo_vs_trl.py --steps 50 --repeats 3
    python benchmarks/dpo_vs_trl.py --model my-sft-checkpoint --data PKU-Alignment/PKU-SafeRLHF \
        --max-length 1024 --micro-batch 8 --lr 5e-7 --betas 0.9 0.999

Two comparisons, one per way of getting the reference log-probs: **live** (both run a frozen reference
model every step) and **cached** (both score the reference once before training and keep no reference
model: TRL ``precompute_ref_log_probs=True``, alignkit ``reference: cached``). In each, both trainers run in
this one process, alternating (alignkit, TRL, alignkit, TRL, ...) after one short warm-up run of each,
and the report gives the median over the repeats. Structure, memory metering and output follow
``sft_vs_trl.py`` (shared pieces live in ``_common.py``). What is held equal, and why:

- **Same policy.** Without ``--model``, a short SFT of the toy recipe (``examples/toyworld/sft.yaml``,
  ``--sft-steps`` steps) gives the starting policy, as DPO's recipe asks (never random init); both
  trainers load it from that folder, and both references are copies of it.
- **Same pairs in the same order.** PKU-SafeRLHF rows are ranked by the helpfulness label (``better`` =
  chosen) through alignkit's own reader (``to_preference``), and alignkit's data order is a pure function
  of (seed, step) (``engine.global_batch_indices``), so we compute it here and hand TRL a dataset already
  in that order with a sequential sampler, in TRL's conversational ``prompt``/``chosen``/``rejected`` form.
- **Same tokens.** TRL tokenizes the conversations itself; it marks as completion *everything* after the
  prompt, which with the toy chat template includes the ``"\\n"`` the template writes after each
  assistant turn's ``<|im_end|>``, while alignkit scores only the assistant's generation block (content +
  ``<|im_end|>``). Every row differs by that one labelled token, so the losses would not agree. We count
  the rows where TRL's own split differs (reported as a check), then hand TRL alignkit's split instead
  (``prompt_ids`` = the unlabelled prefix, ``chosen_ids``/``rejected_ids`` = the labelled tokens; the
  unlabelled trailing ``"\\n"`` is left off, which changes no log-prob since the model is causal). After
  every run we collate every step's rows with TRL's own collator and check its labels
  (``input_ids`` where ``completion_mask``) equal alignkit's ``collate_pairs`` labels, and that TRL's
  first training batch is the one we expect (the sampler really was sequential).
- **Same optimisation.** fp32 weights, no autocast, no gradient checkpointing (TRL defaults to bf16 and
  checkpointing: both are switched off), micro-batch x 1 accumulation, constant LR without warm-up, the
  same clipping, DPO sigmoid loss with the same beta, no label smoothing, and the *same optimizer*: TRL
  gets a ``torch.optim.AdamW`` built exactly as alignkit builds its own (``--trl-default-optim``: TRL's
  fused default). Both reference models are fp32 copies of the policy loaded from the same folder.
- **Each trainer's own layout.** alignkit runs each pair as one block, prompt + chosen + rejected with a
  4D mask, blocks packed a few to a row, and its LM head only on response positions (``data.packing``,
  its default; ``--no-packing`` pads pairs); TRL pads chosen and rejected rows (``padding_free=False``).
- **Same bookkeeping.** Both log every step, neither evaluates, neither saves inside the timed region,
  neither prints per step.

What is timed: optimizer steps 2..N of each run, as in ``sft_vs_trl.py`` (alignkit ``elapsed_s`` from its
metrics; TRL ``on_step_end``). The cached reference pass happens before step 1 on both sides, so it is
outside the timed interval and inside ``wall s`` (alignkit scores every training pair; TRL only the
rows of the N steps it was given). Throughput is pairs per second (a pair = chosen + rejected).
Memory: as ``sft_vs_trl.py`` (CUDA peak allocation, or growth of the process's RSS over the call).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from _common import (
    RESULTS,
    MemoryMeter,
    StepLossRecorder,
    add_common_arguments,
    alignkit_common_sections,
    alternating_runs,
    device_line,
    labelled_split,
    labels_differ,
    load_average,
    loss_curve_diff,
    median_summary,
    memory_key_and_label,
    parameter_count,
    print_host,
    print_table,
    profile_once,
    report_header,
    run_alignkit_timed,
    step_clock_callback,
    timed_summary,
    train_sft_policy,
    train_trl_quietly,
    trl_common_args,
    trl_model_and_optimizers,
    trl_optimizer_name,
)

MODES = ("live", "cached")


# -------------------------------------------------------------------------------------------------- data
@dataclass
class PairWorkload:
    """The pairs both trainers see, in alignkit's step order (step s holds rows s*B .. s*B+B-1)."""

    conversations: list[dict[str, Any]]
    """TRL's conversational form of each row: ``prompt``, ``chosen``, ``rejected`` message lists."""
    split: list[dict[str, list[int]]]
    """alignkit's tokens of each row as TRL columns: ``prompt_ids``, ``chosen_ids``, ``rejected_ids``."""
    examples: list[Any]
    """alignkit's ``PairExample`` of each row (for the collate check)."""
    loss_tokens: list[int] = field(default_factory=list)
    """Per step: tokens scored (chosen + rejected response tokens)."""
    padded_tokens: list[int] = field(default_factory=list)
    """Per step: 2B x longest row (padded pairs: what TRL computes on)."""
    shared_tokens: list[int] = field(default_factory=list)
    """Per step: B x longest row of alignkit's shared-prompt rows (``data.packing``), padding included."""
    num_pairs: int = 0
    dropped: int = 0
    truncated: int = 0


def build_workload(args: argparse.Namespace, model: str, steps: int) -> PairWorkload:
    """Read and tokenize the pairs exactly as ``alignkit.train.dpo.train`` does, then lay them out in step order."""
    from alignkit.data.pair_examples import collate_shared_pairs, to_preference, tokenize_pairs
    from alignkit.data.render import chat_dicts
    from alignkit.models.loading import load_tokenizer
    from alignkit.sections import DataConfig, DatasetConfig
    from alignkit.train.common import DataReport, read_records
    from alignkit.train.engine import global_batch_indices

    tokenizer = load_tokenizer(model)
    ds = DatasetConfig(source=args.data, template=args.template, split=args.split)
    records = read_records(ds, DataConfig(train=ds, max_length=args.max_length), DataReport(), "train")
    kept: list[tuple[Any, Any]] = []  # (Preference, PairExample), as tokenize_pairs keeps them
    truncated = 0
    for record in records:
        pair_examples, t, _ = tokenize_pairs([record], tokenizer, args.max_length, args.preference)
        truncated += t
        if pair_examples:
            kept.append((to_preference(record, args.preference), pair_examples[0]))
    work = PairWorkload(
        [], [], [], num_pairs=len(kept), dropped=len(records) - len(kept), truncated=truncated
    )
    for step in range(steps):
        batch = [kept[i] for i in global_batch_indices(len(kept), args.micro_batch, step, args.seed)]
        for pref, ex in batch:
            work.conversations.append(
                {
                    "prompt": chat_dicts(pref.prompt),
                    "chosen": chat_dicts(pref.chosen),
                    "rejected": chat_dicts(pref.rejected),
                }
            )
            prompt_c, chosen = labelled_split(ex.chosen)
            prompt_r, rejected = labelled_split(ex.rejected)
            assert prompt_c == prompt_r, "chosen and rejected do not share their prompt tokens"
            work.split.append({"prompt_ids": prompt_c, "chosen_ids": chosen, "rejected_ids": rejected})
            work.examples.append(ex)
        rows = [e for _, ex in batch for e in (ex.chosen, ex.rejected)]
        work.loss_tokens.append(sum(e.num_loss_tokens for e in rows))
        work.padded_tokens.append(len(rows) * max(len(e.input_ids) for e in rows))
        work.shared_tokens.append(collate_shared_pairs([ex for _, ex in batch], 0)["input_ids"].numel())
    return work


# ---------------------------------------------------------------------------------------------- trainers
def run_alignkit(
    args: argparse.Namespace, model: str, mode: str, steps: int, run_dir: Path
) -> dict[str, Any]:
    """One call of the public ``alignkit.train.dpo.train``; timings come from its metrics."""
    from alignkit.config import from_dict
    from alignkit.train.dpo import DPOConfig, train

    sections = alignkit_common_sections(args, model, steps, run_dir)
    loss = {"loss": "dpo", "beta": args.beta, "preference": args.preference, "reference": mode}
    return run_alignkit_timed(train, from_dict(DPOConfig, sections | loss), steps)


def run_trl(
    args: argparse.Namespace, model_path: str, mode: str, steps: int, work: PairWorkload, out_dir: Path
) -> dict[str, Any]:
    """One ``DPOTrainer.train()`` on the pre-ordered pairs (with alignkit's token split; see the docstring)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    n_rows = steps * args.micro_batch

    class EqualInputsDPOTrainer(StepLossRecorder, DPOTrainer):
        """TRL tokenizes as usual (its split is kept for the check); training gets alignkit's split."""

        trl_split: Any = None

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):  # noqa: ANN001
            self.trl_split = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            return Dataset.from_list(work.split[:n_rows])

    config = DPOConfig(
        **trl_common_args(args, steps, out_dir),
        truncation_mode="keep_start",
        beta=args.beta,
        loss_type=["sigmoid"],
        label_smoothing=0.0,
        precompute_ref_log_probs=mode == "cached",
        train_sampling_strategy="sequential",
    )
    clock = step_clock_callback()
    t0 = time.perf_counter()
    with MemoryMeter() as mem:
        tokenizer, model, optimizers = trl_model_and_optimizers(args, model_path)
        trainer = EqualInputsDPOTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list(work.conversations[:n_rows]),
            processing_class=tokenizer,
            optimizers=optimizers,
            callbacks=[clock],
        )
        train_trl_quietly(trainer)
    wall = time.perf_counter() - t0

    # Checks (outside the metered call). TRL's own split vs alignkit's:
    own = trainer.trl_split
    own_mismatch = sum(
        own[i]["prompt_ids"] != work.split[i]["prompt_ids"]
        or own[i]["chosen_ids"] != work.split[i]["chosen_ids"]
        or own[i]["rejected_ids"] != work.split[i]["rejected_ids"]
        for i in range(n_rows)
    ) + abs(len(own) - n_rows)
    own_extra = sorted(
        {
            tokenizer.decode(own[i][k][len(work.split[i][k]) :])
            for i in range(min(len(own), n_rows))
            for k in ("chosen_ids", "rejected_ids")
            if own[i][k][: len(work.split[i][k])] == work.split[i][k] and own[i][k] != work.split[i][k]
        }
    )
    # Every step's batch through TRL's collator: labels must equal alignkit's.
    batch_mismatch = 0
    for s in range(steps):
        rows = range(s * args.micro_batch, (s + 1) * args.micro_batch)
        if labels_differ(
            trainer.data_collator([work.split[i] for i in rows]), [work.examples[i] for i in rows]
        ):
            batch_mismatch += 1
    expect_first = trainer.data_collator([work.split[i] for i in range(args.micro_batch)])
    first_ok = trainer.first_batch is not None and all(
        torch.equal(trainer.first_batch[k], expect_first[k]) for k in ("input_ids", "completion_mask")
    )
    return {
        "step_end_s": clock.ends,
        "step_end_cpu_s": clock.cpu_ends,
        "losses": [float(x) for x in trainer.step_losses],
        "own_tokenization_mismatches": own_mismatch,
        "own_tokenization_extra_completion": own_extra,
        "batch_label_mismatches": batch_mismatch,
        "first_batch_as_expected": first_ok,
        "reference_model_kept": trainer.ref_model is not None,
        "gradient_checkpointing": bool(trainer.args.gradient_checkpointing),
        "bf16": bool(trainer.args.bf16),
        "optimizer": trl_optimizer_name(trainer, args.trl_default_optim),
        "wall_s": wall,
        **mem.report(),
    }


# ---------------------------------------------------------------------------------------------- analysis
def summarise_run(raw: dict[str, Any], work: PairWorkload, steps: int, micro_batch: int) -> dict[str, Any]:
    """Throughput over steps 2..N (the interval between the end of step 1 and the end of step N)."""
    out = timed_summary(raw, steps)
    return out | {
        "pairs_per_s": (steps - 1) * micro_batch / out["timed_s"],
        "loss_tokens_per_s": sum(work.loss_tokens[1:steps]) / out["timed_s"],
    }


def compare(
    args: argparse.Namespace, model: str, mode: str, work: PairWorkload, tmp: Path, device: str
) -> dict[str, Any]:
    """Warm-up, then alternating timed runs of both trainers with one reference mode; prints the table."""
    checks: dict[str, Any] = {}

    def once(name: str, steps: int, tag: str) -> dict[str, Any]:
        if name == "alignkit":
            raw = run_alignkit(args, model, mode, steps, tmp / f"alignkit-{mode}-{tag}")
            assert raw["units_logged"] == [float(args.micro_batch)] * steps, "alignkit's pair counts differ"
        else:
            raw = run_trl(args, model, mode, steps, work, tmp / f"trl-{mode}-{tag}")
            checks.setdefault("trl_own_tokenization_rows_checked", steps * args.micro_batch)
            for k in (
                "own_tokenization_mismatches",
                "own_tokenization_extra_completion",
                "first_batch_as_expected",
                "reference_model_kept",
                "gradient_checkpointing",
                "bf16",
                "optimizer",
            ):
                checks.setdefault(f"trl_{k}", raw[k])
            checks["trl_batch_label_mismatches"] = (
                checks.get("trl_batch_label_mismatches", 0) + raw["batch_label_mismatches"]
            )
        return raw

    runs, raws = alternating_runs(
        once,
        lambda raw: summarise_run(raw, work, args.steps, args.micro_batch),
        args,
        lambda r: (
            f"{r['pairs_per_s']:8.1f} pairs/s {r['cpu_s_per_step']:.4f} CPU s/step  "
            f"first loss {r['first_loss']:.8f}"
        ),
        label=f"[{mode} reference] ",
    )

    summary = median_summary(runs)
    a, t = summary["alignkit"], summary["trl"]
    mem_key, mem_label = memory_key_and_label()
    curve_diff = loss_curve_diff(raws)
    rows = [
        ("pairs/s", "pairs_per_s", "{:.1f}"),
        ("steps/s", "steps_per_s", "{:.2f}"),
        ("scored tokens/s", "loss_tokens_per_s", "{:,.0f}"),
        (f"timed s (steps 2..{args.steps})", "timed_s", "{:.2f}"),
        ("process CPU s / step", "cpu_s_per_step", "{:.4f}"),
        ("wall s (whole call)", "wall_s", "{:.2f}"),
        (mem_label, mem_key, "{:.1f}"),
        ("loss at step 1", "first_loss", "{:.8f}"),
        (f"loss at step {args.steps}", "last_loss", "{:.8f}"),
    ]
    print_table(f"[{mode} reference] median of {args.repeats} runs each ({device}):", a, t, rows)
    throughput = a["pairs_per_s"] / t["pairs_per_s"]
    memory = a[mem_key] / t[mem_key] if t[mem_key] else float("nan")
    first_diff = abs(a["first_loss"] - t["first_loss"])
    print(
        f"throughput alignkit/TRL (pairs/s): {throughput:.3f} (target >= 1.5: "
        f"{'met' if throughput >= 1.5 else 'MISSED'}); memory alignkit/TRL: {memory:.3f} (target <= 0.8: "
        f"{'met' if memory <= 0.8 else 'MISSED'})\n"
        f"loss on the first batch: alignkit {a['first_loss']:.10f}, TRL {t['first_loss']:.10f}, "
        f"|diff| = {first_diff:.2e}; max |diff| over the {args.steps}-step curve = {curve_diff:.2e}\n"
        f"checks: TRL's own tokenization differed on {checks['trl_own_tokenization_mismatches']} of "
        f"{checks['trl_own_tokenization_rows_checked']} rows (extra completion tokens {checks['trl_own_tokenization_extra_completion']!r}; "
        f"replaced by alignkit's split); batches whose labels differ after that: "
        f"{checks['trl_batch_label_mismatches']}; TRL's first batch as expected: "
        f"{checks['trl_first_batch_as_expected']}; TRL keeps a reference model: {checks['trl_reference_model_kept']}; "
        f"TRL bf16 {checks['trl_bf16']}, checkpointing {checks['trl_gradient_checkpointing']}; "
        f"optimizer {checks['trl_optimizer']}"
    )
    return {
        "checks": checks
        | {
            "first_loss_abs_diff": first_diff,
            "last_loss_abs_diff": abs(a["last_loss"] - t["last_loss"]),
            "max_loss_curve_abs_diff": curve_diff,
            "alignkit_first_loss_identical_across_repeats": all(
                r["first_loss"] == runs["alignkit"][0]["first_loss"] for r in runs["alignkit"]
            ),
        },
        "ratio_alignkit_over_trl": {
            k: a[k] / t[k] for k in ("pairs_per_s", "cpu_s_per_step", mem_key, "wall_s") if t[k]
        },
        "targets": {"throughput_ge_1.5": throughput >= 1.5, "memory_le_0.8": memory <= 0.8},
        "median": summary,
        "runs": runs,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model", default=None, help="the SFT policy (folder, hub name); default: train a toy one"
    )
    p.add_argument(
        "--sft-steps", type=int, default=200, help="steps of the toy SFT when --model is not given"
    )
    p.add_argument("--data", default="toyworld://data/safe_pref", help="preference dataset")
    p.add_argument("--template", default="pku-saferlhf", help="alignkit data template for --data")
    p.add_argument("--preference", choices=("helpfulness", "safety"), default="helpfulness")
    p.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(MODES), help="reference modes to compare"
    )
    p.add_argument("--beta", type=float, default=0.1, help="DPO beta (sigmoid loss)")
    add_common_arguments(p, steps=50, warmup=5, micro_batch=16, lr=1e-4)
    p.add_argument("--profile", action="store_true", help="afterwards, cProfile one run of each per mode")
    p.add_argument("--out", type=Path, default=RESULTS / "dpo_vs_trl.json")
    args = p.parse_args()
    if args.steps < 2:
        p.error("--steps must be at least 2 (steps 2..N are timed)")

    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    os.environ.setdefault("TQDM_DISABLE", "1")  # TRL's reference-precompute bar
    device = device_line()
    args.load_at_start = load_average()
    print_host(device)
    tmp = Path(tempfile.mkdtemp(prefix="dpo_vs_trl-"))
    model = args.model or train_sft_policy(args, tmp / "sft")
    print(f"policy: {model} ({parameter_count(model) / 1e6:.2f}M parameters)")
    work = build_workload(args, model, max(args.steps, args.warmup_steps))
    print(
        f"data: {work.num_pairs} pairs ({work.truncated} truncated to {args.max_length}, {work.dropped} dropped); "
        f"{args.micro_batch} pairs per step, {args.steps} steps; policy {model}; tokens computed per step: "
        f"{sum(work.padded_tokens) / len(work.padded_tokens):.0f} as padded pairs, "
        f"{sum(work.shared_tokens) / len(work.shared_tokens):.0f} as alignkit's shared-prompt rows"
    )

    results = {mode: compare(args, model, mode, work, tmp, device) for mode in args.modes}

    print(f"\nsummary (median of {args.repeats}; alignkit/TRL):")
    mem_key, _ = memory_key_and_label()
    for mode, res in results.items():
        r = res["ratio_alignkit_over_trl"]
        print(
            f"  {mode:6s} reference: throughput {r['pairs_per_s']:.3f}x (target >= 1.5), "
            f"memory {r.get(mem_key, float('nan')):.3f}x (target <= 0.8), "
            f"first-batch loss |diff| {res['checks']['first_loss_abs_diff']:.2e}"
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        **report_header(args, device),
        "model_parameters": parameter_count(model),
        "policy": model
        if args.model
        else f"{args.model_size} model, {args.sft_steps} SFT steps of examples/toyworld/sft.yaml",
        "inputs": (
            "TRL gets alignkit's token split (prompt = unlabelled prefix, completion = labelled tokens); TRL's "
            "own split also labels the chat template's trailing newline after <|im_end|> (see checks)"
        ),
        "data": {
            "pairs": work.num_pairs,
            "truncated": work.truncated,
            "dropped": work.dropped,
            "scored_tokens_timed": sum(work.loss_tokens[1 : args.steps]),
            "padded_tokens_timed": sum(work.padded_tokens[1 : args.steps]),
            "alignkit_shared_prompt_tokens_timed": sum(work.shared_tokens[1 : args.steps]),
        },
        **results,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")

    if args.profile:
        for mode in args.modes:
            for name, fn in (
                ("alignkit", lambda m=mode: run_alignkit(args, model, m, args.steps, tmp / "alignkit-prof")),
                ("trl", lambda m=mode: run_trl(args, model, m, args.steps, work, tmp / "trl-prof")),
            ):
                path = args.out.with_name(f"{args.out.stem}_profile_{mode}_{name}.txt")
                text = profile_once(fn, 30, path)
                print(
                    f"\ncProfile of one {name} run ({mode} reference, whole call), top by own time -> {path}"
                )
                print("\n".join(text.splitlines()[:45]))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
