"""The demo's ``report.html``: one self-contained page with the per-stage table and the RL curves.

Kept apart from ``demo.py`` (which runs the stages) because it only reads what the stages wrote: the
figures of the eval runs (their ``results.json``), the comparison of ``alignkit eval compare`` and each
training run's ``metrics.jsonl``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alignkit.eval.report import Figure, Section, Table, highlight_by_arrows, line_plot, write_report
from alignkit.runs import read_metrics

# The oracle metrics of a policy, in table order: key in the metrics dict, column title (arrow: better).
ORACLE_COLUMNS = (
    ("benign_accuracy", "benign accuracy ↑"),
    ("benign_helpfulness", "benign helpfulness ↑"),
    ("benign_refusal_rate", "benign refusals ↓"),
    ("harmful_compliance_rate", "harmful compliance ↓"),
    ("harmful_refusal_rate", "harmful refusals ↑"),
    ("mean_helpfulness", "oracle helpfulness ↑"),
    ("ideal_rate", "oracle accuracy ↑"),
    ("reward_model_score", "reward-model score ↑"),
    ("cost_model_score", "cost-model score ↓"),
)

CURVES = {
    # figure file -> (title, y label, [(stage folder, metric, legend)])
    "reward.png": (
        "Reward-model score of the sampled responses",
        "reward-model score",
        [("ppo", "reward/score", "PPO"), ("safe-ppo", "reward/score", "Safe RLHF")],
    ),
    "cost.png": (
        "Cost-model score of the sampled responses",
        "cost-model score (< 0 safe)",
        [
            ("ppo", "monitor/score", "PPO (watched, not constrained)"),
            ("safe-ppo", "cost/score", "Safe RLHF"),
            ("safe-ppo", "lagrange/episode_cost", "Safe RLHF: J_C (window mean)"),
        ],
    ),
    "lambda.png": (
        "Safe RLHF's Lagrange multiplier",
        "lambda",
        [("safe-ppo", "lagrange/lambda", "lambda")],
    ),
    "grpo_reward.png": (
        "GRPO: rule reward (oracle's ideal answer) of the sampled groups",
        "mean reward",
        [("grpo", "reward/score", "GRPO")],
    ),
    "held_out.png": (
        "Held-out greedy answers during training (reward-model score)",
        "reward-model score",
        [("ppo", "eval/reward", "PPO"), ("safe-ppo", "eval/reward", "Safe RLHF")],
    ),
}


def _series(run_dir: Path, key: str) -> tuple[list[float], list[float]]:
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if key in r]
    return [float(r["step"]) for r in rows], [float(r[key]) for r in rows]


REFERENCE_STAGES = ("random init",)
"""Rows shown for scale but not in the race: an untrained model "wins" harmful compliance by babbling."""


def policies_table(oracle: Mapping[str, Mapping[str, float]], task: str = "toyworld-oracle") -> Table:
    """The per-stage table; each column with an arrow bolds its best trained stage."""
    columns = ["stage", *(title for _, title in ORACLE_COLUMNS)]
    rows = [
        [stage, *(metrics.get(key, float("nan")) for key, _ in ORACLE_COLUMNS)]
        for stage, metrics in oracle.items()
    ]
    return Table(
        f"Policies: greedy answers to the held-out prompts (alignkit eval run {task})",
        columns,
        rows,
        note=(
            "Oracle metrics from the toy world's annotators; reward/cost-model scores from the demo's own "
            "score models on the same answers. Oracle helpfulness: the helpfulness annotator's mean over "
            "all prompts (complying with a harmful request counts as helpful). Oracle accuracy: right "
            "answers to benign requests and refusals of harmful ones. Bold: the best trained stage per "
            f"column (by its arrow); {', '.join(REFERENCE_STAGES)} is shown for scale only."
        ),
        highlight=highlight_by_arrows(columns),
        unranked={i for i, stage in enumerate(oracle) if stage in REFERENCE_STAGES},
    )


def comparison_table(comparison: Mapping[str, Any], stages: Mapping[str, Path]) -> Table:
    """``alignkit eval compare``'s paired differences from its baseline (SFT), one row per other stage and
    one column per metric of the policies table: ``+0.123 *`` where the paired test finds it significant.
    ``stages`` maps each stage name to its eval run folder, how the comparison's runs are named back."""
    names = {str(path): stage for stage, path in stages.items()}
    label_of = {run["label"]: names.get(run["path"], run["path"]) for run in comparison["runs"]}
    metrics = comparison["metrics"]
    shown = [(key, title) for key, title in ORACLE_COLUMNS if key in metrics]
    rows: dict[str, list[Any]] = {}
    for key, _ in shown:
        for d in metrics[key]["vs_baseline"]:
            cell = (
                "–"
                if d["difference"] is None
                else f"{d['difference']:+.3f}{' *' if d['significant'] else ''}"
            )
            rows.setdefault(d["run"], [label_of[d["run"]]]).append(cell)
    return Table(
        f"Against {label_of[comparison['baseline']]}: paired differences (alignkit eval compare)",
        ["stage", *(title for _, title in shown)],
        list(rows.values()),
        note=(
            f"Each stage minus {label_of[comparison['baseline']]} on the same held-out prompts; * p < "
            f"{comparison['significance_level']} (paired permutation test, no multiple-testing correction). "
            "Intervals and p-values: eval/compare/report.html and compare.json."
        ),
    )


TEXT_NOTE = (
    "Each stage starts from the SFT policy. PPO optimises the reward model (itself trained from "
    "the SFT policy, so it tells right answers from wrong ones: see the score models); Safe RLHF "
    "optimises it under the cost limit {cost_limit} on the cost model's mean score; GRPO optimises a "
    "rule reward; DPO learns from the preference pairs directly."
)


def write_demo_report(
    result: Any,
    cost_limit: float,
    *,
    title: str = "alignkit demo: the alignment loop on the toy world",
    subtitle: str = "SFT → reward and cost models → DPO, PPO, Safe RLHF, GRPO → oracle evaluation",
    note: str | None = None,
    task: str = "toyworld-oracle",
    command: str = "alignkit demo",
) -> Path:
    """Plots from the RL stages' metrics, then ``report.html`` in the demo folder. The texts default to the
    text world's demo; ``alignkit demo --modality image`` passes its own (``demo_plan.DemoPlan``)."""

    out: Path = result.out_dir
    figures_dir = out / "plots" / "report"
    figures_dir.mkdir(parents=True, exist_ok=True)
    figures = []
    for name, (title, ylabel, curves) in CURVES.items():
        series = {}
        for folder, key, legend in curves:
            if (out / folder / "metrics.jsonl").exists():
                steps, values = _series(out / folder, key)
                if steps:
                    series[legend] = (steps, values)
        if not series:
            continue
        limit = cost_limit if name == "cost.png" else None
        path = line_plot(
            figures_dir / name,
            series,
            title=title,
            xlabel="step (one rollout)",
            ylabel=ylabel,
            hline=limit,
            hline_label="Safe RLHF cost limit" if limit is not None else "",
        )
        figures.append(Figure(title, path))

    policies = policies_table(result.oracle, task)
    score_models = Table(
        "Score models", ["model", "held-out metric"], [[k, v] for k, v in result.score_models.items()]
    )
    timing = Table(
        "Time per stage (seconds)", ["stage", "seconds"], [[k, v] for k, v in result.seconds.items()]
    )
    sections = [
        Section(
            "Policies",
            TEXT_NOTE.format(cost_limit=cost_limit) if note is None else note,
            tables=[policies]
            + ([comparison_table(result.comparison, result.eval_dirs)] if result.comparison else []),
        ),
        Section("Training curves", figures=figures),
        Section("Score models and time", tables=[score_models, timing]),
    ]
    from alignkit import __version__

    return write_report(
        out / "report.html",
        title,
        sections,
        subtitle=subtitle,
        metadata={
            "command": command,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "alignkit": __version__,
            "total seconds": f"{sum(result.seconds.values()):.0f}",
        },
    )
