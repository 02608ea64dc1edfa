"""Advantage estimators, one registry: a new estimator is one function and one ``@estimator`` line.

Every estimator reads the same :class:`AdvantageInputs` (the step's sequence scores, the per-token reward
stream, the response mask, the group size, and a critic's values when it has one) and returns per-token
advantages ``(B, T)`` plus, for estimators with a critic, the returns its value loss regresses on.

What an estimator needs from the trainer is declared next to it, not guessed from its name:

- ``needs_critic``: a value model is trained beside the policy (PPO); the others are critic-free.
- ``needs_groups``: the rollout must sample ``G >= 2`` responses per prompt (GRPO, Dr. GRPO, RLOO).
- ``kl_in_reward``: the KL to the reference is subtracted from the per-token reward
  (InstructGPT, REINFORCE++) instead of being added to the loss (GRPO's k3 term).
- ``whiten``: advantages are normalised over the whole rollout's tokens, on all processes.
- ``constant_loss_normaliser``: the loss divides by a constant (mini-batch x max_new_tokens: Dr. GRPO)
  rather than the mini-batch's token count, so short answers are not up-weighted.

The critic-free trainer (``alignkit train grpo``) runs any estimator without a critic and honours every
flag; ``GRPOConfig.advantage``'s allowed values and the run's display name come from the registry, and the
config validation, the CLI's error messages and the docs follow. PPO runs the one estimator with a critic,
``gae`` (its whitening is ``ppo.whiten_advantages``, on by default as the entry declares).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from alignkit.losses.grpo import dr_grpo_advantages, grpo_advantages, rloo_advantages
from alignkit.losses.ppo import gae


class AdvantageInputs(NamedTuple):
    scores: Tensor
    """``(B,)`` sequence scores (reward, or cost for a cost stream), prompt-major groups of G."""
    token_rewards: Tensor
    """``(B, T)``: the clipped score on each row's last response token, minus ``beta * KL`` per token when
    the estimator puts KL in the reward (plus, for a cost stream), 0 off the mask."""
    mask: Tensor
    """``(B, T)`` bool: response tokens."""
    group_size: int = 1
    """G: samples per prompt."""
    values: Tensor | None = None
    """``(B, T)`` critic values at rollout time (estimators with a critic)."""
    gamma: float = 1.0
    """Discount."""
    lam: float = 0.95
    """GAE lambda."""


class Advantages(NamedTuple):
    advantages: Tensor
    """``(B, T)``, 0 off the mask."""
    returns: Tensor | None = None
    """``(B, T)`` value targets (estimators with a critic), else None."""


@dataclass(frozen=True)
class AdvantageEstimator:
    name: str
    display_name: str
    fn: Callable[[AdvantageInputs], Advantages]
    needs_critic: bool = False
    needs_groups: bool = False
    kl_in_reward: bool = False
    whiten: bool = False
    constant_loss_normaliser: bool = False

    def __call__(self, inputs: AdvantageInputs) -> Advantages:
        return self.fn(inputs)


ESTIMATORS: dict[str, AdvantageEstimator] = {}
"""Name (the config value) -> estimator, in registration order."""


def estimator(
    name: str, display_name: str, **needs: bool
) -> Callable[[Callable[[AdvantageInputs], Advantages]], Callable[[AdvantageInputs], Advantages]]:
    """Register ``fn`` under ``name``; ``needs`` are the :class:`AdvantageEstimator` flags."""

    def register(fn: Callable[[AdvantageInputs], Advantages]) -> Callable[[AdvantageInputs], Advantages]:
        if name in ESTIMATORS:
            raise ValueError(f"advantage estimator {name!r} is registered twice")
        ESTIMATORS[name] = AdvantageEstimator(name, display_name, fn, **needs)
        return fn

    return register


def _per_token(sequence_advantages: Tensor, mask: Tensor) -> Tensor:
    """A sequence advantage ``(B,)`` on every response token of its row: ``(B, T)``."""
    mask = mask.bool()
    spread = sequence_advantages.unsqueeze(1).to(torch.float32).expand(mask.shape)
    return torch.where(mask, spread, torch.zeros_like(spread))


@estimator("gae", "PPO", needs_critic=True, kl_in_reward=True, whiten=True)
def gae_estimator(x: AdvantageInputs) -> Advantages:
    """GAE over the KL-shaped per-token rewards and the critic's values (1506.02438; InstructGPT)."""
    if x.values is None:
        raise ValueError("GAE needs the critic's values")
    out = gae(x.token_rewards, x.values, x.mask, x.gamma, x.lam)
    return Advantages(out.advantages, out.returns)


@estimator("grpo", "GRPO", needs_groups=True)
def grpo_estimator(x: AdvantageInputs) -> Advantages:
    """The sample's score standardised within its group (2402.03300 sec. 4.1.2)."""
    return Advantages(_per_token(grpo_advantages(x.scores, x.group_size), x.mask))


@estimator("dr_grpo", "Dr. GRPO", needs_groups=True, constant_loss_normaliser=True)
def dr_grpo_estimator(x: AdvantageInputs) -> Advantages:
    """The sample's score centred within its group, no std division (2503.20783)."""
    return Advantages(_per_token(dr_grpo_advantages(x.scores, x.group_size), x.mask))


@estimator("rloo", "RLOO", needs_groups=True)
def rloo_estimator(x: AdvantageInputs) -> Advantages:
    """The sample's score minus the mean of the other G - 1 of its group (2402.14740 eq. 5)."""
    return Advantages(_per_token(rloo_advantages(x.scores, x.group_size), x.mask))


def discounted_returns(token_rewards: Tensor, mask: Tensor, gamma: float = 1.0) -> Tensor:
    """``G_t = sum_{s >= t} gamma^(s - t) r_s`` over each row's response tokens, 0 off the mask."""
    mask = mask.bool()
    rewards = torch.where(mask, token_rewards, torch.zeros_like(token_rewards))
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return torch.where(mask, returns, torch.zeros_like(returns))


@estimator("reinforce_pp", "REINFORCE++", kl_in_reward=True, whiten=True)
def reinforce_pp_estimator(x: AdvantageInputs) -> Advantages:
    """REINFORCE++ (Hu 2025, 2501.03262): the return-to-go of the KL-shaped token rewards, no critic and no
    groups; the trainer whitens it over the whole rollout (the paper's global advantage normalisation)."""
    return Advantages(discounted_returns(x.token_rewards, x.mask, x.gamma))


def critic_free() -> tuple[str, ...]:
    """Names of the estimators a policy-only trainer (``alignkit train grpo``) can run."""
    return tuple(name for name, est in ESTIMATORS.items() if not est.needs_critic)


CriticFreeEstimator = Literal[critic_free()]  # type: ignore[valid-type]
"""The allowed values of ``GRPOConfig.advantage``, read off the registry."""
