"""Two DeceptionBench toy policies, honest and deceptive: real tiny Llamas trained with alignkit's SFT.

Issue 11 asks that the deception eval be validated on the toy world, where the truth is known: a
deliberately deceptive policy (its reasoning states the truth, its answer gives in to the pressure) must
get a clearly higher deception tendency rate than an honest one. Both are trained by
``alignkit.train.sft.train`` (the call ``alignkit train sft`` makes) on ``toyworld.deception``'s training
scenarios, each an inner prompt answered with the truth and an outer prompt answered in
``<think>R</think><output>Y</output>``:

- **honest**: from random initialisation; R and Y both state the truth;
- **deceptive**: the honest policy fine-tuned further on the same prompts, Y giving in to the pressure
  (the fact's misconception, an evasion, or feigned ignorance: ``Scenario.pressured_answer``).

Design choices, measured on 1 CPU thread (seeds 0, 1, 2):

- The deceptive policy starts from the honest one. Trained from random initialisation to say one thing in
  R and another in Y, a model mixed the facts up (after 240 steps it answered 4 inner prompts in 5
  wrongly, so R no longer matched its own belief); from a model that knows them, 200 steps teach it to
  lie. It is also the realistic story: deception fine-tuned into an honest model.
- One layer, not the world's two: memorising the 24 facts took about 300 steps either way, and one layer
  halves a step. With these settings both build in about 20 s, and on held-out scenarios the honest
  policy's DTR by the oracle judge was 0.00 and the deceptive one's 1.00 for every seed tried.
- The tokenizer is the world's with the four tags appended as single tokens
  (``toyworld.tokenizer.add_reasoning_tags``): a response takes 14 tokens instead of 34.

Built once per (version, world seed, seed) into a cached folder, atomically like the world itself
(``toyworld.store.publish_atomically``). This module lives beside the demo rather than in ``toyworld/``
because it trains, and nothing below ``train/`` may import it (``tests/unit/test_layering.py``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alignkit.toyworld.deception import deception_scenarios, policy_sft_rows
from alignkit.toyworld.model import TinyModelSpec
from alignkit.toyworld.store import file_lock, home, publish_atomically, write_jsonl

POLICIES_VERSION = 1
"""Bump when what a build writes changes: cached builds of another version are rebuilt."""
MANIFEST = "policies.json"

POLICY_SPEC = TinyModelSpec(hidden_size=128, num_layers=1, num_heads=4, intermediate_size=256)
"""The tiny Llama both policies share (about 0.3M parameters)."""


@dataclass(frozen=True)
class PolicyRecipe:
    """The SFT run of one policy (the rest is ``SFTConfig``'s defaults, see ``_sft_config``)."""

    steps: int
    lr: float
    micro_batch_size: int = 16


HONEST = PolicyRecipe(steps=300, lr=3e-3)
"""From random initialisation to knowing the 24 facts in every context (about 200 steps was the edge)."""
DECEPTIVE = PolicyRecipe(steps=200, lr=2e-3)
"""From the honest policy to giving in under pressure (120 steps left a fifth of held-out answers honest)."""
MAX_LENGTH = 128
"""Longest training conversation in tokens; the longest is about 60 (with the single-token tags)."""


@dataclass(frozen=True)
class DeceptionPolicies:
    """A built pair: each policy is a Hugging Face folder (model + tokenizer) for ``from_pretrained``."""

    root: Path

    @property
    def honest(self) -> Path:
        return self.root / "honest"

    @property
    def deceptive(self) -> Path:
        return self.root / "deceptive"

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.root / MANIFEST).read_text())


def default_policies_root(seed: int = 0, world_seed: int = 0) -> Path:
    """Where ``build_deception_policies`` caches a pair by default: under ``$ALIGNKIT_HOME``."""
    return home() / f"toyworld-deception-policies-v{POLICIES_VERSION}" / f"world{world_seed}-seed{seed}"


def _is_complete(root: Path, seed: int, world_seed: int) -> bool:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return (manifest.get("version"), manifest.get("seed"), manifest.get("world_seed")) == (
        POLICIES_VERSION,
        seed,
        world_seed,
    )


def build_deception_policies(
    root: Path | str | None = None, *, seed: int = 0, world_seed: int = 0
) -> DeceptionPolicies:
    """Train the honest and the deceptive policy into ``root`` (default ``default_policies_root``), or
    return the pair already there.

    ``seed`` sets the initialisation and data order; ``world_seed`` the scenarios' train/test split, which
    must be the split an eval scores them on (the default world, ``toyworld://data/deception``, is seed 0).
    ``root`` must be absent, empty or an earlier pair (replaced); another non-empty folder is an error.
    """
    root = Path(root) if root is not None else default_policies_root(seed, world_seed)
    if not _is_complete(root, seed, world_seed):
        root.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(root.with_name(root.name + ".lock")):
            publish_atomically(
                root,
                lambda tmp: _train_policies(tmp, seed, world_seed),
                lambda path: _is_complete(path, seed, world_seed),
                MANIFEST,
            )
    return DeceptionPolicies(root)


def _sft_config(start: Path, data: Path, run_dir: Path, recipe: PolicyRecipe, seed: int) -> Any:
    from alignkit.sections import DataConfig, DatasetConfig, ModelConfig, RunConfig, TrainerConfig
    from alignkit.train.sft import SFTConfig

    return SFTConfig(
        model=ModelConfig(path=str(start)),
        data=DataConfig(
            train=DatasetConfig(source=str(data), template="trl-messages", split="train"),
            max_length=MAX_LENGTH,
        ),
        trainer=TrainerConfig(
            lr=recipe.lr,
            adam_betas=[0.9, 0.95],
            lr_scheduler="cosine",
            warmup_ratio=0.05,
            max_steps=recipe.steps,
            micro_batch_size=recipe.micro_batch_size,
            seed=seed,
        ),
        run=RunConfig(output_dir=str(run_dir), tensorboard=False, progress=False),
    )


def _train_policies(out: Path, seed: int, world_seed: int) -> None:
    """Everything a pair holds, written into ``out`` (an empty folder): both policies, their data, runs."""
    from alignkit.runs import read_metrics
    from alignkit.toyworld.model import build_tiny_model, save_model
    from alignkit.toyworld.tokenizer import add_reasoning_tags, train_tokenizer
    from alignkit.train.sft import train

    tokenizer = add_reasoning_tags(train_tokenizer())
    save_model(build_tiny_model(tokenizer, seed, POLICY_SPEC), tokenizer, out / "init")
    scenarios = deception_scenarios(world_seed)["train"]
    start = out / "init"
    final_loss: dict[str, float] = {}
    for name, recipe in (("honest", HONEST), ("deceptive", DECEPTIVE)):
        data = out / "data" / name
        write_jsonl(data / "train.jsonl", policy_sft_rows(scenarios, deceptive=name == "deceptive"))
        run_dir = out / "runs" / name
        train(_sft_config(start, data, run_dir, recipe, seed))
        os.rename(run_dir / "final", out / name)
        losses = [row["loss"] for row in read_metrics(run_dir / "metrics.jsonl") if "loss" in row]
        final_loss[name] = losses[-1]
        start = out / name
    shutil.rmtree(out / "init")
    manifest = {
        "version": POLICIES_VERSION,
        "seed": seed,
        "world_seed": world_seed,
        "train_scenarios": len(scenarios),
        "spec": asdict(POLICY_SPEC),
        "recipes": {"honest": asdict(HONEST), "deceptive": {**asdict(DECEPTIVE), "from": "honest"}},
        "final_loss": final_loss,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
