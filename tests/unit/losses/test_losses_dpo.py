"""DPO, IPO, SimPO, ORPO, KTO and the PreferenceLoss registry, against values computed by hand."""

import math
from dataclasses import replace

import pytest
import torch
from torch.testing import assert_close

from alignkit.losses import PreferenceBatch, PreferenceLoss, dpo, ipo, kto, orpo, simpo


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def nls(x: float) -> float:
    """-log sigma(x)."""
    return math.log1p(math.exp(-x))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_dpo_by_hand():
    """rho_w = policy - ref = [-1 - -1, 5 - -5, 10 - -10] = [0, 10, 20]; rho_l = 0.

    beta = 0.1 -> h = [0, 1, 2] -> L = -log sigma([0, 1, 2]).
    Rewards chosen beta * rho_w = [0, 1, 2], rejected 0: accuracy 2/3, margin mean 1.
    """
    batch = PreferenceBatch(
        policy_chosen_logps=t(-1, 5, 10),
        policy_rejected_logps=t(-3, -3, -3),
        ref_chosen_logps=t(-1, -5, -10),
        ref_rejected_logps=t(-3, -3, -3),
    )
    out = dpo(batch, beta=0.1)
    assert_close(out.losses, t(nls(0), nls(1), nls(2)), atol=1e-6, rtol=0)
    assert_close(out.chosen_rewards, t(0, 1, 2), atol=1e-6, rtol=0)
    metrics = out.metrics()
    assert_close(metrics["rewards/accuracy"], torch.tensor(2 / 3))
    assert_close(metrics["rewards/margin"], torch.tensor(1.0), atol=1e-6, rtol=0)
    assert_close(metrics["rewards/chosen"], torch.tensor(1.0), atol=1e-6, rtol=0)
    assert_close(metrics["rewards/rejected"], torch.tensor(0.0))


def test_dpo_label_smoothing_by_hand():
    """Same batch with eps = 0.25: L = 0.75 * -log sigma(h) + 0.25 * -log sigma(-h), h = [0, 1, 2]."""
    batch = PreferenceBatch(t(0, 1, 2), t(0, 0, 0), t(0, 0, 0), t(0, 0, 0))
    out = dpo(batch, beta=1.0, label_smoothing=0.25)
    expected = t(*[0.75 * nls(h) + 0.25 * nls(-h) for h in (0, 1, 2)])
    assert_close(out.losses, expected, atol=1e-6, rtol=0)


def test_ipo_by_hand_with_length_averaged_log_ratios():
    """beta = 0.5 -> target margin 1 / (2 beta) = 1.

    chosen: (policy - ref) / |y| = ([-4, -2] - [-8, -2]) / [2, 1] = [2, 0]
    rejected: ([-3, -6] - [-3, -3]) / [1, 3] = [0, -1]
    margins [2, 1] -> L = [(2 - 1)^2, (1 - 1)^2] = [1, 0]. Rewards beta * rho_avg: [1, 0], [0, -0.5].
    """
    batch = PreferenceBatch(
        policy_chosen_logps=t(-4, -2),
        policy_rejected_logps=t(-3, -6),
        ref_chosen_logps=t(-8, -2),
        ref_rejected_logps=t(-3, -3),
        chosen_num_tokens=torch.tensor([2, 1]),
        rejected_num_tokens=torch.tensor([1, 3]),
    )
    out = ipo(batch, beta=0.5)
    assert_close(out.losses, t(1, 0), atol=1e-6, rtol=0)
    assert_close(out.chosen_rewards, t(1, 0), atol=1e-6, rtol=0)
    assert_close(out.rejected_rewards, t(0, -0.5), atol=1e-6, rtol=0)


def test_simpo_by_hand():
    """beta = 2, gamma = 1. chosen log pi / |y| = [-2/2, -6/3] = [-1, -2] -> beta * that = [-2, -4];
    rejected [-6/3, -2/1] = [-2, -2] -> [-4, -4]. h = [-2 + 4 - 1, -4 + 4 - 1] = [1, -1]."""
    batch = PreferenceBatch(
        policy_chosen_logps=t(-2, -6),
        policy_rejected_logps=t(-6, -2),
        chosen_num_tokens=torch.tensor([2, 3]),
        rejected_num_tokens=torch.tensor([3, 1]),
    )
    out = simpo(batch, beta=2.0, gamma=1.0)
    assert_close(out.losses, t(nls(1), nls(-1)), atol=1e-6, rtol=0)
    assert_close(out.chosen_rewards, t(-2, -4), atol=1e-6, rtol=0)


def test_simpo_gamma_is_trls_simpo_gamma():
    """TRL's CPO trainer (loss_type='simpo') computes -log sigma(beta * (r_w - r_l - simpo_gamma / beta))
    with r = log pi / |y|; our gamma is that same simpo_gamma, not simpo_gamma / beta. beta 2, gamma 1:
    r_w - r_l = [-1 + 2, -2 + 2] = [1, 0] -> -log sigma(2 * ([1, 0] - 0.5)) = [nls(1), nls(-1)]."""
    batch = PreferenceBatch(
        policy_chosen_logps=t(-2, -6),
        policy_rejected_logps=t(-6, -2),
        chosen_num_tokens=torch.tensor([2, 3]),
        rejected_num_tokens=torch.tensor([3, 1]),
    )
    beta, simpo_gamma = 2.0, 1.0
    trl = [nls(beta * (margin - simpo_gamma / beta)) for margin in (1.0, 0.0)]
    assert_close(simpo(batch, beta=beta, gamma=simpo_gamma).losses, t(*trl), atol=1e-6, rtol=0)


def test_orpo_by_hand():
    """beta (the paper's lambda) = 0.1.

    Row 0: P_w = 1/2 (2 tokens of log 1/2 each) -> odds 1, log odds 0; P_l = 1/4 -> odds 1/3, log odds -ln 3.
      sigma(0 + ln 3) = 3/4 -> L = -log(1/2) - 0.1 log(3/4).
    Row 1: P_w = 0.9 -> odds 9; P_l = 0.1 -> odds 1/9; sigma(ln 81) = 81/82 -> L = -log 0.9 - 0.1 log(81/82).
    (P = 0.9 exercises the expm1 branch of log(1 - P), P <= 1/2 the log1p branch.)
    """
    batch = PreferenceBatch(
        policy_chosen_logps=t(2 * math.log(0.5), 4 * math.log(0.9)),
        policy_rejected_logps=t(3 * math.log(0.25), math.log(0.1)),
        chosen_num_tokens=torch.tensor([2, 4]),
        rejected_num_tokens=torch.tensor([3, 1]),
    )
    out = orpo(batch, beta=0.1)
    expected = t(-math.log(0.5) - 0.1 * math.log(3 / 4), -math.log(0.9) - 0.1 * math.log(81 / 82))
    assert_close(out.losses, expected, atol=1e-6, rtol=0)
    assert_close(out.chosen_rewards, t(0.1 * math.log(0.5), 0.1 * math.log(0.9)), atol=1e-6, rtol=0)


def kto_batch(policy_rejected: float = -1.0) -> PreferenceBatch:
    """Desirable r = [0 - -1, 1 - -2] = [1, 3]; undesirable r = [policy_rejected - -3];
    KL pairs: policy - ref = [1, 0, 2] -> mean 1 -> z = 1."""
    return PreferenceBatch(
        policy_chosen_logps=t(0, 1),
        policy_rejected_logps=t(policy_rejected),
        ref_chosen_logps=t(-1, -2),
        ref_rejected_logps=t(-3),
        policy_kl_logps=t(-1, -2, 3),
        ref_kl_logps=t(-2, -2, 1),
    )


def test_kto_by_hand():
    """beta = 1, z = 1. Desirable: 1 - sigma(1 - 1) = 1/2, 1 - sigma(3 - 1) = 1 - sigma(2).
    Undesirable r = 2: 1 - sigma(z - r) = 1 - sigma(-1). Weights lambda_D = 2, lambda_U = 3 scale them.
    Losses are (Bc + Br,) = (3,), desirable first; both terms enter with a + sign."""
    out = kto(kto_batch(), beta=1.0)
    expected = [0.5, 1 - sigmoid(2), 1 - sigmoid(-1)]
    assert_close(out.losses, t(*expected), atol=1e-6, rtol=0)
    assert_close(out.kl, torch.tensor(1.0))
    weighted = kto(kto_batch(), beta=1.0, desirable_weight=2.0, undesirable_weight=3.0)
    assert_close(weighted.losses, t(2 * expected[0], 2 * expected[1], 3 * expected[2]), atol=1e-6, rtol=0)
    metrics = out.metrics()
    assert "rewards/accuracy" not in metrics  # unpaired: no pairwise accuracy
    assert_close(metrics["rewards/chosen"], torch.tensor(2.0))
    assert_close(metrics["rewards/kl"], torch.tensor(1.0))


def test_kto_reference_point_is_clamped_at_zero_and_detached():
    """KL pairs with policy - ref = [-1, -1] -> mean -1 -> z = max(0, -1) = 0; desirable r = 1 ->
    1 - sigma(1). No gradient reaches the KL pairs."""
    policy_kl = t(-3, -3).requires_grad_()
    policy_chosen = t(0, 1).requires_grad_()
    batch = replace(
        kto_batch(), policy_chosen_logps=policy_chosen, policy_kl_logps=policy_kl, ref_kl_logps=t(-2, -2)
    )
    out = kto(batch, beta=1.0)
    assert out.kl == 0
    assert_close(out.losses[0], torch.tensor(1 - sigmoid(1)), atol=1e-6, rtol=0)
    out.losses.sum().backward()
    assert policy_chosen.grad is not None and policy_kl.grad is None


def test_kto_sign_raising_an_undesirable_reward_raises_its_loss():
    """align-anything subtracts the undesirable term; with the correct + sign, making an undesirable
    answer likelier must cost more."""
    low, high = kto(kto_batch(-2.0)), kto(kto_batch(0.0))
    assert high.losses[-1] > low.losses[-1]
    policy_rejected = t(-1).requires_grad_()
    out = kto(replace(kto_batch(), policy_rejected_logps=policy_rejected))
    out.losses.sum().backward()
    assert policy_rejected.grad.item() > 0  # descent lowers log pi of the undesirable answer


def full_batch(**overrides) -> PreferenceBatch:
    """Every field set: chosen clearly preferred by the policy (higher ratio and higher mean log-prob)."""
    fields = dict(
        policy_chosen_logps=t(-2.0, -3.0),
        policy_rejected_logps=t(-6.0, -8.0),
        ref_chosen_logps=t(-4.0, -4.0),
        ref_rejected_logps=t(-5.0, -6.0),
        chosen_num_tokens=torch.tensor([2, 3]),
        rejected_num_tokens=torch.tensor([3, 4]),
        policy_kl_logps=t(-3.0, -4.0),
        ref_kl_logps=t(-3.5, -4.0),
    )
    fields.update(overrides)
    return PreferenceBatch(**fields)


def swapped(batch: PreferenceBatch) -> PreferenceBatch:
    return replace(
        batch,
        policy_chosen_logps=batch.policy_rejected_logps,
        policy_rejected_logps=batch.policy_chosen_logps,
        ref_chosen_logps=batch.ref_rejected_logps,
        ref_rejected_logps=batch.ref_chosen_logps,
        chosen_num_tokens=batch.rejected_num_tokens,
        rejected_num_tokens=batch.chosen_num_tokens,
    )


@pytest.mark.parametrize("kind", list(PreferenceLoss))
def test_preferred_answer_gets_lower_loss(kind):
    """Labelling the policy's favourite as chosen costs less than labelling it as rejected."""
    assert kind(full_batch()).losses.sum() < kind(swapped(full_batch())).losses.sum()


@pytest.mark.parametrize("kind", list(PreferenceLoss))
def test_gradients_reach_policy_only(kind):
    refs = {name: t(-4.0, -4.0).requires_grad_() for name in ("ref_chosen_logps", "ref_rejected_logps")}
    policy = {n: t(-2.0, -3.0).requires_grad_() for n in ("policy_chosen_logps", "policy_rejected_logps")}
    out = kind(full_batch(**refs, **policy))
    out.losses.sum().backward()
    assert all(ref.grad is None for ref in refs.values())
    assert all(p.grad is not None for p in policy.values())
    assert not out.chosen_rewards.requires_grad and not out.rejected_rewards.requires_grad
    assert all(not v.requires_grad for v in out.metrics().values())


@pytest.mark.parametrize("kind", list(PreferenceLoss))
def test_fully_masked_rows_give_no_nan(kind):
    """Empty responses: summed log-probs 0 and token counts 0 in every row."""
    zeros, no_tokens = t(0.0, 0.0), torch.tensor([0, 0])
    batch = PreferenceBatch(zeros, zeros, zeros, zeros, no_tokens, no_tokens, zeros, zeros)
    out = kind(batch)
    assert torch.isfinite(out.losses).all()
    assert all(torch.isfinite(v) for v in out.metrics().values())


def test_registry_parses_config_values():
    assert PreferenceLoss("ipo") is PreferenceLoss.IPO
    assert PreferenceLoss("DPO") is PreferenceLoss.DPO
    assert PreferenceLoss["SIMPO"] is PreferenceLoss.SIMPO
    with pytest.raises(ValueError):
        PreferenceLoss("rpo")


@pytest.mark.parametrize("kind", list(PreferenceLoss))
def test_capabilities_match_what_each_loss_reads(kind):
    """A loss works with exactly the fields its capabilities name, and fails clearly without them."""
    needed = {"policy_chosen_logps", "policy_rejected_logps"}
    optional = {
        "needs_reference": ("ref_chosen_logps", "ref_rejected_logps"),
        "needs_lengths": ("chosen_num_tokens", "rejected_num_tokens"),
        "needs_kl_pairs": ("policy_kl_logps", "ref_kl_logps"),
    }
    for capability, fields in optional.items():
        if getattr(kind, capability):
            needed.update(fields)
    full = full_batch()
    minimal = PreferenceBatch(**{name: getattr(full, name) for name in needed})
    assert torch.isfinite(kind(minimal).losses).all()
    for name in needed - {"policy_chosen_logps", "policy_rejected_logps"}:
        with pytest.raises(ValueError, match=name):
            kind(replace(minimal, **{name: None}))
    uneven = replace(minimal, policy_rejected_logps=t(-6.0), ref_rejected_logps=t(-5.0))
    uneven = replace(uneven, rejected_num_tokens=torch.tensor([3]))
    if kind.paired:
        with pytest.raises(ValueError, match="paired"):
            kind(uneven)
    else:
        assert kind(uneven).losses.shape == (3,)
