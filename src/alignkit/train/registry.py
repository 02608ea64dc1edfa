"""The training commands: name -> (module, config class, one line of help).

Kept apart from the CLI so that anything may look a trainer up (the demo runs every stage through it)
without importing the command line. Adding a trainer is one line here plus its module, whose
``train(config)`` does the work.
"""

from __future__ import annotations

import importlib
from typing import Any

# command -> (module, config class, what it does). Adding a trainer is one line here plus its module.
TRAINERS: dict[str, tuple[str, str, str]] = {
    "sft": ("alignkit.train.sft", "SFTConfig", "supervised fine-tuning on conversations"),
    "reward": ("alignkit.train.reward", "RewardConfig", "a reward model on preference pairs (Bradley-Terry)"),
    "cost": ("alignkit.train.cost", "CostConfig", "a Safe RLHF cost model on safety-labelled pairs"),
    "dpo": ("alignkit.train.dpo", "DPOConfig", "DPO, IPO, SimPO, ORPO or KTO, starting from an SFT policy"),
    "ppo": (
        "alignkit.train.ppo",
        "PPOConfig",
        "PPO-RLHF against a reward scorer (Safe RLHF with a cost one)",
    ),
    "safe-ppo": (
        "alignkit.train.safe_ppo",
        "SafePPOConfig",
        "Safe RLHF: PPO-Lagrangian, a cost scorer required",
    ),
    "grpo": (
        "alignkit.train.grpo",
        "GRPOConfig",
        "GRPO, Dr. GRPO, RLOO or REINFORCE++ with any scorer (cost: constrained)",
    ),
    "moderation": (
        "alignkit.train.moderation",
        "ModerationConfig",
        "a moderation classifier: harm categories + severity per response",
    ),
    "aligner": (
        "alignkit.train.aligner",
        "AlignerConfig",
        "an Aligner corrector on (question, answer, correction)",
    ),
    "stream-aligner": (
        "alignkit.train.aligner",
        "StreamAlignerConfig",
        "a Stream Aligner corrector on sentence-level corrections",
    ),
}


def trainer_for(name: str) -> tuple[type, Any]:
    module = importlib.import_module(TRAINERS[name][0])
    return getattr(module, TRAINERS[name][1]), module.train
