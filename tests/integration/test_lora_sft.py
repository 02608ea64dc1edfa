"""LoRA SFT end to end on the toy world: only the adapter trains, and every way of reloading it agrees.

One short run (4 steps, a checkpoint at step 2, activation checkpointing on) through
``alignkit.train.sft.train``; the trained in-memory model is caught where the loop saves ``final/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from alignkit.cli import main
from alignkit.config import load_config
from alignkit.models.forward import response_logps
from alignkit.models.loading import load_causal_lm, load_tokenizer, resolve_path
from alignkit.models.lora import disabled_adapter, is_lora
from alignkit.runs import checkpoint_name
from alignkit.train import sft

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = "toyworld://models/tiny"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("lora") / "sft"
    config = load_config(
        sft.SFTConfig,
        None,
        [
            "model.lora.r=8",
            "model.gradient_checkpointing=true",
            "data.train.source=toyworld://data/sft",
            "data.train.template=trl-messages",
            "data.train.max_rows=64",
            "data.max_length=64",
            "trainer.lr=1e-2",
            "trainer.warmup_ratio=0",
            "trainer.max_steps=4",
            "trainer.micro_batch_size=8",
            "trainer.save_every=2",
            f"run.output_dir={out}",
            "run.progress=false",
            "run.tensorboard=false",
        ],
    )
    saved: dict[str, Any] = {}
    real_save = sft.save_pretrained

    def spy(model, tokenizer, path, state_dict=None):
        saved["model"] = model
        real_save(model, tokenizer, path, state_dict)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sft, "save_pretrained", spy)
        result = sft.train(config)
    return {"dir": out, "result": result, "model": saved["model"].eval()}


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    from alignkit.data import load_records
    from alignkit.data.collate import collate_lm

    tokenizer = load_tokenizer(TINY)
    records = load_records(resolve_path("toyworld://data/sft"), "trl-messages", split="test").records[:8]
    examples, _ = sft.tokenize(records, tokenizer, 64)
    return collate_lm(examples, tokenizer.pad_token_id)


def logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def test_run_trains_and_saves_adapters(run):
    assert run["result"].global_step == 4
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in run["result"].history if "loss" in r)
    for folder in (run["dir"] / "final", run["dir"] / "checkpoints" / checkpoint_name(2)):
        names = {p.name for p in folder.iterdir()}
        assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json"} <= names
        assert "model.safetensors" not in names  # the adapter, not a copy of the base


def test_only_adapter_weights_changed_and_base_is_bit_identical(run):
    model = run["model"]
    assert is_lora(model)
    original = load_file(Path(resolve_path(TINY)) / "model.safetensors")
    trained = {k.replace(".base_layer", ""): v for k, v in model.get_base_model().state_dict().items()}
    for name, tensor in original.items():
        assert torch.equal(trained[name], tensor), name
    for name, p in model.named_parameters():
        assert p.requires_grad == ("lora_" in name), name
        if "lora_B" in name:  # initialised to zero, so nonzero means the optimizer updated it
            assert p.abs().sum() > 0, name


def test_disabled_adapter_is_the_separately_loaded_base(run, batch):
    base = load_causal_lm(TINY).eval()
    with torch.no_grad():
        expected = response_logps(base, batch).logps
        with disabled_adapter(run["model"]):
            reference = response_logps(run["model"], batch).logps
        policy = response_logps(run["model"], batch).logps
    torch.testing.assert_close(reference, expected, atol=1e-6, rtol=0)
    assert (policy - expected).abs().max() > 1e-3  # the adapter did learn something


def test_adapter_reloads_with_peft(run, batch):
    from peft import AutoPeftModelForCausalLM, PeftModel

    final = str(run["dir"] / "final")
    expected = logits(run["model"], batch)
    reloaded = PeftModel.from_pretrained(load_causal_lm(TINY), final).eval()
    torch.testing.assert_close(logits(reloaded, batch), expected, atol=1e-6, rtol=0)
    auto = AutoPeftModelForCausalLM.from_pretrained(final).eval()
    torch.testing.assert_close(logits(auto, batch), expected, atol=1e-6, rtol=0)
    # load_causal_lm merges, so a later run can start from this one (model.path=<run>/final).
    torch.testing.assert_close(logits(load_causal_lm(final).eval(), batch), expected, atol=1e-5, rtol=0)


def test_export_merge_matches_base_plus_adapter(run, batch, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "merged"
    assert main(["export", "--merge", str(run["dir"]), "--out", str(out)]) == 0
    assert "merged checkpoint written" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer_config.json"} <= names
    assert "adapter_config.json" not in names
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    torch.testing.assert_close(logits(merged, batch), logits(run["model"], batch), atol=1e-5, rtol=0)
    assert AutoTokenizer.from_pretrained(out).get_vocab() == load_tokenizer(TINY).get_vocab()
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"


def test_export_of_a_non_adapter_fails_cleanly(tmp_path, capsys):
    assert main(["export", "--merge", resolve_path(TINY), "--out", str(tmp_path / "x")]) == 2
    assert "nothing to merge" in capsys.readouterr().err
