"""PPO with a shared critic (``critic.shared: true``): value heads on the policy's own backbone.

One forward and backward serve actor and critic and the rollout's values are read off the sampling loop,
so a PPO step costs about what a GRPO step does (``benchmarks/ppo_vs_grpo.py``). Shown here: the
shortcut changes nothing but the cost (the same run as re-reading the rollout), the saved policy stays a
plain causal LM, and the policy still learns.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from alignkit.cli import trainer_for
from alignkit.config import load_config
from alignkit.demo import RECIPES, held_out_scores
from alignkit.models.loading import load_causal_lm

from online_helpers import assert_same_run, small_run_overrides  # isort: skip

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SHARED = ("critic.shared=true", "cost_critic.shared=true")


def test_values_read_off_the_sampling_loop_match_rereading_the_rollout(demo_run, tmp_path):
    """Safe RLHF with both critics shared: old log-probs and both heads' values read off the sampling loop
    give the same run (losses, lambda, weights, heads) as a policy forward over the rollout first."""
    from alignkit.train.ppo import PPOTrainer

    class RereadingPPO(PPOTrainer):
        def build(self, actor):
            out = super().build(actor)
            assert self.rollout_logprobs and self.rollout_readout is not None  # the shortcut applies
            self.rollout_logprobs, self.rollout_readout = False, None
            return out

    config_cls, train = trainer_for("safe-ppo")
    settings = (*SHARED, "trainer.mini_batch_size=4", "trainer.update_epochs=2", "trainer.steps=3")
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    train(load_config(config_cls, RECIPES / "safe-ppo.yaml", small_run_overrides(demo_run, fast, *settings)))
    RereadingPPO(
        load_config(config_cls, RECIPES / "safe-ppo.yaml", small_run_overrides(demo_run, slow, *settings))
    ).run()
    rows = [json.loads(line) for line in (fast / "metrics.jsonl").read_text().splitlines()]
    assert not any("timing/old_logps" in r for r in rows)  # really read off the loop
    assert all("timing/old_logps" in r for r in map(json.loads, (slow / "metrics.jsonl").open()))
    assert {"value/loss", "cost_value/loss", "value/explained_variance"} <= set(rows[-1])
    assert_same_run(fast, slow, atol=2e-5, critics=())
    heads_fast, heads_slow = (
        load_file(str(d / "final" / "critics" / "value_heads.safetensors")) for d in (fast, slow)
    )
    assert sorted(heads_fast) == ["cost_value.bias", "cost_value.weight", "value.bias", "value.weight"]
    assert heads_fast["value.weight"].abs().max() > 0  # the heads learned from their zero start
    for name in heads_fast:
        torch.testing.assert_close(heads_fast[name], heads_slow[name], atol=2e-5, rtol=0)
    # final/ is a plain causal LM: no head tensors, loads without warnings about unexpected keys
    assert not [k for k in load_file(str(fast / "final" / "model.safetensors")) if "value_heads" in k]
    load_causal_lm(str(fast / "final"))


ORACLE_GAIN = 0.01
"""With the helpfulness oracle as reward (the setting of ``test_ppo_with_the_oracle_as_reward_raises_oracle_
helpfulness``), PPO with a shared critic must raise oracle helpfulness by this. Measured on two demo SFT
policies (seed 0): +0.028 (0.826 -> 0.854; the separate critic: +0.038 on the same policy, in 38 s instead of
22 s) and +0.051 (0.803 -> 0.854, benign accuracy 0.936 -> 0.957)."""


def test_ppo_with_a_shared_critic_raises_oracle_helpfulness(demo_run, tmp_path):
    models = demo_run.out_dir
    config = load_config(
        trainer_for("ppo")[0],
        RECIPES / "ppo.yaml",
        [
            f"model.path={models / 'sft' / 'final'}",
            "reward.path=alignkit.toyworld.oracle:helpfulness",
            "monitor=null",
            "critic.shared=true",
            "trainer.lr=1e-4",
            "trainer.eval_every=0",
            f"run.output_dir={tmp_path / 'ppo-shared'}",
            "run.progress=false",
        ],
    )
    result = trainer_for("ppo")[1](config)
    ppo = held_out_scores(result.final_dir, models / "reward" / "final", models / "cost" / "final")
    sft = demo_run.oracle["SFT"]
    print(f"\nshared-critic PPO: helpfulness {sft['mean_helpfulness']:.3f} -> {ppo['mean_helpfulness']:.3f}, "
          f"benign accuracy {sft['benign_accuracy']:.3f} -> {ppo['benign_accuracy']:.3f}")  # fmt: skip
    assert ppo["mean_helpfulness"] >= sft["mean_helpfulness"] + ORACLE_GAIN
    assert ppo["benign_accuracy"] >= sft["benign_accuracy"] - 0.035


def test_a_shared_critic_takes_no_path(demo_run, tmp_path):
    from alignkit.config import ConfigError

    config_cls, _ = trainer_for("ppo")
    with pytest.raises(ConfigError, match="critic.path"):
        load_config(config_cls, RECIPES / "ppo.yaml", ["critic.shared=true", "critic.path=some/model"])
