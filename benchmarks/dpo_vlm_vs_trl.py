"""Time alignkit's DPO on the tiny VLM against TRL's ``DPOTrainer`` on the same model, pictures and pairs.

    .venv/bin/python benchmarks/dpo_vlm_vs_trl.py --steps 20 --repeats 2
    python benchmarks/dpo_vlm_vs_trl.py --model my-sft-v-checkpoint --max-length 256 --micro-batch 8

The vision counterpart of ``dpo_vs_trl.py`` (same structure, shared pieces from ``_common.py``): both
trainers run in this one process, alternating (alignkit, TRL, alignkit, TRL, ...) after one short warm-up
run of each, and the report gives the median over the repeats. One comparison only, the **live**
reference: TRL refuses ``precompute_ref_log_probs`` for vision data. What is held equal, and why:

- **Same model.** The visual toy world's tiny LLaVA (``toyworld://visual/models/tiny-vlm``, random init,
  ~0.64M parameters) unless ``--model``; both trainers load it from that folder in fp32, and both
  reference models are frozen fp32 copies loaded from it (TRL gets its copy as ``ref_model=``). Both
  freeze the vision tower (alignkit's ``model.freeze_vision`` default; TRL's model gets the same
  ``freeze_media_towers``), so both optimise the same parameters.
- **Same pairs, pictures and order.** BeaverTails-V rows ranked by ``--preference`` through alignkit's own
  reader; alignkit's data order is a pure function of (seed, step) (``engine.global_batch_indices``), so we
  compute it here and hand TRL a dataset in that order with a sequential sampler.
- **Same tokens and pixels.** TRL renders vision pairs in its collator (``DataCollatorForVisionPreference``:
  prompt through ``apply_chat_template`` with the generation prompt, chosen/rejected as the continuation
  text, everything after the prompt labelled). With the toy ChatML template that labels the ``"\\n"``
  written after ``<|im_end|>``, which alignkit (scoring the ``{% generation %}`` block only) does not: the
  check reports every such difference and the first-batch loss under TRL's own formatting. Training
  then gets alignkit's tokens and ``pixel_values`` in TRL's batch layout (``input_ids``,
  ``attention_mask``, ``completion_mask``, ``pixel_values``: chosen rows then rejected rows, right-padded),
  built by a collator that replaces TRL's, so both compute the same DPO loss on the same inputs.
- **Same optimisation.** No autocast, no gradient checkpointing (TRL's bf16 and checkpointing defaults are
  switched off), micro-batch x 1 accumulation, constant LR without warm-up, the same clipping, sigmoid DPO
  with the same beta, and the same ``torch.optim.AdamW`` (``--trl-default-optim``: TRL's fused default).
- **Each trainer's own layout.** Multimodal batches are padded pairs on both sides (alignkit packs no
  picture rows yet; ``--no-packing`` and ``--model-size`` have no effect here).

Timed: optimizer steps 2..N (alignkit ``elapsed_s``; TRL ``on_step_end``). Throughput is pairs per second.
Memory: CUDA peak allocation, or growth of the process's RSS over the whole call (model loading included).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from _common import (
    RESULTS,
    TRL_RUN_CHECKS,
    PairWorkload,
    StepLossRecorder,
    adamw_as_alignkit,
    add_common_arguments,
    alignkit_common_sections,
    alternating_pair_runs,
    benchmark_parser,
    build_pair_workload,
    copy_trl_checks,
    labels_differ,
    loss_curve_diff,
    memory_key_and_label,
    metered,
    pair_result,
    pair_rows,
    pair_summary,
    pair_summary_line,
    pair_targets,
    paired_medians,
    parse_checked,
    print_table,
    quiet_libraries,
    report_header,
    run_alignkit_timed,
    start_run,
    step_clock_callback,
    train_trl_quietly,
    trl_common_args,
    trl_run_fields,
    write_report,
)

VLM = "toyworld://visual/models/tiny-vlm"


# -------------------------------------------------------------------------------------------------- data
class VisionPairWorkload(PairWorkload):
    """``PairWorkload`` of vision pairs: each conversation's text ``prompt``/``chosen``/``rejected`` and its
    ``images`` paths; ``prompt_ids`` with the image tokens expanded; each ``PairExample``'s ``media`` holds
    the row's ``pixel_values``."""


def text_only(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Chat dicts with their image blocks taken out (TRL puts ``images`` back before the first user text),
    and the image paths, in order."""
    out, paths = [], []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            paths += [b["path"] for b in content if b["type"] == "image"]
            content = "".join(b["text"] for b in content if b["type"] == "text")
        out.append({"role": m["role"], "content": content})
    return out, paths


def build_workload(args: argparse.Namespace, model: str, steps: int) -> VisionPairWorkload:
    """Read and render the pairs through the processor exactly as ``alignkit.train.dpo.train`` does."""
    from alignkit.data.render import chat_dicts
    from alignkit.models.loading import load_processor, load_tokenizer

    def conversation(pref: Any) -> dict[str, Any]:
        prompt, images = text_only(chat_dicts(pref.prompt))
        return {
            "prompt": prompt,
            "chosen": text_only(chat_dicts(pref.chosen))[0],
            "rejected": text_only(chat_dicts(pref.rejected))[0],
            "images": images,
        }

    processor = load_processor(model, load_tokenizer(model))
    return build_pair_workload(VisionPairWorkload, args, processor, steps, conversation, media=True)


def pad_token_id(processor: Any) -> int:
    """The pad id TRL's vision collator pads with (the tokenizer's pad token, else its EOS)."""
    tok = processor.tokenizer
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def equal_inputs_batch(work: VisionPairWorkload, rows: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """alignkit's tokens and pictures of ``rows`` in the layout TRL's vision collator returns: chosen rows
    then rejected rows, prompt + completion right-padded, ``completion_mask`` on the labelled tokens."""
    seqs, masks = [], []
    for key in ("chosen_ids", "rejected_ids"):
        for i in rows:
            prompt, completion = work.split[i]["prompt_ids"], work.split[i][key]
            seqs.append(prompt + completion)
            masks.append([0] * len(prompt) + [1] * len(completion))
    width = max(len(s) for s in seqs)
    input_ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in seqs])
    attention = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    completion = torch.tensor([m + [0] * (width - len(m)) for m in masks])
    pixels = [work.examples[i].chosen.media["pixel_values"] for i in rows]
    pixels += [work.examples[i].rejected.media["pixel_values"] for i in rows]
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "completion_mask": completion,
        "pixel_values": torch.cat(pixels),
    }


def trl_own_batch(
    processor: Any, work: VisionPairWorkload, rows: list[int], max_length: int
) -> dict[str, Any]:
    """What TRL's own ``DataCollatorForVisionPreference`` makes of ``rows`` (conversations + PIL pictures)."""
    from PIL import Image
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    examples = [
        {
            **work.conversations[i],
            "images": [Image.open(p).convert("RGB") for p in work.conversations[i]["images"]],
        }
        for i in rows
    ]
    return DataCollatorForVisionPreference(processor, max_length=max_length)(examples)


# ---------------------------------------------------------------------------------------------- trainers
def run_alignkit(args: argparse.Namespace, model: str, steps: int, run_dir: Path) -> dict[str, Any]:
    """One call of the public ``alignkit.train.dpo.train`` (live reference); timings come from its metrics."""
    from alignkit.config import from_dict
    from alignkit.train.dpo import DPOConfig, train

    sections = alignkit_common_sections(args, model, steps, run_dir)
    loss = {"loss": "dpo", "beta": args.beta, "preference": args.preference, "reference": "live"}
    return run_alignkit_timed(train, from_dict(DPOConfig, sections | loss), steps)


def load_trl_side(args: argparse.Namespace, path: str) -> tuple[Any, Any, Any, tuple[Any, Any]]:
    """(processor, policy, frozen reference, optimizers): fp32 VLMs from ``path`` with the vision tower
    frozen as alignkit freezes it, and the ``torch.optim.AdamW`` alignkit builds unless ``--trl-default-optim``."""
    from transformers import AutoModelForImageTextToText

    from alignkit.models.loading import load_processor, load_tokenizer, resolve_path
    from alignkit.models.lora import freeze_media_towers

    device = "cuda" if torch.cuda.is_available() else "cpu"
    processor = load_processor(path, load_tokenizer(path))
    model = AutoModelForImageTextToText.from_pretrained(resolve_path(path), dtype=torch.float32).to(device)
    freeze_media_towers(model)
    ref = AutoModelForImageTextToText.from_pretrained(resolve_path(path), dtype=torch.float32).to(device)
    ref.eval().requires_grad_(False)
    return processor, model, ref, adamw_as_alignkit(args, model)


def make_trl_trainer(
    args: argparse.Namespace,
    path: str,
    steps: int,
    work: VisionPairWorkload,
    out_dir: Path,
    callbacks: list[Any],
) -> Any:
    """A ``DPOTrainer`` on the pre-ordered rows whose collator hands it alignkit's tokens and pictures."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    class RecordingDPOTrainer(StepLossRecorder, DPOTrainer):
        pass

    processor, model, ref, optimizers = load_trl_side(args, path)
    pad_id = pad_token_id(processor)
    n_rows = steps * args.micro_batch
    config = DPOConfig(
        **trl_common_args(args, steps, out_dir),
        truncation_mode="keep_start",
        beta=args.beta,
        loss_type=["sigmoid"],
        label_smoothing=0.0,
        train_sampling_strategy="sequential",
        remove_unused_columns=False,  # keep the ``row`` index the collator reads
    )
    rows = [{"row": i, **work.conversations[i]} for i in range(n_rows)]
    return RecordingDPOTrainer(
        model=model,
        ref_model=ref,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
        data_collator=lambda examples: equal_inputs_batch(work, [e["row"] for e in examples], pad_id),
        optimizers=optimizers,
        callbacks=callbacks,
    )


def run_trl(
    args: argparse.Namespace, path: str, steps: int, work: VisionPairWorkload, out_dir: Path
) -> dict[str, Any]:
    """One ``DPOTrainer.train()`` (live reference, ``ref_model=`` given) on alignkit's rows and pictures."""
    clock = step_clock_callback()
    with metered() as measured:
        trainer = make_trl_trainer(args, path, steps, work, out_dir, [clock])
        train_trl_quietly(trainer)
    pad_id = pad_token_id(trainer.processing_class)
    expect_first = equal_inputs_batch(work, list(range(args.micro_batch)), pad_id)
    first_ok = trainer.first_batch is not None and all(
        torch.equal(trainer.first_batch[k], expect_first[k]) for k in expect_first
    )
    return {
        **clock.fields(),
        "losses": [float(x) for x in trainer.step_losses],
        "first_step_metrics": trainer.state.log_history[0],
        "first_batch_as_expected": first_ok,
        **trl_run_fields(trainer, args),
        **measured,
    }


def formatting_check(
    args: argparse.Namespace, path: str, work: VisionPairWorkload, tmp: Path
) -> dict[str, Any]:
    """TRL's own vision collator against alignkit's rows (labels of every step's batch, the labelled tokens
    it adds), and the step-1 loss of an untrained TRL trainer on each formatting of the first batch."""
    from alignkit.data.pair_examples import collate_pairs

    trainer = make_trl_trainer(args, path, args.steps, work, tmp / "trl-check", [])
    processor = trainer.processing_class
    tok = processor.tokenizer
    mismatched, extra = 0, set()
    for s in range(args.steps):
        rows = list(range(s * args.micro_batch, (s + 1) * args.micro_batch))
        own = trl_own_batch(processor, work, rows, args.max_length)
        if labels_differ(own, [work.examples[i] for i in rows]):
            mismatched += 1
        ours = collate_pairs([work.examples[i] for i in rows], pad_token_id=0)["labels"]
        theirs = own["input_ids"].masked_fill(own["completion_mask"] == 0, -100)
        for a, b in zip(ours.tolist(), theirs.tolist(), strict=True):
            a, b = [t for t in a if t != -100], [t for t in b if t != -100]
            if b[: len(a)] == a and len(b) > len(a):
                extra.add(tok.decode(b[len(a) :]))
            elif a != b:
                extra.add(f"<differs: {tok.decode(a)!r} vs {tok.decode(b)!r}>")
    rows = list(range(args.micro_batch))
    own_first = trl_own_batch(processor, work, rows, args.max_length)
    equal_first = equal_inputs_batch(work, rows, pad_token_id(processor))
    same_pixels = torch.equal(own_first["pixel_values"], equal_first["pixel_values"])
    trainer.step_losses = []
    losses = {}
    with torch.no_grad():
        for name, batch in (("trl_own_formatting", own_first), ("alignkit_inputs", equal_first)):
            inputs = trainer._prepare_inputs(dict(batch))
            loss = float(trainer.compute_loss(trainer.model, inputs))
            metrics = trainer._metrics["train" if trainer.model.training else "eval"]
            losses[name] = {
                "loss": loss,
                "logps_chosen_mean": metrics["logps/chosen"][-1],
                "logps_rejected_mean": metrics["logps/rejected"][-1],
            }
    return {
        "trl_own_formatting_batches_with_other_labels": mismatched,
        "trl_own_formatting_batches_checked": args.steps,
        "trl_own_formatting_extra_labelled_text": sorted(extra),
        "trl_own_pixel_values_equal_alignkit": same_pixels,
        "first_batch_untrained": losses,
    }


# ---------------------------------------------------------------------------------------------- analysis
def summarise_run(
    raw: dict[str, Any], work: VisionPairWorkload, steps: int, micro_batch: int
) -> dict[str, Any]:
    """``pair_summary`` with the first step's policy log-probs and the loss at step 2 (before the rates)."""
    out = pair_summary(raw, work.loss_tokens, steps, micro_batch)
    rates = {k: out.pop(k) for k in ("pairs_per_s", "loss_tokens_per_s")}
    first = raw["first_step_metrics"]
    return out | {
        "first_logps_chosen": first["logps/chosen"],
        "first_logps_rejected": first["logps/rejected"],
        "second_loss": raw["losses"][1],
        **rates,
    }


def compare(
    args: argparse.Namespace, model: str, work: VisionPairWorkload, tmp: Path, device: str
) -> dict[str, Any]:
    checks: dict[str, Any] = {}

    def trl_once(steps: int, tag: str) -> dict[str, Any]:
        raw = run_trl(args, model, steps, work, tmp / f"trl-{tag}")
        copy_trl_checks(checks, raw, ("first_batch_as_expected", *TRL_RUN_CHECKS))
        return raw

    runs, raws = alternating_pair_runs(
        lambda steps, tag: run_alignkit(args, model, steps, tmp / f"alignkit-{tag}"),
        trl_once,
        lambda raw: summarise_run(raw, work, args.steps, args.micro_batch),
        args,
        "[live reference] ",
    )
    summary, a, t = paired_medians(runs)
    mem_key, _ = memory_key_and_label()
    rows = [
        *pair_rows(args.steps),
        ("loss at step 1 (ln 2: ref = policy)", "first_loss", "{:.8f}"),
        ("policy logp(chosen) at step 1", "first_logps_chosen", "{:.6f}"),
        ("policy logp(rejected) at step 1", "first_logps_rejected", "{:.6f}"),
        ("loss at step 2", "second_loss", "{:.8f}"),
        (f"loss at step {args.steps}", "last_loss", "{:.8f}"),
    ]
    no_ratio = ("first_loss", "last_loss", "second_loss", "first_logps_chosen", "first_logps_rejected")
    title = f"[live reference] median of {args.repeats} runs each ({device}):"
    print_table(title, a, t, rows, no_ratio=no_ratio)
    logp_diff = max(abs(a[k] - t[k]) for k in ("first_logps_chosen", "first_logps_rejected"))
    throughput, memory, targets_line = pair_targets(a, t)
    first_diff = abs(a["first_loss"] - t["first_loss"])
    curve_diff = loss_curve_diff(raws)
    print(
        f"{targets_line}\n"
        f"loss on the first batch: alignkit {a['first_loss']:.10f}, TRL {t['first_loss']:.10f}, "
        f"|diff| = {first_diff:.2e}; policy log-probs on it (mean per pair) |diff| <= {logp_diff:.2e}; "
        f"loss at step 2 |diff| = {abs(a['second_loss'] - t['second_loss']):.2e}; "
        f"max |diff| over the {args.steps}-step curve = {curve_diff:.2e}\n"
        f"checks: {checks}"
    )
    agreement = {
        "first_loss_abs_diff": first_diff,
        "first_batch_policy_logps_max_abs_diff": logp_diff,
        "second_loss_abs_diff": abs(a["second_loss"] - t["second_loss"]),
        "last_loss_abs_diff": abs(a["last_loss"] - t["last_loss"]),
        "max_loss_curve_abs_diff": curve_diff,
    }
    return pair_result(checks | agreement, summary, runs, throughput, memory)


def main() -> None:
    p = benchmark_parser(__doc__)
    p.add_argument(
        "--model", default=VLM, help="the VLM (folder, hub name, toyworld://); default: the tiny VLM"
    )
    p.add_argument("--data", default="toyworld://visual/data/beavertails_v", help="vision preference dataset")
    p.add_argument("--template", default="beavertails-v", help="alignkit data template for --data")
    p.add_argument("--preference", choices=("helpfulness", "safety"), default="safety")
    p.add_argument("--beta", type=float, default=0.1, help="DPO beta (sigmoid loss)")
    add_common_arguments(p, steps=20, warmup=3, micro_batch=8, lr=1e-4)
    p.add_argument("--out", type=Path, default=RESULTS / "dpo_vlm_vs_trl.json")
    args = parse_checked(p)

    import transformers

    from alignkit.models.loading import resolve_path

    quiet_libraries()
    device, tmp = start_run(args, "dpo_vlm_vs_trl-")
    model = str(resolve_path(args.model))
    work = build_workload(args, model, max(args.steps, args.warmup_steps))
    n_params = sum(
        p.numel()
        for p in transformers.AutoModelForImageTextToText.from_pretrained(
            model, dtype=torch.float32
        ).parameters()
    )
    print(
        f"model: {args.model} ({n_params / 1e6:.2f}M parameters); data: {work.num_pairs} pairs "
        f"({work.truncated} truncated to {args.max_length}, {work.dropped} dropped); {args.micro_batch} pairs "
        f"per step, {args.steps} steps; tokens computed per step (padded pairs): "
        f"{sum(work.padded_tokens) / len(work.padded_tokens):.0f}"
    )
    fmt = formatting_check(args, model, work, tmp)
    print(f"TRL's own formatting vs alignkit's: {fmt}")
    result = compare(args, model, work, tmp, device)
    line = pair_summary_line(result["ratio_alignkit_over_trl"], result["checks"]["first_loss_abs_diff"])
    print(f"\nsummary (median of {args.repeats}; alignkit/TRL): {line}")
    report = {
        **report_header(args, device),
        "model_parameters": n_params,
        "policy": f"{args.model} (as saved: random init unless --model says otherwise)",
        "inputs": (
            "TRL trains on alignkit's tokens and pixel_values in its own batch layout (a collator replacing "
            "DataCollatorForVisionPreference); formatting_check compares TRL's own collator"
        ),
        "formatting_check": fmt,
        "data": work.report(args.steps),
        "live": result,
    }
    write_report(args.out, report)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
