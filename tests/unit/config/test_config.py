"""Config loading: YAML + dotted overrides, strict validation with messages a user can act on."""

from __future__ import annotations

import pytest

from alignkit.config import ConfigError, field_docs, load_config, to_dict
from alignkit.sections import TrainerConfig
from alignkit.train.sft import SFTConfig


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_yaml_and_overrides_are_typed(tmp_path):
    path = write(tmp_path, "trainer:\n  lr: 1.0e-3\n  micro_batch_size: 4\nrun:\n  output_dir: runs/x\n")
    cfg = load_config(
        SFTConfig, path, ["trainer.lr=3e-4", "trainer.max_steps=10", "data.train.source=foo.jsonl"]
    )
    # YAML reads "3e-4" as a string; a float field accepts it as the number it spells.
    assert cfg.trainer.lr == pytest.approx(3e-4)
    assert cfg.trainer.micro_batch_size == 4
    assert cfg.trainer.max_steps == 10
    assert cfg.data.train.source == "foo.jsonl"
    assert cfg.run.output_dir == "runs/x"
    assert to_dict(cfg)["trainer"]["lr"] == pytest.approx(3e-4)


def test_unknown_key_names_the_closest_valid_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(SFTConfig, None, ["trainer.learning_rate=1e-3"])
    msg = str(err.value)
    assert "trainer.learning_rate" in msg
    assert "unknown config key" in msg
    with pytest.raises(ConfigError, match=r"did you mean 'trainer.max_steps'"):
        load_config(SFTConfig, None, ["trainer.max_step=3"])


def test_unknown_top_level_section():
    with pytest.raises(ConfigError, match=r"did you mean 'trainer'"):
        load_config(SFTConfig, None, ["trainr.lr=1"])


def test_bad_value_names_key_value_and_what_is_allowed():
    with pytest.raises(ConfigError) as err:
        load_config(SFTConfig, None, ["trainer.micro_batch_size=four"])
    assert "trainer.micro_batch_size='four'" in str(err.value)
    assert "integer" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(SFTConfig, None, ["trainer.lr_scheduler=cosin"])
    assert "'cosine'" in str(err.value) and "did you mean 'cosine'" in str(err.value)


def test_constraints_are_checked():
    with pytest.raises(ConfigError, match=r"trainer.lr=-1.0 is not allowed: expected a positive number"):
        load_config(SFTConfig, None, ["trainer.lr=-1"])
    with pytest.raises(ConfigError, match=r"run.resume"):
        load_config(SFTConfig, None, ["run.resume=true", "run.overwrite=true"])
    with pytest.raises(ConfigError, match=r"expected true or false"):
        load_config(SFTConfig, None, ["run.overwrite=maybe"])


def test_missing_file_and_malformed_override(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(SFTConfig, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(SFTConfig, None, ["trainer.lr"])


def test_every_field_is_documented():
    for cls in (TrainerConfig, SFTConfig):
        docs = field_docs(cls)
        import dataclasses

        assert set(docs) == {f.name for f in dataclasses.fields(cls)}, cls
        assert all(docs.values())


def test_a_partial_section_keeps_the_commands_own_defaults():
    """`data.max_length=64` alone must not wipe SFT's default data.train (a blank DatasetConfig)."""
    cfg = load_config(SFTConfig, None, ["data.max_length=64", "trainer.lr=1e-3"])
    assert cfg.data.max_length == 64
    assert cfg.data.train.source == SFTConfig().data.train.source != ""
    assert cfg.trainer.lr == pytest.approx(1e-3)
    assert cfg.run.output_dir == SFTConfig().run.output_dir


def test_show_config_lists_a_subclassed_config_with_blank_required_keys(capsys):
    """safe-ppo's config subclasses PPO's: every section keeps its doc, and --show-config works before
    the required reward.path / cost.path are filled in (loading it for training refuses them)."""
    from alignkit.cli import main
    from alignkit.config import ConfigError, load_config
    from alignkit.train.safe_ppo import SafePPOConfig

    assert main(["train", "safe-ppo", "--show-config"]) == 0
    out = capsys.readouterr().out
    assert "model:  # The policy (actor) to train" in out and "lagrange:  # The Lagrange multiplier" in out
    with pytest.raises(ConfigError, match="reward.path"):
        load_config(SafePPOConfig, None, ["cost.path=a:b"])


@pytest.mark.parametrize(("typed", "meant"), [("no", "no"), ("No", "no"), ("off", "no"), ("bf16", "bf16")])
def test_yaml_boolean_words_are_the_choice_the_user_typed(tmp_path, typed, meant):
    """YAML 1.1 reads `no` / `off` as False; a choice field takes the word the user meant."""
    cfg = load_config(SFTConfig, None, [f"trainer.mixed_precision={typed}"])
    assert cfg.trainer.mixed_precision == meant
    cfg = load_config(SFTConfig, write(tmp_path, f"trainer:\n  mixed_precision: {typed}\n"))
    assert cfg.trainer.mixed_precision == meant
    with pytest.raises(ConfigError, match="mixed_precision"):
        load_config(SFTConfig, None, ["trainer.mixed_precision=yes"])


def test_safe_rlhf_and_ppo_kl_defaults_follow_their_references():
    """PPO: 0.02 (InstructGPT, safe-rlhf's ppo.sh). Safe RLHF: 0.01 (safe-rlhf's ppo-lag.sh), the KL being in
    both the reward and the cost stream."""
    from alignkit.train.ppo import PPOConfig
    from alignkit.train.safe_ppo import SafePPOConfig

    assert load_config(PPOConfig, None, ["reward.path=r"]).ppo.kl_coef == 0.02
    assert load_config(SafePPOConfig, None, ["reward.path=r", "cost.path=c"]).ppo.kl_coef == 0.01


def test_step_cap_from_the_environment_uses_each_commands_own_step_key(monkeypatch):
    from alignkit.cli import step_cap_overrides
    from alignkit.eval.preference import PreferenceEvalConfig
    from alignkit.train.grpo import GRPOConfig

    monkeypatch.delenv("ALIGNKIT_MAX_STEPS", raising=False)
    assert step_cap_overrides(SFTConfig) == []
    monkeypatch.setenv("ALIGNKIT_MAX_STEPS", "2")
    assert step_cap_overrides(SFTConfig) == ["trainer.max_steps=2"]
    assert step_cap_overrides(GRPOConfig) == ["trainer.steps=2"]
    assert step_cap_overrides(PreferenceEvalConfig) == []
    monkeypatch.setenv("ALIGNKIT_MAX_STEPS", "two")
    with pytest.raises(ConfigError, match="ALIGNKIT_MAX_STEPS"):
        step_cap_overrides(SFTConfig)
