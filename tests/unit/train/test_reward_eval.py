"""``alignkit.eval.preference``: what it writes, what it measures, and the mistakes it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignkit.config import ConfigError, from_dict
from alignkit.eval.preference import EVALUATORS, PreferenceEvalConfig, evaluate_preference, run
from alignkit.models.loading import load_tokenizer, save_pretrained
from alignkit.models.score_model import new_score_model

TINY = "toyworld://models/tiny"
DATA = "toyworld://data/safe_pref"


@pytest.fixture(scope="module")
def cost_model(tmp_path_factory) -> Path:
    tokenizer = load_tokenizer(TINY)
    out = tmp_path_factory.mktemp("cm") / "final"
    save_pretrained(new_score_model(TINY, tokenizer, "cost"), tokenizer, out)
    return out


def test_cost_report_and_plot(cost_model, tmp_path):
    config = from_dict(
        PreferenceEvalConfig,
        {
            "model": {"path": str(cost_model)},
            "kind": "cost",
            "data": {"source": DATA, "template": "pku-saferlhf", "split": "test", "max_rows": 8},
            "run": {"output_dir": str(tmp_path / "eval")},
        },
    )
    report = run(config)
    assert report == json.loads((tmp_path / "eval" / "report.json").read_text())
    metrics = report["metrics"]
    assert metrics["n_pairs"] == 8
    assert 0 <= metrics["cost/sign_accuracy"] <= 1 and 0 <= metrics["cost/accuracy"] <= 1
    assert (tmp_path / "eval" / "scores.png").stat().st_size > 0


def test_kind_must_match_the_saved_model(cost_model, tmp_path):
    with pytest.raises(ConfigError, match="is a cost model, but a reward model is needed here"):
        evaluate_preference(
            str(cost_model), DATA, "pku-saferlhf", "test", "reward", output_dir=str(tmp_path / "e")
        )


def test_config_names_the_missing_model_and_unknown_kind():
    with pytest.raises(ConfigError, match="model.path"):
        from_dict(PreferenceEvalConfig, {})
    with pytest.raises(ConfigError, match="kind"):
        from_dict(PreferenceEvalConfig, {"model": {"path": "x"}, "kind": "dpo-typo"})
    assert set(EVALUATORS) == {"reward", "cost", "dpo"}
