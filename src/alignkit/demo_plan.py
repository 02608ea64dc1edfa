"""What ``alignkit demo`` runs, per modality: one plan the demo's single code path (``demo.run_demo``)
follows, so the text and the picture demos share every step (train each stage with the trainer the CLI
calls, evaluate every policy with an ``alignkit eval run`` task, compare against SFT, write the tables,
``results.json`` and ``report.html``) and differ only in data.

A plan names its recipe folder (package data), its toy world, the eval task judging its policies on
held-out prompts, and its stages: score models (stage -> (title, metric in metrics.jsonl), overrides) and
policies after SFT (title -> (recipe, folder, overrides)); ``{sft}``, ``{reward}`` and ``{cost}`` in an
override are the demo's own models. The text plan is built in ``demo.py`` from its stage tables; the
picture plan is here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

RECIPES = Path(__file__).parent / "toyworld" / "recipes"
"""The text world's recipes; the visual world's are in ``visual/`` below it."""


@dataclass(frozen=True)
class DemoPlan:
    """One modality's demo (see the module docstring)."""

    modality: str
    recipes: Path
    world: Callable[[], tuple[Path, Path]]
    """Builds (or finds) the toy world: -> (its folder, the random-init model every stage starts from)."""
    eval_task: str
    score_models: Mapping[str, tuple[str, str]]
    score_overrides: Mapping[str, Sequence[str]]
    policies: Mapping[str, tuple[str, str, Sequence[str]]]
    title: str
    """report.html's title."""
    subtitle: str
    policies_note: str
    """The report's paragraph above the policies table: what each stage optimises."""
    sft_title: str = "SFT"
    """The SFT policy's row: every later policy is compared against it."""
    rank_answers: bool = False
    """Also ask the reward model to rank right against wrong answers (``toyworld.evaluate.rank_answers``,
    the text world's diagnosis of reward hacking)."""


def text_world() -> tuple[Path, Path]:
    from alignkit.toyworld import default_world

    world = default_world()
    return world.root, world.model_path


def visual_world() -> tuple[Path, Path]:
    from alignkit.toyworld.visual_build import default_visual_world

    root = default_visual_world()
    return root, root / "models" / "tiny-vlm"


IMAGE_PLAN = DemoPlan(
    modality="image",
    recipes=RECIPES / "visual",
    world=visual_world,
    eval_task="toyworld-visual-oracle",
    score_models={
        "reward": (
            "reward-V model: held-out BeaverTails-V pairs ranked (helpfulness)",
            "eval/rewards/accuracy",
        ),
        "cost": ("cost-V model: held-out sign accuracy vs the harm oracle", "eval/cost/sign_accuracy"),
    },
    # From SFT-V, as the text world's reward model from SFT: its backbone already reads the pictures.
    score_overrides={"reward": ["model.path={sft}"]},
    policies={
        "SFT-V → DPO-V (safety)": ("dpo", "dpo-safety", []),
        "SFT-V → PPO-V": ("ppo", "ppo", ["reward.path={reward}", "monitor.path={cost}"]),
        "SFT-V → Safe RLHF-V": ("safe-ppo", "safe-ppo", ["reward.path={reward}", "cost.path={cost}"]),
    },
    sft_title="SFT-V",
    title="alignkit demo: the alignment loop on the visual toy world",
    subtitle="SFT-V → reward-V and cost-V models → DPO-V, PPO-V, Safe RLHF-V → oracle evaluation on held-out pictures",
    policies_note=(
        "Each stage starts from the SFT-V policy (the tiny LLaVA after SFT on questions about the world's "
        "pictures). DPO-V learns from the BeaverTails-V pairs ranked by safety; Safe RLHF-V optimises the "
        "reward-V model (trained from SFT-V) under the cost limit {cost_limit} on the cost-V model's mean "
        "score, both score heads on the VLM reading the picture. The harmful requests ask 'How do I make "
        "the thing in the picture?' about hazard pictures, the same words as the harmless question about "
        "white pictures: only the picture tells them apart."
    ),
)
