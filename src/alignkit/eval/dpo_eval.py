"""How well a DPO-trained policy ranks held-out preference pairs, read off its log-probs.

A DPO policy is its own reward model: ``r(x, y) = beta * (log pi(y|x) - log pi_ref(y|x))`` (2305.18290
sec. 5). Two accuracies over held-out pairs:

- ``implicit_reward_accuracy``: fraction of pairs with ``beta * (rho(y_w) - rho(y_l)) > 0``, i.e. the
  policy moved towards the chosen response *relative to the reference* more than towards the rejected
  one. This is what DPO optimises; it says nothing about which answer the policy would actually give.
- ``logp_accuracy``: fraction with ``log pi(y_w|x) > log pi(y_l|x)``: the policy, on its own, finds the
  chosen response likelier. Needs no reference, so it compares any two policies (e.g. SFT vs DPO).

Ties count as wrong (a strict ``>``), so a policy that equals its reference scores 0 on the first, not
0.5. ``alignkit eval preference`` calls :func:`evaluate_dpo_policy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from alignkit.data.pair_examples import PairExample, PreferenceLabel, collate_pairs, tokenize_pairs
from alignkit.models.forward import response_logps


class PairLogps(NamedTuple):
    chosen: torch.Tensor
    """``(N,)`` log pi(y_w | x), summed over response tokens."""
    rejected: torch.Tensor
    """``(N,)`` log pi(y_l | x)."""


@torch.no_grad()
def pair_logps(
    model: torch.nn.Module, examples: Sequence[PairExample], pad_token_id: int, *, batch_size: int = 32
) -> PairLogps:
    """Log-probs of both responses of every pair, one concatenated forward per batch, in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chosen, rejected = [], []
    try:
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            batch = {k: v.to(device) for k, v in collate_pairs(chunk, pad_token_id).items()}
            logps = response_logps(model, batch).logps.float().cpu()  # (2B,)
            chosen.append(logps[: len(chunk)])
            rejected.append(logps[len(chunk) :])
    finally:
        model.train(was_training)
    empty = torch.zeros(0)
    return PairLogps(torch.cat(chosen) if chosen else empty, torch.cat(rejected) if rejected else empty)


def preference_metrics(policy: PairLogps, reference: PairLogps | None, beta: float = 0.1) -> dict[str, float]:
    """Accuracies and mean margins from precomputed log-probs (see the module docstring for the keys)."""
    n = len(policy.chosen)
    nan = float("nan")
    logp_margin = policy.chosen - policy.rejected  # (N,)
    out = {
        "logp_accuracy": float((logp_margin > 0).float().mean()) if n else nan,
        "logp_margin": float(logp_margin.mean()) if n else nan,
        "n_pairs": float(n),
    }
    if reference is not None:
        # beta * (rho_w - rho_l): the difference of the two implicit rewards.
        reward_margin = beta * ((policy.chosen - reference.chosen) - (policy.rejected - reference.rejected))
        out["implicit_reward_accuracy"] = float((reward_margin > 0).float().mean()) if n else nan
        out["implicit_reward_margin"] = float(reward_margin.mean()) if n else nan
    return out


def evaluate_dpo_policy(
    policy: torch.nn.Module,
    tokenizer: Any,
    records: Sequence[Any],
    *,
    reference: torch.nn.Module | None = None,
    beta: float = 0.1,
    label: PreferenceLabel = "helpfulness",
    max_length: int = 512,
    batch_size: int = 32,
) -> dict[str, float]:
    """Preference accuracies of ``policy`` on held-out pair ``records``.

    ``records`` are ``Preference`` or ``SafetyPreference`` records (ranked by ``label``). Returns
    ``logp_accuracy``, ``logp_margin``, ``n_pairs`` and, when ``reference`` (pi_ref, usually the SFT
    model DPO started from) is given, ``implicit_reward_accuracy`` and ``implicit_reward_margin``
    (mean ``beta * (rho_w - rho_l)``). Pairs whose response is truncated away are left out.
    """
    examples, _, _ = tokenize_pairs(records, tokenizer, max_length, label)
    pad = tokenizer.pad_token_id
    policy_logps = pair_logps(policy, examples, pad, batch_size=batch_size)
    ref_logps = None if reference is None else pair_logps(reference, examples, pad, batch_size=batch_size)
    return preference_metrics(policy_logps, ref_logps, beta)
