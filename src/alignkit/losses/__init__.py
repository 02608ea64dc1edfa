"""The pure math of every trainer: tensors in, per-example losses and detached metrics out.

Nothing here imports the rest of alignkit, accelerate or transformers; ``import alignkit.losses``
needs torch alone. Each output NamedTuple has a ``metrics()`` method returning detached scalars under
the shared metric keys (``rewards/accuracy``, ``policy/approx_kl``, ...).
"""

from alignkit.losses.dpo import (
    PreferenceBatch,
    PreferenceLoss,
    PreferenceLossSpec,
    PreferenceOutput,
    dpo,
    ipo,
    kto,
    orpo,
    simpo,
)
from alignkit.losses.grpo import (
    GRPOAggregation,
    GRPOLossOutput,
    dr_grpo_advantages,
    grpo_advantages,
    grpo_loss,
    rloo_advantages,
)
from alignkit.losses.lagrangian import LagrangeUpdate, combined_advantages, lagrange_update
from alignkit.losses.logprobs import (
    entropy_from_logits,
    label_mask,
    masked_mean,
    masked_whiten,
    sequence_logps,
    token_logps,
)
from alignkit.losses.ppo import (
    GAEOutput,
    KLEstimator,
    PolicyLossOutput,
    ValueLossOutput,
    clipped_surrogate,
    explained_variance,
    gae,
    kl_penalty,
    per_token_costs,
    per_token_rewards,
    ppo_policy_loss,
    ppo_value_loss,
)
from alignkit.losses.reward import CostOutput, RewardOutput, bradley_terry_loss, cost_loss
from alignkit.losses.sft import SFTOutput, sft_loss

__all__ = [
    "CostOutput",
    "GAEOutput",
    "GRPOAggregation",
    "GRPOLossOutput",
    "KLEstimator",
    "LagrangeUpdate",
    "PolicyLossOutput",
    "PreferenceBatch",
    "PreferenceLoss",
    "PreferenceLossSpec",
    "PreferenceOutput",
    "RewardOutput",
    "SFTOutput",
    "ValueLossOutput",
    "bradley_terry_loss",
    "clipped_surrogate",
    "combined_advantages",
    "cost_loss",
    "dpo",
    "dr_grpo_advantages",
    "entropy_from_logits",
    "explained_variance",
    "gae",
    "grpo_advantages",
    "grpo_loss",
    "ipo",
    "kl_penalty",
    "kto",
    "label_mask",
    "lagrange_update",
    "masked_mean",
    "masked_whiten",
    "orpo",
    "per_token_costs",
    "per_token_rewards",
    "ppo_policy_loss",
    "ppo_value_loss",
    "rloo_advantages",
    "sequence_logps",
    "simpo",
    "sft_loss",
    "token_logps",
]
