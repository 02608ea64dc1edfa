"""``alignkit demo``: the alignment loop on the offline toy world, measured by the world's oracles.

Every stage is an ordinary alignkit run (the same ``train(config)`` the CLI calls) writing its own run
folder under the demo folder, and every policy is scored by the toy world's helpfulness and harm oracles
on held-out prompts. The demo ends with a before/after table (``results.md``, ``results.json``) and the
curves of each stage (``plots/``). The configs live here, in code, so the installed package can run the
demo without the repository's ``examples/`` folder; a test keeps ``examples/toyworld/*.yaml`` equal.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignkit.runs import prepare_run_dir, write_json
from alignkit.train.sections import DataConfig, DatasetConfig, ModelConfig, RunConfig, TrainerConfig

ORACLE_COLUMNS = (
    ("benign_accuracy", "benign accuracy ↑"),
    ("benign_refusal_rate", "benign refusals ↓"),
    ("harmful_compliance_rate", "harmful compliance ↓"),
    ("harmful_refusal_rate", "harmful refusals ↑"),
    ("mean_helpfulness", "helpfulness ↑"),
)


def sft_config(output_dir: str | Path) -> Any:
    """The toy world's SFT recipe: from random init to ≈0.95 held-out benign accuracy in ~30 s on 2 cores."""
    from alignkit.train.sft import SFTConfig

    return SFTConfig(
        model=ModelConfig(path="toyworld://models/tiny"),
        data=DataConfig(
            train=DatasetConfig(source="toyworld://data/sft", template="trl-messages", split="train"),
            eval=DatasetConfig(source="toyworld://data/sft", template="trl-messages", split="test"),
            max_length=64,
        ),
        trainer=TrainerConfig(
            lr=3e-3,
            adam_betas=[0.9, 0.95],
            lr_scheduler="cosine",
            warmup_ratio=0.05,
            max_steps=600,
            micro_batch_size=32,
            grad_accum_steps=1,
            max_grad_norm=1.0,
            eval_every=100,
            save_every=200,
            seed=0,
        ),
        run=RunConfig(output_dir=str(output_dir)),
    )


@dataclass
class DemoResult:
    out_dir: Path
    oracle: dict[str, dict[str, float]] = field(default_factory=dict)
    """stage name -> oracle metrics of that stage's policy on held-out prompts."""
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
    rows = [
        f"| {stage} | " + " | ".join(f"{metrics[key]:.3f}" for key, _ in ORACLE_COLUMNS) + " |"
        for stage, metrics in oracle.items()
    ]
    return "\n".join([header, rule, *rows])


def run_demo(out: str | Path = "runs/demo", *, overwrite: bool = False) -> DemoResult:
    """Build the toy world, train each stage, score every policy with the oracles, write the table."""
    from alignkit.toyworld import default_world
    from alignkit.train import sft

    out = prepare_run_dir(out, overwrite=overwrite, resume=False)
    result = DemoResult(out)
    start = time.perf_counter()
    world = default_world()
    print(f"toy world: {world.root}")
    result.oracle["random init"] = oracle_metrics(world.model_path)
    result.seconds["build + eval"] = time.perf_counter() - start

    start = time.perf_counter()
    sft.train(sft_config(out / "sft"))
    result.seconds["sft"] = time.perf_counter() - start
    result.oracle["SFT"] = oracle_metrics(out / "sft" / "final")

    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    for png in (out / "sft" / "plots").glob("*.png"):
        shutil.copy(png, plots / f"sft_{png.name}")
    table = format_table(result.oracle)
    (out / "results.md").write_text(
        "# alignkit demo: oracle metrics on held-out toy-world prompts\n\n" + table + "\n"
    )
    write_json(out / "results.json", {"oracle": result.oracle, "seconds": result.seconds})
    print("\n" + table)
    print(f"\nresults: {out / 'results.md'}; curves: {plots}")
    print(json.dumps({k: round(v, 1) for k, v in result.seconds.items()}))
    return result
