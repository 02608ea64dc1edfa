"""Safe RLHF's Lagrange multiplier as a trainer component: its config section and its state.

The update rule itself is the pure function ``alignkit.losses.lagrangian.lagrange_update``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alignkit.config import check
from alignkit.losses.lagrangian import lagrange_update


@dataclass
class LagrangeConfig:
    """Safe RLHF's multiplier (2310.12773 sec. 3.3); defaults of safe-rlhf's ppo-lag script."""

    threshold: float = 0.0
    """Cost limit on the mean episode cost J_C: lambda grows while J_C is above it (0: safe on average)."""
    lambda_init: float = 1.0
    """Initial lambda (> 0; it is optimised as log lambda so it stays positive)."""
    lambda_lr: float = 0.1
    """Learning rate of log lambda."""
    lambda_max: float | None = 5.0
    """Upper bound on lambda (null: none)."""
    delay_steps: int = 0
    """Steps before lambda starts to move."""
    window: int = 128
    """J_C is the mean cost of the last this many episodes (over all processes)."""

    def validate(self, prefix: str) -> None:
        check(self.lambda_init > 0, f"{prefix}lambda_init", self.lambda_init, "a positive number")
        check(self.lambda_lr >= 0, f"{prefix}lambda_lr", self.lambda_lr, "a number >= 0")
        check(
            self.lambda_max is None or self.lambda_max >= self.lambda_init,
            f"{prefix}lambda_max",
            self.lambda_max,
            "null or a number >= lambda_init",
        )
        check(self.delay_steps >= 0, f"{prefix}delay_steps", self.delay_steps, "an integer >= 0")
        check(self.window > 0, f"{prefix}window", self.window, "a positive integer")


class LagrangeMultiplier:
    """lambda = exp(log lambda), moved by :func:`lagrange_update` on a window of recent episode costs."""

    def __init__(self, cfg: LagrangeConfig) -> None:
        self.cfg = cfg
        self.log_lambda = math.log(cfg.lambda_init)
        self.window: deque[float] = deque(maxlen=cfg.window)

    @property
    def value(self) -> float:
        return math.exp(self.log_lambda)

    def update(self, step: int, episode_costs: Sequence[float]) -> dict[str, float]:
        """Add this step's episode costs (all processes) and, after the delay, take one step on log lambda."""
        self.window.extend(episode_costs)
        episode_cost = sum(self.window) / len(self.window)
        if step >= self.cfg.delay_steps:
            self.log_lambda = lagrange_update(
                self.log_lambda, episode_cost, self.cfg.threshold, self.cfg.lambda_lr, self.cfg.lambda_max
            ).log_lambda
        return {"lagrange/lambda": self.value, "lagrange/episode_cost": episode_cost}

    def state_dict(self) -> dict[str, Any]:
        return {"log_lambda": self.log_lambda, "window": list(self.window)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.log_lambda = float(state["log_lambda"])
        self.window = deque(state["window"], maxlen=self.cfg.window)
