"""Online RL loop invariants: micro-batching, exact resume, two processes, and the CLI.

Small runs (a few steps of 8 prompts) from the demo's SFT policy and score models.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from alignkit.cli import trainer_for
from alignkit.config import load_config
from alignkit.demo import RECIPES

from online_helpers import assert_same_run, metric_rows, small_run_overrides, safe_ppo, weights  # isort: skip
from sft_helpers import BIN, REPO, run_cli  # isort: skip

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.mark.parametrize("aggregation", ["token_mean", "sequence_mean"])
def test_micro_batch_size_does_not_change_safe_rlhf(demo_run, tmp_path, aggregation):
    """Mini-batch 4 as one micro-batch of 4 or four of 1: same losses, lambda and weights (fp32 noise),
    for the token mean and for safe-rlhf's per-sequence mean."""
    agg = f"ppo.aggregation={aggregation}"
    safe_ppo(demo_run, tmp_path / "m4", "trainer.micro_batch_size=4", agg)
    safe_ppo(demo_run, tmp_path / "m1", "trainer.micro_batch_size=1", agg)
    assert_same_run(tmp_path / "m4", tmp_path / "m1", atol=2e-5)


def test_ppo_shortcuts_match_the_step_that_reads_the_rollout_again(demo_run, tmp_path):
    """One optimizer step per rollout: the old log-probs read off the sampling loop and the critics'
    values taken from their update forward give the same run as re-reading the rollout with the policy
    and the critics first (the textbook step, forced here), to fp32 noise."""
    from alignkit.train.ppo import PPOTrainer

    class RereadingPPO(PPOTrainer):
        def build(self, actor):
            out = super().build(actor)
            assert self.rollout_logprobs and self.fused_critics  # both shortcuts apply to this config
            self.rollout_logprobs = self.fused_critics = False
            return out

    config_cls, _ = trainer_for("safe-ppo")
    one_update = ("trainer.mini_batch_size=8", "trainer.update_epochs=1", "trainer.steps=3")
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    safe_ppo(demo_run, fast, *one_update)
    RereadingPPO(
        load_config(config_cls, RECIPES / "safe-ppo.yaml", small_run_overrides(demo_run, slow, *one_update))
    ).run()
    timings = [json.loads(line) for line in (fast / "metrics.jsonl").read_text().splitlines()]
    assert not any("timing/old_logps" in r or "timing/values" in r for r in timings)  # really skipped
    assert_same_run(fast, slow, atol=2e-5)


def test_resume_from_a_checkpoint_matches_the_uninterrupted_run(demo_run, tmp_path):
    """Checkpoint at step 2 of 4; a run resumed from it ends exactly where the uninterrupted one does."""
    full = tmp_path / "full"
    safe_ppo(demo_run, full, "trainer.save_every=2")
    assert len(list((full / "checkpoints").iterdir())) == 1  # step 2 only: the last step writes final/
    resumed = tmp_path / "resumed"
    shutil.copytree(full, resumed)
    shutil.rmtree(resumed / "final")
    state = json.loads(next((resumed / "checkpoints").iterdir()).joinpath("trainer_state.json").read_text())
    # 2 rollouts of 8 samples, 2 epochs of mini-batches of 4: 8 optimizer steps
    assert state["rollouts"] == 2 and state["global_step"] == 8 and "lagrange" in state["extra"]
    safe_ppo(demo_run, resumed, "trainer.save_every=2", "run.resume=true")
    assert_same_run(full, resumed, atol=1e-6)


def test_an_online_run_never_overwrites_an_earlier_one(demo_run, tmp_path):
    from alignkit.runs import RunFolderError

    out = tmp_path / "run"
    safe_ppo(demo_run, out, "trainer.steps=1")
    with pytest.raises(RunFolderError):
        safe_ppo(demo_run, out, "trainer.steps=1")


def test_two_gloo_processes_train_safe_rlhf_together(demo_run, tmp_path):
    """accelerate launch with 2 CPU processes: each samples its half of the prompts; lambda moves on the
    costs of both (gathered), and the run records world size 2."""
    out = tmp_path / "ddp"
    launcher = [
        str(BIN / "accelerate"),
        "launch",
        "--config_file",
        str(REPO / "examples" / "accelerate" / "ddp.yaml"),
    ]
    args = [
        "train",
        "safe-ppo",
        "--config",
        str(RECIPES / "safe-ppo.yaml"),
        *small_run_overrides(demo_run, out, "trainer.steps=2"),
    ]
    result = run_cli(*args, launcher=launcher)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((out / "final" / "trainer_state.json").read_text())
    assert state["num_processes"] == 2 and state["distributed_type"].endswith("MULTI_CPU"), state
    rows = [r for r in metric_rows(out) if "lagrange/lambda" in r]
    assert len(rows) == 2 and all(r["lagrange/lambda"] > 0 for r in rows)


def test_cli_trains_grpo_and_rejects_a_group_of_one(demo_run, tmp_path, cli):
    models = demo_run.out_dir
    common = [f"model.path={models / 'sft' / 'final'}", "monitor=null", "rollout.prompts_per_step=4",
              "rollout.samples_per_prompt=2", "trainer.mini_batch_size=8", "trainer.steps=1",
              "data.eval.max_rows=4", "run.progress=false"]  # fmt: skip
    ok = cli(
        "train", "grpo", "--config", str(RECIPES / "grpo.yaml"), *common, f"run.output_dir={tmp_path / 'g'}"
    )
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert (tmp_path / "g" / "final" / "model.safetensors").exists()
    assert (tmp_path / "g" / "plots" / "reward.png").exists()
    bad = cli("train", "grpo", "--config", str(RECIPES / "grpo.yaml"), *common,
              "rollout.samples_per_prompt=1", f"run.output_dir={tmp_path / 'bad'}")  # fmt: skip
    assert bad.returncode == 2 and "rollout.samples_per_prompt" in bad.stderr


def test_ppo_with_a_pretraining_mix_logs_its_loss(demo_run, tmp_path):
    """ppo.ptx_coef > 0 adds the NLL of SFT conversations to the actor loss (InstructGPT's PPO-ptx)."""
    config_cls, train = trainer_for("ppo")
    overrides = [
        o
        for o in small_run_overrides(demo_run, tmp_path / "ptx", "trainer.steps=2")
        if not o.startswith("cost.")
    ]
    overrides += [
        "ppo.ptx_coef=1.0",
        "ptx.source=toyworld://data/sft",
        "ptx.template=trl-messages",
        "monitor=null",
    ]
    train(load_config(config_cls, RECIPES / "ppo.yaml", overrides))
    rows = [r for r in metric_rows(tmp_path / "ptx") if "policy/ptx_loss" in r]
    assert len(rows) == 2
    # The SFT policy already fits its SFT data: the mixed-in NLL is small and finite.
    assert all(0 < r["policy/ptx_loss"] < 2.0 for r in rows)
    with pytest.raises(Exception, match="ptx"):
        load_config(config_cls, RECIPES / "ppo.yaml", [*overrides[:-3], "ptx=null"])


@pytest.mark.parametrize("aggregation", ["token_mean", "sequence_mean"])
def test_micro_batch_size_does_not_change_grpo_or_its_logged_loss(demo_run, tmp_path, aggregation):
    """GRPO's loss is normalised by the mini-batch's tokens (or rows): micro-batch 8 or 2, same run."""
    config_cls, train = trainer_for("grpo")
    models = demo_run.out_dir
    for micro in (8, 2):
        overrides = [f"model.path={models / 'sft' / 'final'}", "monitor=null", "rollout.prompts_per_step=4",
                     f"aggregation={aggregation}",
                     "rollout.samples_per_prompt=4", "trainer.mini_batch_size=8", "trainer.steps=2",
                     "data.eval.max_rows=8", f"trainer.micro_batch_size={micro}", "run.progress=false",
                     f"run.output_dir={tmp_path / str(micro)}"]  # fmt: skip
        train(load_config(config_cls, RECIPES / "grpo.yaml", overrides))
    rows_a, rows_b = metric_rows(tmp_path / "8"), metric_rows(tmp_path / "2")
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for key in ra:
            assert ra[key] == pytest.approx(rb[key], abs=2e-5, rel=1e-4), (ra["step"], key)
    assert all("policy/loss" in r for r in rows_a)
    wa, wb = weights(tmp_path / "8" / "final"), weights(tmp_path / "2" / "final")
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], atol=2e-5, rtol=0)


def test_sampling_temperature_is_the_one_the_ratio_is_taken_at(demo_run, tmp_path):
    """At temperature 0.7, the rollout's log-probs and the update's are both taken at 0.7: on the only
    mini-batch of a step the policy has not moved yet, so the ratio is exactly 1 (approx_kl 0, no clipping)."""
    config_cls, train = trainer_for("ppo")
    overrides = [
        o
        for o in small_run_overrides(demo_run, tmp_path / "t", "trainer.steps=2")
        if not o.startswith("cost.")
    ]
    overrides += [
        "monitor=null",
        "rollout.temperature=0.7",
        "trainer.mini_batch_size=8",
        "trainer.update_epochs=1",
    ]
    train(load_config(config_cls, RECIPES / "ppo.yaml", overrides))
    rows = [r for r in metric_rows(tmp_path / "t") if "policy/approx_kl" in r]
    assert len(rows) == 2
    assert all(r["policy/approx_kl"] < 1e-10 and r["policy/clipfrac"] == 0 for r in rows)
    assert all(
        r["policy/kl"] != 0 for r in rows[1:]
    )  # the policy did move away from the reference after step 1
