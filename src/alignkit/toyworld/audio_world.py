"""The audio toy world: short clips of sine beeps, two questions about them, and their oracle.

A clip is 1 to 3 beeps of one pitch, low (250-400 Hz) or high (1500-3000 Hz), at 16 kHz and at most one
second long, so a tiny Whisper-style encoder with one second of features hears all of it. Its file name is
its scene key (``b2-high-2000-1.wav``: 2 beeps, high, 2000 Hz, variant 1), so ``scene_from_key`` recovers
what a clip holds from any path the world wrote and the oracle needs nothing else.

Questions: "How many beeps?" (one / two / three) and "Is the tone high or low?" (high / low). Answers take
the visual world's form, ``The answer is {a}.``; the oracle accepts the one right answer word and nothing
else named. The split is by clip: a fixed share of variants is test only, so held-out clips are sounds the
model never heard (same counts and pitches, other frequencies, amplitudes and timings).
"""

from __future__ import annotations

import hashlib
import re
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLING_RATE = 16_000
CLIP_SECONDS = 1.0
ANSWER_FORM = "The answer is {a}."
COUNT_WORDS = ("one", "two", "three")
PITCHES: dict[str, tuple[int, ...]] = {"low": (250, 300, 350, 400), "high": (1500, 2000, 2500, 3000)}
VARIANTS = 3
"""Clips per (count, pitch, frequency): each a different amplitude and timing."""
QUESTIONS = {"count": "How many beeps?", "pitch": "Is the tone high or low?"}
HELD_OUT_SHARE = 5
"""One clip in ``HELD_OUT_SHARE`` (by a hash of its key) is test only."""


@dataclass(frozen=True)
class Clip:
    """What one clip holds: ``beeps`` beeps at ``frequency`` Hz (a ``pitch`` class), variant ``variant``."""

    beeps: int
    pitch: str
    frequency: int
    variant: int

    @property
    def key(self) -> str:
        return f"b{self.beeps}-{self.pitch}-{self.frequency}-{self.variant}"

    @property
    def held_out(self) -> bool:
        return int(hashlib.sha256(self.key.encode()).hexdigest(), 16) % HELD_OUT_SHARE == 0


@dataclass(frozen=True)
class AudioTask:
    """A question about a clip and its one right answer word."""

    clip: Clip
    family: str
    question: str
    answer: str


def all_clips() -> list[Clip]:
    return [
        Clip(beeps, pitch, frequency, variant)
        for beeps in (1, 2, 3)
        for pitch, frequencies in PITCHES.items()
        for frequency in frequencies
        for variant in range(VARIANTS)
    ]


_KEY = re.compile(r"b([123])-(low|high)-(\d+)-(\d+)")


def scene_from_key(path_or_key: str) -> Clip:
    """The clip a file name (or key) of this world names; ValueError for any other name."""
    stem = Path(path_or_key).name.removesuffix(".wav")
    match = _KEY.fullmatch(stem)
    if match is None:
        raise ValueError(
            f"{path_or_key!r} is not a clip of the audio toy world (expected b<1-3>-<low|high>-<Hz>-<n>)"
        )
    return Clip(int(match[1]), match[2], int(match[3]), int(match[4]))


def tasks_of(clips: list[Clip]) -> list[AudioTask]:
    tasks = []
    for clip in clips:
        tasks.append(AudioTask(clip, "count", QUESTIONS["count"], COUNT_WORDS[clip.beeps - 1]))
        tasks.append(AudioTask(clip, "pitch", QUESTIONS["pitch"], clip.pitch))
    return tasks


def task_for(audio_path: str, question: str) -> AudioTask:
    """The task a (clip path, question) pair of this world poses."""
    clip = scene_from_key(audio_path)
    family = next((f for f, q in QUESTIONS.items() if q == question.strip()), None)
    if family is None:
        raise ValueError(
            f"{question!r} is not a question of the audio toy world; allowed: {list(QUESTIONS.values())}"
        )
    return next(t for t in tasks_of([clip]) if t.family == family)


def samples(clip: Clip) -> np.ndarray:
    """The clip's waveform (float32 in [-1, 1]): its beeps of 0.12-0.16 s, evenly spaced, with soft edges."""
    rng = np.random.default_rng(int(hashlib.sha256(clip.key.encode()).hexdigest()[:8], 16))
    n = int(SAMPLING_RATE * CLIP_SECONDS)
    wave_out = np.zeros(n, dtype=np.float64)
    beep = int(SAMPLING_RATE * rng.uniform(0.12, 0.16))
    gap = int(SAMPLING_RATE * rng.uniform(0.1, 0.14))
    start = int(SAMPLING_RATE * rng.uniform(0.02, 0.1))
    amplitude = rng.uniform(0.3, 0.8)
    t = np.arange(beep) / SAMPLING_RATE
    envelope = np.minimum(1.0, np.minimum(np.arange(beep), np.arange(beep)[::-1]) / (0.01 * SAMPLING_RATE))
    tone = amplitude * envelope * np.sin(2 * np.pi * clip.frequency * t)
    for i in range(clip.beeps):
        at = start + i * (beep + gap)
        wave_out[at : at + beep] = tone
    return wave_out.astype(np.float32)


def write_wav(path: Path, waveform: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> None:
    """16-bit PCM mono WAV with the standard library (no audio package needed)."""
    pcm = (np.clip(waveform, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sampling_rate)
        out.writeframes(pcm.tobytes())


def named_answers(family: str, response: str) -> set[str]:
    """The answer words of ``family`` that ``response`` names."""
    vocabulary = COUNT_WORDS if family == "count" else tuple(PITCHES)
    words = set(re.findall(r"[a-z]+", response.lower()))
    return {w for w in vocabulary if w in words}


def is_correct(task: AudioTask, response: str) -> bool:
    """Whether ``response`` names the right answer and no other answer of the question."""
    return named_answers(task.family, response) == {task.answer}
