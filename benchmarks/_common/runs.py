"""The run schedule and what is reported of it: alternating timed runs after a warm-up, per-run summaries
over steps 2..N, medians, and the loss-curve agreement of two trainers."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

Runs = dict[str, list[dict[str, Any]]]


def timed_summary(raw: dict[str, Any], steps: int) -> dict[str, Any]:
    """What both comparisons report of a run, timed over steps 2..N (end of step 1 to end of step N)."""
    ends = raw["step_end_s"]
    assert len(ends) == steps, f"expected {steps} step timings, got {len(ends)}"
    seconds = ends[-1] - ends[0]
    cpu = raw["step_end_cpu_s"]
    return {
        "timed_steps": steps - 1,
        "timed_s": seconds,
        "cpu_s_per_step": (cpu[-1] - cpu[0]) / (steps - 1),
        "steps_per_s": (steps - 1) / seconds,
        "first_loss": raw["losses"][0],
        "last_loss": raw["losses"][-1],
        "wall_s": raw["wall_s"],
        **{k: v for k, v in raw.items() if k.endswith("_mib")},
    }


def pair_summary(raw: dict[str, Any], loss_tokens: list[int], steps: int, micro_batch: int) -> dict[str, Any]:
    """``timed_summary`` plus pairs/s and scored tokens/s (``loss_tokens``: per step) over steps 2..N."""
    out = timed_summary(raw, steps)
    return out | {
        "pairs_per_s": (steps - 1) * micro_batch / out["timed_s"],
        "loss_tokens_per_s": sum(loss_tokens[1:steps]) / out["timed_s"],
    }


def describe_pair_run(r: dict[str, Any]) -> str:
    """A timed preference run's line in the repeats log."""
    return f"{r['pairs_per_s']:8.1f} pairs/s {r['cpu_s_per_step']:.4f} CPU s/step  first loss {r['first_loss']:.8f}"


def alternating_runs(
    once: Callable[[str, int, str], dict[str, Any]],
    summarise: Callable[[dict[str, Any]], dict[str, Any]],
    args: Any,
    describe: Callable[[dict[str, Any]], str],
    label: str = "",
    names: Sequence[str] = ("alignkit", "trl"),
    name_width: int = 8,
) -> tuple[Runs, Runs]:
    """A warm-up run of each trainer, then ``--repeats`` timed rounds alternating them (alignkit, TRL, ...).

    ``once(name, steps, tag) -> raw``; ``summarise(raw) -> run``; ``describe(run) -> str`` for the line.
    Returns (summaries, raws) per trainer.
    """
    print(f"\n{label}warm-up: {args.warmup_steps} steps of each")
    for name in names:
        once(name, args.warmup_steps, "warmup")
    runs: Runs = {n: [] for n in names}
    raws: Runs = {n: [] for n in names}
    for i in range(args.repeats):
        for name in names:
            raws[name].append(once(name, args.steps, str(i)))
            runs[name].append(summarise(raws[name][-1]))
            print(f"  repeat {i + 1}/{args.repeats} {name:{name_width}s} {describe(runs[name][-1])}")
    return runs, raws


def alternating_pair_runs(
    alignkit_once: Callable[[int, str], dict[str, Any]],
    trl_once: Callable[[int, str], dict[str, Any]],
    summarise: Callable[[dict[str, Any]], dict[str, Any]],
    args: Any,
    label: str,
) -> tuple[Runs, Runs]:
    """``alternating_runs`` of a preference comparison: ``*_once(steps, tag) -> raw``; alignkit's runs are
    checked to have trained on ``--micro-batch`` pairs every step."""

    def once(name: str, steps: int, tag: str) -> dict[str, Any]:
        if name == "trl":
            return trl_once(steps, tag)
        raw = alignkit_once(steps, tag)
        assert raw["units_logged"] == [float(args.micro_batch)] * steps, "alignkit's pair counts differ"
        return raw

    return alternating_runs(once, summarise, args, describe_pair_run, label=label)


def loss_curve_diff(raws: Runs) -> float:
    """Max |alignkit - TRL| over the first timed run's per-step losses."""
    pairs = zip(raws["alignkit"][0]["losses"], raws["trl"][0]["losses"], strict=True)
    return max(abs(x - y) for x, y in pairs)


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def median_summary(
    runs: Runs, skip: Sequence[str] = ("timed_steps", "rss_base_mib")
) -> dict[str, dict[str, Any]]:
    """Per trainer: the median of every numeric field over its runs; ``first_loss``/``last_loss`` of run 1."""
    firsts = ("first_loss", "last_loss")
    return {
        name: {k: median_of(rs, k) for k in rs[0] if k not in (*skip, *firsts)}
        | {k: rs[0][k] for k in firsts if k in rs[0]}
        for name, rs in runs.items()
    }


def paired_medians(runs: Runs) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """``median_summary`` of an alignkit-vs-TRL comparison, and its alignkit and TRL entries."""
    summary = median_summary(runs)
    return summary, summary["alignkit"], summary["trl"]


def ratios(a: dict[str, Any], b: dict[str, Any], keys: Sequence[str]) -> dict[str, float]:
    """``a[k] / b[k]`` for each key where ``b[k]`` is not zero."""
    return {k: a[k] / b[k] for k in keys if b[k]}


def first_loss_identical(runs: Runs) -> bool:
    """Every timed alignkit run started from the same loss (the runs are deterministic)."""
    return all(r["first_loss"] == runs["alignkit"][0]["first_loss"] for r in runs["alignkit"])
