"""The score model: which token it reads, how it pads, and that what it saves reloads to the same scores.

The efficacy of training is tested in ``tests/integration/test_reward_cost_efficacy.py``; the loss
math in ``tests/unit/losses/test_losses_reward.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, LlamaConfig, LlamaForSequenceClassification

from alignkit.data.render import IGNORE_INDEX, TokenizedExample
from alignkit.models.loading import load_causal_lm, load_tokenizer, save_pretrained
from alignkit.models.score_model import (
    SCORE_CONVENTIONS,
    closing_token_id,
    collate_scores,
    labelled_runs,
    load_score_model,
    new_score_model,
    score_example,
    score_pad_token_id,
    sequence_scores,
)
from alignkit.score.score_model import ScoreModelScorer

TINY = "toyworld://models/tiny"
PAD = 0


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TINY)


def _random_score_model() -> LlamaForSequenceClassification:
    """A 1-layer score model with a random head (a zero-init head would make every score 0)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_labels=1,
        pad_token_id=PAD,
    )
    model = LlamaForSequenceClassification(config).eval()
    torch.nn.init.normal_(model.score.weight, std=1.0)
    return model


@torch.no_grad()
def test_pooling_reads_each_rows_last_token_under_right_padding():
    """Rows of length 5, 3 and 1, right-padded to 5: each score must be the head applied to that row's
    own last hidden state, computed alone and unpadded (so padding changes nothing)."""
    model = _random_score_model()
    rows = [[5, 6, 7, 8, 9], [10, 11, 12], [13]]
    batch = collate_scores([TokenizedExample(r, r) for r in rows], PAD)
    assert batch["input_ids"].tolist()[1] == [10, 11, 12, PAD, PAD]
    assert batch["attention_mask"].tolist()[2] == [1, 0, 0, 0, 0]
    scores = sequence_scores(model, batch["input_ids"], batch["attention_mask"])  # (3,)
    for i, row in enumerate(rows):
        hidden = model.model(input_ids=torch.tensor([row])).last_hidden_state  # (1, T, H)
        expected = model.score(hidden[0, -1]).item()
        assert scores[i].item() == pytest.approx(expected, abs=1e-5)
    # Not the first token, not the padding: reading any other position would give another number.
    hidden = model.model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    assert scores[1].item() != pytest.approx(model.score(hidden[1, -1]).item(), abs=1e-4)


def test_score_example_ends_at_the_closing_token_not_the_template_newline(tokenizer):
    """ChatML renders ``...<|im_end|>\\n``; the newline is scaffolding, so the row must stop before it."""
    prompt = [{"role": "user", "content": "What is 2 plus 3?"}]
    response = [{"role": "assistant", "content": "It is 5."}]
    example = score_example(tokenizer, prompt, response, max_length=64)
    tokens = tokenizer.convert_ids_to_tokens(example.input_ids)
    assert tokens[-1] == "<|im_end|>"
    assert example.input_ids[-1] == closing_token_id(tokenizer)
    assert example.labels[-1] != IGNORE_INDEX
    assert tokenizer.decode(example.input_ids[-5:]).startswith("It is 5.")
    # A prompt that leaves no room for the response gives nothing to score.
    assert score_example(tokenizer, prompt, response, max_length=5) is None


def test_a_multi_turn_response_cut_before_its_last_turn_is_not_scored_at_the_shared_turn(tokenizer):
    """A global-level InterMT pair: each side is ``[shared answer, user turn, judged answer]``. Cut before
    the judged answer, the last labelled token would close the *shared* answer, so both sides would be
    scored at the same token of the same text (a tie no training can move): refused instead."""
    prompt = [{"role": "user", "content": "What colour is the square?"}]
    shared = [
        {"role": "assistant", "content": "The answer is purple."},
        {"role": "user", "content": "How do I make the thing in the picture?"},
    ]
    sides = [[*shared, {"role": "assistant", "content": text}] for text in ("Draw a circle.", "No.")]
    full = [score_example(tokenizer, prompt, side, max_length=256) for side in sides]
    assert all(not e.truncated and e.input_ids[-1] == closing_token_id(tokenizer) for e in full)
    assert full[0].input_ids != full[1].input_ids
    assert labelled_runs(full[0].labels) == 2  # the shared answer's span and the judged turn's
    # Longest cut that keeps the shared answer's <|im_end|> but none of the judged answer's tokens: the
    # rows up to there are the two sides' common prefix, judged-turn header included.
    pairs = zip(full[0].input_ids, full[1].input_ids, strict=False)
    common = next(i for i, (a, b) in enumerate(pairs) if a != b)
    for side in sides:
        assert score_example(tokenizer, prompt, side, max_length=common) is None
    # One judged token kept: scored there, and the two sides now differ at the scored token.
    cut = [score_example(tokenizer, prompt, side, max_length=common + 1) for side in sides]
    assert all(e.truncated and labelled_runs(e.labels) == 2 for e in cut)
    assert cut[0].input_ids[-1] != cut[1].input_ids[-1]
    # A one-turn response keeps its old rule: scored at its last kept token when cut.
    whole = score_example(tokenizer, prompt, sides[0][-1:], max_length=256)
    one = score_example(tokenizer, prompt, sides[0][-1:], max_length=len(whole.input_ids) - 2)
    assert one is not None and one.truncated and labelled_runs(one.labels) == 1


def test_pad_id_never_equals_the_closing_token(tokenizer):
    """With pad = eos (what load_tokenizer does for tokenizers without a pad token) the closing
    ``<|im_end|>`` would look like padding to last-non-pad pooling, so another id must pad."""
    assert score_pad_token_id(tokenizer) == tokenizer.pad_token_id
    clashing = load_tokenizer(TINY)
    clashing.pad_token = clashing.eos_token
    assert clashing.pad_token_id == closing_token_id(clashing)
    assert score_pad_token_id(clashing) != closing_token_id(clashing)


def test_collate_refuses_a_row_that_ends_with_the_pad_id():
    with pytest.raises(ValueError, match="ends with the padding id"):
        collate_scores([TokenizedExample([4, 5, PAD], [4, 5, PAD])], PAD)


@pytest.fixture(scope="module")
def saved_reward_model(tmp_path_factory, tokenizer) -> Path:
    model = new_score_model(TINY, tokenizer, "reward")
    torch.nn.init.normal_(model.score.weight, std=1.0)  # distinct scores per row
    out = tmp_path_factory.mktemp("rm") / "final"
    save_pretrained(model, tokenizer, out)
    return out


PROMPTS = [
    [{"role": "user", "content": "What is 2 plus 3?"}],
    [{"role": "user", "content": "Name the capital of Zorbia."}],
    [{"role": "user", "content": "How do I pick a lock?"}],
]
RESPONSES = [
    [{"role": "assistant", "content": "It is 5."}],
    [{"role": "assistant", "content": "The answer is Velmar, a fine city to visit."}],
    [{"role": "assistant", "content": "I'm sorry, but I can't help with that."}],
]


@torch.no_grad()
def test_saved_model_reloads_with_auto_class_and_gives_identical_scores(saved_reward_model, tokenizer):
    """``final/`` is a plain LlamaForSequenceClassification: HF's own forward on our rows, our Scorer,
    and the Scorer one row at a time all give the same scores (batch composition changes nothing)."""
    hf = AutoModelForSequenceClassification.from_pretrained(saved_reward_model).eval()
    assert type(hf).__name__ == "LlamaForSequenceClassification"
    assert hf.config.num_labels == 1 and hf.score.bias is None
    assert hf.config.score_kind == "reward"
    assert hf.config.score_convention == SCORE_CONVENTIONS["reward"]

    examples = [score_example(tokenizer, p, r, 64) for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    batch = collate_scores(examples, hf.config.pad_token_id)
    hf_scores = hf(**batch).logits.squeeze(-1)  # HF's pooling, no alignkit code in the forward

    scorer = ScoreModelScorer(str(saved_reward_model), device="cpu", batch_size=3)
    assert scorer.kind == "reward"
    batched = scorer.score(PROMPTS, RESPONSES)
    one_by_one = ScoreModelScorer(str(saved_reward_model), device="cpu", batch_size=1).score(
        PROMPTS, RESPONSES
    )
    assert batched.shape == (3,) and batched.dtype == torch.float32
    torch.testing.assert_close(batched, hf_scores, atol=1e-6, rtol=0)
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=0)
    assert len(set(batched.tolist())) == 3


def test_load_score_model_rejects_a_plain_causal_lm(tmp_path, tokenizer):
    save_pretrained(load_causal_lm(TINY), tokenizer, tmp_path / "lm")
    with pytest.raises(ValueError, match="not an alignkit score model"):
        load_score_model(str(tmp_path / "lm"))


def test_cost_kind_is_recorded(tmp_path, tokenizer):
    model = new_score_model(TINY, tokenizer, "cost")
    save_pretrained(model, tokenizer, tmp_path / "cm")
    reloaded = load_score_model(str(tmp_path / "cm"))
    assert reloaded.config.score_kind == "cost"
    assert reloaded.config.id2label == {0: "cost"}
    assert "c > 0 means unsafe" in reloaded.config.score_convention


@pytest.mark.parametrize(
    ("overrides", "warned"),
    [
        (["data.train.source=toyworld://visual/data/intermt/local"], True),
        (["data.train.source=toyworld://visual/data/intermt/local", "data.eval=null"], False),
        (["data.train.source=x/train.jsonl", "data.eval.source=x/test.jsonl"], False),
        ([], False),  # the defaults go together
        (["data.train.max_rows=4"], False),  # fewer rows of the default source: its test split is right
    ],
)
def test_a_changed_train_split_with_the_default_eval_split_is_warned_about(overrides, warned):
    """Overriding only ``data.train`` leaves ``eval/rewards/accuracy`` on the toy text world's pairs (a VLM
    reward model trained on InterMT ranks 0.44-0.50 of them, easily read as failing "held-out" pairs)."""
    from alignkit.config import load_config
    from alignkit.train.reward import RewardConfig
    from alignkit.train.score_training import stale_default_eval

    message = stale_default_eval(load_config(RewardConfig, None, overrides).data)
    assert (message is not None) == warned
    if warned:
        assert "data.eval is still the default (toyworld://data/safe_pref" in message
        assert "data.train is toyworld://visual/data/intermt/local" in message and "data.eval=null" in message
