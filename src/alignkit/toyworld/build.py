"""Writing the toy world to disk, and finding it again through ``toyworld://`` URIs.

A build is written into a temporary sibling folder and renamed into place, so a folder at the final
path is always complete: a crash leaves only a ``.tmp-*`` folder, and two processes building at once
both finish, one rename wins and the other uses the winner's build. ``resolve`` additionally takes a
file lock so the second process waits instead of building twice.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignkit.toyworld.data import (
    SFTMixture,
    answer_pref_rows,
    correction_rows,
    prompt_rows,
    safe_pref_rows,
    sft_rows,
    stream_correction_rows,
)
from alignkit.toyworld.deception import deception_scenarios, deceptionbench_rows
from alignkit.toyworld.store import CachedBuild, write_datasets
from alignkit.toyworld.world import split_tasks

VERSION = 4
"""Bump when anything a build writes changes: cached builds of another version are rebuilt.
(3: adds ``data/deception``; 4: adds ``data/stream_corrections``; every file of version 2 is unchanged.)"""
URI_SCHEME = "toyworld://"
MANIFEST = "toyworld.json"

SFT_REPEATS = 2
"""SFT rows per prompt (each an independent draw from the mixture)."""
PAIRS_PER_PROMPT = 2
"""PKU-SafeRLHF pairs per prompt."""
ANSWER_PAIRS_PER_PROMPT = 4
"""Extra right-vs-wrong answer pairs per benign prompt in the reward model's data (``reward_pref``)."""


@dataclass(frozen=True)
class ToyWorld:
    """A built world on disk: where its parts are, and what the manifest says."""

    root: Path

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.root / MANIFEST).read_text())

    @property
    def tokenizer_path(self) -> Path:
        return self.root / "tokenizer"

    @property
    def model_path(self) -> Path:
        """The tiny model, saved together with its tokenizer."""
        return self.root / "models" / "tiny"

    def data_path(self, name: str, split: str) -> Path:
        """``name`` is ``sft``, ``safe_pref``, ``reward_pref``, ``corrections``, ``stream_corrections``, ``prompts`` or
        ``deception`` (DeceptionBench rows); ``split`` is ``train``/``test``."""
        return self.root / "data" / name / f"{split}.jsonl"


def _write_world(root: Path, seed: int) -> dict[str, Any]:
    """Everything a build holds, written into ``root`` (an empty folder); returns the manifest's fields."""
    # Imported here: torch and transformers take seconds to import, and resolve() on a built world
    # should not pay for them.
    from alignkit.toyworld.model import build_tiny_model, model_manifest, save_model
    from alignkit.toyworld.tokenizer import save_tokenizer, train_tokenizer

    tokenizer = train_tokenizer()
    save_tokenizer(tokenizer, root / "tokenizer")
    model = build_tiny_model(tokenizer, seed)
    save_model(model, tokenizer, root / "models" / "tiny")

    mixture = SFTMixture()
    leaky = mixture.leaky_goals(seed)
    splits = split_tasks(seed)
    counts: dict[str, int] = {}
    for split, tasks in splits.items():
        rng = random.Random(f"toyworld-{seed}-{split}")
        written = {
            "sft": sft_rows(tasks, random.Random(rng.random()), mixture, leaky, SFT_REPEATS),
            "safe_pref": safe_pref_rows(tasks, random.Random(rng.random()), PAIRS_PER_PROMPT),
            "corrections": correction_rows(tasks, random.Random(rng.random())),
            "prompts": prompt_rows(tasks),
        }
        # Drawn after the others, so adding it left every other dataset as it was.
        answer_pairs = answer_pref_rows(tasks, random.Random(rng.random()), ANSWER_PAIRS_PER_PROMPT)
        written["reward_pref"] = written["safe_pref"] + answer_pairs
        random.Random(rng.random()).shuffle(written["reward_pref"])
        # Drawn last, so every dataset above is as in version 3.
        written["stream_corrections"] = stream_correction_rows(tasks, random.Random(rng.random()))
        write_datasets(root, split, written, counts)
    # DeceptionBench rows draw from their own random stream, so the datasets above are as in version 2.
    for split, scenarios in deception_scenarios(seed).items():
        write_datasets(root, split, {"deception": deceptionbench_rows(scenarios)}, counts)

    return {
        "counts": counts,
        "prompts": {
            split: {
                "benign": sum(not t.is_harmful for t in tasks),
                "harmful": sum(t.is_harmful for t in tasks),
            }
            for split, tasks in splits.items()
        },
        "tokenizer": {"vocab_size": len(tokenizer)},
        "model": {
            **model_manifest(model),
            **{
                k: getattr(model.config, k) for k in ("hidden_size", "num_hidden_layers", "intermediate_size")
            },
        },
        "sft_mixture": {**vars(mixture), "leaky_goals": sorted(leaky)},
    }


TEXT_BUILD = CachedBuild("toyworld", MANIFEST, VERSION, _write_world)
"""The text world's build flow (``store.CachedBuild``), shared with the visual and audio worlds."""


def build(root: Path | str, seed: int = 0) -> ToyWorld:
    """Build the world into ``root``, or return the build already there (same version and seed).

    ``root`` must be absent, empty, or an earlier toy world build (which is replaced); any other
    non-empty folder is an error rather than something to delete.
    """
    return ToyWorld(TEXT_BUILD.build(root, seed))


def default_root() -> Path:
    return TEXT_BUILD.default_root()


def default_world() -> ToyWorld:
    """The world behind ``toyworld://`` (seed 0), built on first use."""
    return ToyWorld(TEXT_BUILD.default())


def resolve(uri_or_path: str | os.PathLike[str]) -> Path:
    """``toyworld://<relative path>`` -> that path inside the default build; other paths unchanged.

    ``toyworld://visual/<relative path>`` is inside the visual world's build (``visual_build.py``),
    ``toyworld://audio/<relative path>`` inside the audio world's (``audio_build.py``)."""
    text = os.fspath(uri_or_path)
    if not text.startswith(URI_SCHEME):
        return Path(text)
    relative = text[len(URI_SCHEME) :].strip("/")
    if ".." in Path(relative).parts:
        raise ValueError(f"{text}: a toyworld:// path cannot leave the world folder")
    if Path(relative).parts[:1] == ("visual",):  # the visual world is its own build (visual_build.py)
        from alignkit.toyworld.visual_build import default_visual_world

        return default_visual_world().joinpath(*Path(relative).parts[1:])
    if Path(relative).parts[:1] == ("audio",):  # the audio world is its own build (audio_build.py)
        from alignkit.toyworld.audio_build import default_audio_world

        return default_audio_world().joinpath(*Path(relative).parts[1:])
    return default_world().root / relative
