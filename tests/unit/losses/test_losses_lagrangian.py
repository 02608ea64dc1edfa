"""Safe RLHF Lagrange multiplier update and combined advantage, by hand."""

import math

import torch
from torch.testing import assert_close

from alignkit.losses import combined_advantages, lagrange_update


def test_lambda_grows_when_unsafe():
    """ln lambda = 0 (lambda = 1), J_C = 2, threshold 0, lr 0.1: 0 + 0.1 * 1 * (2 - 0) = 0.2."""
    out = lagrange_update(0.0, episode_cost=2.0, threshold=0.0, lr=0.1, lambda_max=5.0)
    assert math.isclose(out.log_lambda, 0.2, abs_tol=1e-12)
    assert math.isclose(out.lambda_, math.exp(0.2), abs_tol=1e-12)


def test_lambda_shrinks_when_safe_enough():
    """ln lambda = ln 2, J_C = -1, threshold -0.5: ln 2 + 0.1 * 2 * (-1 + 0.5) = ln 2 - 0.1."""
    out = lagrange_update(math.log(2), episode_cost=-1.0, threshold=-0.5, lr=0.1)
    assert math.isclose(out.log_lambda, math.log(2) - 0.1, abs_tol=1e-12)


def test_lambda_is_clamped_at_lambda_max():
    """ln 4 + 0.1 * 4 * 10 = ln 4 + 4 > ln 5 -> ln 5; without a max it stays ln 4 + 4."""
    out = lagrange_update(math.log(4), episode_cost=10.0, lr=0.1, lambda_max=5.0)
    assert math.isclose(out.log_lambda, math.log(5), abs_tol=1e-12)
    assert math.isclose(out.lambda_, 5.0, abs_tol=1e-12)
    free = lagrange_update(math.log(4), episode_cost=10.0, lr=0.1, lambda_max=None)
    assert math.isclose(free.log_lambda, math.log(4) + 4, abs_tol=1e-12)


def test_combined_advantages_by_hand():
    """A_r = [1, 2], A_c = [1, -1], lambda = 1 -> ([1, 2] - [1, -1]) / 2 = [0, 1.5]; lambda = 0 -> A_r;
    lambda = 3 -> ([1, 2] - [3, -3]) / 4 = [-0.5, 1.25]."""
    reward, cost = torch.tensor([1.0, 2.0]), torch.tensor([1.0, -1.0])
    assert_close(combined_advantages(reward, cost, 1.0), torch.tensor([0.0, 1.5]))
    assert_close(combined_advantages(reward, cost, 0.0), reward)
    assert_close(combined_advantages(reward, cost, 3.0), torch.tensor([-0.5, 1.25]))
