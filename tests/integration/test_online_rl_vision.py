"""Online RL with pictures in the prompt, on the visual toy world's tiny VLM.

GRPO (efficacy): a briefly SFT-V'd policy (50 steps, the recipe of ``test_sft_vision.py``) answers colour
questions about pictures with the oracle's correctness (``VisualOracleScorer``, which reads each prompt's
picture) as the reward; judged by the oracle on the 7 held-out pictures (colour x shape x place
combinations absent from training), greedy and sampled at temperature 1.

PPO and Safe PPO (mechanics): value heads on the policy (``critic.shared``) read the pictures through the
policy's own forward; losses are finite, every training forward gets the rows' pixel values, the vision
tower stays bit-identical (``model.freeze_vision``), and ``final/`` reloads with its processor. Separate
critics (the VLM with a score head, read at every token) get each row's picture in every forward too,
learn, keep their vision tower frozen and are saved with the processor.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from vision_helpers import VLM, held_out_accuracy, sft_v, write_colour_task

from alignkit.config import load_config
from alignkit.data.records import ContentPart, Message
from alignkit.generate.base import SamplingConfig
from alignkit.generate.hf import HFGenerator
from alignkit.models.value_heads import value_heads
from alignkit.toyworld import resolve
from alignkit.toyworld.visual_scoring import VisualOracleScorer
from alignkit.train.critic import VALUE_HEADS_FILE
from alignkit.train.grpo import GRPOConfig, GRPOTrainer
from alignkit.train.ppo import PPOConfig, PPOTrainer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUIET = ["trainer.eval_every=0", "trainer.save_every=0", "run.progress=false", "run.tensorboard=false"]


def vision_tower(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(folder / "model.safetensors")).items() if "vision_tower" in k}


def metric_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_grpo_on_the_tiny_vlm_raises_held_out_colour_accuracy(tmp_path: Path):
    sft_file, _, test_prompts = write_colour_task(tmp_path)
    policy = sft_v(sft_file, tmp_path / "sft", steps=50)
    greedy_before, n = held_out_accuracy(policy, test_prompts)
    sampled_before, judged = held_out_accuracy(policy, test_prompts, samples=16)
    config = load_config(
        GRPOConfig,
        None,
        [
            f"model.path={policy}",
            "reward.path=given:VisualOracleScorer",
            f"data.train.source={tmp_path / 'prompts'}",
            "data.train.template=trl",
            "data.eval=null",
            "rollout.prompts_per_step=8",
            "rollout.samples_per_prompt=4",
            "rollout.max_new_tokens=8",
            "trainer.mini_batch_size=16",
            "trainer.micro_batch_size=16",
            "trainer.steps=40",
            "trainer.lr=3e-4",
            "trainer.lr_scheduler=constant",
            "trainer.warmup_ratio=0",
            "beta=0",
            f"run.output_dir={tmp_path / 'grpo'}",
            *QUIET,
        ],
    )
    GRPOTrainer(config, scorers={"reward": VisualOracleScorer("correct")}).run()
    final = tmp_path / "grpo" / "final"
    greedy_after, _ = held_out_accuracy(final, test_prompts)
    sampled_after, _ = held_out_accuracy(final, test_prompts, samples=16)
    print(
        f"held-out colour accuracy on {n} pictures: greedy {greedy_before:.2f} -> {greedy_after:.2f}, "
        f"sampled ({judged} answers) {sampled_before:.3f} -> {sampled_after:.3f}"
    )
    assert greedy_before <= 5 / 7  # SFT-V stopped early: room to improve
    assert greedy_after >= greedy_before + 2 / 7 - 1e-9, (greedy_before, greedy_after)
    assert sampled_after >= sampled_before + 0.1, (sampled_before, sampled_after)
    assert vision_tower(final).keys() and all(
        torch.equal(v, vision_tower(policy)[k]) for k, v in vision_tower(final).items()
    )


def ppo_config(tmp_path: Path, *extra: str) -> PPOConfig:
    prompts = resolve("toyworld://visual/data/prompts")
    return load_config(
        PPOConfig,
        None,
        [
            f"model.path={VLM}",
            "reward.path=given:VisualOracleScorer",
            f"data.train.source={prompts}",
            "data.train.template=trl",
            "data.train.max_rows=64",
            f"data.eval.source={prompts}",
            "data.eval.template=trl",
            "data.eval.split=test",
            "data.eval.max_rows=4",
            "critic.shared=true",
            "rollout.prompts_per_step=4",
            "rollout.samples_per_prompt=2",
            "rollout.max_new_tokens=6",
            "trainer.mini_batch_size=4",
            "trainer.micro_batch_size=2",
            "trainer.steps=2",
            "trainer.lr=1e-3",
            f"run.output_dir={tmp_path / 'run'}",
            *QUIET,
            *extra,
        ],
    )


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        # at temperature 0.7 the old log-probs and values are re-read by a forward over the rollout rows
        ("ppo", ("rollout.temperature=0.7",)),
        # Safe RLHF-V: a cost stream on a second value head; values read off the sampling loop (t = 1)
        (
            "safe-ppo",
            ("cost.path=given:VisualOracleScorer", "cost_critic.shared=true"),
        ),
    ],
)
def test_ppo_with_pictures_mechanics(tmp_path: Path, name: str, extra: tuple[str, ...]):
    config = ppo_config(tmp_path, *extra)
    scorers = {"reward": VisualOracleScorer("helpfulness")}
    if config.cost is not None:
        scorers["cost"] = VisualOracleScorer("harm_cost")
    trainer = PPOTrainer(config, scorers=scorers)
    # Every training forward (grad on) must see the rows' pictures before the value heads read the
    # hidden states: record the vision tower's and the heads' calls in order.
    events: list[tuple[str, int]] = []
    tower = next(m for n, m in trainer.actor.named_modules() if n.endswith("vision_tower"))

    def on_pictures(module, args, kwargs, out) -> None:
        if torch.is_grad_enabled():
            pixels = kwargs.get("pixel_values", args[0] if args else None)
            events.append(("pixels", len(pixels)))

    def on_values(module, args, out) -> None:
        if torch.is_grad_enabled():
            events.append(("values", 0))

    tower.register_forward_hook(on_pictures, with_kwargs=True)
    heads = value_heads(trainer.actor)
    assert heads is not None and len(heads) == (2 if config.cost is not None else 1)
    for head in heads.values():
        head.register_forward_hook(on_values)
    trainer.run()

    updates = 2 * 8 // 4  # steps x samples per step / mini-batch: 4 optimizer steps of 2 micro-batches
    forwards = [e for e in events if e[0] == "pixels"]
    assert len(forwards) == updates * 2 and all(rows == 2 for _, rows in forwards)  # one picture per row
    per_forward = len(heads)
    expected = [("pixels", 2), *[("values", 0)] * per_forward] * (updates * 2)
    assert events == expected

    rows = metric_rows(tmp_path / "run")
    losses = [r[k] for r in rows for k in ("policy/loss", "value/loss", "cost_value/loss") if k in r]
    assert len(losses) >= 2 * (3 if config.cost is not None else 2) and all(math.isfinite(x) for x in losses)
    assert all(math.isfinite(v) for r in rows for v in r.values() if isinstance(v, float))
    assert "eval/reward" in rows[-1]

    final = tmp_path / "run" / "final"
    start = resolve(VLM)
    trained_tower, start_tower = vision_tower(final), vision_tower(start)
    assert trained_tower.keys() == start_tower.keys() and trained_tower
    assert all(torch.equal(trained_tower[k], start_tower[k]) for k in start_tower)  # freeze_vision
    weights, before = load_file(str(final / "model.safetensors")), load_file(str(start / "model.safetensors"))
    assert any(not torch.equal(weights[k], before[k]) for k in weights if "vision_tower" not in k)
    heads_saved = load_file(str(final / "critics" / VALUE_HEADS_FILE))
    assert any(v.abs().sum() > 0 for v in heads_saved.values())  # the heads started at 0 and learned
    # final/ is a VLM with its processor: it answers a question about a picture
    generator = HFGenerator.from_pretrained(str(final), device="cpu")
    assert generator.renderer is not generator.tokenizer
    image = resolve("toyworld://visual/data/images") / "w-red.circle.0.png"
    question = [
        Message("user", (ContentPart("image", path=str(image)), ContentPart("text", text="What colour?")))
    ]
    (answer,) = generator.generate([question], SamplingConfig(temperature=0, max_new_tokens=4))
    assert answer.token_ids


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        # two optimizer steps per rollout: the critic reads the rollout's values, then updates on it
        ("ppo", ("critic.shared=false",)),
        # Safe RLHF-V with two separate critics and one optimizer step per rollout: the fused pass, whose
        # update forward also supplies the rollout's values
        (
            "safe-ppo",
            (
                "critic.shared=false",
                "cost.path=given:VisualOracleScorer",
                "cost_critic.shared=false",
                "cost_critic.lr=1e-3",
                "trainer.mini_batch_size=8",
            ),
        ),
    ],
)
def test_separate_critics_on_a_vlm_read_the_pictures_and_train(
    tmp_path: Path, name: str, extra: tuple[str, ...]
):
    """A separate critic is the VLM with a score head (``models/vlm_score.py``) read at every token: each of
    its forwards gets its rows' pixel values (one picture per row), its head learns from zero, its vision
    tower stays frozen (``model.freeze_vision``), and it is saved with its processor."""
    config = ppo_config(tmp_path, "critic.lr=1e-3", *extra)
    scorers = {"reward": VisualOracleScorer("helpfulness")}
    if config.cost is not None:
        scorers["cost"] = VisualOracleScorer("harm_cost")
    trainer = PPOTrainer(config, scorers=scorers)
    critics = {item.name: item.model for item in trainer.trained[1:]}
    assert sorted(critics) == (["cost_value", "value"] if config.cost is not None else ["value"])
    calls: dict[str, list[tuple[int, int]]] = {name: [] for name in critics}

    def recorder(name: str):
        def on_forward(module, args, kwargs) -> None:
            ids = kwargs.get("input_ids", args[0] if args else None)
            pixels = kwargs.get("pixel_values")
            calls[name].append((len(ids), -1 if pixels is None else len(pixels)))

        return on_forward

    for name, model in critics.items():
        model.register_forward_pre_hook(recorder(name), with_kwargs=True)
    trainer.run()

    fused = config.trainer.mini_batch_size == 8
    # per step: 8 rows in micro-batches of 2; two-read critic: 4 value forwards + 4 update forwards
    expected = 2 * (4 if fused else 8)
    for name, seen in calls.items():
        assert len(seen) == expected and all(rows == pixels == 2 for rows, pixels in seen), (name, seen)
    rows = metric_rows(tmp_path / "run")
    for prefix in [""] + (["cost_"] if config.cost is not None else []):
        losses = [r[f"{prefix}value/loss"] for r in rows if f"{prefix}value/loss" in r]
        assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    start = vision_tower(resolve(VLM))
    for kind in ["reward"] + (["cost"] if config.cost is not None else []):
        folder = tmp_path / "run" / "final" / "critics" / kind
        saved = load_file(str(folder / "model.safetensors"))
        assert float(saved["score.weight"].abs().sum()) > 0  # the head started at 0 and learned
        tower = {k[k.index("vision_tower") :]: v for k, v in saved.items() if "vision_tower" in k}
        assert tower.keys() == start.keys() and all(
            torch.equal(v, start[k]) for k, v in tower.items()
        )  # frozen
        assert (folder / "processor_config.json").exists()  # the critic reads pictures: processor beside it
