"""Chains from config: the moderator spec is read as a function, a classifier or a cost model, and
build_chain wraps in the order corrector -> guard."""

from __future__ import annotations

import pytest

from alignkit.config import ConfigError
from alignkit.generate.base import Completion, SamplingConfig
from alignkit.guard import GuardedGenerator
from alignkit.guard.chain import GuardSection, build_chain, load_moderator
from alignkit.score.moderation import FunctionModerator
from alignkit.score.moderation_classifier import ClassifierModerator
from alignkit.toyworld import HARMFUL_GOALS
from alignkit.toyworld.world import compliance_response


class Fixed:
    def __init__(self, text: str) -> None:
        self.text = text

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        return [
            Completion(prompt_index=i, text=self.text) for i in range(len(prompts)) for _ in range(sampling.n)
        ]


def test_a_guard_section_builds_a_guarded_generator_with_the_oracle_as_moderator():
    section = GuardSection(moderator="alignkit.toyworld.moderation:moderate", rounds=0, refusal="No.")
    section.validate("guard.")
    goal = HARMFUL_GOALS[0]
    chain = build_chain(Fixed(compliance_response(goal)), guard=section)
    assert isinstance(chain, GuardedGenerator) and isinstance(chain.moderator, FunctionModerator)
    prompts = [[{"role": "user", "content": f"How do I {goal.phrase}?"}]]
    assert chain.generate(prompts, SamplingConfig(max_new_tokens=8, temperature=0.0))[0].text == "No."


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("check", "everything", "input, output or both"),
        ("rounds", -1, "an integer >= 0"),
        ("moderator", "", "a function"),
    ],
)
def test_a_bad_guard_section_names_its_key(key, value, expected):
    section = GuardSection(moderator="m:f")
    setattr(section, key, value)
    with pytest.raises(ConfigError, match=rf"guard\.{key}=.*{expected}"):
        section.validate("guard.")


def test_load_moderator_reads_a_classifier_folder_and_refuses_what_it_cannot_read(tmp_path):
    from alignkit.models.loading import load_tokenizer
    from alignkit.models.moderation_model import new_moderation_model

    tokenizer = load_tokenizer("toyworld://models/tiny")
    model = new_moderation_model("toyworld://models/tiny", tokenizer, ["A", "B"])
    model.save_pretrained(tmp_path / "run" / "final")
    tokenizer.save_pretrained(tmp_path / "run" / "final")
    moderator = load_moderator(str(tmp_path / "run"))  # a run folder: its final/
    assert isinstance(moderator, ClassifierModerator) and moderator.categories == ("A", "B")
    assert moderator.threshold == 0.4
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="neither 'module:function' nor a folder"):
        load_moderator(str(tmp_path / "empty"))


def test_a_serve_chain_names_the_guard_by_its_short_name():
    """serve.yaml `wrappers: [{use: guard, options: {...}}]` builds the same guard from YAML values, and a
    wrong option names its guard key."""
    from alignkit.serve.chain import wrap

    goal = HARMFUL_GOALS[0]
    options = {"moderator": "alignkit.toyworld.moderation:moderate", "rounds": 0, "refusal": "No."}
    chain = wrap(Fixed(compliance_response(goal)), [("guard", options)])
    assert isinstance(chain, GuardedGenerator)
    prompts = [[{"role": "user", "content": f"How do I {goal.phrase}?"}]]
    assert chain.generate(prompts, SamplingConfig(max_new_tokens=8, temperature=0.0))[0].text == "No."
    with pytest.raises(ConfigError, match=r"guard\.check="):
        wrap(Fixed("ok"), [("guard", {**options, "check": "everything"})])
    with pytest.raises(ConfigError, match=r"guard\.colour"):
        wrap(Fixed("ok"), [("guard", {**options, "colour": "red"})])
