"""Writing the audio toy world to disk (``toyworld://audio/...``), in TRL's conversational formats.

Layout of a build (a few seconds, offline)::

    audio/
      toyworld-audio.json            manifest: version, seed, counts, model shape
      models/tiny-alm/               Qwen2-Audio + processor (AutoModelForMultimodalLM / AutoProcessor)
      data/clips/<key>.wav           every clip (16 kHz mono PCM, 1 s), named by its key (the oracle reads it)
      data/sft/{train,test}.jsonl    TRL conversational rows, an audio part + the question (template trl)
      data/prompts/{train,test}.jsonl   TRL prompt-only rows (for generation / evaluation)
      data/dpo/{train,test}.jsonl    TRL preference rows: the right answer chosen over a wrong one

Audio paths in the rows are relative to the data file (``../clips/<key>.wav``), as the templates resolve
them. The split is by clip (``Clip.held_out``), so test clips were never heard in training.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from alignkit.toyworld.audio_world import (
    ANSWER_FORM,
    COUNT_WORDS,
    PITCHES,
    AudioTask,
    all_clips,
    samples,
    tasks_of,
    write_wav,
)
from alignkit.toyworld.store import CachedBuild, write_datasets

VERSION = 1
MANIFEST = "toyworld-audio.json"


def clip_ref(task: AudioTask) -> str:
    """Where a row finds its clip: relative to the data file, as the templates resolve it."""
    return f"../clips/{task.clip.key}.wav"


def user_turn(task: AudioTask) -> list[dict[str, Any]]:
    content = [{"type": "audio", "path": clip_ref(task)}, {"type": "text", "text": task.question}]
    return [{"role": "user", "content": content}]


def answer(task: AudioTask) -> str:
    return ANSWER_FORM.format(a=task.answer)


def wrong_answer(task: AudioTask, rng: random.Random) -> str:
    """A confident answer of the right form naming another answer of the same question."""
    vocabulary = COUNT_WORDS if task.family == "count" else tuple(PITCHES)
    return ANSWER_FORM.format(a=rng.choice([w for w in vocabulary if w != task.answer]))


def sft_rows(tasks: list[AudioTask]) -> list[dict[str, Any]]:
    return [{"messages": [*user_turn(t), {"role": "assistant", "content": answer(t)}]} for t in tasks]


def prompt_rows(tasks: list[AudioTask]) -> list[dict[str, Any]]:
    return [{"prompt": user_turn(t)} for t in tasks]


def dpo_rows(tasks: list[AudioTask], rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "prompt": user_turn(t),
            "chosen": [{"role": "assistant", "content": answer(t)}],
            "rejected": [{"role": "assistant", "content": wrong_answer(t, rng)}],
        }
        for t in tasks
    ]


def _write_world(root: Path, seed: int) -> dict[str, Any]:
    """Everything a build holds, written into ``root`` (an empty folder); returns the manifest's fields."""
    from alignkit.toyworld.audio_model import AUDIO_TOKENS, build_processor, build_tiny_alm
    from alignkit.toyworld.model import model_manifest, save_model

    clips = all_clips()
    folder = root / "data" / "clips"
    folder.mkdir(parents=True)
    for clip in clips:
        write_wav(folder / f"{clip.key}.wav", samples(clip))
    counts: dict[str, int] = {}
    for split, held_out in (("train", False), ("test", True)):
        tasks = tasks_of([c for c in clips if c.held_out == held_out])
        rng = random.Random(f"toyworld-audio-{seed}-{split}")
        written = {"sft": sft_rows(tasks), "prompts": prompt_rows(tasks), "dpo": dpo_rows(tasks, rng)}
        write_datasets(root, split, written, counts)
    processor = build_processor()
    model = build_tiny_alm(processor, seed)
    save_model(model, processor, root / "models" / "tiny-alm")
    return {
        "counts": counts,
        "clips": len(clips),
        "model": {**model_manifest(model), "audio_tokens": AUDIO_TOKENS},
    }


AUDIO_BUILD = CachedBuild("toyworld-audio", MANIFEST, VERSION, _write_world)
"""The audio world's build flow (``store.CachedBuild``), shared with the text and visual worlds."""


# Public names of the flow, like the text world's ``build`` / ``default_root`` / ``default_world``.
build_audio = AUDIO_BUILD.build
"""Build the audio world into ``root`` (or return the build already there); atomic like ``build``."""
default_audio_root = AUDIO_BUILD.default_root
default_audio_world = AUDIO_BUILD.default
"""The world behind ``toyworld://audio/`` (seed 0), built on first use."""
