"""The fast paths of ``models/forward.py`` compute the plain path's numbers (losses and gradients, 1e-5).

Plain path: right-padded rows, a full forward, ``(B, T, V)`` logits, ``token_logps``. Fast paths: the LM
head only on scored positions, packed SFT rows (``collate_packed``) and shared-prompt DPO rows
(``collate_shared_pairs``), on the toy world's Llama and on tiny models of other families.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from alignkit.data.collate import collate_lm, collate_packed, pack_rows, scored_length
from alignkit.data.pair_examples import collate_pairs, collate_shared_pairs, count_pairs, lm_inputs
from alignkit.data.render import IGNORE_INDEX, TokenizedExample
from alignkit.losses.logprobs import label_mask, sequence_logps, token_logps
from alignkit.models.forward import (
    labelled_token_logps,
    response_logps,
    scored_logps,
    supports_packing,
    supports_shared_prompt,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "families"))

TOL = 1e-5


def example(ids: list[int], prompt_len: int, tail: int = 0) -> TokenizedExample:
    """Labels after the prompt, except on the last ``tail`` tokens (as a template's newline after EOT)."""
    tail = min(tail, len(ids) - prompt_len - 1)
    labels = [IGNORE_INDEX] * prompt_len + ids[prompt_len : len(ids) - tail] + [IGNORE_INDEX] * tail
    return TokenizedExample(input_ids=ids, labels=labels)


def random_examples(vocab: int, n: int, seed: int = 0) -> list[TokenizedExample]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(4, 40, (1,), generator=gen))
        prompt = int(torch.randint(1, length - 1, (1,), generator=gen))
        tail = int(torch.randint(0, 3, (1,), generator=gen))
        out.append(example(torch.randint(3, vocab, (length,), generator=gen).tolist(), prompt, tail))
    return out


def random_pairs(vocab: int, n: int, seed: int = 0):
    from alignkit.data.pair_examples import PairExample

    gen = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(n):
        prompt = torch.randint(
            3, vocab, (int(torch.randint(2, 20, (1,), generator=gen)),), generator=gen
        ).tolist()
        sides = []
        for _ in range(2):
            resp = torch.randint(3, vocab, (int(torch.randint(1, 15, (1,), generator=gen)),), generator=gen)
            tail = int(torch.randint(0, 3, (1,), generator=gen))
            sides.append(example(prompt + resp.tolist(), len(prompt), tail))
        pairs.append(PairExample(*sides))
    return pairs


def plain_token_logps(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return token_logps(logits, batch["labels"])


def plain_sft_loss(model, batch):
    """Token-mean NLL: the summed NLL over the token count, as the training loop normalises it."""
    mask = label_mask(batch["labels"])
    return -sequence_logps(plain_token_logps(model, batch), mask).sum() / mask.sum()


def fast_sft_loss(model, batch):
    logps, spec = scored_logps(model, batch)
    return -logps.sum() / spec.counts.sum()


def grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_grads(a, b):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=TOL, rtol=TOL, msg=name)


@pytest.fixture(scope="module")
def toy_llama():
    from alignkit.models.loading import load_causal_lm

    model = load_causal_lm("toyworld://models/tiny", dtype="float32")
    model.train()
    return model


def family_model(name: str):
    from family_models import FAMILIES, family_model, family_tokenizer

    family = FAMILIES[name]
    model = family_model(family, family_tokenizer(family))
    model.train()
    return model


def models():
    yield "toy-llama", None
    yield "qwen2.5", "qwen2.5"
    yield "gemma2", "gemma2"


@pytest.fixture(params=[m for m, _ in models()])
def any_model(request, toy_llama):
    if request.param == "toy-llama":
        return toy_llama
    return family_model(dict(models())[request.param])


def test_pack_rows_puts_the_longest_first_into_the_emptiest_row():
    assert pack_rows([5, 3, 2, 4, 1], 2) == [[0, 2, 4], [3, 1]]
    assert pack_rows([3, 3], 3) == [[0], [1]]
    rows = pack_rows([7, 1, 1, 1, 6, 2], 2)
    assert sorted(i for r in rows for i in r) == list(range(6))


def test_collate_packed_keeps_every_loss_token_and_restarts_positions():
    examples = random_examples(100, 12)
    packed = collate_packed(examples, pad_token_id=0)
    plain = collate_lm(examples, pad_token_id=0)
    assert packed["input_ids"].numel() < 0.9 * plain["input_ids"].numel()
    assert int(label_mask(packed["labels"]).sum()) == int(label_mask(plain["labels"]).sum())
    assert "attention_mask" not in packed
    starts = (packed["position_ids"] == 0).sum()
    assert starts >= len(examples)
    same_length = [example(list(range(3, 13)), 4)] * 4  # nothing to gain: padded rows as usual
    assert collate_packed(same_length, 0).keys() == collate_lm(same_length, 0).keys()


def test_collate_shared_prefix_lays_each_prefix_once_and_says_where_each_sequence_is():
    from alignkit.data.collate import collate_shared_prefix

    # block 0: prefix [1, 2] starting [3] and [4, 5]; block 1: prefix [6] starting [7]; packed in one row
    layout, where = collate_shared_prefix([([1, 2], [[3], [4, 5]]), ([6], [[7]])], pad_token_id=0)
    assert layout["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6, 7]]
    assert layout["position_ids"].tolist() == [[0, 1, 2, 2, 3, 0, 1]]  # each suffix continues its prefix
    assert layout["segment_ids"].tolist() == [[0, 0, 1, 2, 2, 3, 4]]
    assert layout["prompt_segment_ids"].tolist() == [[0, 0, 0, 0, 0, 3, 3]]
    assert where == [[[0, 1, 2], [0, 1, 3, 4]], [[5, 6]]]
    # rows capped at the longest block: one row each, the shorter padded
    layout, where = collate_shared_prefix([([1] * 9, [[2]]), ([3], [[4]])], pad_token_id=0, row_tokens=5)
    assert layout["segment_ids"].tolist() == [[0] * 9 + [1], [2, 3] + [-1] * 8]
    assert layout["prompt_segment_ids"].tolist() == [[0] * 10, [2, 2] + [-1] * 8]
    assert where[1] == [[10, 11]]


def test_sft_packed_loss_and_gradients_equal_padded(any_model):
    examples = random_examples(any_model.config.vocab_size, 10, seed=1)
    plain = collate_lm(examples, pad_token_id=0)
    packed = collate_packed(examples, pad_token_id=0)
    ref_loss = plain_sft_loss(any_model, plain)
    ref_grads = grads(any_model, ref_loss)
    for batch in (plain, packed):  # LM head on loss positions only, then also packed
        loss = fast_sft_loss(any_model, batch)
        torch.testing.assert_close(loss, ref_loss, atol=TOL, rtol=TOL)
        assert_same_grads(grads(any_model, loss), ref_grads)


def test_packed_logits_equal_per_example_logits(toy_llama):
    examples = random_examples(toy_llama.config.vocab_size, 6, seed=2)
    packed = collate_packed(examples, pad_token_id=0)
    with torch.no_grad():
        logits = toy_llama(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
        ).logits
        lengths = [scored_length(e.labels) for e in examples]  # what packing keeps of each example
        rows = pack_rows(lengths, packed["input_ids"].shape[0])
        assert sum(len(r) for r in rows) == len(examples)
        for r, row in enumerate(rows):
            start = 0
            for i in row:
                ids = torch.tensor([examples[i].input_ids[: lengths[i]]])
                alone = toy_llama(input_ids=ids).logits[0]
                torch.testing.assert_close(logits[r, start : start + len(alone)], alone, atol=TOL, rtol=TOL)
                start += len(alone)


def test_response_and_token_logps_equal_the_full_forward(any_model):
    examples = random_examples(any_model.config.vocab_size, 6, seed=3)
    batch = collate_lm(examples, pad_token_id=0)
    with torch.no_grad():
        ref_tokens = plain_token_logps(any_model, batch)
        mask = label_mask(batch["labels"])
        out = response_logps(any_model, batch)
        torch.testing.assert_close(out.logps, sequence_logps(ref_tokens, mask), atol=TOL, rtol=TOL)
        assert torch.equal(out.num_tokens, mask.sum(-1))
        per_token = labelled_token_logps(
            any_model, batch["input_ids"], batch["attention_mask"], batch["labels"], temperature=0.7
        )
        logits = any_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        torch.testing.assert_close(per_token, token_logps(logits / 0.7, batch["labels"]), atol=TOL, rtol=TOL)


def test_shared_prompt_pairs_equal_padded_pairs(any_model):
    pairs = random_pairs(any_model.config.vocab_size, 6, seed=4)
    plain = collate_pairs(pairs, pad_token_id=0)
    shared = collate_shared_pairs(pairs, pad_token_id=0)
    assert count_pairs(plain) == count_pairs(shared) == len(pairs)
    assert shared["input_ids"].numel() < plain["input_ids"].numel()
    assert shared["input_ids"].shape[0] < len(pairs)  # several pairs share a row
    ref = response_logps(any_model, lm_inputs(plain))
    n = ref.num_tokens.sum()
    ref_grads = grads(any_model, (ref.logps[:6].sum() - 2 * ref.logps[6:].sum()) / n)
    if not supports_shared_prompt(any_model):
        pytest.skip("sliding-window attention: the trainer keeps padded pairs for this model")
    out = response_logps(any_model, lm_inputs(shared))
    torch.testing.assert_close(out.logps, ref.logps, atol=TOL, rtol=TOL)
    assert torch.equal(out.num_tokens, ref.num_tokens)
    assert_same_grads(grads(any_model, (out.logps[:6].sum() - 2 * out.logps[6:].sum()) / n), ref_grads)


def test_shared_prompt_eager_attention_is_exact_too():
    from alignkit.models.loading import load_causal_lm

    model = load_causal_lm("toyworld://models/tiny", dtype="float32")
    model.config._attn_implementation = "eager"
    pairs = random_pairs(model.config.vocab_size, 4, seed=5)
    with torch.no_grad():
        ref = response_logps(model, lm_inputs(collate_pairs(pairs, pad_token_id=0))).logps
        out = response_logps(model, lm_inputs(collate_shared_pairs(pairs, pad_token_id=0))).logps
    torch.testing.assert_close(out, ref, atol=TOL, rtol=TOL)


def test_lora_model_takes_the_fast_path_exactly(toy_llama):
    from peft import LoraConfig, get_peft_model

    from alignkit.models.forward import output_head

    torch.manual_seed(0)  # the adapters' random init (non-zero, so they change the numbers)
    model = get_peft_model(
        family_model("qwen2.5"), LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    )
    assert output_head(model) is not None and supports_packing(model) and supports_shared_prompt(model)
    examples = random_examples(model.config.vocab_size, 6, seed=6)
    plain = collate_lm(examples, pad_token_id=0)
    ref_loss = plain_sft_loss(model, plain)
    ref_grads = grads(model, ref_loss)
    loss = fast_sft_loss(model, collate_packed(examples, pad_token_id=0))
    torch.testing.assert_close(loss, ref_loss, atol=TOL, rtol=TOL)
    assert_same_grads(grads(model, loss), ref_grads)


def test_gemma2_softcapping_is_applied_on_the_selected_logits():
    model = family_model("gemma2")
    model.config.final_logit_softcapping = 0.05  # small enough to change every log-prob
    examples = random_examples(model.config.vocab_size, 4, seed=7)
    batch = collate_lm(examples, pad_token_id=0)
    with torch.no_grad():
        ref = sequence_logps(plain_token_logps(model, batch), label_mask(batch["labels"]))
        capped = response_logps(model, batch).logps
        model.config.final_logit_softcapping = None
        uncapped = response_logps(model, batch).logps
    torch.testing.assert_close(capped, ref, atol=TOL, rtol=TOL)
    assert not torch.allclose(uncapped, ref, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("loss_name", ["dpo", "simpo"])
def test_dpo_trainer_loss_on_shared_rows_equals_padded_pairs(toy_llama, loss_name):
    """The trainer's loss function, live reference included: same loss, metrics and gradients."""
    from alignkit.losses.dpo import PreferenceLoss
    from alignkit.models.loading import load_causal_lm
    from alignkit.train.dpo import paired_loss_fn
    from alignkit.train.reference import ReferenceModel

    ref_model = load_causal_lm("toyworld://models/tiny", dtype="float32")
    with torch.no_grad():
        for p in ref_model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    loss = PreferenceLoss(loss_name)
    fn = paired_loss_fn(loss, {}, ReferenceModel.frozen(ref_model) if loss.needs_reference else None)
    pairs = random_pairs(toy_llama.config.vocab_size, 5, seed=8)
    ref_out = fn(toy_llama, collate_pairs(pairs, pad_token_id=0))
    ref_grads = grads(toy_llama, ref_out.loss_sum)
    out = fn(toy_llama, collate_shared_pairs(pairs, pad_token_id=0))
    torch.testing.assert_close(out.loss_sum, ref_out.loss_sum, atol=TOL, rtol=TOL)
    assert out.metric_sums.keys() == ref_out.metric_sums.keys()
    for key, value in ref_out.metric_sums.items():
        torch.testing.assert_close(out.metric_sums[key], value, atol=TOL, rtol=TOL, msg=key)
    assert_same_grads(grads(toy_llama, out.loss_sum), ref_grads)


def test_layouts_are_proved_on_the_model_before_use(toy_llama, monkeypatch):
    import transformers.masking_utils as masking

    from alignkit.models.forward import packing_is_exact, shared_prompt_is_exact

    assert packing_is_exact(toy_llama) and shared_prompt_is_exact(toy_llama)
    assert toy_llama.training  # the probe's eval() is undone
    # Attention that ignores packed positions would let examples see each other: the probe notices.
    monkeypatch.setattr(masking, "find_packed_sequence_indices", lambda position_ids: None)
    assert not packing_is_exact(toy_llama)


def random_rollout(vocab: int, prompts: int, group: int, seed: int = 0):
    """A prompt-major rollout of ``group`` random responses (1-9 tokens) to each of ``prompts`` prompts."""
    from alignkit.data.collate import pad_right
    from alignkit.train.rollout import Rollout

    gen = torch.Generator().manual_seed(seed)
    rows, labels, owner = [], [], []
    for g in range(prompts):
        prompt = torch.randint(3, vocab, (int(torch.randint(2, 12, (1,), generator=gen)),), generator=gen)
        for _ in range(group):
            response = torch.randint(
                3, vocab, (int(torch.randint(1, 10, (1,), generator=gen)),), generator=gen
            )
            rows.append(prompt.tolist() + response.tolist())
            labels.append([IGNORE_INDEX] * len(prompt) + response.tolist())
            owner.append(g)
    n = len(rows)
    return Rollout(
        prompts=[[]] * n,
        texts=[""] * n,
        input_ids=pad_right(rows, 0),
        attention_mask=pad_right([[1] * len(r) for r in rows], 0),
        labels=pad_right(labels, IGNORE_INDEX),
        finished=torch.ones(n, dtype=torch.bool),
        prompt_index=torch.tensor(owner),
    )


def test_shared_prompt_rollout_rows_equal_padded_rows(any_model):
    """GRPO's group layout (each prompt once, then its samples' responses; a micro-batch holding whole and
    partial groups in any order) gives each token the log-prob, entropy and gradient of padded rows."""
    from alignkit.models.forward import labelled_token_logps_and_entropy, shared_prompt_is_exact

    rollout = random_rollout(any_model.config.vocab_size, prompts=4, group=4, seed=6)
    index = [5, 0, 3, 1, 2, 12, 13, 14, 15, 9]  # group 0 whole and shuffled, 1 and 2 partial, 3 whole
    padded = rollout.rows(index, "cpu")
    shared = rollout.rows(index, "cpu", shared_prompt=True)
    assert torch.equal(shared["labels"], padded["labels"])
    assert shared["input_ids"].numel() < padded["input_ids"].numel()
    weights = torch.randn(padded["labels"].shape, generator=torch.Generator().manual_seed(0))
    ref = labelled_token_logps_and_entropy(any_model, padded, temperature=0.7)
    ref_grads = grads(any_model, (ref.logps * weights).sum())
    if not shared_prompt_is_exact(any_model):
        pytest.skip("sliding-window attention: the trainer keeps padded rollout rows for this model")
    out = labelled_token_logps_and_entropy(any_model, shared, temperature=0.7)
    torch.testing.assert_close(out.logps, ref.logps, atol=TOL, rtol=TOL)
    torch.testing.assert_close(out.entropy, ref.entropy, atol=TOL, rtol=TOL)
    assert_same_grads(grads(any_model, (out.logps * weights).sum()), ref_grads)


def test_a_group_longer_than_a_row_is_split_into_blocks_that_repeat_its_prompt(toy_llama, monkeypatch):
    """Blocks close at ROW_TOKENS (here 14): the prompt starts each again, so attention never spans more
    than a packed row, and the numbers stay those of padded rows."""
    import alignkit.train.rollout as rollout_module
    from alignkit.models.forward import labelled_token_logps_and_entropy

    rollout = random_rollout(toy_llama.config.vocab_size, prompts=2, group=4, seed=7)
    index = list(range(8))
    whole = rollout.rows(index, "cpu", shared_prompt=True)
    monkeypatch.setattr(rollout_module, "ROW_TOKENS", 14)
    split = rollout.rows(index, "cpu", shared_prompt=True)

    def blocks(batch):  # a block's first token: its prompt's, at position 0
        segments = batch["segment_ids"]
        starts = (segments == batch["prompt_segment_ids"]) & (batch["position_ids"] == 0) & (segments >= 0)
        return int(starts.sum())

    assert blocks(whole) == 2 and blocks(split) > 2
    padded = rollout.rows(index, "cpu")
    with torch.no_grad():
        ref = labelled_token_logps_and_entropy(toy_llama, padded).logps
        out = labelled_token_logps_and_entropy(toy_llama, split).logps
    torch.testing.assert_close(out, ref, atol=TOL, rtol=TOL)


def test_samples_of_one_prompt_with_different_prompt_tokens_are_refused():
    rollout = random_rollout(100, prompts=2, group=2, seed=8)
    rollout.prompt_index = torch.tensor([0, 0, 0, 0])  # the second prompt's samples claim the first's
    with pytest.raises(ValueError, match="different prompt tokens"):
        rollout.rows([0, 1, 2, 3], "cpu", shared_prompt=True)
