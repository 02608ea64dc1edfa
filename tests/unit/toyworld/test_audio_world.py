"""The audio toy world: clips hold what their keys say (beeps counted from the waveform, pitch from its
spectrum), the oracle, the split by clip, rows that agree with the oracle, and the tiny Qwen2-Audio reload."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alignkit.data.audio import read_wav
from alignkit.toyworld import resolve
from alignkit.toyworld.audio_world import (
    SAMPLING_RATE,
    AudioTask,
    Clip,
    all_clips,
    is_correct,
    scene_from_key,
    task_for,
)


def beeps_and_peak(path: Path) -> tuple[int, float]:
    """Beeps = runs of loud 10 ms frames; pitch = the strongest frequency of the spectrum."""
    waveform, rate = read_wav(str(path))
    assert rate == SAMPLING_RATE and len(waveform) <= SAMPLING_RATE
    loud = np.abs(waveform).reshape(-1, 160).max(axis=1) > 0.1
    runs = int(loud[0]) + int(np.sum(loud[1:] & ~loud[:-1]))
    spectrum = np.abs(np.fft.rfft(waveform))
    return runs, float(np.argmax(spectrum) * rate / len(waveform))


def test_every_clip_holds_the_beeps_and_pitch_its_key_names():
    folder = resolve("toyworld://audio/data/clips")
    clips = all_clips()
    assert len(clips) == 72 == len(list(folder.glob("*.wav")))
    for clip in clips[::5]:
        beeps, peak = beeps_and_peak(folder / f"{clip.key}.wav")
        assert beeps == clip.beeps, clip
        assert abs(peak - clip.frequency) <= 2, (clip, peak)  # 1 Hz bins over one second


def test_keys_tasks_and_the_oracle():
    clip = scene_from_key("/x/b3-high-2500-1.wav")
    assert clip == Clip(3, "high", 2500, 1)
    count = task_for("b3-high-2500-1.wav", "How many beeps?")
    pitch = task_for("b3-high-2500-1.wav", "Is the tone high or low?")
    assert (count.answer, pitch.answer) == ("three", "high")
    assert is_correct(count, "The answer is three.")
    assert not is_correct(count, "The answer is two.")
    assert not is_correct(count, "one, two or three")  # names other answers too
    assert is_correct(pitch, "The answer is high.") and not is_correct(pitch, "The answer is low.")
    with pytest.raises(ValueError, match="not a clip"):
        scene_from_key("w-red.circle.0.png")
    with pytest.raises(ValueError, match="not a question"):
        task_for("b1-low-250-0.wav", "What colour?")


def _tasks(path: Path) -> list[tuple[AudioTask, dict]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    key = "messages" if "messages" in rows[0] else "prompt"
    found = []
    for row in rows:
        audio, question = row[key][0]["content"]
        found.append((task_for(audio["path"], question["text"]), row))
    return found


def test_rows_agree_with_the_oracle_and_split_by_clip():
    data = resolve("toyworld://audio/data")
    train = _tasks(data / "sft" / "train.jsonl")
    test = _tasks(data / "sft" / "test.jsonl")
    assert all(is_correct(t, row["messages"][1]["content"]) for t, row in train + test)
    assert not {t.clip for t, _ in train} & {t.clip for t, _ in test}
    assert all(t.clip.held_out for t, _ in test) and len(test) == 26
    for task, row in _tasks(data / "dpo" / "train.jsonl"):
        assert is_correct(task, row["chosen"][0]["content"])
        assert not is_correct(task, row["rejected"][0]["content"])


def test_tiny_alm_reloads_with_the_auto_classes():
    from transformers import AutoModelForMultimodalLM, AutoProcessor

    path = resolve("toyworld://audio/models/tiny-alm")
    processor = AutoProcessor.from_pretrained(str(path))
    model = AutoModelForMultimodalLM.from_pretrained(str(path))
    assert type(processor).__name__ == "Qwen2AudioProcessor"
    assert type(model).__name__ == "Qwen2AudioForConditionalGeneration"
    assert model.config.audio_token_id == processor.audio_token_id
    assert processor.tokenizer.convert_tokens_to_ids("<|im_start|>") < processor.audio_token_id
