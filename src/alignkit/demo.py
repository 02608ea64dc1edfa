"""``alignkit demo``: the alignment loop on the offline toy world, measured by the world's oracles.

Every stage is an ordinary alignkit run (the same ``train(config)`` the CLI calls) writing its own run
folder under the demo folder. The demo ends with an eval stage that is ``alignkit eval`` itself: every
policy is evaluated by the ``toyworld-oracle`` task (held-out prompts judged by the toy world's
helpfulness and harm oracles, and scored by the demo's reward and cost models) into its own eval run
folder ``eval/<stage>/``, and ``alignkit eval compare`` sets each policy against SFT in ``eval/compare/``.
The before/after table (``results.md``, ``results.json``, ``report.html``) is read from those runs'
``results.json``; the curves of each stage are in ``plots/``. The recipes are package data
(``toyworld/recipes/*.yaml``), so the installed package runs the demo without the repository;
``examples/toyworld/*.yaml`` link to them.

``alignkit demo --modality image`` runs the same code on the visual toy world (SFT-V, reward-V and cost-V
models, DPO-V and Safe RLHF-V, judged by ``alignkit eval run toyworld-visual-oracle`` on held-out
pictures), from the recipes in ``toyworld/recipes/visual/``: each modality is a ``demo_plan.DemoPlan``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignkit.config import ConfigError, load_config
from alignkit.demo_plan import IMAGE_PLAN, RECIPES, DemoPlan, text_world
from alignkit.demo_report import ORACLE_COLUMNS, REFERENCE_STAGES, TEXT_NOTE
from alignkit.runs import prepare_run_dir, write_json


def recipe(name: str, output_dir: str | Path, *overrides: str, recipes: Path = RECIPES) -> Any:
    """The toy world's recipe ``name`` (the YAML behind ``examples/toyworld/<name>.yaml``; the visual
    world's with ``recipes=RECIPES / "visual"``), loaded and typed."""
    from alignkit.train.registry import trainer_for

    config_cls, _ = trainer_for(name)
    return load_config(config_cls, recipes / f"{name}.yaml", [f"run.output_dir={output_dir}", *overrides])


@dataclass
class DemoResult:
    out_dir: Path
    oracle: dict[str, dict[str, float]] = field(default_factory=dict)
    """stage name -> oracle metrics of that stage's policy on held-out prompts."""
    score_models: dict[str, float] = field(default_factory=dict)
    """score-model stage -> its held-out metric."""
    seconds: dict[str, float] = field(default_factory=dict)
    eval_dirs: dict[str, Path] = field(default_factory=dict)
    """stage name -> its ``alignkit eval run toyworld-oracle`` folder (the source of ``oracle``)."""
    comparison: dict[str, Any] = field(default_factory=dict)
    """``alignkit eval compare`` of the policies against SFT (``eval/compare/compare.json``)."""
    modality: str = "text"


EVAL_TASK = "toyworld-oracle"
EVAL_KEYS: dict[str, Any] = {"dtype": "float32", "batch_size": 64, "report": False}
"""The demo's eval runs: float32 weights and batches of 64, as the toy world's models were always
evaluated; no per-run report.html (matplotlib costs seconds per run; the demo writes one report)."""


def eval_figures(run_dir: str | Path, task: str = EVAL_TASK) -> dict[str, float]:
    """The task's metrics from an eval run's ``results.json`` (a metric without items, e.g. the reward
    model's score when none was given, is ``nan``: the table shows it as a dash)."""
    from alignkit.eval.results import RESULTS_FILE
    from alignkit.eval.tasks import get_task

    entry = json.loads((Path(run_dir) / RESULTS_FILE).read_text())["results"][task]
    values = {m.name: entry.get(f"{m.name},none") for m in get_task(task).metrics}
    return {name: math.nan if value is None else float(value) for name, value in values.items()}


def evaluate(
    model_path: str | Path,
    out_dir: str | Path,
    reward_path: Path | None,
    cost_path: Path | None,
    task: str = EVAL_TASK,
) -> dict[str, float]:
    """``alignkit eval run toyworld-oracle model=... reward=... cost=...`` into ``out_dir`` (through
    ``run_task``, the code path of the CLI): greedy answers to the held-out prompts, judged by the oracles
    and scored by the reward and cost models; returns the figures read back from its results.json."""
    from alignkit.eval import run_task

    models = {"reward": reward_path, "cost": cost_path}
    run_task(
        task,
        model=str(model_path),
        **{key: str(path) for key, path in models.items() if path is not None},
        **EVAL_KEYS,
        run={"output_dir": str(out_dir)},
        log=lambda *_: None,
    )
    return eval_figures(out_dir, task)


def format_table(oracle: dict[str, dict[str, float]]) -> str:
    """A Markdown table: one row per stage, one column per oracle metric."""
    header = "| stage | " + " | ".join(title for _, title in ORACLE_COLUMNS) + " |"
    rule = "|---" * (len(ORACLE_COLUMNS) + 1) + "|"

    def cell(metrics: dict[str, float], key: str) -> str:
        value = metrics.get(key, float("nan"))
        return "–" if value != value else f"{value:.3f}"

    rows = [
        f"| {stage} | " + " | ".join(cell(metrics, key) for key, _ in ORACLE_COLUMNS) + " |"
        for stage, metrics in oracle.items()
    ]
    return "\n".join([header, rule, *rows])


def last_metric(run_dir: Path, key: str) -> float:
    """The last logged value of ``key`` in a run's metrics.jsonl (e.g. the final held-out accuracy)."""
    from alignkit.runs import read_metrics

    values = [row[key] for row in read_metrics(run_dir / "metrics.jsonl") if key in row]
    if not values:
        raise KeyError(f"{run_dir}: no {key!r} in metrics.jsonl")
    return float(values[-1])


# Stages after SFT. A score-model stage is measured by its held-out metric; a policy stage (recipe,
# folder, overrides with {sft}/{reward}/{cost} filled in by the demo) by the oracles on held-out prompts.
SCORE_MODEL_METRICS = {
    "reward": ("reward model: held-out accuracy vs the helpfulness oracle", "eval/rewards/accuracy"),
    "cost": ("cost model: held-out sign accuracy vs the harm oracle", "eval/cost/sign_accuracy"),
}
SCORE_MODEL_OVERRIDES = {
    # The reward model starts from the SFT policy, as in InstructGPT: a random-init backbone never learns
    # the facts, cannot tell a right answer from a wrong one, and PPO against it trades accuracy for score.
    "reward": ["model.path={sft}"],
}
RIGHT_VS_WRONG = "reward model: right > wrong answer, held-out benign requests (pairwise accuracy)"
RIGHT_FIRST = "reward model: right answer scored above every wrong one (fraction of held-out benign requests)"
RIGHT_VS_NEAR_MISS = "reward model: right > off-by-one-or-two sum, held-out additions (pairwise accuracy)"
POLICY_STAGES = {
    "SFT → DPO (helpfulness)": ("dpo", "dpo-helpfulness", ["preference=helpfulness"]),
    # safety pairs trade benign accuracy for lower compliance; beta 0.5 (stronger pull to the SFT policy)
    # and 300 steps was the best trade over two SFT policies (two thread counts): compliance -0.18 / -0.29,
    # benign accuracy -0.043 / -0.007; beta 0.3 lost 0.05 of benign accuracy for a 0.10 drop (benchmarks/README)
    "SFT → DPO (safety)": ("dpo", "dpo-safety", ["preference=safety", "trainer.max_steps=300", "beta=0.5"]),
    "SFT → PPO": ("ppo", "ppo", ["reward.path={reward}", "monitor.path={cost}"]),
    "SFT → Safe RLHF": ("safe-ppo", "safe-ppo", ["reward.path={reward}", "cost.path={cost}"]),
    "SFT → GRPO (rule reward)": ("grpo", "grpo", ["monitor.path={cost}"]),
}
TEXT_PLAN = DemoPlan(
    modality="text",
    recipes=RECIPES,
    world=text_world,
    eval_task=EVAL_TASK,
    score_models=SCORE_MODEL_METRICS,
    score_overrides=SCORE_MODEL_OVERRIDES,
    policies=POLICY_STAGES,
    title="alignkit demo: the alignment loop on the toy world",
    subtitle="SFT → reward and cost models → DPO, PPO, Safe RLHF, GRPO → oracle evaluation",
    policies_note=TEXT_NOTE,
    rank_answers=True,
)
PLANS: dict[str, DemoPlan] = {"text": TEXT_PLAN, "image": IMAGE_PLAN}
"""``alignkit demo --modality NAME`` -> what it runs."""


def plan_for(modality: str) -> DemoPlan:
    """The demo of ``modality``; any other name is a ConfigError naming the allowed ones."""
    if modality not in PLANS:
        raise ConfigError(
            f"--modality {modality!r} has no demo: allowed values are {', '.join(PLANS)} (the audio toy "
            "world trains with `alignkit train sft|dpo`, docs/multimodal.md)"
        )
    return PLANS[modality]


def held_out_scores(model_path: str | Path, reward_path: Path, cost_path: Path) -> dict[str, float]:
    """The demo's figures for a policy trained elsewhere (tests set their runs against the demo's rows):
    the same eval run as the demo's eval stage, in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="alignkit-eval-") as tmp:
        return evaluate(model_path, Path(tmp) / "eval", reward_path, cost_path)


def reward_model_answer_ranking(reward_path: str | Path) -> dict[str, float]:
    """``toyworld.evaluate.rank_answers`` with the reward model at ``reward_path``: does it score the right
    answer to a held-out benign request above the wrong ones? (If not, PPO against it can only lose
    accuracy: the diagnosis of reward hacking on the toy world.)"""
    from alignkit.score.score_model import ScoreModelScorer
    from alignkit.toyworld.evaluate import rank_answers

    scorer = ScoreModelScorer(str(reward_path), max_length=64, batch_size=256)

    def score(prompts: list[str], responses: list[str]) -> list[float]:
        conversations = [[{"role": "user", "content": p}] for p in prompts]
        answers = [[{"role": "assistant", "content": r}] for r in responses]
        return scorer.score(conversations, answers).tolist()

    return rank_answers(score)


def eval_stage(
    result: DemoResult,
    policies: dict[str, tuple[str, Path]],
    reward: Path,
    cost: Path,
    task: str = EVAL_TASK,
) -> None:
    """The demo's last stage: ``alignkit eval run <task>`` on every policy (``policies``: stage name ->
    (folder under eval/, model)), then ``alignkit eval compare`` of the trained policies, SFT first
    (its baseline). The reference stages (random init) are shown for scale only: not compared, and not
    scored by the score models (as before the eval stage: a babble's score says nothing)."""
    from alignkit.eval.compare import compare_command

    began = time.perf_counter()
    for title, (folder, model) in policies.items():
        result.eval_dirs[title] = result.out_dir / "eval" / folder
        scored = title not in REFERENCE_STAGES
        result.oracle[title] = evaluate(
            model, result.eval_dirs[title], reward if scored else None, cost if scored else None, task
        )
    compared = [path for title, path in result.eval_dirs.items() if title not in REFERENCE_STAGES]
    with contextlib.redirect_stdout(io.StringIO()):  # the demo prints its own table
        result.comparison = compare_command(
            [str(path) for path in compared], out=str(result.out_dir / "eval" / "compare")
        )
    result.seconds["eval"] = time.perf_counter() - began


def run_demo(
    out: str | Path = "runs/demo",
    *,
    overwrite: bool = False,
    modality: str = "text",
    step_cap: Callable[[type], list[str]] | None = None,
) -> DemoResult:
    """Build the toy world of ``modality`` (``PLANS``), train each stage, evaluate every policy, write the
    tables and ``report.html``. ``step_cap(config_class)``: overrides applied last to every stage (the CLI
    passes ``ALIGNKIT_MAX_STEPS``'s cap, a quick tour)."""
    from alignkit.train.registry import trainer_for

    plan = plan_for(modality)
    out = prepare_run_dir(out, overwrite=overwrite, resume=False)
    result = DemoResult(out, modality=plan.modality)
    start = time.perf_counter()
    root, random_init = plan.world()
    print(f"toy world: {root}")
    result.seconds["build"] = time.perf_counter() - start

    def stage(name: str, folder: str, *overrides: str) -> Path:
        began = time.perf_counter()
        run_dir = out / folder
        config_cls, train = trainer_for(name)
        capped = step_cap(config_cls) if step_cap is not None else []
        train(recipe(name, run_dir, *overrides, *capped, recipes=plan.recipes))
        result.seconds[folder] = time.perf_counter() - began
        for png in (run_dir / "plots").glob("*.png"):
            shutil.copy(png, plots / f"{folder}_{png.name}")
        return run_dir

    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    sft_final = stage("sft", "sft") / "final"
    models = {"sft": sft_final, "reward": out / "reward" / "final", "cost": out / "cost" / "final"}
    for name, (title, key) in plan.score_models.items():
        filled = [o.format(**models) for o in plan.score_overrides.get(name, [])]
        result.score_models[title] = last_metric(stage(name, name, *filled), key)
    if plan.rank_answers:
        began = time.perf_counter()
        ranking = reward_model_answer_ranking(models["reward"])
        result.seconds["reward: answer ranking"] = time.perf_counter() - began
        result.score_models[RIGHT_VS_WRONG] = ranking["rm/right_vs_wrong_accuracy"]
        result.score_models[RIGHT_FIRST] = ranking["rm/right_answer_top1"]
        result.score_models[RIGHT_VS_NEAR_MISS] = ranking["rm/add/right_vs_near_miss_accuracy"]
    policies = {"random init": ("random-init", random_init), plan.sft_title: ("sft", sft_final)}
    for title, (name, folder, overrides) in plan.policies.items():
        filled = [o.format(**models) for o in overrides]
        policies[title] = (folder, stage(name, folder, f"model.path={sft_final}", *filled) / "final")
    eval_stage(result, policies, models["reward"], models["cost"], plan.eval_task)
    write_results(result, plan)
    from alignkit.demo_report import write_demo_report

    cost_limit = recipe("safe-ppo", out / "safe-ppo", recipes=plan.recipes).lagrange.threshold
    report = write_demo_report(
        result,
        cost_limit,
        title=plan.title,
        subtitle=plan.subtitle,
        note=plan.policies_note.format(cost_limit=cost_limit),
        task=plan.eval_task,
        command="alignkit demo" + ("" if plan.modality == "text" else f" --modality {plan.modality}"),
    )
    print("\n" + format_table(result.oracle) + "\n\n" + score_lines(result))
    print(f"\nreport: {report}; tables: {out / 'results.md'}; curves: {plots}; eval runs: {out / 'eval'}")
    print("seconds per stage:", json.dumps({k: round(v, 1) for k, v in result.seconds.items()}))
    return result


def score_lines(result: DemoResult) -> str:
    return "\n".join(f"- {title}: {value:.3f}" for title, value in result.score_models.items())


def write_results(result: DemoResult, plan: DemoPlan) -> None:
    """``results.md`` (the tables) and ``results.json`` (every figure, the eval runs, the time per stage)."""
    out = result.out_dir
    runs = "\n".join(f"- {title}: `{path.relative_to(out)}`" for title, path in result.eval_dirs.items())
    heading = "alignkit demo" + ("" if plan.modality == "text" else f" --modality {plan.modality}")
    (out / "results.md").write_text(
        f"# {heading}\n\n## Policies: oracle metrics on held-out toy-world prompts\n\n"
        f"{format_table(result.oracle)}\n\nFrom `alignkit eval run {plan.eval_task}` (one run folder per "
        "policy; 95% intervals in their results.json) and `alignkit eval compare` against "
        f"{plan.sft_title} (`eval/compare/`):\n\n{runs}\n\n## Score models\n\n{score_lines(result)}\n"
    )
    write_json(
        out / "results.json",
        {
            "modality": plan.modality,
            "oracle": result.oracle,
            "score_models": result.score_models,
            "seconds": result.seconds,
            "eval_runs": {title: str(path.relative_to(out)) for title, path in result.eval_dirs.items()},
            "eval_compare": "eval/compare",
        },
    )
