"""model.lora: built from dotted overrides on a None default, validated, and QLoRA refused clearly on CPU."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from alignkit.config import ConfigError, load_config
from alignkit.models import precision as precision_mod
from alignkit.models.precision import quantization_kwargs
from alignkit.sections import LoraConfig
from alignkit.train.sft import SFTConfig

HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None


def test_lora_is_off_by_default():
    assert load_config(SFTConfig).model.lora is None


def test_one_dotted_override_builds_the_section_with_defaults():
    cfg = load_config(SFTConfig, None, ["model.lora.r=8"])
    assert cfg.model.lora == LoraConfig(r=8)
    assert cfg.model.lora.target_modules == "all-linear"
    assert cfg.model.lora.quantize == "none"


def test_override_on_explicit_null_in_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  lora: null\n")
    cfg = load_config(SFTConfig, path, ["model.lora.alpha=64", "model.lora.target_modules=[q_proj, v_proj]"])
    assert cfg.model.lora == LoraConfig(alpha=64, target_modules=["q_proj", "v_proj"])


def test_empty_mapping_turns_lora_on_and_null_turns_it_off(tmp_path):
    assert load_config(SFTConfig, None, ["model.lora={}"]).model.lora == LoraConfig()
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  lora:\n    r: 4\n")
    assert load_config(SFTConfig, path, ["model.lora=null"]).model.lora is None


def test_typo_in_the_section_names_the_closest_key():
    with pytest.raises(ConfigError, match=r"unknown config key 'model.lora.rr'; did you mean 'model.lora.r'"):
        load_config(SFTConfig, None, ["model.lora.rr=8"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.lora.r=0", r"model.lora.r=0 is not allowed: expected a positive integer"),
        ("model.lora.dropout=1.5", r"model.lora.dropout=1.5 is not allowed"),
        ("model.lora.quantize=2bit", r"choose one of 'none', '4bit', '8bit'"),
        ("model.lora.target_modules=[]", r"model.lora.target_modules=\[\] is not allowed"),
    ],
)
def test_bad_values_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(SFTConfig, None, [override])


def test_no_quantization_needs_nothing():
    assert quantization_kwargs("none", "float32") == {}


@pytest.mark.skipif(HAS_BNB, reason="checks the message shown where bitsandbytes is missing")
@pytest.mark.parametrize("quantize", ["4bit", "8bit"])
def test_quantize_without_bitsandbytes_says_what_to_install(quantize):
    with pytest.raises(ConfigError) as err:
        quantization_kwargs(quantize, "bfloat16")
    msg = str(err.value)
    assert f"model.lora.quantize={quantize!r}" in msg
    assert "pip install bitsandbytes" in msg and "GPU" in msg and "model.lora.quantize=none" in msg
    assert "bitsandbytes" not in sys.modules  # asked for, found missing, never imported


def test_quantize_without_cuda_says_it_needs_a_gpu(monkeypatch):
    # Pretend bitsandbytes is installed: the next thing QLoRA needs is a CUDA device.
    real = importlib.util.find_spec
    monkeypatch.setattr(
        precision_mod.importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "bitsandbytes" else real(name, *a),
    )
    monkeypatch.setattr(precision_mod.torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"model.lora.quantize='4bit' needs a CUDA GPU"):
        quantization_kwargs("4bit", "bfloat16")


@pytest.mark.skipif(HAS_BNB, reason="checks the message shown where bitsandbytes is missing")
def test_cli_reports_the_4bit_request_as_a_config_error(tmp_path, capsys):
    from alignkit.cli import main

    code = main(
        [
            "train",
            "sft",
            "model.lora.quantize=4bit",
            "data.train.source=toyworld://data/sft",
            "data.train.template=trl-messages",
            "data.train.max_rows=8",
            "data.eval=null",
            f"run.output_dir={tmp_path / 'run'}",
            "run.progress=false",
            "run.tensorboard=false",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "alignkit: config error:" in err and "pip install bitsandbytes" in err
