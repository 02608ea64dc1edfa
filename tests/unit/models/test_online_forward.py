"""The online trainers' policy forward (log-probs and entropy with the LM head on response positions only)
computes what the full forward does: the same per-token log-probs, entropies and gradients (1e-5)."""

from __future__ import annotations

import pytest
import torch

from alignkit.data.collate import collate_lm
from alignkit.data.render import IGNORE_INDEX, TokenizedExample
from alignkit.losses.logprobs import entropy_from_logits, label_mask, token_logps
from alignkit.models.forward import labelled_token_logps_and_entropy, tempered
from alignkit.models.loading import load_causal_lm

TOL = 1e-5


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_policy_forward_equals_the_full_forward(temperature):
    model = load_causal_lm("toyworld://models/tiny", dtype="float32")
    gen = torch.Generator().manual_seed(0)
    rows = []
    for length, prompt in [(12, 5), (7, 3), (20, 16)]:
        ids = torch.randint(3, model.config.vocab_size, (length,), generator=gen).tolist()
        rows.append(TokenizedExample(input_ids=ids, labels=[IGNORE_INDEX] * prompt + ids[prompt:]))
    batch = collate_lm(rows, pad_token_id=0)
    mask = label_mask(batch["labels"])

    fast = labelled_token_logps_and_entropy(model, batch, temperature)
    fast.logps.sum().backward()
    fast_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    logits = tempered(
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, temperature
    )
    plain = token_logps(logits, batch["labels"])
    plain.sum().backward()
    entropy = torch.zeros(mask.shape)
    entropy[mask] = entropy_from_logits(logits.detach()[:, :-1][mask[:, 1:]].unsqueeze(0)).squeeze(0)

    torch.testing.assert_close(fast.logps, plain, atol=TOL, rtol=0)
    torch.testing.assert_close(fast.entropy, entropy, atol=TOL, rtol=0)
    assert (fast.logps[~mask] == 0).all() and (fast.entropy[~mask] == 0).all()
    for a, p in zip(fast_grads, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, atol=TOL, rtol=1e-4)
