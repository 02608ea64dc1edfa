"""``alignkit demo``: the alignment loop on the offline toy world, measured by the world's oracles.

Every stage is an ordinary alignkit run (the same ``train(config)`` the CLI calls) writing its own run
folder under the demo folder, and every policy is scored by the toy world's helpfulness and harm oracles
on held-out prompts. The demo ends with a before/after table (``results.md``, ``results.json``) and the
curves of each stage (``plots/``). The recipes are package data (``toyworld/recipes/*.yaml``), so the
installed package runs the demo without the repository; ``examples/toyworld/*.yaml`` link to them.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignkit.config import load_config
from alignkit.demo_report import ORACLE_COLUMNS
from alignkit.runs import prepare_run_dir, write_json

RECIPES = Path(__file__).parent / "toyworld" / "recipes"


def recipe(name: str, output_dir: str | Path, *overrides: str) -> Any:
    """The toy world's recipe ``name`` (the YAML behind ``examples/toyworld/<name>.yaml``), loaded and typed."""
    from alignkit.train.registry import trainer_for

    config_cls, _ = trainer_for(name)
    return load_config(config_cls, RECIPES / f"{name}.yaml", [f"run.output_dir={output_dir}", *overrides])


@dataclass
class DemoResult:
    out_dir: Path
    oracle: dict[str, dict[str, float]] = field(default_factory=dict)
    """stage name -> oracle metrics of that stage's policy on held-out prompts."""
    score_models: dict[str, float] = field(default_factory=dict)
    """score-model stage -> its held-out metric."""
    seconds: dict[str, float] = field(default_factory=dict)


def oracle_metrics(model_path: str | Path) -> dict[str, float]:
    """Greedy answers of the policy at ``model_path`` on the held-out prompts, scored by the oracles."""
    from alignkit.models.loading import load_causal_lm, load_tokenizer
    from alignkit.toyworld import evaluate_policy

    model = load_causal_lm(str(model_path))
    tokenizer = load_tokenizer(str(model_path))
    return evaluate_policy(model.eval(), tokenizer)


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
    # safety pairs move the policy further per step: 150 of the recipe's 200 keep benign accuracy within
    # reach (200 cost 0.05 of it) while harmful compliance still falls well past the test's 0.10
    "SFT → DPO (safety)": ("dpo", "dpo-safety", ["preference=safety", "trainer.max_steps=150"]),
    "SFT → PPO": ("ppo", "ppo", ["reward.path={reward}", "monitor.path={cost}"]),
    "SFT → Safe RLHF": ("safe-ppo", "safe-ppo", ["reward.path={reward}", "cost.path={cost}"]),
    "SFT → GRPO (rule reward)": ("grpo", "grpo", ["monitor.path={cost}"]),
}


def held_out_scores(model_path: str | Path, reward_path: Path, cost_path: Path) -> dict[str, float]:
    """Oracle metrics plus the demo's reward and cost models' mean scores of the same greedy answers."""
    from alignkit.models.loading import load_causal_lm, load_tokenizer
    from alignkit.score.score_model import ScoreModelScorer
    from alignkit.toyworld import score_responses
    from alignkit.toyworld.evaluate import generate_responses
    from alignkit.toyworld.world import split_tasks

    model = load_causal_lm(str(model_path)).eval()
    prompts = [task.prompt for task in split_tasks(0)["test"]]
    responses = generate_responses(model, load_tokenizer(str(model_path)), prompts)
    metrics = score_responses(prompts, responses)
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    answers = [[{"role": "assistant", "content": r}] for r in responses]
    for key, path in (("reward_model_score", reward_path), ("cost_model_score", cost_path)):
        metrics[key] = float(ScoreModelScorer(str(path)).score(conversations, answers).mean())
    return metrics


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


def run_demo(out: str | Path = "runs/demo", *, overwrite: bool = False) -> DemoResult:
    """Build the toy world, train each stage, score every policy, write the tables and ``report.html``."""
    from alignkit.toyworld import default_world
    from alignkit.train.registry import trainer_for

    out = prepare_run_dir(out, overwrite=overwrite, resume=False)
    result = DemoResult(out)
    start = time.perf_counter()
    world = default_world()
    print(f"toy world: {world.root}")
    result.oracle["random init"] = oracle_metrics(world.model_path)
    result.seconds["build + eval"] = time.perf_counter() - start

    def stage(name: str, folder: str, *overrides: str) -> Path:
        began = time.perf_counter()
        run_dir = out / folder
        trainer_for(name)[1](recipe(name, run_dir, *overrides))
        result.seconds[folder] = time.perf_counter() - began
        for png in (run_dir / "plots").glob("*.png"):
            shutil.copy(png, plots / f"{folder}_{png.name}")
        return run_dir

    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    sft_final = stage("sft", "sft") / "final"
    models = {"sft": sft_final, "reward": out / "reward" / "final", "cost": out / "cost" / "final"}
    for name, (title, key) in SCORE_MODEL_METRICS.items():
        filled = [o.format(**models) for o in SCORE_MODEL_OVERRIDES.get(name, [])]
        result.score_models[title] = last_metric(stage(name, name, *filled), key)
    began = time.perf_counter()
    ranking = reward_model_answer_ranking(models["reward"])
    result.seconds["reward: answer ranking"] = time.perf_counter() - began
    result.score_models[RIGHT_VS_WRONG] = ranking["rm/right_vs_wrong_accuracy"]
    result.score_models[RIGHT_FIRST] = ranking["rm/right_answer_top1"]
    result.score_models[RIGHT_VS_NEAR_MISS] = ranking["rm/add/right_vs_near_miss_accuracy"]
    result.oracle["SFT"] = held_out_scores(sft_final, models["reward"], models["cost"])
    for title, (name, folder, overrides) in POLICY_STAGES.items():
        filled = [o.format(**models) for o in overrides]
        run_dir = stage(name, folder, f"model.path={sft_final}", *filled)
        result.oracle[title] = held_out_scores(run_dir / "final", models["reward"], models["cost"])

    table = format_table(result.oracle)
    scores = "\n".join(f"- {title}: {value:.3f}" for title, value in result.score_models.items())
    (out / "results.md").write_text(
        "# alignkit demo\n\n## Policies: oracle metrics on held-out toy-world prompts\n\n"
        f"{table}\n\n## Score models\n\n{scores}\n"
    )
    write_json(
        out / "results.json",
        {"oracle": result.oracle, "score_models": result.score_models, "seconds": result.seconds},
    )
    from alignkit.demo_report import write_demo_report

    report = write_demo_report(result, recipe("safe-ppo", out / "safe-ppo").lagrange.threshold)
    print("\n" + table + "\n\n" + scores)
    print(f"\nreport: {report}; tables: {out / 'results.md'}; curves: {plots}")
    print("seconds per stage:", json.dumps({k: round(v, 1) for k, v in result.seconds.items()}))
    return result
