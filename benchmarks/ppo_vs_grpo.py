"""Time alignkit's PPO and Safe RLHF (PPO-Lagrangian) against alignkit's own GRPO, per iteration.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ppo_vs_grpo.py --steps 11 --repeats 3
    python benchmarks/ppo_vs_grpo.py --model my-sft-checkpoint --prompts-per-step 16 --group-size 8 \\
        --max-new-tokens 256 --micro-batch 8 --lr 1e-6

TRL 1.x has no PPO trainer any more, so there is no outside PPO to race: PPO is measured against our
own GRPO on the same work and reported per iteration. One iteration (= one ``trainer.steps`` step) is
one rollout plus its updates. Six trainers, all through their public ``train(config)``:

- ``ppo``: ``alignkit.train.ppo.train``, P*G prompts x 1 sample (the usual PPO rollout);
- ``ppo-grouped``: the same PPO with P prompts x G samples, so the prompt count is not the difference;
- ``safe-ppo``: ``alignkit.train.safe_ppo.train`` (a cost scorer and a cost critic), P*G prompts x 1;
- ``ppo-shared``, ``safe-ppo-shared``: the same with ``critic.shared: true`` (value heads on the policy's
  backbone: no critic model, its values read off the sampling loop, its loss in the policy's update);
- ``ppo-shared-grouped``: ``ppo-shared`` with P prompts x G samples, GRPO's rollout shape (its samples
  share their prompt's computation as GRPO's do);
- ``grpo``: ``alignkit.train.grpo.train``, P prompts x G samples (its group).

What is held equal, and why:

- **Same policy.** Without ``--model``, a short SFT of the toy recipe (``examples/toyworld/sft.yaml``,
  ``--sft-steps`` steps; ``train_sft_policy`` of ``grpo_vs_trl.py``) gives the starting policy, so
  answers end by themselves at sensible lengths. Every trainer loads it, and every reference is an fp32
  copy loaded from it.
- **Same samples per step, same sampling.** P*G samples per rollout on all four (default 16 x 8 =
  128), at most ``--max-new-tokens`` (32) tokens, temperature 1, top-p 1, top-k off, the whole rollout
  in one generate call (``rollout.generation_batch_size`` = P*G). Prompts are a pure function of
  (seed, step, prompts per step), so ``ppo`` and ``safe-ppo`` roll out from the same prompts, and so do
  ``ppo-grouped`` and ``grpo`` (checked). Samples differ between trainers (the policies drift apart
  after step 1), so the table shows mean completion length and completion tokens/s.
- **Same rewards, no reward model.** A rule reward for all (``--reward``, default
  ``alignkit.toyworld.oracle:ideal_reward``) and a rule cost for Safe RLHF (``--cost``, default
  ``alignkit.toyworld.oracle:harm_cost``), so no reward-model forward skews the comparison. With a
  function scorer the critics start from the policy's weights with a fresh head (PPO's default).
- **Same updates.** One optimizer step per rollout for every trained model (``trainer.mini_batch_size``
  = P*G, ``update_epochs: 1``), micro-batch ``--micro-batch`` (32), the same ``--lr`` for every policy
  (critics: ``--critic-lr``), AdamW betas, clipping, constant LR, fp32 without autocast or gradient
  checkpointing. Both pay a reference forward: GRPO with ``--beta`` (0.04, the toy recipe's) and PPO
  with ``ppo.kl_coef`` (its default 0.02 unless ``--kl-coef``); the counts are checked.
- **Same bookkeeping.** All log every step, none evaluates (no eval split) or saves inside the timed
  region, none prints per step.

What differs is the algorithm, and that is what is measured: PPO re-reads the rollout with the policy
for its old log-probs and entropy every step (its KL-shaped reward needs ``log pi_old``), runs a critic
forward, GAE, and a critic update (Safe RLHF: a second critic forward and update); GRPO with one
optimizer step per rollout is exactly on-policy and takes no old-log-prob forward.

What is timed: steps 2..N of each run (end of step 1 to end of step N, from alignkit's ``elapsed_s``;
step 1 carries one-off costs), as in the other scripts. A short warm-up run of each trainer comes first,
then ``--repeats`` rounds of timed runs (ppo, ppo-grouped, safe-ppo, grpo, ppo, ...); the report gives
medians. ``wall s`` is the whole call (model loading, final save and plots). Memory: as
``sft_vs_trl.py`` (CUDA peak allocation, or growth of the process's RSS over the call).

Phases: the trainers time themselves (``timing/*`` in every metrics line, ``alignkit.train.timing``):
generation (``timing/rollout``), scoring, the policy's old log-prob + entropy forward, the reference
forward, each critic's forward (``timing/values``, ``timing/cost_values``), KL shaping + GAE + advantages,
and each trained model's update (``timing/update_<model>``: forward + backward + clipping + optimizer). The
phase table covers the same steps 2..N as ``s / step``; ``other`` is the rest (micro-batch assembly,
metrics, logging). Nothing of alignkit is patched but ``HFGenerator.generate``'s public call, watched to
check every rollout's prompts and sizes. ``--profile`` adds one cProfile run of
each trainer, written to ``results/ppo_vs_grpo_profile_<trainer>.txt``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from _common import (
    RESULTS,
    add_adam_arguments,
    add_policy_arguments,
    add_prompt_arguments,
    add_rollout_arguments,
    alternating_runs,
    benchmark_parser,
    check_rollout_divides,
    describe_rollout_run,
    median_summary,
    memory_key_and_label,
    parse_checked,
    policy_description,
    profile_once,
    quiet_libraries,
    ratios,
    report_header,
    run_rollout_timed,
    start_run,
    summarise_rollout_run,
    train_sft_policy,
    write_report,
)

TRAINERS = ("ppo", "ppo-shared", "ppo-grouped", "ppo-shared-grouped", "safe-ppo", "safe-ppo-shared", "grpo")
PHASES = {
    "generation": "generation",
    "scoring": "scoring (reward, cost)",
    "old_logps": "old log-probs fwd",
    "reference": "reference forward",
    "critic_forward": "critic forward",
    "cost_critic_forward": "cost critic forward",
    "advantages": "KL shaping, GAE, advantages",
    "update_policy": "update: actor",
    "update_critic": "update: critic",
    "update_cost_critic": "update: cost critic",
}
TIMING_KEYS = {
    "generation": "timing/rollout",
    "scoring": "timing/scoring",
    "old_logps": "timing/old_logps",
    "reference": "timing/reference",
    "critic_forward": "timing/values",
    "cost_critic_forward": "timing/cost_values",
    "advantages": "timing/advantages",
    "update_policy": "timing/update_policy",
    "update_critic": "timing/update_value",
    "update_cost_critic": "timing/update_cost_value",
}
"""Each phase of the table: the ``timing/*`` key the trainers log for it."""


def shape(args: argparse.Namespace, name: str) -> tuple[int, int]:
    """(prompts, samples per prompt) of one trainer's rollout: P*G x 1, or P x G for the grouped ones."""
    P, G = args.prompts_per_step, args.group_size
    return (P, G) if name in ("ppo-grouped", "ppo-shared-grouped", "grpo") else (P * G, 1)


def label(args: argparse.Namespace, name: str) -> str:
    prompts, per_prompt = shape(args, name)
    title = {"ppo": "PPO", "ppo-shared": "PPO-sh", "ppo-grouped": "PPO", "safe-ppo": "Safe"}.get(name)
    title = title or {"ppo-shared-grouped": "PPO-sh"}.get(name)
    title = title or {"safe-ppo-shared": "Safe-sh", "grpo": "GRPO"}[name]
    return f"{title} {prompts}x{per_prompt}"


# ------------------------------------------------------------------------------------------------ config
def trainer_config(args: argparse.Namespace, name: str, model: str, steps: int, run_dir: Path) -> Any:
    """The config of one trainer, built like ``alignkit train <algo> key=value ...`` builds it."""
    from alignkit.config import load_config
    from alignkit.train.grpo import GRPOConfig
    from alignkit.train.ppo import PPOConfig
    from alignkit.train.safe_ppo import SafePPOConfig

    prompts, per_prompt = shape(args, name)
    samples = prompts * per_prompt
    grad_norm = "null" if args.max_grad_norm is None else args.max_grad_norm
    overrides = [
        f"model.path={model}",
        "model.dtype=float32",
        "model.gradient_checkpointing=false",
        f"reward.path={args.reward}",
        f"data.train.source={args.data}",
        f"data.train.template={args.template}",
        f"data.train.split={args.split}",
        "data.eval=null",
        f"rollout.prompts_per_step={prompts}",
        f"rollout.samples_per_prompt={per_prompt}",
        f"rollout.max_new_tokens={args.max_new_tokens}",
        "rollout.temperature=1.0",
        "rollout.top_p=1.0",
        "rollout.top_k=0",
        f"rollout.generation_batch_size={samples}",
        f"trainer.steps={steps}",
        f"trainer.lr={args.lr}",
        f"trainer.adam_betas=[{args.betas[0]}, {args.betas[1]}]",
        "trainer.weight_decay=0.0",
        "trainer.lr_scheduler=constant",
        "trainer.warmup_ratio=0.0",
        "trainer.update_epochs=1",
        f"trainer.mini_batch_size={samples}",
        f"trainer.micro_batch_size={args.micro_batch}",
        f"trainer.max_grad_norm={grad_norm}",
        "trainer.eval_every=0",
        "trainer.save_every=0",
        "trainer.log_every=1",
        f"trainer.seed={args.seed}",
        "trainer.mixed_precision='no'",  # quoted: YAML reads a bare no as false
        f"run.output_dir={run_dir}",
        "run.overwrite=true",
        "run.tensorboard=false",
        "run.progress=false",
    ]
    if name == "grpo":
        extra = ["advantage=grpo", f"beta={args.beta}", "clip_eps=0.2", "aggregation=token_mean"]
        return load_config(GRPOConfig, None, [*overrides, *extra])
    extra = [f"critic.lr={args.critic_lr}", "ppo.clip_eps=0.2"]
    if args.kl_coef is not None:
        extra.append(f"ppo.kl_coef={args.kl_coef}")
    if "-shared" in name:
        extra += ["critic.shared=true", "cost_critic.shared=true"]
    if name.startswith("safe-ppo"):
        extra += [f"cost.path={args.cost}", f"cost_critic.lr={args.critic_lr}"]
        return load_config(SafePPOConfig, None, [*overrides, *extra])
    return load_config(PPOConfig, None, [*overrides, *extra])


# ------------------------------------------------------------------------------------------ instruments
# ---------------------------------------------------------------------------------------------- trainers
def run_trainer(args: argparse.Namespace, name: str, model: str, steps: int, run_dir: Path) -> dict[str, Any]:
    """One call of the trainer's public ``train(config)`` with the memory meter; phases from its metrics."""
    import alignkit.train.grpo as grpo
    import alignkit.train.ppo as ppo
    import alignkit.train.safe_ppo as safe_ppo

    train = {"grpo": grpo.train, "safe-ppo": safe_ppo.train, "safe-ppo-shared": safe_ppo.train}.get(
        name, ppo.train
    )
    steps_log, raw = run_rollout_timed(train, trainer_config(args, name, model, steps, run_dir), steps)
    return raw | {
        "phases_per_step": [{k: r.get(key, 0.0) for k, key in TIMING_KEYS.items()} for r in steps_log],
        "phase_calls": {k: sum(key in r for r in steps_log) for k, key in TIMING_KEYS.items()},
    }


def summarise(raw: dict[str, Any], steps: int) -> dict[str, Any]:
    """``_common.summarise_rollout_run`` (times, completions, memory over steps 2..N) plus phases per step."""
    out = summarise_rollout_run(raw, steps)
    later = raw["phases_per_step"][1:steps]  # steps 2..N, as s / step
    per_step = {k: sum(p[k] for p in later) / (steps - 1) for k in PHASES}
    per_step["other"] = out["s_per_step"] - sum(per_step.values())
    out.update({f"phase/{k}": v for k, v in per_step.items()})
    return out


def check_run(raw: dict[str, Any], name: str, args: argparse.Namespace, steps: int) -> list[str]:
    """What went wrong with one run's workload (empty: every check passed)."""
    prompts, per_prompt = shape(args, name)
    calls, problems = raw["phase_calls"], []
    sizes = [len(c["lengths"]) for c in raw["calls"]]
    if sizes != [prompts * per_prompt] * steps:
        problems.append(f"rollout sizes {sizes}, expected {steps} x {prompts * per_prompt}")
    # One optimizer step per rollout: GRPO is exactly on-policy and needs no old log-probs; PPO reads
    # them off the sampling loop (fp32, temperature 1), and its critics' values come from their update
    # forward (train/critic.py), so neither trainer runs a separate old-policy or critic forward.
    # A shared critic (value heads on the policy) has no model of its own: its values are read off the
    # sampling loop and it learns in the policy's update.
    expected = {"generation": steps, "reference": steps, "update_policy": steps, "old_logps": 0}
    if name in ("ppo", "ppo-grouped", "safe-ppo"):
        expected |= {"critic_forward": 0, "update_critic": steps}
        if name == "safe-ppo":
            expected |= {"cost_critic_forward": 0, "update_cost_critic": steps}
    for key, want in expected.items():
        if calls.get(key, 0) != want:
            problems.append(f"{key}: {calls.get(key, 0)} calls, expected {want}")
    unexpected = {"critic_forward", "cost_critic_forward", "update_critic", "update_cost_critic"} - set(
        expected
    )
    problems += [f"{key}: {calls[key]} calls, expected none" for key in unexpected if calls.get(key)]
    return problems


# ---------------------------------------------------------------------------------------------- reporting
def print_results(args: argparse.Namespace, names: list[str], median: dict[str, Any], device: str) -> None:
    mem_key, mem_label = memory_key_and_label()
    ratio_names = [n for n in names if n != "grpo"] if "grpo" in names else []
    width, ratio_width = 14, 18
    head = "".join(f"{label(args, n):>{width}s}" for n in names)
    head += "".join(f"{n + '/grpo':>{ratio_width}s}" for n in ratio_names)
    rows = [
        (f"s / step (steps 2..{args.steps})", "s_per_step", "{:.4f}", True),
        ("steps/s", "steps_per_s", "{:.2f}", False),
        ("process CPU s / step", "cpu_s_per_step", "{:.4f}", True),
        ("completions / step", "completions_per_step", "{:.1f}", False),
        ("mean completion tokens", "mean_completion_tokens", "{:.2f}", True),
        ("completion tokens/s", "completion_tokens_per_s", "{:,.0f}", True),
        ("mean reward", "mean_reward", "{:.3f}", False),
        ("wall s (whole call)", "wall_s", "{:.2f}", True),
        (mem_label, mem_key, "{:.1f}", True),
    ]
    print(f"\nmedian of {args.repeats} runs each ({device}):")
    print(f"{'':32s}{head}")
    for text, key, fmt, with_ratio in rows:
        line = f"{text:32s}" + "".join(f"{fmt.format(median[n][key]):>{width}s}" for n in names)
        for n in ratio_names:
            g = median["grpo"][key]
            line += f"{median[n][key] / g:>{ratio_width}.3f}" if with_ratio and g else " " * ratio_width
        print(line)

    print(
        f"\nseconds per step by phase (steps 2..{args.steps}, median of {args.repeats} runs; share of the step):"
    )
    print(f"{'':32s}" + "".join(f"{label(args, n):>18s}" for n in names))
    for key, text in (*PHASES.items(), ("other", "other"), ("total", "total (= s / step)")):
        cells = []
        for n in names:
            total = median[n]["s_per_step"]
            value = total if key == "total" else median[n][f"phase/{key}"]
            cells.append(f"{value:.4f} ({100 * value / total:3.0f}%)" if value or key == "other" else "-")
        print(f"{text:32s}" + "".join(f"{c:>18s}" for c in cells))


# ------------------------------------------------------------------------------------------------- main
def main() -> None:
    p = benchmark_parser(__doc__)
    add_policy_arguments(p)
    add_prompt_arguments(p)
    p.add_argument(
        "--cost", default="alignkit.toyworld.oracle:harm_cost", help="Safe RLHF's rule cost 'module:function'"
    )
    p.add_argument(
        "--trainers", nargs="+", choices=TRAINERS, default=list(TRAINERS), help="which trainers to run"
    )
    add_rollout_arguments(
        p,
        prompts_help="P: prompts per rollout of GRPO and ppo-grouped (PPO and Safe RLHF: P*G prompts x 1 sample)",
        group_help="G: samples per prompt of GRPO and ppo-grouped",
        steps_help="iterations (rollout + updates) per timed run",
        lr_help="policy learning rate (all trainers)",
    )
    p.add_argument("--critic-lr", type=float, default=1e-4, help="critic learning rate (PPO, Safe RLHF)")
    add_adam_arguments(p)
    p.add_argument("--beta", type=float, default=0.04, help="GRPO's KL weight (> 0: a reference model)")
    p.add_argument("--kl-coef", type=float, default=None, help="PPO's ppo.kl_coef (default: the trainer's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="afterwards, a cProfile run of each trainer")
    p.add_argument("--out", type=Path, default=RESULTS / "ppo_vs_grpo.json")
    args = parse_checked(p)
    if args.warmup_steps < 1:
        p.error("--warmup-steps must be at least 1")
    if args.group_size < 2:
        p.error("--group-size must be at least 2 (GRPO's group)")
    check_rollout_divides(p, args, "--micro-batch must divide prompts-per-step x group-size")
    if args.beta <= 0 or args.kl_coef == 0:
        print("note: a zero KL weight; only the trainer with a weight > 0 pays a reference forward")
    names = [n for n in TRAINERS if n in args.trainers]

    quiet_libraries()
    device, tmp = start_run(args, "ppo_vs_grpo-", note_load=False)
    model = args.model or train_sft_policy(args, tmp / "sft")
    samples = args.prompts_per_step * args.group_size
    print(
        f"{samples} samples per step: "
        + ", ".join(f"{n} {label(args, n).split()[1]}" for n in names)
        + f"; max {args.max_new_tokens} new tokens, micro-batch {args.micro_batch}, one optimizer step per "
        f"rollout per trained model, {args.steps} steps; policy {model}"
    )

    problems: dict[str, list[str]] = {n: [] for n in names}
    prompts_seen: dict[str, list[list[str]]] = {}

    def once(name: str, steps: int, tag: str) -> dict[str, Any]:
        raw = run_trainer(args, name, model, steps, tmp / f"{name}-{tag}")
        problems[name] += [f"{tag}: {m}" for m in check_run(raw, name, args, steps)]
        if tag != "warmup":
            prompts_seen.setdefault(name, [c["prompts"] for c in raw["calls"]])
        return raw

    runs, _ = alternating_runs(
        once, lambda raw: summarise(raw, args.steps), args, describe_rollout_run, names=names, name_width=12
    )

    median = median_summary(runs)
    print_results(args, names, median, device)
    same_prompts = {
        f"{a} == {b}": prompts_seen[a] == prompts_seen[b]
        for a, b in (
            ("ppo", "safe-ppo"),
            ("ppo", "ppo-shared"),
            ("ppo", "safe-ppo-shared"),
            ("ppo-grouped", "grpo"),
            ("ppo-shared-grouped", "grpo"),
        )
        if a in prompts_seen and b in prompts_seen
    }
    mem_key, _ = memory_key_and_label()
    over_grpo = (
        {
            f"{n}/grpo": ratios(
                median[n],
                median["grpo"],
                ("s_per_step", "cpu_s_per_step", "completion_tokens_per_s", mem_key, "wall_s"),
            )
            for n in names
            if n != "grpo"
        }
        if "grpo" in names
        else {}
    )
    print(f"\nsummary (median of {args.repeats}):")
    for key, r in over_grpo.items():
        print(
            f"  {key:18s} time {r['s_per_step']:.3f}x, CPU time {r['cpu_s_per_step']:.3f}x, "
            f"memory {r.get(mem_key, float('nan')):.3f}x"
        )
    failed = {n: p for n, p in problems.items() if p}
    print(
        f"checks: same prompts {same_prompts}; workload (rollout sizes, one optimizer step per rollout per "
        f"trained model, one reference pass per step, old log-probs only for PPO, critics only for "
        f"PPO): {failed if failed else 'all passed'}"
    )

    args.out.parent.mkdir(parents=True, exist_ok=True)  # the profiles are written beside it
    if args.profile:
        for name in names:
            path = args.out.with_name(f"{args.out.stem}_profile_{name}.txt")
            profile_once(
                lambda name=name: run_trainer(args, name, model, args.steps, tmp / f"{name}-prof"), 40, path
            )
            print(f"cProfile of one {name} run (whole call) -> {path}")

    described = {
        "policy": policy_description(args, model),
        "workloads": {
            n: {"prompts": shape(args, n)[0], "samples_per_prompt": shape(args, n)[1]} for n in names
        },
    }
    phases = "seconds per step over steps 2..N (phase/<name>); other = s_per_step - the phases: " + "; ".join(
        f"{k} = {v}" for k, v in PHASES.items()
    )
    report = {
        **report_header(
            args,
            device,
            described=described,
            timing="steps 2..N: end of step 1 to end of step N (alignkit elapsed_s at each metrics line)",
            measured={"phases": phases},
        ),
        "completion_tokens": "sampled tokens per completion, the end-of-turn token included",
        "checks": {"same_prompts": same_prompts, "problems": problems},
        "ratio_over_grpo": over_grpo,
        "median": median,
        "runs": runs,
    }
    write_report(args.out, report)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
