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
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from _common import (
    RESULTS,
    TRL_RUN_CHECKS,
    PairWorkload,
    StepLossRecorder,
    add_common_arguments,
    add_policy_arguments,
    alignkit_common_sections,
    alternating_pair_runs,
    benchmark_parser,
    build_pair_workload,
    copy_trl_checks,
    first_loss_identical,
    labels_differ,
    loss_curve_diff,
    memory_key_and_label,
    pair_result,
    pair_rows,
    pair_summary,
    pair_summary_line,
    pair_targets,
    paired_medians,
    parameter_count,
    parse_checked,
    policy_description,
    print_table,
    profile_each,
    quiet_libraries,
    report_header,
    run_alignkit_timed,
    start_run,
    train_sft_policy,
    train_trl_timed,
    trl_common_args,
    trl_run_fields,
    write_report,
)

MODES = ("live", "cached")


# -------------------------------------------------------------------------------------------------- data
@dataclass
class SharedPairWorkload(PairWorkload):
    """``PairWorkload`` and what alignkit's shared-prompt rows compute on."""

    shared_tokens: list[int] = field(default_factory=list)
    """Per step: B x longest row of alignkit's shared-prompt rows (``data.packing``), padding included."""


def build_workload(args: argparse.Namespace, model: str, steps: int) -> SharedPairWorkload:
    """Read and tokenize the pairs exactly as ``alignkit.train.dpo.train`` does, then lay them out in step order."""
    from alignkit.data.pair_examples import collate_shared_pairs
    from alignkit.data.render import chat_dicts
    from alignkit.models.loading import load_tokenizer

    def conversation(pref: Any) -> dict[str, Any]:
        return {
            "prompt": chat_dicts(pref.prompt),
            "chosen": chat_dicts(pref.chosen),
            "rejected": chat_dicts(pref.rejected),
        }

    def shared_rows(work: SharedPairWorkload, batch: list[tuple[Any, Any]]) -> None:
        work.shared_tokens.append(collate_shared_pairs([ex for _, ex in batch], 0)["input_ids"].numel())

    return build_pair_workload(
        SharedPairWorkload, args, load_tokenizer(model), steps, conversation, per_step=shared_rows
    )


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
    args: argparse.Namespace, model_path: str, mode: str, steps: int, work: SharedPairWorkload, out_dir: Path
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
    trainer, timing = train_trl_timed(
        EqualInputsDPOTrainer, args, model_path, config, work.conversations[:n_rows]
    )
    tokenizer = trainer.processing_class

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
        **timing,
        "losses": [float(x) for x in trainer.step_losses],
        "own_tokenization_mismatches": own_mismatch,
        "own_tokenization_extra_completion": own_extra,
        "batch_label_mismatches": batch_mismatch,
        "first_batch_as_expected": first_ok,
        **trl_run_fields(trainer, args),
    }


# ---------------------------------------------------------------------------------------------- analysis
def summarise_run(
    raw: dict[str, Any], work: SharedPairWorkload, steps: int, micro_batch: int
) -> dict[str, Any]:
    """Throughput over steps 2..N (the interval between the end of step 1 and the end of step N)."""
    return pair_summary(raw, work.loss_tokens, steps, micro_batch)


def compare(
    args: argparse.Namespace, model: str, mode: str, work: SharedPairWorkload, tmp: Path, device: str
) -> dict[str, Any]:
    """Warm-up, then alternating timed runs of both trainers with one reference mode; prints the table."""
    checks: dict[str, Any] = {}

    def trl_once(steps: int, tag: str) -> dict[str, Any]:
        raw = run_trl(args, model, mode, steps, work, tmp / f"trl-{mode}-{tag}")
        checks.setdefault("trl_own_tokenization_rows_checked", steps * args.micro_batch)
        copy_trl_checks(
            checks,
            raw,
            (
                "own_tokenization_mismatches",
                "own_tokenization_extra_completion",
                "first_batch_as_expected",
                *TRL_RUN_CHECKS,
            ),
        )
        checks["trl_batch_label_mismatches"] = (
            checks.get("trl_batch_label_mismatches", 0) + raw["batch_label_mismatches"]
        )
        return raw

    runs, raws = alternating_pair_runs(
        lambda steps, tag: run_alignkit(args, model, mode, steps, tmp / f"alignkit-{mode}-{tag}"),
        trl_once,
        lambda raw: summarise_run(raw, work, args.steps, args.micro_batch),
        args,
        f"[{mode} reference] ",
    )

    summary, a, t = paired_medians(runs)
    mem_key, _ = memory_key_and_label()
    curve_diff = loss_curve_diff(raws)
    rows = [
        *pair_rows(args.steps),
        ("loss at step 1", "first_loss", "{:.8f}"),
        (f"loss at step {args.steps}", "last_loss", "{:.8f}"),
    ]
    print_table(f"[{mode} reference] median of {args.repeats} runs each ({device}):", a, t, rows)
    throughput, memory, targets_line = pair_targets(a, t)
    first_diff = abs(a["first_loss"] - t["first_loss"])
    print(
        f"{targets_line}\n"
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
    agreement = {
        "first_loss_abs_diff": first_diff,
        "last_loss_abs_diff": abs(a["last_loss"] - t["last_loss"]),
        "max_loss_curve_abs_diff": curve_diff,
        "alignkit_first_loss_identical_across_repeats": first_loss_identical(runs),
    }
    return pair_result(checks | agreement, summary, runs, throughput, memory)


def main() -> None:
    p = benchmark_parser(__doc__)
    add_policy_arguments(p)
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
    args = parse_checked(p)
    quiet_libraries()
    device, tmp = start_run(args, "dpo_vs_trl-")
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
    for mode, res in results.items():
        line = pair_summary_line(res["ratio_alignkit_over_trl"], res["checks"]["first_loss_abs_diff"])
        print(f"  {mode:6s} reference: {line}")

    report = {
        **report_header(args, device),
        "model_parameters": parameter_count(model),
        "policy": policy_description(args, model),
        "inputs": (
            "TRL gets alignkit's token split (prompt = unlabelled prefix, completion = labelled tokens); TRL's "
            "own split also labels the chat template's trailing newline after <|im_end|> (see checks)"
        ),
        "data": work.report(args.steps)
        | {"alignkit_shared_prompt_tokens_timed": sum(work.shared_tokens[1 : args.steps])},
        **results,
    }
    write_report(args.out, report)

    if args.profile:
        for mode in args.modes:
            profile_each(
                {
                    "alignkit": lambda m=mode: run_alignkit(
                        args, model, m, args.steps, tmp / "alignkit-prof"
                    ),
                    "trl": lambda m=mode: run_trl(args, model, m, args.steps, work, tmp / "trl-prof"),
                },
                lambda name, m=mode: args.out.with_name(f"{args.out.stem}_profile_{m}_{name}.txt"),
                30,
                lambda name, path, m=mode: (
                    f"\ncProfile of one {name} run ({m} reference, whole call), top by own time -> {path}"
                ),
                head=45,
            )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
