"""``alignkit serve``'s config: MODEL and flags on the command line, wrapper chains, clear errors."""

from __future__ import annotations

import argparse

import pytest

from alignkit.cli import main
from alignkit.config import ConfigError
from alignkit.generate.base import Completion, SamplingConfig
from alignkit.serve.chain import WRAPPERS, register_wrapper, wrap
from alignkit.serve.cli import add_parser, load_serve_config


class Echo:
    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        return [Completion(i, p[-1]["content"]) for i, p in enumerate(prompts) for _ in range(sampling.n)]


class Suffix:
    """A wrapper Generator: the inner one's answers with ``text`` appended."""

    def __init__(self, inner, text: str = "!"):
        self.inner, self.text = inner, text

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        return [
            Completion(c.prompt_index, c.text + self.text)
            for c in self.inner.generate(prompts, sampling, logprobs=logprobs, seed=seed)
        ]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


def test_model_flags_and_overrides_make_the_config(tmp_path):
    file = tmp_path / "serve.yaml"
    file.write_text("model: toyworld://models/tiny\nname: toy\nport: 9000\nwrappers:\n  - use: guard\n")
    config = load_serve_config(parse(["--config", str(file), "--api-key", "12345", "max_batch_size=8"]))
    assert (config.model, config.name, config.port, config.max_batch_size) == (
        "toyworld://models/tiny",
        "toy",
        9000,
        8,
    )
    assert config.api_key == "12345"  # digits stay a string: flags are not read as YAML
    assert config.wrappers[0].use == "guard" and config.wrappers[0].options == {}
    config = load_serve_config(parse(["runs/sft", "--port", "0"]))
    assert (config.model, config.port) == ("runs/sft", 0)


def test_bad_configs_name_the_key():
    with pytest.raises(ConfigError, match="model"):
        load_serve_config(parse([]))
    with pytest.raises(ConfigError, match="one MODEL"):
        load_serve_config(parse(["a", "b"]))
    with pytest.raises(ConfigError, match="port"):
        load_serve_config(parse(["m", "--port", "70000"]))
    with pytest.raises(ConfigError, match="max_batch_sise"):
        load_serve_config(parse(["m", "max_batch_sise=3"]))


def test_the_cli_reports_a_missing_model_as_a_usage_error(capsys):
    assert main(["serve"]) == 2
    assert "model" in capsys.readouterr().err
    assert main(["serve", "toyworld://models/tiny", "--show-config"]) == 0
    assert "model: toyworld://models/tiny" in capsys.readouterr().out


def test_wrappers_apply_innermost_first_by_path_or_registered_name():
    register_wrapper("suffix-test", f"{__name__}:Suffix")
    try:
        chain = wrap(Echo(), [(f"{__name__}:Suffix", {"text": "1"}), ("suffix-test", {"text": "2"})])
        assert [c.text for c in chain.generate([[{"role": "user", "content": "hi"}]], SamplingConfig())] == [
            "hi12"
        ]
    finally:
        WRAPPERS.pop("suffix-test")


def test_wrapper_mistakes_are_config_errors():
    with pytest.raises(ConfigError, match=r"wrappers\[0\].use='nope'"):
        wrap(Echo(), [("nope", {})])
    with pytest.raises(ConfigError, match="does not take these options"):
        wrap(Echo(), [(f"{__name__}:Suffix", {"colour": "red"})])
    with pytest.raises(ConfigError, match="cannot import"):
        wrap(Echo(), [("no_such_module_xyz:Thing", {})])
