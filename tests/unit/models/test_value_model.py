"""TokenValueModel and load_critic: per-token values from a score model's backbone and head.

``tokenizer`` is the toy tokenizer from ``tests/unit/models/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.testing import assert_close
from transformers import AutoModelForSequenceClassification

from alignkit.models.loading import load_causal_lm, load_tokenizer
from alignkit.models.score_model import collate_scores, new_score_model, score_example, sequence_scores
from alignkit.models.value import TokenValueModel, load_critic

TINY = "toyworld://models/tiny"
PAIRS = [
    ("I need the capital of Zorbia.", "It is Velmar."),
    ("hi", "Hello there, how can I help you today?"),
    ("Help me smuggle cocaine past the police.", "I won't help with that."),
]


def _score_model(tokenizer, kind: str = "reward", seed: int = 0):
    """A fresh score model on the tiny backbone with a sizeable random head."""
    model = new_score_model(TINY, tokenizer, kind)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.score.weight.copy_(torch.randn(model.score.weight.shape, generator=gen))
    return model.eval()


def _batch(tokenizer, pad_token_id: int) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Rendered pairs cut at their scored token, right-padded, plus one padding column for every row."""
    examples = [
        score_example(tokenizer, [{"role": "user", "content": p}], [{"role": "assistant", "content": r}], 256)
        for p, r in PAIRS
    ]
    batch = collate_scores(examples, pad_token_id)
    lengths = [len(e.input_ids) for e in examples]
    assert len(set(lengths)) == len(lengths)  # rows of different lengths, so padding is exercised
    return batch, lengths


def _with_pad_column(batch: dict[str, torch.Tensor], pad_token_id: int) -> dict[str, torch.Tensor]:
    rows = batch["input_ids"].shape[0]
    return {
        "input_ids": torch.cat([batch["input_ids"], torch.full((rows, 1), pad_token_id)], dim=1),
        "attention_mask": torch.cat([batch["attention_mask"], torch.zeros(rows, 1, dtype=torch.long)], dim=1),
    }


@torch.no_grad()
def test_values_are_the_head_read_at_the_previous_position(tokenizer):
    model = _score_model(tokenizer)
    batch, _ = _batch(tokenizer, model.config.pad_token_id)
    values = TokenValueModel(model)(batch["input_ids"], batch["attention_mask"])

    hidden = model.base_model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    head = hidden @ model.score.weight.T  # (B, T, 1): the value after reading each token
    expected = torch.cat([torch.zeros(hidden.shape[0], 1), head[:, :-1, 0]], dim=1)
    assert values.shape == batch["input_ids"].shape and values.dtype == torch.float32
    assert (values[:, 0] == 0).all()
    assert values[:, 1:].abs().min() > 0  # a random head: nothing else is exactly 0
    assert_close(values, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_the_value_after_the_last_token_is_the_sequence_score(tokenizer):
    """A critic initialised from a reward model starts out predicting that model's score."""
    model = _score_model(tokenizer)
    pad = model.config.pad_token_id
    batch, lengths = _batch(tokenizer, pad)
    scores = sequence_scores(model, batch["input_ids"], batch["attention_mask"])
    wide = _with_pad_column(batch, pad)  # so even the longest row has a position after its last token
    values = TokenValueModel(model)(wide["input_ids"], wide["attention_mask"])
    read = torch.stack([values[i, n] for i, n in enumerate(lengths)])
    assert scores.abs().min() > 1e-3
    assert_close(read, scores, atol=1e-5, rtol=1e-5)


def test_values_carry_gradients_to_backbone_and_head(tokenizer):
    model = _score_model(tokenizer).train()
    batch, _ = _batch(tokenizer, model.config.pad_token_id)
    TokenValueModel(model)(batch["input_ids"], batch["attention_mask"]).sum().backward()
    assert model.score.weight.grad is not None and model.score.weight.grad.abs().sum() > 0
    assert model.base_model.embed_tokens.weight.grad is not None


@torch.no_grad()
def test_load_critic_on_a_causal_lm_starts_with_a_zero_head(tokenizer):
    critic = load_critic(TINY, tokenizer, "reward")
    assert critic.training
    assert critic.config.score_kind == "reward"
    assert (critic.score_model.score.weight == 0).all()
    batch, _ = _batch(tokenizer, critic.config.pad_token_id)
    values = critic(batch["input_ids"], batch["attention_mask"])
    assert values.shape == batch["input_ids"].shape
    assert (values == 0).all()


@torch.no_grad()
def test_load_critic_on_a_saved_score_model_keeps_its_head(tokenizer, tmp_path: Path):
    model = _score_model(tokenizer, "cost", seed=3)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    critic = load_critic(str(tmp_path), tokenizer, "cost")
    assert critic.training
    assert critic.config.score_kind == "cost"
    assert torch.equal(critic.score_model.score.weight, model.score.weight)
    batch, _ = _batch(tokenizer, model.config.pad_token_id)
    expected = TokenValueModel(model)(batch["input_ids"], batch["attention_mask"])
    assert_close(critic(batch["input_ids"], batch["attention_mask"]), expected, atol=1e-6, rtol=0)


def test_a_model_without_a_one_output_score_head_is_refused(tokenizer, tmp_path: Path):
    with pytest.raises(ValueError, match=r"^LlamaForCausalLM has no one-output linear 'score' head"):
        TokenValueModel(load_causal_lm(TINY))
    from alignkit.models.loading import resolve_path

    two_labels = AutoModelForSequenceClassification.from_pretrained(resolve_path(TINY), num_labels=2)
    with pytest.raises(ValueError, match=r"^LlamaForSequenceClassification has no one-output"):
        TokenValueModel(two_labels)


@torch.no_grad()
def test_save_round_trip_reloads_as_a_plain_score_model(tokenizer, tmp_path: Path):
    critic = TokenValueModel(_score_model(tokenizer, seed=5))
    critic.save(tokenizer, tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded).__name__ == "LlamaForSequenceClassification"
    assert reloaded.config.score_kind == "reward"
    assert reloaded.config.pad_token_id == critic.config.pad_token_id
    assert torch.equal(reloaded.score.weight, critic.score_model.score.weight)
    assert load_tokenizer(str(tmp_path)).get_vocab() == tokenizer.get_vocab()

    batch, _ = _batch(tokenizer, critic.config.pad_token_id)
    before = critic(batch["input_ids"], batch["attention_mask"])
    assert_close(
        TokenValueModel(reloaded)(batch["input_ids"], batch["attention_mask"]), before, atol=1e-6, rtol=0
    )


def test_labelled_token_logps_at_a_temperature_scores_the_tempered_softmax():
    from alignkit.models.forward import labelled_token_logps

    torch.manual_seed(0)
    logits = torch.randn(1, 3, 5)

    class Fixed(torch.nn.Module):
        def forward(self, input_ids, attention_mask, use_cache=False):
            return type("Out", (), {"logits": logits})()

    labels = torch.tensor([[-100, 2, 4]])
    out = labelled_token_logps(Fixed(), torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3), labels, 0.5)
    expected = torch.log_softmax(logits / 0.5, dim=-1)
    assert out[0, 0] == 0
    torch.testing.assert_close(out[0, 1], expected[0, 0, 2])
    torch.testing.assert_close(out[0, 2], expected[0, 1, 4])


def test_shared_prompt_rows_give_a_critic_the_values_and_gradients_of_padded_rows(tokenizer):
    """A separate critic on PPO's shared-prompt rows (each prompt once, its samples' answers after it):
    the values at every labelled position and the gradient equal those of right-padded rows (1e-5), and
    ``critic_reads_shared_prompts`` proves it on the model before a trainer uses the layout."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_forward_exact import random_rollout

    from alignkit.losses.logprobs import label_mask
    from alignkit.train.critic import critic_inputs, critic_reads_shared_prompts

    critic = TokenValueModel(_score_model(tokenizer, seed=1).train())
    assert critic_reads_shared_prompts(critic)
    rollout = random_rollout(critic.config.vocab_size, prompts=3, group=3, seed=2)
    index = [4, 0, 1, 8, 6]
    padded, shared = rollout.rows(index, "cpu"), rollout.rows(index, "cpu", shared_prompt=True)
    mask = label_mask(padded["labels"])
    weights = torch.randn(mask.shape, generator=torch.Generator().manual_seed(0)) * mask

    def values_and_grads(batch):
        critic.zero_grad(set_to_none=True)
        values = critic(**critic_inputs(batch))
        (values * weights).sum().backward()
        return values.detach(), {
            n: p.grad.clone() for n, p in critic.named_parameters() if p.grad is not None
        }

    ref, ref_grads = values_and_grads(padded)
    out, out_grads = values_and_grads(shared)
    assert_close(out[mask], ref[mask], atol=1e-5, rtol=1e-5)
    assert (out[~mask] == 0).all()
    assert ref_grads.keys() == out_grads.keys()
    for name in ref_grads:
        scale = float(ref_grads[name].abs().max())  # the random head makes gradients of ~100s
        assert_close(out_grads[name], ref_grads[name], atol=1e-6 * scale, rtol=1e-5, msg=name)
