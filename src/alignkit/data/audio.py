"""Audio parts: finding a clip when a row is read, and decoding it when a processor renders the chat.

A row's audio block (``{"type": "audio", "path": ...}``) becomes a ``ContentPart`` holding an existing
path (relative paths resolve against the data file's folder) whose header has been read, so a typo or a
file that is not audio fails when the data is loaded, naming the file, row, field and path, not mid-training.

At render time ``with_audio_arrays`` replaces each path (or embedded bytes) by the decoded waveform at the
processor's sampling rate. transformers would decode a path itself, but only through soundfile or
torchcodec, which alignkit does not require: WAV (PCM 8/16/32-bit) is read with the standard library;
other formats go to transformers' ``load_audio`` and need one of those packages.
"""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alignkit.data.errors import RowError, describe
from alignkit.data.records import ContentPart

WAV_SUFFIXES = (".wav", ".wave")
EXPECTED = (
    "an existing audio file (WAV with the standard library; other formats need soundfile or torchcodec)"
)


def audio_part(value: Any, name: str, base_dir: Path | None) -> ContentPart:
    """An audio block's ``path``/``url`` as a part whose file exists and, for WAV, whose header reads."""
    if not isinstance(value, str) or not value.strip():
        raise RowError(name, EXPECTED, describe(value))
    if value.startswith(("http://", "https://")):
        return ContentPart("audio", path=value)
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise RowError(name, EXPECTED, f"{value!r} (no file at {path})")
    if path.suffix.lower() in WAV_SUFFIXES:
        try:
            with wave.open(str(path), "rb"):
                pass
        except (wave.Error, EOFError, OSError) as error:
            raise RowError(name, "a WAV file the standard library can read", f"{value!r}: {error}") from None
    return ContentPart("audio", path=str(path))


def read_wav(source: str | bytes) -> tuple[np.ndarray, int]:
    """A WAV file (path or bytes) as a mono float32 waveform in [-1, 1] and its sampling rate."""
    with wave.open(io.BytesIO(source) if isinstance(source, bytes) else source, "rb") as clip:
        width, channels, rate = clip.getsampwidth(), clip.getnchannels(), clip.getframerate()
        frames = clip.readframes(clip.getnframes())
    if width == 1:
        data = (np.frombuffer(frames, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width in (2, 4):
        dtype = "<i2" if width == 2 else "<i4"
        data = np.frombuffer(frames, dtype=dtype).astype(np.float32) / float(2 ** (8 * width - 1))
    else:
        raise ValueError(f"{width * 8}-bit WAV samples are not supported (8, 16 or 32-bit PCM are)")
    return data.reshape(-1, channels).mean(axis=1).astype(np.float32), rate


def resample(waveform: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear-interpolation resampling (enough for a model's features; exact when the rates agree)."""
    if rate == target:
        return waveform
    n = int(round(len(waveform) * target / rate))
    return np.interp(np.arange(n) * rate / target, np.arange(len(waveform)), waveform).astype(np.float32)


def load_waveform(block: Mapping[str, Any], sampling_rate: int) -> np.ndarray:
    """The waveform of a chat audio block (``path``/``url``/``base64``/``audio``) at ``sampling_rate``."""
    if isinstance(block.get("audio"), np.ndarray):
        return block["audio"]
    source = next((block[k] for k in ("path", "url", "audio") if isinstance(block.get(k), str)), None)
    data = base64.b64decode(block["base64"]) if block.get("base64") else None
    shown = source if source is not None else "embedded audio bytes"
    try:
        if (data is not None and data[:4] == b"RIFF") or (source or "").lower().endswith(WAV_SUFFIXES):
            waveform, rate = read_wav(data if data is not None else source)  # type: ignore[arg-type]
            return resample(waveform, rate, sampling_rate)
        from transformers.audio_utils import load_audio

        if data is not None:
            source = base64.b64encode(data).decode("ascii")
        return load_audio(source, sampling_rate=sampling_rate)
    except (wave.Error, EOFError, OSError, RuntimeError, ImportError, ValueError) as error:
        raise ValueError(f"audio {shown!r} could not be decoded: {error}") from None


def has_audio(messages: Sequence[Mapping[str, Any]]) -> bool:
    return any(
        isinstance(m.get("content"), list) and any(p.get("type") == "audio" for p in m["content"])
        for m in messages
    )


def with_audio_arrays(messages: Sequence[Mapping[str, Any]], sampling_rate: int) -> list[dict[str, Any]]:
    """Chat dicts whose audio blocks carry the decoded waveform (``{"type": "audio", "audio": array}``)."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = [
                {"type": "audio", "audio": load_waveform(part, sampling_rate)}
                if part.get("type") == "audio"
                else part
                for part in content
            ]
        out.append({**message, "content": content})
    return out
