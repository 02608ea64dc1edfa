"""``alignkit train safe-ppo``: Safe RLHF's PPO-Lagrangian, i.e. the PPO trainer with a cost scorer required.

Everything is in ``train/ppo.py``; this command only makes the cost scorer mandatory and names the run
folder, so a forgotten ``cost:`` section is an error rather than a silent plain-PPO run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alignkit.config import check
from alignkit.score.config import ScorerConfig
from alignkit.sections import RunConfig
from alignkit.train.engine import LoopResult
from alignkit.train.ppo import PPOConfig, PPOLossConfig, PPOTrainer


@dataclass
class SafePPOConfig(PPOConfig):
    cost: ScorerConfig | None = field(default_factory=ScorerConfig)
    """The cost scorer (required): a cost model folder or a 'module:function' rule (cost > 0 = unsafe)."""
    ppo: PPOLossConfig = field(default_factory=lambda: PPOLossConfig(kl_coef=0.01))
    """The PPO objective. kl_coef defaults to 0.01, the value of safe-rlhf's ppo-lag script (its PPO script,
    like our plain PPO, uses 0.02): the KL enters both the reward (-beta kl) and the cost (+beta kl) stream,
    and the combined advantage (A_r - lambda A_c) / (1 + lambda) carries it once, with weight beta."""
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/safe-ppo"))
    """Where results go."""

    def validate(self, prefix: str) -> None:
        check(self.cost is not None, f"{prefix}cost", self.cost, "a cost scorer section: cost.path=...")
        super().validate(prefix)


def train(config: SafePPOConfig) -> LoopResult:
    """Run Safe RLHF: the call ``alignkit train safe-ppo`` makes."""
    return PPOTrainer(config).run()
