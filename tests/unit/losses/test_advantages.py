"""The advantage-estimator registry: each estimator against values computed by hand, and the config's
allowed values read off the registry."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from alignkit.config import ConfigError, from_dict
from alignkit.losses.advantages import ESTIMATORS, AdvantageInputs, critic_free, discounted_returns

MASK = torch.tensor([[True, True, True], [True, True, False]])


def _inputs(scores, token_rewards=None, group_size=2, values=None, gamma=1.0, lam=0.95):
    scores = torch.tensor(scores)
    if token_rewards is None:
        token_rewards = torch.zeros(MASK.shape)
    return AdvantageInputs(scores, torch.tensor(token_rewards), MASK, group_size, values, gamma, lam)


def test_every_estimator_declares_its_needs():
    assert list(ESTIMATORS) == ["gae", "grpo", "dr_grpo", "rloo", "reinforce_pp"]
    assert [n for n, e in ESTIMATORS.items() if e.needs_critic] == ["gae"]
    assert [n for n, e in ESTIMATORS.items() if e.needs_groups] == ["grpo", "dr_grpo", "rloo"]
    assert [n for n, e in ESTIMATORS.items() if e.kl_in_reward] == ["gae", "reinforce_pp"]
    assert [n for n, e in ESTIMATORS.items() if e.constant_loss_normaliser] == ["dr_grpo"]
    assert critic_free() == ("grpo", "dr_grpo", "rloo", "reinforce_pp")
    assert ESTIMATORS["reinforce_pp"].display_name == "REINFORCE++"


def test_group_estimators_spread_the_sequence_advantage_over_the_response():
    # one group of two: rewards 1 and 3, mean 2, unbiased std sqrt(2)
    grpo = ESTIMATORS["grpo"](_inputs([1.0, 3.0])).advantages
    a = 1 / (2**0.5 + 1e-4)
    assert_close(grpo, torch.tensor([[-a, -a, -a], [a, a, 0.0]]))
    dr = ESTIMATORS["dr_grpo"](_inputs([1.0, 3.0])).advantages
    assert_close(dr, torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 0.0]]))
    rloo = ESTIMATORS["rloo"](_inputs([1.0, 3.0])).advantages  # 1 - 3, 3 - 1
    assert_close(rloo, torch.tensor([[-2.0, -2.0, -2.0], [2.0, 2.0, 0.0]]))


def test_reinforce_pp_is_the_return_to_go_of_the_shaped_rewards():
    # row 0: -0.1 KL penalty on each token, score 1 on the last; row 1: score 2 on its last (second) token
    rewards = [[-0.1, -0.1, 0.9], [-0.2, 1.8, 0.0]]
    out = ESTIMATORS["reinforce_pp"](_inputs([1.0, 2.0], rewards, group_size=1))
    assert out.returns is None
    assert_close(out.advantages, torch.tensor([[0.7, 0.8, 0.9], [1.6, 1.8, 0.0]]))
    discounted = discounted_returns(torch.tensor(rewards), MASK, gamma=0.5)
    assert_close(discounted, torch.tensor([[-0.1 - 0.05 + 0.225, -0.1 + 0.45, 0.9], [-0.2 + 0.9, 1.8, 0.0]]))


def test_gae_needs_values_and_returns_its_targets():
    values = torch.tensor([[0.5, 0.5, 0.5], [0.0, 1.0, 9.0]])
    rewards = [[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]]
    out = ESTIMATORS["gae"](_inputs([1.0, 2.0], rewards, values=values, gamma=1.0, lam=1.0))
    # lambda = gamma = 1: A_t = sum of later rewards - V_t; the padded value 9 never leaks in
    assert_close(out.advantages, torch.tensor([[0.5, 0.5, 0.5], [2.0, 1.0, 0.0]]))
    assert_close(out.returns, torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 0.0]]))
    with pytest.raises(ValueError, match="critic"):
        ESTIMATORS["gae"](_inputs([1.0, 2.0]))


def test_the_grpo_config_allows_exactly_the_critic_free_estimators():
    from alignkit.train.grpo import GRPOConfig

    def config(advantage: str, group: int = 8) -> GRPOConfig:
        data = {"advantage": advantage, "reward": {"path": "m:f"}, "rollout": {"samples_per_prompt": group}}
        return from_dict(GRPOConfig, data)

    for name in critic_free():
        assert config(name).advantage == name
    with pytest.raises(ConfigError, match="reinforce_pp") as err:
        config("gae")
    assert "advantage" in str(err.value)
    # REINFORCE++ needs no group; the group estimators refuse a group of one
    assert config("reinforce_pp", group=1)
    with pytest.raises(ConfigError, match="samples_per_prompt"):
        config("rloo", group=1)
