"""The score head on an audio-language model: the tiny Qwen2-Audio of the audio toy world takes the VLM's
recipe (``models/vlm_score.py``: ``GenericForSequenceClassification`` on the family's base model), found
through ``AutoModelForMultimodalLM``'s mapping, which holds audio families (the image-text one does not)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alignkit.data.processor import media_token_ids
from alignkit.models.loading import load_processor, load_tokenizer
from alignkit.models.score_model import closing_token_id, new_score_model
from alignkit.toyworld import resolve

ALM = "toyworld://audio/models/tiny-alm"


def ask(clip: str, question: str = "How many beeps?") -> list[dict]:
    path = str(resolve("toyworld://audio/data/clips") / f"{clip}.wav")
    return [
        {"role": "user", "content": [{"type": "audio", "path": path}, {"type": "text", "text": question}]}
    ]


def answer(word: str) -> list[dict]:
    return [{"role": "assistant", "content": f"The answer is {word}."}]


@pytest.fixture(scope="module")
def processor():
    return load_processor(ALM, load_tokenizer(ALM))


@pytest.fixture(scope="module")
def reward_model(processor):
    torch.manual_seed(0)
    return new_score_model(ALM, processor, "reward").eval()


def test_an_audio_model_gets_its_familys_sequence_classifier(reward_model, processor):
    from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioPreTrainedModel

    assert type(reward_model).__name__ == "Qwen2AudioForSequenceClassification"
    # the family's weight init, layouts and key conversions, not bare PreTrainedModel's
    assert isinstance(reward_model, Qwen2AudioPreTrainedModel)
    assert hasattr(reward_model.base_model, "audio_tower") and not hasattr(reward_model, "lm_head")
    assert reward_model.score.bias is None and reward_model.score.weight.shape[0] == 1
    pad = reward_model.config.get_text_config().pad_token_id
    assert pad == reward_model.config.pad_token_id
    assert pad != closing_token_id(processor) and pad not in media_token_ids(processor)


def test_the_clip_reaches_the_score_and_a_saved_model_reloads(reward_model, processor, tmp_path: Path):
    """The same question and answer about one beep and three beeps: equal scores would mean the clip never
    reached the forward. The saved folder reloads through ``ScoreModelScorer`` with its processor."""
    from alignkit.score.score_model import ScoreModelScorer
    from alignkit.train.score_training import save_score_model

    save_score_model(reward_model, processor, tmp_path)
    scorer = ScoreModelScorer(str(tmp_path), device="cpu", max_length=64, batch_size=2)
    assert type(scorer.model).__name__ == "Qwen2AudioForSequenceClassification"
    prompts = [ask("b1-low-250-0"), ask("b3-high-2000-1"), ask("b1-low-250-0")]
    scores = scorer.score(prompts, [answer("one"), answer("one"), answer("three")])
    assert scores.shape == (3,) and torch.isfinite(scores).all()
    assert abs(float(scores[0] - scores[1])) > 1e-4  # same text, two clips
    assert abs(float(scores[0] - scores[2])) > 1e-4  # same clip, two answers
