"""Direct preference losses: DPO, IPO, SimPO, ORPO, KTO, behind one input shape and one registry.

Every variant is a function ``fn(batch: PreferenceBatch, *, beta=..., <own options>) -> PreferenceOutput``
so a trainer calls any of them the same way::

    loss_fn = PreferenceLoss(cfg.loss)          # "dpo", "ipo", ...
    out = loss_fn(batch, **cfg.loss_options)     # needs_reference etc. say what batch must hold
    out.losses.mean().backward(); log(out.metrics())

Adding a variant = one function below + one line in :class:`PreferenceLoss` + its hand-computed test.
Notation: ``rho(y) = log pi(y|x) - log pi_ref(y|x)`` with log-probs summed over response tokens.
Reference log-probs are detached here, so no gradient can reach a reference model or a cached tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "PreferenceBatch",
    "PreferenceLoss",
    "PreferenceLossSpec",
    "PreferenceOutput",
    "dpo",
    "ipo",
    "kto",
    "orpo",
    "simpo",
]


@dataclass(frozen=True)
class PreferenceBatch:
    """What any preference loss may read; each variant reads the fields its capabilities name.

    For paired losses ``chosen``/``rejected`` are the two responses of the same prompt, row by row. For
    KTO (unpaired) ``chosen`` are the desirable examples and ``rejected`` the undesirable ones, and the
    two sides may have different sizes; a paired batch can be given to KTO as is.
    """

    policy_chosen_logps: Tensor
    """``(Bc,)`` policy log-probs of the chosen (desirable) responses, summed over response tokens."""
    policy_rejected_logps: Tensor
    """``(Br,)`` policy log-probs of the rejected (undesirable) responses, summed."""
    ref_chosen_logps: Tensor | None = None
    """``(Bc,)`` reference log-probs of the chosen responses (live or cached); needed if ``needs_reference``."""
    ref_rejected_logps: Tensor | None = None
    """``(Br,)`` reference log-probs of the rejected responses."""
    chosen_num_tokens: Tensor | None = None
    """``(Bc,)`` response token counts ``|y_w|``; needed if ``needs_lengths``."""
    rejected_num_tokens: Tensor | None = None
    """``(Br,)`` response token counts ``|y_l|``."""
    policy_kl_logps: Tensor | None = None
    """``(M,)`` policy log-probs of mismatched pairs ``(x_i, y_j)``, ``j != i`` (KTO's KL estimate)."""
    ref_kl_logps: Tensor | None = None
    """``(M,)`` reference log-probs of the same mismatched pairs."""


class PreferenceOutput(NamedTuple):
    losses: Tensor
    """Per-example loss with the gradient: ``(B,)`` per pair, or for unpaired losses ``(Bc + Br,)``
    (desirable rows first). Reduce with ``.mean()`` (or a sum over a global count for accumulation)."""
    chosen_rewards: Tensor
    """``(Bc,)`` detached implicit rewards of the chosen responses (see each loss for its definition)."""
    rejected_rewards: Tensor
    """``(Br,)`` detached implicit rewards of the rejected responses."""
    paired: bool = True
    """Whether row i of chosen and rejected belong together (accuracy is only defined then)."""
    kl: Tensor | None = None
    """KTO's detached reference point ``z`` (scalar); None for other losses."""

    def metrics(self) -> dict[str, Tensor]:
        chosen, rejected = _safe_mean(self.chosen_rewards), _safe_mean(self.rejected_rewards)
        out = {"rewards/chosen": chosen, "rewards/rejected": rejected, "rewards/margin": chosen - rejected}
        if self.paired:
            out["rewards/accuracy"] = (self.chosen_rewards > self.rejected_rewards).float().mean()
        if self.kl is not None:
            out["rewards/kl"] = self.kl
        return out


def _safe_mean(values: Tensor) -> Tensor:
    return values.sum() / max(values.numel(), 1)


def _require(batch: PreferenceBatch, loss: str, *fields: str) -> list[Tensor]:
    missing = [name for name in fields if getattr(batch, name) is None]
    if missing:
        raise ValueError(f"{loss} needs PreferenceBatch.{', .'.join(missing)}, which is None")
    return [getattr(batch, name) for name in fields]


def _check_paired(batch: PreferenceBatch, loss: str) -> None:
    if batch.policy_chosen_logps.shape != batch.policy_rejected_logps.shape:
        raise ValueError(
            f"{loss} is a paired loss: chosen {tuple(batch.policy_chosen_logps.shape)} and rejected "
            f"{tuple(batch.policy_rejected_logps.shape)} log-probs must have the same shape"
        )


def _log_ratios(batch: PreferenceBatch, loss: str) -> tuple[Tensor, Tensor]:
    """``rho(y_w), rho(y_l)`` with summed log-probs; the reference side is detached."""
    ref_chosen, ref_rejected = _require(batch, loss, "ref_chosen_logps", "ref_rejected_logps")
    return (
        batch.policy_chosen_logps - ref_chosen.detach(),
        batch.policy_rejected_logps - ref_rejected.detach(),
    )


def _per_token(logps: Tensor, num_tokens: Tensor) -> Tensor:
    """Length-averaged log-prob ``log pi(y) / |y|``; an empty response counts as 1 token (gives 0)."""
    return logps / num_tokens.to(logps.dtype).clamp(min=1)


def dpo(batch: PreferenceBatch, *, beta: float = 0.1, label_smoothing: float = 0.0) -> PreferenceOutput:
    """DPO (Rafailov et al. 2023, 2305.18290 eq. 7), with cDPO label smoothing.

    ``h = beta * (rho(y_w) - rho(y_l))``, ``L = -(1 - eps) log sigma(h) - eps log sigma(-h)``.
    ``eps`` (``label_smoothing``) is the assumed probability that a label is flipped (0 = plain DPO).
    Rewards: ``beta * rho(y)``. Shapes: ``(B,)`` in, ``(B,)`` losses out.
    """
    _check_paired(batch, "dpo")
    chosen_ratio, rejected_ratio = _log_ratios(batch, "dpo")
    h = beta * (chosen_ratio - rejected_ratio)
    losses = -(1 - label_smoothing) * F.logsigmoid(h) - label_smoothing * F.logsigmoid(-h)
    return PreferenceOutput(losses, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach())


def ipo(batch: PreferenceBatch, *, beta: float = 0.1) -> PreferenceOutput:
    """IPO (Azar et al. 2023, 2310.12036 eq. 17): ``L = (rho(y_w) - rho(y_l) - 1 / (2 beta))^2``.

    Here ``rho`` uses *length-averaged* log-probs, ``(log pi(y) - log pi_ref(y)) / |y|``. The paper
    writes per-sequence log-probs, but its authors train on per-token averages and TRL does the same;
    with summed log-probs the target margin ``1/(2 beta)`` would mean something different for every
    response length. Rewards: ``beta * rho_avg(y)``. Shapes: ``(B,)`` in, ``(B,)`` losses out.
    """
    _check_paired(batch, "ipo")
    chosen_ratio, rejected_ratio = _log_ratios(batch, "ipo")
    chosen_len, rejected_len = _require(batch, "ipo", "chosen_num_tokens", "rejected_num_tokens")
    chosen_ratio, rejected_ratio = (
        _per_token(chosen_ratio, chosen_len),
        _per_token(rejected_ratio, rejected_len),
    )
    losses = (chosen_ratio - rejected_ratio - 1 / (2 * beta)) ** 2
    return PreferenceOutput(losses, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach())


def simpo(batch: PreferenceBatch, *, beta: float = 2.5, gamma: float = 1.4) -> PreferenceOutput:
    """SimPO (Meng et al. 2024, 2405.14734 eq. 6), reference-free and length-normalised.

    ``L = -log sigma(beta / |y_w| * log pi(y_w) - beta / |y_l| * log pi(y_l) - gamma)``. ``gamma`` is the
    absolute target margin, as TRL's ``simpo_gamma`` (its CPO trainer subtracts ``simpo_gamma / beta`` inside
    ``beta * (...)``, i.e. ``gamma`` itself) and align-anything's; the SimPO repository's own configs give
    ``gamma_beta_ratio = gamma / beta`` instead.
    Rewards: ``beta / |y| * log pi(y)``. Shapes: ``(B,)`` in, ``(B,)`` losses out.
    """
    _check_paired(batch, "simpo")
    chosen_len, rejected_len = _require(batch, "simpo", "chosen_num_tokens", "rejected_num_tokens")
    chosen_reward = beta * _per_token(batch.policy_chosen_logps, chosen_len)
    rejected_reward = beta * _per_token(batch.policy_rejected_logps, rejected_len)
    losses = -F.logsigmoid(chosen_reward - rejected_reward - gamma)
    return PreferenceOutput(losses, chosen_reward.detach(), rejected_reward.detach())


def _log_odds(mean_logps: Tensor) -> Tensor:
    """``log(P / (1 - P))`` for ``log P = mean_logps < 0``, computed without forming ``P``.

    ``log(1 - P) = log1p(-exp(l))``, switched to ``log(-expm1(l))`` when ``l > -log 2`` where the
    former loses precision (Maechler 2012). ``l`` is capped just below 0 so that a certain (or empty)
    response gives a large finite value instead of ``inf``.
    """
    logp = mean_logps.clamp(max=-1e-7)
    log1m = torch.where(logp > -math.log(2), torch.log(-torch.expm1(logp)), torch.log1p(-torch.exp(logp)))
    return logp - log1m


def orpo(batch: PreferenceBatch, *, beta: float = 0.1) -> PreferenceOutput:
    """ORPO (Hong et al. 2024, 2403.07691 eqs. 6-7), reference-free; ``beta`` is the paper's ``lambda``.

    ``P(y) = exp(log pi(y) / |y|)``, ``odds = P / (1 - P)``,
    ``L = NLL(y_w) - beta * log sigma(log odds(y_w) - log odds(y_l))`` with ``NLL(y_w) = -log pi(y_w) / |y_w|``
    (per-example token mean). Rewards: ``beta * log pi(y) / |y|`` (as TRL). Shapes: ``(B,)`` -> ``(B,)``.

    The NLL term covers the chosen *response* only, as the SFT loss everywhere in alignkit does; TRL's
    ORPOTrainer takes it over prompt + response ("computed over the full prompt and response"), so with
    the same beta TRL's NLL term is an average over more, easier tokens and its loss values differ.
    """
    _check_paired(batch, "orpo")
    chosen_len, rejected_len = _require(batch, "orpo", "chosen_num_tokens", "rejected_num_tokens")
    chosen_mean = _per_token(batch.policy_chosen_logps, chosen_len)
    rejected_mean = _per_token(batch.policy_rejected_logps, rejected_len)
    losses = -chosen_mean - beta * F.logsigmoid(_log_odds(chosen_mean) - _log_odds(rejected_mean))
    return PreferenceOutput(losses, (beta * chosen_mean).detach(), (beta * rejected_mean).detach())


def kto(
    batch: PreferenceBatch,
    *,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> PreferenceOutput:
    """KTO (Ethayarajh et al. 2024, 2402.01306 eq. 8), unpaired.

    ``r = rho(y)``; ``z = max(0, mean(log pi(y'|x) - log pi_ref(y'|x)))`` over mismatched pairs
    ``(x_i, y_j)``, detached (a batch estimate of ``KL(pi || pi_ref)``; gather the mismatched log-probs
    across ranks first under data parallelism). Then
    ``L_desirable = lambda_D (1 - sigma(beta (r - z)))`` and ``L_undesirable = lambda_U (1 - sigma(beta (z - r)))``.
    Both terms are *added* to the objective (align-anything subtracts the undesirable one, which
    rewards making undesirable answers likelier: a sign bug).

    Shapes: ``(Bc,)`` desirable and ``(Br,)`` undesirable in; ``(Bc + Br,)`` losses out, desirable first.
    Rewards: ``beta * r``.
    """
    chosen_ratio, rejected_ratio = _log_ratios(batch, "kto")
    policy_kl, ref_kl = _require(batch, "kto", "policy_kl_logps", "ref_kl_logps")
    z = (policy_kl - ref_kl).mean().clamp(min=0).detach()
    desirable = desirable_weight * (1 - torch.sigmoid(beta * (chosen_ratio - z)))
    undesirable = undesirable_weight * (1 - torch.sigmoid(beta * (z - rejected_ratio)))
    return PreferenceOutput(
        torch.cat([desirable, undesirable]),
        (beta * chosen_ratio).detach(),
        (beta * rejected_ratio).detach(),
        paired=False,
        kl=z,
    )


@dataclass(frozen=True)
class PreferenceLossSpec:
    """A registry entry: the loss function and what it needs from a :class:`PreferenceBatch`."""

    fn: Callable[..., PreferenceOutput]
    needs_reference: bool
    """Reads ``ref_*_logps`` (a reference model, or cached reference log-probs, is required)."""
    paired: bool
    """Row i of chosen and rejected must be the two answers to the same prompt."""
    needs_lengths: bool = False
    """Reads ``*_num_tokens`` (uses length-averaged log-probs)."""
    needs_kl_pairs: bool = False
    """Reads ``policy_kl_logps``/``ref_kl_logps`` from mismatched (prompt, response) pairs."""


class PreferenceLoss(Enum):
    """The preference-loss registry. ``PreferenceLoss("ipo")`` parses a config value."""

    DPO = PreferenceLossSpec(dpo, needs_reference=True, paired=True)
    IPO = PreferenceLossSpec(ipo, needs_reference=True, paired=True, needs_lengths=True)
    SIMPO = PreferenceLossSpec(simpo, needs_reference=False, paired=True, needs_lengths=True)
    ORPO = PreferenceLossSpec(orpo, needs_reference=False, paired=True, needs_lengths=True)
    KTO = PreferenceLossSpec(kto, needs_reference=True, paired=False, needs_kl_pairs=True)

    @classmethod
    def _missing_(cls, value: object) -> PreferenceLoss | None:
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        return None

    @property
    def needs_reference(self) -> bool:
        return self.value.needs_reference

    @property
    def paired(self) -> bool:
        return self.value.paired

    @property
    def needs_lengths(self) -> bool:
        return self.value.needs_lengths

    @property
    def needs_kl_pairs(self) -> bool:
        return self.value.needs_kl_pairs

    def __call__(self, batch: PreferenceBatch, **options: float) -> PreferenceOutput:
        return self.value.fn(batch, **options)


LOSS_NAMES: tuple[str, ...] = tuple(name.lower() for name in PreferenceLoss.__members__)
"""The config values of the registry, in its order: a new member is a new allowed ``loss``."""
