"""Each family trains end to end through alignkit's trainers with its released chat template.

A tiny random model of each architecture (``family_models``) learns four answers by SFT; the test then
asks the HF generator for them: greedy decoding must return each answer and stop by itself on the
family's end-of-turn token, which it can only do if that token carried loss. From the SFT model, a reward
model, DPO and GRPO each take a few steps and their loss moves; GRPO's rollouts end on the same token.
"""

from __future__ import annotations

import json
import math

import pytest
from family_models import ANSWERS, FAMILIES, save_family, write_family_data

from alignkit.config import load_config

pytestmark = pytest.mark.slow

COMMON = ["run.progress=false", "run.tensorboard=false", "trainer.seed=0"]


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def losses(run_dir, key="loss"):
    return [row[key] for row in metrics(run_dir) if key in row]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_trains_sft_reward_dpo_grpo_and_stops_on_its_end_of_turn_token(name, tmp_path):
    from alignkit.data.reasoning import split_reasoning
    from alignkit.generate.base import SamplingConfig
    from alignkit.generate.hf import HFGenerator
    from alignkit.train import dpo, grpo, ppo, reward, sft

    family = FAMILIES[name]
    data = write_family_data(tmp_path / "data", thinking=family.thinking)
    base = save_family(family, tmp_path / "base")
    options = [f"model.chat_template_kwargs.{k}={str(v).lower()}" for k, v in family.template_kwargs.items()]
    sft_dir = tmp_path / "sft"
    sft.train(
        load_config(
            sft.SFTConfig,
            None,
            [
                f"model.path={base}",
                *options,
                f"data.train.source={data['sft']}",
                "data.max_length=128",
                "trainer.lr=3e-3",
                "trainer.max_steps=40",
                "trainer.micro_batch_size=8",
                "trainer.warmup_ratio=0",
                "trainer.lr_scheduler=constant",
                f"run.output_dir={sft_dir}",
                *COMMON,
            ],
        )
    )
    sft_losses = losses(sft_dir)
    assert sft_losses[-1] < 0.2 * sft_losses[0], sft_losses

    generator = HFGenerator.from_pretrained(str(sft_dir / "final"), device="cpu")
    embeddings = generator.model.get_input_embeddings().weight
    assert (generator.model.get_output_embeddings().weight.data_ptr() == embeddings.data_ptr()) == family.tied
    from alignkit.data.render import chat_options

    # the SFT run saved its template variables with the tokenizer; a later load renders the same way
    assert chat_options(generator.tokenizer).template_kwargs == family.template_kwargs
    eot = generator.tokenizer.convert_tokens_to_ids(family.eot)
    assert eot in generator.stops
    prompts = [[{"role": "user", "content": q}] for q in ANSWERS]
    completions = generator.generate(prompts, SamplingConfig(temperature=0, max_new_tokens=40))
    for completion, answer in zip(completions, ANSWERS.values(), strict=True):
        assert completion.finish_reason == "stop", completion
        assert completion.token_ids[-1] == eot
        reasoning, said = split_reasoning(completion.text)
        assert said == answer
        assert bool(reasoning) == family.thinking

    policy = sft_dir / "final"
    runs = {
        "reward": (
            reward.RewardConfig,
            [f"model.path={base}", "trainer.lr=3e-3", "trainer.max_steps=8"],
        ),
        "dpo": (
            dpo.DPOConfig,
            [f"model.path={policy}", "trainer.lr=1e-3", "trainer.max_steps=8", "beta=0.5", "reference=live"],
        ),
    }
    for kind, (cls, overrides) in runs.items():
        out = tmp_path / kind
        cls_module = {"reward": reward, "dpo": dpo}[kind]
        cls_module.train(
            load_config(
                cls,
                None,
                [
                    *overrides,
                    *options,
                    f"data.train.source={data['pairs']}",
                    "data.train.template=trl",
                    "data.eval=null",
                    "data.max_length=128",
                    "trainer.micro_batch_size=8",
                    "trainer.warmup_ratio=0",
                    "trainer.eval_every=0",
                    f"run.output_dir={out}",
                    *COMMON,
                ],
            )
        )
        curve = losses(out)
        assert curve[-1] < curve[0] - 0.05, (kind, curve)

    grpo_dir = tmp_path / "grpo"
    grpo.train(
        load_config(
            grpo.GRPOConfig,
            None,
            [
                f"model.path={policy}",
                *options,
                "reward.path=family_models:answer_reward",
                f"data.train.source={data['pairs']}",
                "data.train.template=trl",
                "data.eval=null",
                "rollout.prompts_per_step=4",
                "rollout.samples_per_prompt=4",
                "rollout.max_new_tokens=40",
                "rollout.temperature=0.5",
                "trainer.steps=2",
                "trainer.mini_batch_size=16",
                "trainer.micro_batch_size=16",
                "trainer.lr=1e-3",
                f"run.output_dir={grpo_dir}",
                *COMMON,
            ],
        )
    )
    rows = [r for r in metrics(grpo_dir) if "reward/score" in r]
    assert len(rows) == 2
    assert all(r["policy/finished_rate"] > 0.5 for r in rows), rows

    # PPO against the family's reward model, its critic a value head on the same architecture
    ppo_dir = tmp_path / "ppo"
    ppo.train(
        load_config(
            ppo.PPOConfig,
            None,
            [
                f"model.path={policy}",
                *options,
                f"reward.path={tmp_path / 'reward' / 'final'}",
                f"data.train.source={data['pairs']}",
                "data.train.template=trl",
                "data.eval=null",
                "rollout.prompts_per_step=8",
                "rollout.max_new_tokens=40",
                "rollout.temperature=0.5",
                "trainer.steps=2",
                "trainer.mini_batch_size=8",
                "trainer.micro_batch_size=8",
                f"run.output_dir={ppo_dir}",
                *COMMON,
            ],
        )
    )
    rows = [r for r in metrics(ppo_dir) if "reward/score" in r]
    assert len(rows) == 2 and all(r["policy/finished_rate"] > 0.5 for r in rows), rows
    assert all(math.isfinite(r["value/loss"]) and math.isfinite(r["policy/loss"]) for r in rows)
