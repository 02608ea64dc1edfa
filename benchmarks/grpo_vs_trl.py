"""Time alignkit's GRPO against TRL's ``GRPOTrainer`` on the same policy, prompts, reward and settings.

    .venv/bin/python benchmarks/grpo_vs_trl.py --steps 11 --repeats 3
    python benchmarks/grpo_vs_trl.py --model my-sft-checkpoint --prompts-per-step 16 --group-size 8 \\
        --max-new-tokens 256 --micro-batch 8 --lr 1e-6

One GRPO step is a rollout (``--prompts-per-step`` prompts x ``--group-size`` samples), its rule reward,
group-standardised advantages, a reference forward when beta > 0, and one optimizer step over the whole
rollout. One comparison per ``--beta`` (default 0.04, where both load a frozen reference model, and 0,
where neither does). In each, both trainers run in this one process, alternating (alignkit, TRL,
alignkit, TRL, ...) after one short warm-up run of each, and the report gives the median over the
repeats. Structure, memory metering and output follow ``sft_vs_trl.py`` and ``dpo_vs_trl.py`` (shared
pieces live in ``_common.py``). What is held equal, and why:

- **Same policy.** Without ``--model``, a short SFT of the toy recipe (``examples/toyworld/sft.yaml``,
  ``--sft-steps`` steps) gives the starting policy, so answers end by themselves at sensible lengths;
  both trainers load it from that folder, and both references are fp32 copies loaded from it.
- **Same prompts in the same order.** alignkit's prompts of step s are a pure function of (seed, step)
  (``online.step_prompt_indices``), so we compute them here and hand TRL a dataset already in that order
  with ``shuffle_dataset=False`` (its ``RepeatSampler`` then takes them in order, ``--group-size`` times
  each). TRL gets them in conversational form (``[{"role": "user", ...}]``), so both render them with
  the tokenizer's chat template; the script checks that TRL's prompt token ids equal alignkit's
  ``render_prompt`` ids and that every step's prompts were the expected ones on both sides.
- **Same sampling.** ``num_generations`` = ``samples_per_prompt`` = G, ``max_completion_length`` =
  ``max_new_tokens``, temperature 1, top-p 1, top-k off, no repetition penalty; both stop at the
  end-of-turn token. Samples differ (different samplers and random streams), so lengths differ a little:
  the table reports completions per step, mean completion length and completion tokens/s on both sides.
- **Same reward.** The same ``module:function`` rule (default ``alignkit.toyworld.oracle:ideal_reward``),
  called per completion with the prompt's user text and the response text (TRL: a thin wrapper that
  takes the texts out of its conversational prompts/completions and strips the response, as alignkit's
  generator does).
- **Same update.** One optimizer step per rollout (TRL: ``per_device_train_batch_size`` = micro-batch,
  ``gradient_accumulation_steps`` = P*G / micro-batch, ``steps_per_generation`` = that (TRL's default),
  ``num_iterations=1``; alignkit: ``mini_batch_size`` = P*G, ``update_epochs=1``), so neither computes old
  log-probs (the update is on-policy); the same micro-batch, token-mean loss (TRL ``loss_type="dapo"``,
  alignkit ``aggregation: token_mean``), clip epsilon 0.2, k3 KL with the same beta, group-standardised
  advantages, fp32 without autocast or gradient checkpointing (TRL's defaults ``bf16`` and checkpointing
  are switched off and checked), constant LR, the same clipping and the *same optimizer*
  (``torch.optim.AdamW`` built as alignkit builds it; ``--trl-default-optim``: TRL's fused default).
  alignkit generates the whole rollout in one call (``rollout.generation_batch_size`` = P*G), as TRL does.
- **Same bookkeeping.** Both log every step, neither evaluates (alignkit gets no eval split, so its
  final-step eval is empty), neither saves inside the timed region, neither prints per step.

What is timed: steps 2..N of each run (the first step carries one-off costs), as in the other scripts:
alignkit ``elapsed_s`` from its metrics; TRL ``on_step_end``. Both intervals hold everything a step does:
generation, scoring, reference forward, the update and logging. ``wall s`` is the whole call (model
loading, and for alignkit the final save and plots; TRL saves nothing). Memory: as ``sft_vs_trl.py``
(CUDA peak allocation, or growth of the process's RSS over the call).

``--profile`` adds, after the timed runs, one run of each with per-phase timers (generation, scoring,
reference forward, update = forward + backward + optimizer, other) and a cProfile run of each, written to
``results/grpo_vs_trl_profile_beta<beta>_<trainer>.txt``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    RESULTS,
    add_adam_arguments,
    add_policy_arguments,
    add_prompt_arguments,
    add_rollout_arguments,
    add_trl_optim_argument,
    alternating_runs,
    benchmark_parser,
    check_rollout_divides,
    copy_trl_checks,
    describe_rollout_run,
    fp32_model_section,
    memory_key_and_label,
    online_trainer_section,
    paired_medians,
    parse_checked,
    patched,
    policy_description,
    print_table,
    profile_once,
    quiet_libraries,
    quiet_run_section,
    ratios,
    report_header,
    run_rollout_timed,
    start_run,
    summarise_rollout_run,
    timed,
    train_sft_policy,
    train_trl_timed,
    trl_optimisation_args,
    trl_run_fields,
    write_report,
)

PHASES = ("generation", "scoring", "reference", "update")

ALIGNKIT_PHASES = {
    "generation": ["timing/rollout"],
    "scoring": ["timing/scoring"],
    "reference": ["timing/reference"],
    "update": ["timing/old_logps", "timing/update"],
}
"""Each phase of the table, from the ``timing/*`` keys alignkit's GRPO trainer logs every step."""


# -------------------------------------------------------------------------------------------------- data
@dataclass
class PromptWorkload:
    """The prompts both trainers roll out from, in alignkit's step order (step s holds rows s*P .. s*P+P-1)."""

    conversations: list[list[dict[str, Any]]]
    """TRL's conversational prompt of each row."""
    user_texts: list[str]
    """The user text of each row (what the reward sees), for the order checks."""
    prompt_ids: list[list[int]]
    """alignkit's ``render_prompt`` ids of each row, for the tokenization check."""
    num_prompts: int


def build_workload(args: argparse.Namespace, model: str, steps: int) -> PromptWorkload:
    """Read the prompts exactly as alignkit's online trainers do, then lay them out in step order."""
    from alignkit.data.render import chat_dicts, render_prompt
    from alignkit.models.loading import load_tokenizer
    from alignkit.score.base import message_text
    from alignkit.sections import DataConfig, DatasetConfig
    from alignkit.train.common import DataReport
    from alignkit.train.prompts import read_prompts, step_prompt_indices

    tokenizer = load_tokenizer(model)
    data = DataConfig(train=DatasetConfig(source=args.data, template=args.template, split=args.split))
    prompts = read_prompts(data, DataReport())["train"]
    work = PromptWorkload([], [], [], len(prompts))
    for step in range(steps):
        for i in step_prompt_indices(len(prompts), args.prompts_per_step, step, args.seed, 1, 0):
            work.conversations.append(chat_dicts(prompts[i]))
            work.user_texts.append(message_text(prompts[i], "user"))
            work.prompt_ids.append(render_prompt(tokenizer, prompts[i]))
    return work


# ---------------------------------------------------------------------------------------------- trainers
def run_alignkit(
    args: argparse.Namespace, model: str, beta: float, steps: int, run_dir: Path, phases: dict | None = None
) -> dict[str, Any]:
    """One call of the public ``alignkit.train.grpo.train``; timings come from its metrics."""
    import alignkit.train.grpo as grpo
    from alignkit.config import from_dict

    samples = args.prompts_per_step * args.group_size
    config = from_dict(
        grpo.GRPOConfig,
        {
            "model": fp32_model_section(model),
            "reward": {"path": args.reward},
            "advantage": "grpo",
            "beta": beta,
            "clip_eps": 0.2,
            "aggregation": "token_mean",
            "data": {
                "train": {"source": args.data, "template": args.template, "split": args.split},
                "eval": None,
            },
            "rollout": {
                "prompts_per_step": args.prompts_per_step,
                "samples_per_prompt": args.group_size,
                "max_new_tokens": args.max_new_tokens,
                "temperature": 1.0,
                "top_p": 1.0,
                "top_k": 0,
                "generation_batch_size": samples,
            },
            "trainer": online_trainer_section(args, steps, samples),
            "run": quiet_run_section(run_dir),
        },
    )
    steps_log, raw = run_rollout_timed(grpo.train, config, steps)
    if phases is not None:  # the trainer's own timing/* phases (alignkit.train.timing), summed over steps
        for phase, keys in ALIGNKIT_PHASES.items():
            phases[phase] = phases.get(phase, 0.0) + sum(r.get(k, 0.0) for r in steps_log for k in keys)
    return raw


def run_trl(
    args: argparse.Namespace,
    model_path: str,
    beta: float,
    steps: int,
    work: PromptWorkload,
    out_dir: Path,
    phases: dict | None = None,
) -> dict[str, Any]:
    """One ``GRPOTrainer.train()`` on the pre-ordered prompts (see the docstring)."""
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from alignkit.score.base import import_function, message_text

    rule = import_function(args.reward)
    calls: list[dict[str, Any]] = []

    def reward(
        prompts: list[Any], completions: list[Any], completion_ids: list[list[int]], **kw: Any
    ) -> list[float]:
        users = [message_text(p, "user") for p in prompts]
        texts = [message_text(c, "assistant").strip() for c in completions]
        calls.append({"prompts": users, "lengths": [len(c) for c in completion_ids]})
        return [float(rule(u, t)) for u, t in zip(users, texts, strict=True)]

    reward.__name__ = args.reward.rpartition(":")[2] or "reward"

    class CheckedGRPOTrainer(GRPOTrainer):
        """Records the prompt token ids TRL generates from (for the tokenization check)."""

        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            self.tokenized: list[list[int]] = []

        def _tokenize_prompts(self, prompts: list):  # noqa: ANN202
            out = super()._tokenize_prompts(prompts)
            self.tokenized.extend(list(ids) for ids in out[0])
            return out

    samples = args.prompts_per_step * args.group_size
    config = GRPOConfig(
        **trl_optimisation_args(args, steps, out_dir)
        | {"gradient_accumulation_steps": samples // args.micro_batch},
        num_generations=args.group_size,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        repetition_penalty=1.0,
        num_iterations=1,
        beta=beta,
        epsilon=0.2,
        loss_type="dapo",
        scale_rewards="group",
        mask_truncated_completions=False,
        shuffle_dataset=False,
    )
    callbacks: list[Any] = []
    if phases is not None:

        class OptimizerClock(TrainerCallback):
            def on_pre_optimizer_step(self, *a: Any, **k: Any) -> None:
                self.t0 = time.perf_counter()

            def on_optimizer_step(self, *a: Any, **k: Any) -> None:
                phases["optimizer"] = phases.get("optimizer", 0.0) + time.perf_counter() - self.t0

        callbacks.append(OptimizerClock())
    with contextlib.ExitStack() as stack:
        if phases is not None:
            trainer_cls = CheckedGRPOTrainer
            stack.enter_context(patched(trainer_cls, "_generate", lambda f: timed(phases, "generation", f)))
            stack.enter_context(
                patched(trainer_cls, "_calculate_rewards", lambda f: timed(phases, "scoring", f))
            )
            stack.enter_context(
                patched(
                    trainer_cls,
                    "_get_per_token_logps_and_entropies",
                    lambda f: timed(phases, "reference", f, lambda self, m, *a, **k: m is self.ref_model),
                )
            )
            stack.enter_context(patched(trainer_cls, "training_step", lambda f: timed(phases, "step", f)))
            stack.enter_context(
                patched(trainer_cls, "_prepare_inputs", lambda f: timed(phases, "prepare", f))
            )
        rows = [{"prompt": c} for c in work.conversations[: steps * args.prompts_per_step]]
        trainer, timing = train_trl_timed(
            CheckedGRPOTrainer, args, model_path, config, rows, tuple(callbacks), reward_funcs=reward
        )
    if phases is not None:  # the update: training_step without its input preparation, plus the optimizer
        phases["update"] = phases.pop("step", 0.0) - phases.pop("prepare", 0.0) + phases.pop("optimizer", 0.0)
    args_ = trainer.args
    rewards = [r["reward"] for r in trainer.state.log_history if "reward" in r]
    return {
        **timing,
        "rewards": rewards,
        "calls": calls,
        "tokenized": trainer.tokenized,
        **trl_run_fields(trainer, args),
        "steps_per_generation": args_.steps_per_generation,
        "generation_batch_size": args_.generation_batch_size,
        "old_logps_computed": args_.gradient_accumulation_steps
        % (args_.steps_per_generation * args_.num_iterations)
        != 0,
    }


# ---------------------------------------------------------------------------------------------- analysis
def check_prompts(raw: dict[str, Any], work: PromptWorkload, args: argparse.Namespace, steps: int) -> int:
    """Steps whose rollout did not use the expected prompts, each ``--group-size`` times in a row."""
    P, G = args.prompts_per_step, args.group_size
    calls = raw["calls"]
    bad = abs(len(calls) - steps)
    for s, call in enumerate(calls[:steps]):
        expected = [t for t in work.user_texts[s * P : (s + 1) * P] for _ in range(G)]
        seen = call["prompts"]
        if len(seen) == P:  # alignkit's generator gets each prompt once and samples it G times
            seen = [t for t in seen for _ in range(G)]
        bad += seen != expected
    return bad


def compare(
    args: argparse.Namespace, model: str, beta: float, work: PromptWorkload, tmp: Path, device: str
) -> dict[str, Any]:
    """Warm-up, then alternating timed runs of both trainers with one beta; prints the table."""
    checks: dict[str, Any] = {"prompt_order_mismatches": {"alignkit": 0, "trl": 0}}
    samples = args.prompts_per_step * args.group_size

    def once(name: str, steps: int, tag: str) -> dict[str, Any]:
        if name == "alignkit":
            raw = run_alignkit(args, model, beta, steps, tmp / f"alignkit-{beta}-{tag}")
        else:
            raw = run_trl(args, model, beta, steps, work, tmp / f"trl-{beta}-{tag}")
            n = steps * args.prompts_per_step
            expected = [ids for ids in work.prompt_ids[:n] for _ in range(args.group_size)]
            checks["trl_prompt_token_mismatches"] = (
                checks.get("trl_prompt_token_mismatches", 0)
                + sum(a != b for a, b in zip(raw["tokenized"], expected, strict=False))
                + abs(len(raw["tokenized"]) - len(expected))
            )
            copy_trl_checks(
                checks,
                raw,
                (
                    "reference_model_kept",
                    "gradient_checkpointing",
                    "bf16",
                    "steps_per_generation",
                    "generation_batch_size",
                    "old_logps_computed",
                    "optimizer",
                ),
            )
        checks["prompt_order_mismatches"][name] += check_prompts(raw, work, args, steps)
        wrong = [len(c["lengths"]) for c in raw["calls"] if len(c["lengths"]) != samples]
        checks.setdefault("rollouts_with_wrong_size", {"alignkit": [], "trl": []})[name] += wrong
        return raw

    runs, _ = alternating_runs(
        once,
        lambda raw: summarise_rollout_run(raw, args.steps),
        args,
        describe_rollout_run,
        label=f"[beta {beta}] ",
    )

    summary, a, t = paired_medians(runs)
    mem_key, mem_label = memory_key_and_label()
    rows = [
        (f"s / step (steps 2..{args.steps})", "s_per_step", "{:.4f}"),
        ("steps/s", "steps_per_s", "{:.2f}"),
        ("completions / step", "completions_per_step", "{:.1f}"),
        ("completions/s", "completions_per_s", "{:.1f}"),
        ("mean completion tokens", "mean_completion_tokens", "{:.2f}"),
        ("completion tokens/s", "completion_tokens_per_s", "{:,.0f}"),
        ("mean reward", "mean_reward", "{:.3f}"),
        ("process CPU s / step", "cpu_s_per_step", "{:.4f}"),
        ("wall s (whole call)", "wall_s", "{:.2f}"),
        (mem_label, mem_key, "{:.1f}"),
    ]
    print_table(f"[beta {beta}] median of {args.repeats} runs each ({device}):", a, t, rows)
    time_ratio = a["s_per_step"] / t["s_per_step"]
    memory = a[mem_key] / t[mem_key] if t[mem_key] else float("nan")
    print(
        f"time alignkit/TRL (s/step): {time_ratio:.3f} (target <= 0.7: {'met' if time_ratio <= 0.7 else 'MISSED'}); "
        f"memory alignkit/TRL: {memory:.3f}\n"
        f"checks: completions per rollout {samples} on both sides (rollouts of another size: "
        f"{checks['rollouts_with_wrong_size']}); steps with unexpected prompts: "
        f"{checks['prompt_order_mismatches']}; TRL prompt ids differing from alignkit's: "
        f"{checks['trl_prompt_token_mismatches']}; TRL keeps a reference model: "
        f"{checks['trl_reference_model_kept']}; TRL computes old log-probs: {checks['trl_old_logps_computed']}; "
        f"TRL generation batch {checks['trl_generation_batch_size']} over {checks['trl_steps_per_generation']} "
        f"micro-steps; bf16 {checks['trl_bf16']}, checkpointing {checks['trl_gradient_checkpointing']}; "
        f"optimizer {checks['trl_optimizer']}"
    )
    return {
        "checks": checks,
        "ratio_alignkit_over_trl": ratios(
            a, t, ("s_per_step", "cpu_s_per_step", "completion_tokens_per_s", mem_key, "wall_s")
        ),
        "targets": {"time_le_0.7": time_ratio <= 0.7},
        "median": summary,
        "runs": runs,
    }


def profile(args: argparse.Namespace, model: str, beta: float, work: PromptWorkload, tmp: Path) -> dict:
    """One run of each with phase timers (seconds per step over all N steps), then one cProfile run of each."""
    out: dict[str, Any] = {}
    for name in ("alignkit", "trl"):
        phases: dict[str, float] = {}
        if name == "alignkit":
            raw = run_alignkit(args, model, beta, args.steps, tmp / "alignkit-phases", phases)
        else:
            raw = run_trl(args, model, beta, args.steps, work, tmp / "trl-phases", phases)
        total = raw["step_end_s"][-1]  # from the start of the loop (alignkit) / of training (TRL) to step N
        per_step = {k: phases.get(k, 0.0) / args.steps for k in PHASES}
        per_step["other"] = total / args.steps - sum(per_step.values())
        out[name] = per_step
    print(f"\n[beta {beta}] seconds per step by phase (one instrumented run of {args.steps} steps each):")
    print(f"{'':14s}{'alignkit':>12s}{'TRL':>12s}")
    for k in (*PHASES, "other"):
        print(f"{k:14s}{out['alignkit'][k]:12.4f}{out['trl'][k]:12.4f}")
    for name, fn in (
        ("alignkit", lambda: run_alignkit(args, model, beta, args.steps, tmp / "alignkit-prof")),
        ("trl", lambda: run_trl(args, model, beta, args.steps, work, tmp / "trl-prof")),
    ):
        path = args.out.with_name(f"{args.out.stem}_profile_beta{beta}_{name}.txt")
        profile_once(fn, 40, path)
        print(f"cProfile of one {name} run (whole call) -> {path}")
    return out


def main() -> None:
    p = benchmark_parser(__doc__)
    add_policy_arguments(p)
    add_prompt_arguments(p)
    p.add_argument(
        "--beta", type=float, nargs="+", default=[0.04, 0.0], help="KL weights to compare (0: no reference)"
    )
    add_rollout_arguments(
        p,
        prompts_help="prompts per rollout (P)",
        group_help="samples per prompt (G)",
        steps_help="GRPO steps (= optimizer steps) per timed run",
        lr_help=None,
    )
    add_adam_arguments(p)
    p.add_argument("--seed", type=int, default=0)
    add_trl_optim_argument(p)
    p.add_argument(
        "--profile", action="store_true", help="afterwards, phase timers and cProfile of one run of each"
    )
    p.add_argument("--out", type=Path, default=RESULTS / "grpo_vs_trl.json")
    args = parse_checked(p)
    check_rollout_divides(
        p, args, "--micro-batch must divide prompts-per-step x group-size (one optimizer step per rollout)"
    )
    quiet_libraries()
    device, tmp = start_run(args, "grpo_vs_trl-", note_load=False)
    model = args.model or train_sft_policy(args, tmp / "sft")
    work = build_workload(args, model, max(args.steps, args.warmup_steps))
    print(
        f"data: {work.num_prompts} prompts; {args.prompts_per_step} prompts x {args.group_size} samples per step, "
        f"max {args.max_new_tokens} new tokens, micro-batch {args.micro_batch}, {args.steps} steps; policy {model}"
    )

    results = {f"beta={beta}": compare(args, model, beta, work, tmp, device) for beta in args.beta}

    print(f"\nsummary (median of {args.repeats}; alignkit/TRL):")
    mem_key, _ = memory_key_and_label()
    for key, res in results.items():
        r, m = res["ratio_alignkit_over_trl"], res["median"]
        print(
            f"  {key:10s} time {r['s_per_step']:.3f}x (target <= 0.7), memory {r.get(mem_key, float('nan')):.3f}x, "
            f"completion tokens/s {r['completion_tokens_per_s']:.3f}x; mean completion tokens "
            f"{m['alignkit']['mean_completion_tokens']:.2f} vs {m['trl']['mean_completion_tokens']:.2f}"
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)  # the profiles are written beside it
    phases = {f"beta={b}": profile(args, model, b, work, tmp) for b in args.beta} if args.profile else None

    report = {
        **report_header(args, device, described={"policy": policy_description(args, model)}),
        "completion_tokens": "sampled tokens per completion, the end-of-turn token included (both sides)",
        "data": {"prompts": work.num_prompts},
        **results,
        **({"phases_s_per_step": phases} if phases else {}),
    }
    write_report(args.out, report)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
