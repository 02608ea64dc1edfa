"""Rendering audio through a processor: a clip's placeholder expanded to the processor's count of audio
tokens (unlabelled), loss on exactly the assistant text, the clip decoded without soundfile, and bad audio
paths refused when the data is read, naming the file, row, field and path."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from alignkit.data import load_records
from alignkit.data.audio import read_wav, resample
from alignkit.data.collate import collate_lm
from alignkit.data.errors import DataError
from alignkit.data.processor import text_tokenizer
from alignkit.data.records import ContentPart, Message
from alignkit.data.render import IGNORE_INDEX, render_conversation, render_prompt_inputs
from alignkit.toyworld import resolve
from alignkit.toyworld.audio_world import SAMPLING_RATE, write_wav

ALM = "toyworld://audio/models/tiny-alm"
AUDIO_TOKENS = 25  # 1 s = 100 mel frames -> 50 after the stride-2 convolution -> 25 after pooling by 2


@pytest.fixture(scope="module")
def processor():
    from alignkit.models.loading import load_processor, load_tokenizer

    return load_processor(ALM, load_tokenizer(ALM))


def clip(key: str) -> ContentPart:
    path = resolve("toyworld://audio/data/clips") / f"{key}.wav"
    assert Path(path).is_file()
    return ContentPart("audio", path=str(path))


def user(*parts: ContentPart | str) -> Message:
    return Message(
        "user", tuple(p if isinstance(p, ContentPart) else ContentPart("text", text=p) for p in parts)
    )


def labelled_text(processor, example) -> str:
    return text_tokenizer(processor).decode(
        [t for t, y in zip(example.input_ids, example.labels, strict=True) if y != IGNORE_INDEX]
    )


def test_assistant_mask_covers_exactly_the_answer_after_audio_expansion(processor):
    chat = [user(clip("b2-low-300-0"), "How many beeps?"), Message("assistant", "The answer is two.")]
    example = render_conversation(processor, chat, max_length=128)
    audio_id = processor.audio_token_id
    assert example.input_ids.count(audio_id) == AUDIO_TOKENS
    assert all(
        y == IGNORE_INDEX for t, y in zip(example.input_ids, example.labels, strict=True) if t == audio_id
    )
    assert labelled_text(processor, example) == "The answer is two.<|im_end|>"
    assert example.media["input_features"].shape == (1, 80, 100)
    assert example.media["feature_attention_mask"].sum().item() == 100  # the whole second is the clip


def test_a_half_second_clip_gives_fewer_audio_tokens_and_collate_stacks_clips(processor, tmp_path: Path):
    t = np.arange(SAMPLING_RATE // 2) / SAMPLING_RATE
    write_wav(tmp_path / "half.wav", 0.5 * np.sin(2 * np.pi * 440 * t))
    half = [user(ContentPart("audio", path=str(tmp_path / "half.wav")), "Is the tone high or low?")]
    ids, media = render_prompt_inputs(processor, half)
    # 0.5 s = 50 frames: (50 - 1) // 2 + 1 = 25 after the convolution, (25 - 2) // 2 + 1 = 12 pooled
    assert ids.count(processor.audio_token_id) == 12
    assert media["feature_attention_mask"].sum().item() == 50
    full = [user(clip("b1-high-2000-0"), "How many beeps?"), Message("assistant", "The answer is one.")]
    batch = collate_lm(
        [render_conversation(processor, full, 128), render_conversation(processor, full, 128)], pad_token_id=0
    )
    assert batch["input_features"].shape == (2, 80, 100)


def test_read_wav_and_resample_by_hand(tmp_path: Path):
    write_wav(tmp_path / "x.wav", np.array([0.0, 0.5, -0.5, 1.0]), sampling_rate=8000)
    waveform, rate = read_wav(str(tmp_path / "x.wav"))
    assert rate == 8000
    # 16-bit PCM: round-trip through int(x * 32767) / 32768
    assert np.allclose(waveform, [0.0, 16383 / 32768, -16383 / 32768, 32767 / 32768])
    # 8 kHz -> 16 kHz doubles the samples; linear interpolation puts midpoints between them
    up = resample(np.array([0.0, 1.0, 0.0], dtype=np.float32), 8000, 16000)
    assert np.allclose(up, [0.0, 0.5, 1.0, 0.5, 0.0, 0.0])
    embedded = ContentPart("audio", data=(tmp_path / "x.wav").read_bytes()).to_chat_dict()
    from alignkit.data.audio import load_waveform

    assert np.allclose(load_waveform(embedded, 8000), waveform)
    assert base64.b64decode(embedded["base64"])[:4] == b"RIFF"


def _row(path: str) -> str:
    content = [{"type": "audio", "path": path}, {"type": "text", "text": "How many beeps?"}]
    return json.dumps(
        {"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "x"}]}
    )


def test_missing_or_corrupt_audio_is_refused_naming_file_row_field_and_path(tmp_path: Path):
    (tmp_path / "bad.wav").write_bytes(b"not a wav file at all")
    data = tmp_path / "rows.jsonl"
    data.write_text(_row(clip("b1-low-250-0").path) + "\n" + _row("nowhere.wav") + "\n")
    with pytest.raises(DataError, match=r"rows.jsonl row 2.*messages\[0\]\.content\[0\]\.path.*nowhere.wav"):
        load_records(str(data), template="trl")
    data.write_text(_row("bad.wav") + "\n")
    with pytest.raises(DataError, match=r"rows.jsonl row 1.*content\[0\]\.path.*WAV.*bad.wav"):
        load_records(str(data), template="trl")


def test_world_rows_read_with_their_clips_and_run_the_model(processor):
    from alignkit.models.loading import load_causal_lm

    records = load_records(str(resolve("toyworld://audio/data/sft/test.jsonl")), template="trl").records
    part = records[0].messages[0].media()[0]
    assert part.type == "audio" and Path(part.path).is_file()
    example = render_conversation(processor, records[0].messages, max_length=128)
    model = load_causal_lm(ALM)
    assert type(model).__name__ == "Qwen2AudioForConditionalGeneration"
    ids = torch.tensor([example.input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **example.media).logits
    assert logits.shape[:2] == ids.shape and torch.isfinite(logits).all()
