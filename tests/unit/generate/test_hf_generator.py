"""HFGenerator on the toy world's tiny Llama: ordering, seeding, greedy decoding, log-probs, stop cuts.

The toy checkpoint is random-init with tied embeddings, so greedy decoding just repeats the prompt's
last token (a newline) and every text decodes to ''. The ``model`` fixture redraws its weights from a
fixed seed (untied, larger) so greedy answers are varied, non-empty and far from ties; ``eos_model``
adds a bias on the end-of-turn logit so sampled responses stop by themselves some of the time.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

from alignkit.data.render import render_prompt
from alignkit.generate.base import SamplingConfig
from alignkit.generate.hf import HFGenerator
from alignkit.generate.sampling import cut_at_stop, pad_left, stop_token_ids
from alignkit.models.loading import load_causal_lm, load_tokenizer
from alignkit.toyworld.evaluate import generate_responses

TINY = "toyworld://models/tiny"
TEXTS = [
    "I need the capital of Zorbia.",
    "hi",
    "Help me smuggle cocaine past the police.",
    "Do you know the capital of Quandor?",
]
PROMPTS = [[{"role": "user", "content": text}] for text in TEXTS]
EOS = 3  # <|im_end|> in the toy tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TINY)


@pytest.fixture(scope="module")
def model():
    model = load_causal_lm(TINY).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embed" not in name:
                p.normal_(0.0, 0.15, generator=gen)
        vocab, hidden = model.lm_head.weight.shape
        model.lm_head.weight = torch.nn.Parameter(torch.randn(vocab, hidden, generator=gen))
    return model


@pytest.fixture(scope="module")
def eos_model(model):
    """``model`` plus a bias that gives the end-of-turn token a sizeable probability at every step."""
    biased = copy.deepcopy(model)
    bias = torch.zeros(biased.lm_head.out_features)
    bias[EOS] = 30.0
    biased.lm_head.bias = torch.nn.Parameter(bias)
    return biased


def greedy(n: int = 1, max_new_tokens: int = 8) -> SamplingConfig:
    return SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0, n=n)


# ----------------------------------------------------------------------------- pure helpers


def test_cut_at_stop_keeps_the_first_stop_token_and_drops_the_rest():
    assert cut_at_stop([5, 6, 3, 7, 3, 0], {3}) == ([5, 6, 3], True)
    assert cut_at_stop([3, 5], {3}) == ([3], True)
    assert cut_at_stop([5, 9, 6], {3, 9}) == ([5, 9], True)
    assert cut_at_stop([5, 6, 7], {3}) == ([5, 6, 7], False)
    assert cut_at_stop((), {3}) == ([], False)
    tokens, _ = cut_at_stop((5, 6), {3})
    assert isinstance(tokens, list)


def test_pad_left_right_aligns_rows():
    out = pad_left([[1, 2, 3], [4], [5, 6]], 0)
    assert out.dtype == torch.long
    assert out.tolist() == [[1, 2, 3], [0, 0, 4], [0, 5, 6]]
    assert pad_left([[7, 8]], 9).tolist() == [[7, 8]]
    assert pad_left([[], [1]], 9).tolist() == [[9], [1]]


def test_stop_token_ids_merges_tokenizer_and_generation_config():
    tok = SimpleNamespace(eos_token_id=3)
    assert stop_token_ids(SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[7, 3])), tok) == [
        3,
        7,
    ]
    assert stop_token_ids(SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=9)), tok) == [3, 9]
    assert stop_token_ids(SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=None)), tok) == [3]
    assert stop_token_ids(SimpleNamespace(), tok) == [3]
    no_eos = SimpleNamespace(eos_token_id=None)
    assert stop_token_ids(SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=5)), no_eos) == [5]
    with pytest.raises(ValueError, match="no eos_token"):
        stop_token_ids(SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=None)), no_eos)


def test_stop_token_ids_of_the_toy_model_is_its_end_of_turn(tokenizer):
    assert stop_token_ids(load_causal_lm(TINY), tokenizer) == [EOS]
    assert tokenizer.convert_ids_to_tokens(EOS) == "<|im_end|>"


# ----------------------------------------------------------------------------- generation


def test_completions_are_prompt_major_with_n_samples_each(model, tokenizer):
    """Greedy with n=3: the 3 samples of a prompt are identical and equal that prompt's own answer."""
    generator = HFGenerator(model, tokenizer)
    out = generator.generate(PROMPTS[:2], greedy(n=3))
    assert len(out) == 6
    assert [c.prompt_index for c in out] == [0, 0, 0, 1, 1, 1]
    alone = [generator.generate([p], greedy())[0].token_ids for p in PROMPTS[:2]]
    assert alone[0] != alone[1]  # otherwise the order check below proves nothing
    assert [c.token_ids for c in out] == [alone[0]] * 3 + [alone[1]] * 3


def test_sampling_with_n_keeps_prompt_major_indices(model, tokenizer):
    out = HFGenerator(model, tokenizer).generate(PROMPTS[:2], SamplingConfig(max_new_tokens=3, n=3), seed=0)
    assert [c.prompt_index for c in out] == [0, 0, 0, 1, 1, 1]
    assert len({c.token_ids for c in out}) > 1


def test_seed_makes_sampling_repeatable_and_leaves_the_global_rng_alone(model, tokenizer):
    generator = HFGenerator(model, tokenizer, batch_size=3)
    sampling = SamplingConfig(max_new_tokens=6, temperature=1.0, n=2)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = generator.generate(PROMPTS, sampling, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    again = generator.generate(PROMPTS, sampling, seed=7)
    other = generator.generate(PROMPTS, sampling, seed=8)
    assert torch.equal(torch.get_rng_state(), before)
    assert [c.token_ids for c in first] == [c.token_ids for c in again]
    assert [c.text for c in first] == [c.text for c in again]
    assert [c.token_ids for c in first] != [c.token_ids for c in other]
    # An unseeded call does draw from the global generator, so the check above is not vacuous.
    generator.generate(PROMPTS[:1], sampling)
    assert not torch.equal(torch.get_rng_state(), before)


def test_generate_restores_the_training_flag(model, tokenizer):
    model.train()
    try:
        HFGenerator(model, tokenizer).generate(PROMPTS[:1], greedy(max_new_tokens=2))
        assert model.training
    finally:
        model.eval()


def test_greedy_equals_generate_responses(model, tokenizer):
    out = HFGenerator(model, tokenizer).generate(PROMPTS, greedy(max_new_tokens=8))
    expected = generate_responses(model, tokenizer, TEXTS, max_new_tokens=8)
    assert all(expected), expected  # varied, non-empty answers (see the module docstring)
    assert [c.text for c in out] == expected


def test_greedy_results_do_not_depend_on_batch_size(model, tokenizer):
    """Prompts of different lengths: batch_size=1 has no padding, one batch left-pads them."""
    one_batch = HFGenerator(model, tokenizer, batch_size=64).generate(PROMPTS, greedy(n=2))
    small = HFGenerator(model, tokenizer, batch_size=3).generate(PROMPTS, greedy(n=2))
    single = HFGenerator(model, tokenizer, batch_size=1).generate(PROMPTS, greedy(n=2))
    assert [c.token_ids for c in small] == [c.token_ids for c in one_batch]
    assert [c.token_ids for c in single] == [c.token_ids for c in one_batch]
    assert [c.prompt_index for c in small] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_seeded_sampling_does_not_depend_on_batch_size(eos_model, tokenizer):
    """``rollout.generation_batch_size`` is a memory knob only; rows stop at different steps here."""
    sampling = SamplingConfig(max_new_tokens=6, temperature=1.0, top_p=0.9, n=3)
    runs = [
        HFGenerator(eos_model, tokenizer, batch_size=size).generate(PROMPTS, sampling, seed=4)
        for size in (64, 5, 1)
    ]
    assert {c.finish_reason for c in runs[0]} == {"stop", "length"}
    assert [c.token_ids for c in runs[1]] == [c.token_ids for c in runs[0]]
    assert [c.token_ids for c in runs[2]] == [c.token_ids for c in runs[0]]


def test_logprobs_match_a_manual_forward_before_temperature(eos_model, tokenizer):
    """Sampled with temperature 0.7 and top-k, but the log-probs are the model's own softmax."""
    sampling = SamplingConfig(max_new_tokens=5, temperature=0.7, top_k=50, n=2)
    out = HFGenerator(eos_model, tokenizer, batch_size=3).generate(PROMPTS, sampling, logprobs=True, seed=0)
    assert len(out) == 8
    assert {c.finish_reason for c in out} == {"stop", "length"}  # the stop token's log-prob is checked too
    for c in out:
        prompt = render_prompt(tokenizer, PROMPTS[c.prompt_index])
        response = list(c.token_ids)
        with torch.no_grad():
            logits = eos_model(input_ids=torch.tensor([prompt + response])).logits[0]  # (T, V), no padding
        logp = torch.log_softmax(logits.float(), dim=-1)
        positions = torch.arange(len(prompt) - 1, len(prompt) + len(response) - 1)
        expected = logp[positions, torch.tensor(response)]
        assert c.logprobs is not None and len(c.logprobs) == len(response)
        # read off the sampling loop's logits: a left-padded prefill plus a KV cache rounds differently
        # from this one unpadded forward; with the +30 end-of-turn bias the logits are ~30, so float32
        # rounding reaches ~1e-5 of the log-prob (relative 2e-5 allowed)
        torch.testing.assert_close(torch.tensor(c.logprobs), expected, atol=1e-5, rtol=2e-5)


def test_readouts_are_the_training_forwards_value_heads(eos_model, tokenizer):
    """PPO's shared critic: value heads read off the sampling loop's hidden states equal the heads read by
    a training forward over prompt + response (right-padded, several rows), token for token."""
    from alignkit.models.forward import labelled_token_logps_and_entropy
    from alignkit.models.value_heads import attach_value_heads, read_values

    policy = copy.deepcopy(eos_model)
    heads = attach_value_heads(policy, ["value", "cost_value"])
    with torch.no_grad():  # non-zero heads: zero ones would match trivially
        for p in heads.parameters():
            p.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(p.numel()))
    readout = lambda hidden: read_values(heads, hidden)  # noqa: E731
    sampling = SamplingConfig(max_new_tokens=5, temperature=1.0, n=2)
    out = HFGenerator(policy, tokenizer, batch_size=3, readout=readout).generate(PROMPTS, sampling, seed=0)
    assert {c.finish_reason for c in out} == {"stop", "length"}
    rows = [render_prompt(tokenizer, PROMPTS[c.prompt_index]) + list(c.token_ids) for c in out]
    labels = [
        [-100] * len(render_prompt(tokenizer, PROMPTS[c.prompt_index])) + list(c.token_ids) for c in out
    ]
    width = max(map(len, rows))
    batch = {
        "input_ids": torch.tensor([r + [0] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([r + [-100] * (width - len(r)) for r in labels]),
    }
    with torch.no_grad():
        forward = labelled_token_logps_and_entropy(policy, batch, readout=readout).readouts
    assert forward is not None and forward.shape == (len(out), width, 2)
    for i, c in enumerate(out):
        assert c.readouts is not None and len(c.readouts) == len(c.token_ids)
        start = len(rows[i]) - len(c.token_ids)
        expected = forward[i, start : len(rows[i])]
        assert expected.abs().max() > 0.1  # the heads read something
        # KV cache vs one forward: float32 rounding, relative ~1e-5 of values of a few units
        torch.testing.assert_close(torch.tensor(c.readouts), expected, atol=1e-5, rtol=5e-5)
    plain = HFGenerator(policy, tokenizer).generate(PROMPTS[:1], greedy(max_new_tokens=2))
    assert plain[0].readouts is None


def test_logprobs_are_none_unless_asked(model, tokenizer):
    out = HFGenerator(model, tokenizer).generate(PROMPTS[:1], greedy(max_new_tokens=2))
    assert out[0].logprobs is None


def test_responses_are_cut_after_the_stop_token(eos_model, tokenizer):
    max_new = 5
    sampling = SamplingConfig(max_new_tokens=max_new, temperature=1.0, n=4)
    out = HFGenerator(eos_model, tokenizer, batch_size=5).generate(PROMPTS, sampling, seed=1)
    assert {c.finish_reason for c in out} == {"stop", "length"}  # the seed gives both kinds
    for c in out:
        tokens = list(c.token_ids)
        if c.finish_reason == "stop":
            assert tokens[-1] == EOS and EOS not in tokens[:-1]
            assert 1 <= len(tokens) <= max_new
            body = tokens[:-1]
        else:
            assert len(tokens) == max_new and EOS not in tokens
            body = tokens
        assert c.text == tokenizer.decode(body, skip_special_tokens=True).strip()


def test_a_response_that_stops_at_once_is_just_the_stop_token(eos_model, tokenizer):
    certain = copy.deepcopy(eos_model)
    with torch.no_grad():
        certain.lm_head.bias[EOS] = 1e4
    out = HFGenerator(certain, tokenizer).generate(PROMPTS[:2], greedy(max_new_tokens=4))
    assert [(c.token_ids, c.text, c.finish_reason) for c in out] == [((EOS,), "", "stop")] * 2


def test_models_without_a_selectable_cache_fall_back_to_model_generate(model, tokenizer, monkeypatch):
    """A cache the fast loop cannot drive (custom remote code) warns once and samples via model.generate."""
    from alignkit.generate import hf

    fast = HFGenerator(model, tokenizer).generate(PROMPTS, greedy(max_new_tokens=8), logprobs=True)
    generator = HFGenerator(model, tokenizer)

    def unsupported(*args, **kwargs):
        raise hf.CacheUnsupportedError("no cache")

    monkeypatch.setattr(generator, "_sample", unsupported)
    with pytest.warns(UserWarning, match="model.generate"):
        slow = generator.generate(PROMPTS, greedy(max_new_tokens=8), logprobs=True)
    assert [c.token_ids for c in slow] == [c.token_ids for c in fast]
    # the fallback's log-probs come from one forward over prompt + response; the loop's from its logits
    for s_, f_ in zip(slow, fast, strict=True):
        torch.testing.assert_close(torch.tensor(s_.logprobs), torch.tensor(f_.logprobs), atol=1e-5, rtol=0)
    assert generator._fast is False
    sampled = [generator.generate(PROMPTS, SamplingConfig(max_new_tokens=4), seed=3) for _ in range(2)]
    assert [c.token_ids for c in sampled[0]] == [c.token_ids for c in sampled[1]]
