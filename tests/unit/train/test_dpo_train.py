"""The DPO trainer on the toy world's tiny random-init model: forward, reference, every loss, the CLI.

The math of each loss is tested by hand in ``tests/unit/losses/test_losses_dpo.py``; here we test what
the trainer adds: one concatenated forward equals two, cached reference log-probs equal the live
reference (the same losses step by step), the reference never changes while the policy does, and
every variant trains through the same ``train(config)`` the CLI calls.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from alignkit.cli import main as cli_main
from alignkit.config import ConfigError, load_config
from alignkit.data import load_records
from alignkit.data.collate import collate_lm
from alignkit.data.pair_examples import PairExample, collate_pairs, tokenize_pairs
from alignkit.losses.dpo import PreferenceLoss
from alignkit.models.forward import response_logps
from alignkit.models.loading import load_causal_lm, load_tokenizer, resolve_path
from alignkit.models.lora import disabled_adapter
from alignkit.train.dpo import DPOConfig, load_reference, loss_options, paired_loss_fn, train
from alignkit.train.reference import ReferenceModel, cache_reference_logps

TINY = "toyworld://models/tiny"
DATA = ["data.train.source=toyworld://data/safe_pref", "data.train.template=pku-saferlhf"]


def _config(out: Path, *overrides: str) -> DPOConfig:
    """A few-step run on 32 pairs (16 held out), as `alignkit train dpo` would build it."""
    items = [
        f"model.path={TINY}",
        *DATA,
        "data.train.max_rows=32",
        "data.eval.source=toyworld://data/safe_pref",
        "data.eval.template=pku-saferlhf",
        "data.eval.split=test",
        "data.eval.max_rows=16",
        "data.max_length=64",
        "trainer.micro_batch_size=4",
        "trainer.grad_accum_steps=2",
        "trainer.max_steps=3",
        "trainer.lr=1e-3",
        "trainer.warmup_ratio=0",
        f"run.output_dir={out}",
        "run.progress=false",
        "run.tensorboard=false",
        *overrides,
    ]
    return load_config(DPOConfig, None, items)


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TINY)


@pytest.fixture(scope="module")
def pairs(tokenizer) -> list[PairExample]:
    records = load_records(resolve_path("toyworld://data/safe_pref"), "pku-saferlhf").records[:8]
    examples, _, _ = tokenize_pairs(records, tokenizer, 64, "helpfulness")
    return examples


def test_concatenated_forward_equals_two_forwards(pairs, tokenizer) -> None:
    model = load_causal_lm(TINY).eval()
    pad = tokenizer.pad_token_id
    with torch.no_grad():
        joint = response_logps(model, collate_pairs(pairs, pad))  # (2B,)
        chosen = response_logps(model, collate_lm([p.chosen for p in pairs], pad))
        rejected = response_logps(model, collate_lm([p.rejected for p in pairs], pad))
    torch.testing.assert_close(joint.logps, torch.cat([chosen.logps, rejected.logps]), rtol=1e-6, atol=1e-6)
    assert torch.equal(joint.num_tokens, torch.cat([chosen.num_tokens, rejected.num_tokens]))


def test_a_step_changes_the_policy_and_never_the_reference(pairs, tokenizer) -> None:
    policy = load_causal_lm(TINY)
    reference = ReferenceModel.frozen(load_causal_lm(TINY))
    ref_before = {k: v.clone() for k, v in reference.model.state_dict().items()}
    policy_before = {k: v.clone() for k, v in policy.state_dict().items()}
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)

    loss_fn = paired_loss_fn(PreferenceLoss.DPO, {"beta": 0.1}, reference)
    out = loss_fn(policy, collate_pairs(pairs, tokenizer.pad_token_id))
    # policy == reference, so every h = 0 and each pair's loss is log 2.
    assert out.loss_sum.item() == pytest.approx(len(pairs) * math.log(2), abs=1e-5)
    out.loss_sum.backward()
    optimizer.step()

    assert all(p.grad is None and not p.requires_grad for p in reference.model.parameters())
    assert not reference.model.training
    assert all(torch.equal(v, ref_before[k]) for k, v in reference.model.state_dict().items())
    assert any(not torch.equal(v, policy_before[k]) for k, v in policy.state_dict().items())


def test_cached_reference_logps_equal_the_live_reference(pairs, tokenizer) -> None:
    reference = ReferenceModel.frozen(load_causal_lm(TINY))
    cached = cache_reference_logps(
        reference, pairs, pad_token_id=tokenizer.pad_token_id, batch_size=3, device=torch.device("cpu")
    )
    live = reference.logps(collate_pairs(pairs, tokenizer.pad_token_id))  # (2B,) in another batching
    # Equal up to float32 rounding: a batch's padded width changes the order of attention's sums, so
    # summed log-probs of ~-70 may differ in the last bit or two (~1e-7 relative, far below 1e-6 in a loss).
    torch.testing.assert_close(
        collate_pairs(cached, tokenizer.pad_token_id)["ref_logps"], live, rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("loss", ["dpo", "kto"])
def test_cached_reference_trains_exactly_like_the_live_one(tmp_path: Path, loss: str) -> None:
    """The same losses and rewards, step by step and on the eval set, to 1e-6.

    Cached and live log-probs agree to float32 rounding (see the test above), so the policies drift
    apart by ~1e-7 relative: policy log-probs (~-60) are compared relatively. Accuracies are left out:
    at step 1 policy == reference and every margin is a tie that rounding may tip either way.
    """
    train(_config(tmp_path / "live", f"loss={loss}", "reference=live"))
    train(_config(tmp_path / "cached", f"loss={loss}", "reference=cached"))
    live, cached = _metrics(tmp_path / "live"), _metrics(tmp_path / "cached")
    assert len(live) == len(cached) == 4  # 3 steps + the final eval
    for a, b in zip(live, cached, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if key.endswith(("loss", "rewards/chosen", "rewards/rejected", "rewards/margin", "rewards/kl")):
                assert a[key] == pytest.approx(b[key], abs=1e-6), (a["step"], key)
            elif "logps/" in key:
                assert a[key] == pytest.approx(b[key], rel=1e-6), (a["step"], key)
    assert "eval/loss" in live[-1]


@pytest.mark.parametrize("loss", ["dpo", "ipo", "simpo", "orpo", "kto"])
def test_every_loss_trains_one_step(tmp_path: Path, loss: str) -> None:
    result = train(_config(tmp_path, f"loss={loss}", "trainer.max_steps=1", "data.eval=null"))
    (record,) = result.history
    assert math.isfinite(record["loss"])
    assert {"rewards/chosen", "rewards/rejected", "rewards/margin", "logps/chosen"} <= set(record)
    assert ("rewards/accuracy" in record) == PreferenceLoss(loss).paired
    start = load_causal_lm(TINY).state_dict()
    trained = load_causal_lm(str(tmp_path / "final")).state_dict()
    assert any(not torch.equal(trained[k], start[k]) for k in start)


def test_the_cli_runs_dpo(tmp_path: Path) -> None:
    args = [f"model.path={TINY}", *DATA, "data.train.max_rows=8", "data.max_length=64"]
    args += ["trainer.micro_batch_size=4", "trainer.max_steps=1", f"run.output_dir={tmp_path}"]
    assert cli_main(["train", "dpo", *args, "run.progress=false", "run.tensorboard=false"]) == 0
    assert (tmp_path / "final" / "model.safetensors").is_file()


def test_reference_free_losses_load_no_reference(tmp_path: Path) -> None:
    for loss in ("simpo", "orpo"):
        assert (
            load_reference(_config(tmp_path, f"loss={loss}"), torch.nn.Linear(1, 1), torch.device("cpu"))
            is None
        )
    reference = load_reference(
        _config(tmp_path, "ref_model_path=" + TINY), torch.nn.Linear(1, 1), torch.device("cpu")
    )
    assert reference.kind == "frozen"


def test_loss_options_follow_each_loss_signature(tmp_path: Path) -> None:
    base = ("beta=0.2", "simpo_gamma=0.7", "kto_desirable_weight=1.5")
    assert loss_options(_config(tmp_path, "loss=dpo", *base)) == {"beta": 0.2, "label_smoothing": 0.0}
    assert loss_options(_config(tmp_path, "loss=simpo", *base)) == {"beta": 0.2, "gamma": 0.7}
    assert loss_options(_config(tmp_path, "loss=kto", *base)) == {
        "beta": 0.2,
        "desirable_weight": 1.5,
        "undesirable_weight": 1.0,
    }
    # beta unset: each loss keeps its own default (SimPO's is 2.5, not DPO's 0.1).
    assert "beta" not in loss_options(_config(tmp_path, "loss=simpo"))


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="label_smoothing"):
        _config(tmp_path, "loss=ipo", "label_smoothing=0.1")
    with pytest.raises(ConfigError, match="loss"):
        _config(tmp_path, "loss=rlhf")
    with pytest.raises(ConfigError, match="beta"):
        _config(tmp_path, "beta=-1")


def test_adapter_disabled_reference_is_the_base_model(pairs, tokenizer) -> None:
    """The LoRA seam: the policy with its adapter switched off scores exactly as the base model."""
    from peft import LoraConfig, get_peft_model

    base_logps = ReferenceModel.frozen(load_causal_lm(TINY)).logps(
        collate_pairs(pairs, tokenizer.pad_token_id)
    )
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    policy = get_peft_model(load_causal_lm(TINY), lora).train()
    reference = ReferenceModel.adapter_disabled(policy, disable_adapter=disabled_adapter)
    batch = collate_pairs(pairs, tokenizer.pad_token_id)
    torch.testing.assert_close(reference.logps(batch), base_logps, rtol=0, atol=1e-6)
    assert policy.training  # the mode is restored after the reference forward
    with torch.no_grad():
        assert not torch.allclose(response_logps(policy, batch).logps, base_logps)


def test_lora_dpo_uses_the_frozen_base_as_reference(tmp_path: Path) -> None:
    """LoRA's B starts at 0, so at step 1 policy == base == pi_ref: every pair's loss is exactly log 2.
    Only the adapter trains and only the adapter is saved."""
    config = _config(tmp_path, "model.lora.r=4", "trainer.max_steps=2", "data.eval=null")
    assert load_reference(config, torch.nn.Linear(1, 1), torch.device("cpu")).kind == "adapter_disabled"
    result = train(config)
    assert result.history[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert result.history[1]["loss"] != pytest.approx(math.log(2), abs=1e-6)
    assert (tmp_path / "final" / "adapter_model.safetensors").is_file()
