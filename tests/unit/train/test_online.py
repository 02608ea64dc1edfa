"""Online RL building blocks: prompt schedule, batch-size checks, rollouts, the Lagrange multiplier,
cross-process statistics, the mini-batch optimizer step, prompts from records, config validation."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch.testing import assert_close

from alignkit.config import ConfigError, load_config
from alignkit.data.records import Conversation, Message, PlainText, Preference, Prompt, UnpairedPreference
from alignkit.data.render import render_prompt
from alignkit.generate.base import Completion, SamplingConfig
from alignkit.models.loading import load_tokenizer
from alignkit.sections import OnlineTrainerConfig
from alignkit.train.cross_process import global_masked_mean, global_whiten
from alignkit.train.lagrange import LagrangeConfig, LagrangeMultiplier
from alignkit.train.prompts import prompt_messages, step_prompt_indices
from alignkit.train.rollout import RolloutConfig, build_rollout, score_rollout
from alignkit.train.update import Trained, check_batch_sizes, optimizer_step

TINY = "toyworld://models/tiny"
EOS, PAD = 3, 0  # the toy tokenizer's <|im_end|> and <pad>


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TINY)


# ----------------------------------------------------------------------------- prompt schedule


def test_step_prompt_indices_is_a_pure_function_of_seed_and_step():
    first = [step_prompt_indices(10, 4, step, seed=3, world=1, rank=0) for step in range(5)]
    again = [step_prompt_indices(10, 4, step, seed=3, world=1, rank=0) for step in range(5)]
    assert first == again
    other_seed = [step_prompt_indices(10, 4, step, seed=4, world=1, rank=0) for step in range(5)]
    assert first != other_seed
    for indices in first:
        assert len(indices) == 4 and len(set(indices)) == 4 and all(0 <= i < 10 for i in indices)


def test_rank_shares_are_disjoint_and_make_up_the_single_process_list():
    for step in range(6):
        whole = step_prompt_indices(12, 6, step, seed=0, world=1, rank=0)
        rank0 = step_prompt_indices(12, 6, step, seed=0, world=2, rank=0)
        rank1 = step_prompt_indices(12, 6, step, seed=0, world=2, rank=1)
        assert len(rank0) == len(rank1) == 3
        assert not set(rank0) & set(rank1)
        assert rank0 + rank1 == whole


def test_each_pass_over_the_prompts_is_a_new_permutation():
    """6 prompts, 3 per step: steps (0, 1) are one pass, (2, 3) the next, (4, 5) the third."""
    passes = [
        step_prompt_indices(6, 3, 2 * p, seed=0, world=1, rank=0)
        + step_prompt_indices(6, 3, 2 * p + 1, seed=0, world=1, rank=0)
        for p in range(3)
    ]
    for order in passes:
        assert sorted(order) == list(range(6))  # every prompt exactly once per pass
    assert len({tuple(order) for order in passes}) == 3


def test_a_remainder_of_prompts_is_left_out_of_a_pass():
    """7 prompts, 3 per step: two steps per pass, so each pass leaves one prompt out."""
    one_pass = step_prompt_indices(7, 3, 0, 0, 1, 0) + step_prompt_indices(7, 3, 1, 0, 1, 0)
    assert len(set(one_pass)) == 6 and set(one_pass) <= set(range(7))


def test_fewer_prompts_than_a_step_needs_is_an_error():
    with pytest.raises(ValueError, match=r"2 training prompts are fewer than rollout.prompts_per_step=3"):
        step_prompt_indices(2, 3, 0, seed=0, world=1, rank=0)


# ----------------------------------------------------------------------------- batch sizes


def test_check_batch_sizes_accepts_an_even_split_and_only_that():
    rollout = RolloutConfig(prompts_per_step=4, samples_per_prompt=2)  # 8 samples, 2 per process and prompt
    assert check_batch_sizes(rollout, OnlineTrainerConfig(mini_batch_size=4), 2) is None
    with pytest.raises(ConfigError, match="mini_batch_size=3"):
        check_batch_sizes(rollout, OnlineTrainerConfig(mini_batch_size=3), 1)


def test_check_batch_sizes_names_every_key_to_change():
    rollout = RolloutConfig(prompts_per_step=3, samples_per_prompt=2)  # 6 samples
    with pytest.raises(ValueError) as info:
        check_batch_sizes(rollout, OnlineTrainerConfig(mini_batch_size=4), 2)
    message = str(info.value)
    assert "rollout.prompts_per_step=3 is not divisible by 2 processes" in message
    assert "6 samples" in message and "trainer.mini_batch_size=4" in message
    assert "trainer.mini_batch_size=4 is not divisible" not in message  # 4 splits over 2 processes

    with pytest.raises(ValueError) as info:
        check_batch_sizes(
            RolloutConfig(prompts_per_step=4, samples_per_prompt=3), OnlineTrainerConfig(mini_batch_size=3), 2
        )
    message = str(info.value)
    assert "trainer.mini_batch_size=3 is not divisible by 2 processes" in message
    assert "rollout.prompts_per_step" not in message and "do not split" not in message


# ----------------------------------------------------------------------------- rollouts


class FakeGenerator:
    """Returns fixed completions (prompt-major, n per prompt) and remembers how it was called."""

    def __init__(self, completions: Sequence[Completion]) -> None:
        self.completions = list(completions)
        self.calls: list[dict[str, Any]] = []

    def generate(self, prompts, sampling, *, logprobs=False, seed=None):
        self.calls.append({"prompts": prompts, "n": sampling.n, "logprobs": logprobs, "seed": seed})
        assert len(self.completions) == len(prompts) * sampling.n
        return self.completions


PROMPTS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "I need the capital of Zorbia."}],
]
COMPLETIONS = [
    Completion(0, "a", (10, 11, EOS), None, "stop"),
    Completion(0, "b", (12, 13, 14, 15), None, "length"),
    Completion(1, "c", (16, EOS), None, "stop"),
    Completion(1, "", (), None, "stop"),  # an empty answer: the row still ends its turn
]


def test_build_rollout_lays_out_right_padded_training_rows(tokenizer):
    generator = FakeGenerator(COMPLETIONS)
    rollout = build_rollout(generator, tokenizer, PROMPTS, SamplingConfig(n=2), seed=5)
    assert generator.calls == [{"prompts": PROMPTS, "n": 2, "logprobs": False, "seed": 5}]

    p0, p1 = (render_prompt(tokenizer, p) for p in PROMPTS)
    assert len(p1) > len(p0) + 4  # the longest row is prompt 1's
    responses = [[10, 11, EOS], [12, 13, 14, 15], [16, EOS], [EOS]]
    rows = [p0 + responses[0], p0 + responses[1], p1 + responses[2], p1 + responses[3]]
    width = max(len(r) for r in rows)
    assert rollout.input_ids.shape == (4, width)
    for i, (row, prompt, response) in enumerate(zip(rows, [p0, p0, p1, p1], responses, strict=True)):
        pad = width - len(row)
        assert rollout.input_ids[i].tolist() == row + [PAD] * pad
        assert rollout.attention_mask[i].tolist() == [1] * len(row) + [0] * pad
        assert rollout.labels[i].tolist() == [-100] * len(prompt) + response + [-100] * pad
        assert rollout.mask[i].tolist() == [False] * len(prompt) + [True] * len(response) + [False] * pad
    assert rollout.finished.tolist() == [True, False, True, True]
    assert rollout.texts == ["a", "b", "c", ""]
    assert rollout.prompts == [PROMPTS[0], PROMPTS[0], PROMPTS[1], PROMPTS[1]]
    assert len(rollout) == 4


def test_rollout_rows_trim_to_the_longest_chosen_row(tokenizer):
    rollout = build_rollout(FakeGenerator(COMPLETIONS), tokenizer, PROMPTS, SamplingConfig(n=2), seed=0)
    p0 = render_prompt(tokenizer, PROMPTS[0])
    batch = rollout.rows([1, 0], "cpu")
    width = len(p0) + 4
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].shape == (2, width) and rollout.input_ids.shape[1] > width
    assert batch["input_ids"].tolist() == [p0 + [12, 13, 14, 15], p0 + [10, 11, EOS, PAD]]
    assert batch["attention_mask"].tolist() == [[1] * width, [1] * (width - 1) + [0]]
    assert batch["labels"].tolist() == [
        [-100] * len(p0) + [12, 13, 14, 15],
        [-100] * len(p0) + [10, 11, EOS, -100],
    ]
    assert rollout.rows(torch.tensor([3]), "cpu")["input_ids"].tolist() == [
        render_prompt(tokenizer, PROMPTS[1]) + [EOS]
    ]


class FakeScorer:
    def __init__(self, scores: list[float]) -> None:
        self.scores = scores
        self.calls: list[tuple[Any, Any]] = []

    def score(self, prompts, responses):
        self.calls.append((prompts, responses))
        return torch.tensor(self.scores)


def test_score_rollout_subtracts_the_missing_eos_penalty_from_cut_rows_only(tokenizer):
    rollout = build_rollout(FakeGenerator(COMPLETIONS), tokenizer, PROMPTS, SamplingConfig(n=2), seed=0)
    scorer = FakeScorer([1.0, 2.0, 3.0, 4.0])
    assert score_rollout(scorer, rollout).tolist() == [1.0, 2.0, 3.0, 4.0]
    assert score_rollout(scorer, rollout, missing_eos_penalty=0.5).tolist() == [1.0, 1.5, 3.0, 4.0]
    assert score_rollout(scorer, rollout, missing_eos_penalty=-1.0).tolist() == [1.0, 3.0, 3.0, 4.0]
    prompts, responses = scorer.calls[0]
    assert prompts == rollout.prompts
    assert responses == [[{"role": "assistant", "content": t}] for t in ["a", "b", "c", ""]]


# ----------------------------------------------------------------------------- the Lagrange multiplier


def test_lagrange_multiplier_waits_then_steps_on_the_window_mean():
    cfg = LagrangeConfig(
        threshold=0.0, lambda_init=1.0, lambda_lr=0.1, lambda_max=None, delay_steps=2, window=3
    )
    lag = LagrangeMultiplier(cfg)
    assert lag.value == 1.0

    out = lag.update(0, [1.0, 2.0])  # window [1, 2]
    assert out == {"lagrange/lambda": 1.0, "lagrange/episode_cost": 1.5}
    out = lag.update(1, [3.0])  # window [1, 2, 3]; still inside the delay
    assert out == {"lagrange/lambda": 1.0, "lagrange/episode_cost": 2.0}

    out = lag.update(2, [4.0, 5.0])  # window keeps the last 3: [3, 4, 5], J_C = 4
    # ln lambda = ln 1 + 0.1 * 1 * (4 - 0) = 0.4
    assert out["lagrange/episode_cost"] == pytest.approx(4.0)
    assert lag.log_lambda == pytest.approx(0.4)
    assert out["lagrange/lambda"] == pytest.approx(math.exp(0.4))

    out = lag.update(3, [-1.0])  # window [4, 5, -1], J_C = 8/3
    expected = 0.4 + 0.1 * math.exp(0.4) * (8 / 3)
    assert out["lagrange/episode_cost"] == pytest.approx(8 / 3)
    assert lag.log_lambda == pytest.approx(expected)

    out = lag.update(4, [-10.0, -10.0, -10.0])  # J_C = -10: lambda shrinks
    expected += 0.1 * math.exp(expected) * -10
    assert lag.log_lambda == pytest.approx(expected)
    assert lag.value < 1.0


def test_lagrange_threshold_is_subtracted_from_the_episode_cost():
    lag = LagrangeMultiplier(LagrangeConfig(threshold=1.0, lambda_init=2.0, lambda_lr=0.5, lambda_max=None))
    lag.update(0, [0.0, 1.0])  # J_C = 0.5 < threshold: ln 2 + 0.5 * 2 * (0.5 - 1)
    assert lag.log_lambda == pytest.approx(math.log(2.0) - 0.5)


def test_lagrange_multiplier_is_clamped_at_lambda_max():
    lag = LagrangeMultiplier(LagrangeConfig(lambda_init=1.0, lambda_lr=1.0, lambda_max=2.0))
    out = lag.update(0, [100.0])
    assert lag.log_lambda == pytest.approx(math.log(2.0))
    assert out["lagrange/lambda"] == pytest.approx(2.0)


def test_lagrange_state_dict_round_trip():
    cfg = LagrangeConfig(lambda_lr=0.2, lambda_max=None, window=3)
    lag = LagrangeMultiplier(cfg)
    lag.update(0, [1.0, 2.0, 3.0, 4.0])
    state = lag.state_dict()
    assert state == {"log_lambda": lag.log_lambda, "window": [2.0, 3.0, 4.0]}

    restored = LagrangeMultiplier(cfg)
    restored.load_state_dict(state)
    assert restored.value == lag.value and list(restored.window) == [2.0, 3.0, 4.0]
    assert restored.update(1, [5.0]) == lag.update(1, [5.0])
    assert list(restored.window) == [3.0, 4.0, 5.0]  # the window length survives the reload


# ----------------------------------------------------------------------------- cross-process statistics


class FakeAccelerator:
    """Just what the online helpers touch; ``others`` is what the other processes would add in ``reduce``."""

    def __init__(self, num_processes: int = 1, others: Sequence[Sequence[float]] = ()) -> None:
        self.num_processes = num_processes
        self.device = torch.device("cpu")
        self.others = [torch.as_tensor(o, dtype=torch.float64) for o in others]
        self.reduced: list[list[float]] = []
        self.no_sync_calls = 0

    def reduce(self, tensor, reduction="sum"):
        assert reduction == "sum"
        self.reduced.append(tensor.tolist())
        return tensor + self.others.pop(0)

    @contextlib.contextmanager
    def no_sync(self, model):
        self.no_sync_calls += 1
        yield

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss):
        loss.backward()

    def clip_grad_norm_(self, params, max_norm):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)


def test_global_masked_mean_on_one_process():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 50.0, 100.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert global_masked_mean(FakeAccelerator(), values, mask) == pytest.approx(2.5)
    assert global_masked_mean(FakeAccelerator(), values, torch.zeros(2, 3)) == 0.0


def test_global_masked_mean_adds_the_other_processes_sums_and_counts():
    acc = FakeAccelerator(num_processes=2, others=[[9.0, 3.0]])  # another process: 3 tokens summing to 9
    values = torch.tensor([[1.0, 2.0, 7.0]])
    mask = torch.tensor([[True, True, False]])
    assert global_masked_mean(acc, values, mask) == pytest.approx((1 + 2 + 9) / (2 + 3))
    assert acc.reduced == [[3.0, 2.0]]


def test_global_whiten_uses_the_population_variance():
    """Valid 1, 2, 3, 4: mean 2.5, population variance (2.25 + .25 + .25 + 2.25) / 4 = 1.25."""
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 50.0, 100.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    out = global_whiten(FakeAccelerator(), values, mask)
    s = math.sqrt(1.25 + 1e-8)
    expected = torch.tensor([[-1.5 / s, -0.5 / s, 0.5 / s], [1.5 / s, 0.0, 0.0]])
    assert_close(out, expected, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- the optimizer step


def _micro_batches() -> tuple[torch.Tensor, torch.Tensor]:
    """4 rows of 5 positions, 3 features; rows have 1, 4, 2 and 3 scored tokens (column 0 never is)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, 3, generator=gen)
    labels = torch.full((4, 5), -100)
    for row, n in enumerate([1, 4, 2, 3]):
        labels[row, 1 : 1 + n] = 1
    return x, labels


def _trained(normalisers: list[float]) -> Trained:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)

    def loss_fn(model, batch, normaliser):
        normalisers.append(normaliser)
        mask = batch["labels"] != -100
        mask[:, 0] = False
        per_token = model(batch["x"]).squeeze(-1).square()
        return (per_token * mask).sum() / normaliser, {"tokens": float(mask.sum())}

    return Trained("actor", model, optimizer, scheduler, loss_fn)


def _step(splits: list[slice], max_grad_norm: float | None = None) -> tuple[dict, torch.Tensor, list[float]]:
    x, labels = _micro_batches()
    normalisers: list[float] = []
    trained = _trained(normalisers)
    before = torch.cat([p.detach().flatten().clone() for p in trained.model.parameters()])
    micro = [{"x": x[s], "labels": labels[s]} for s in splits]
    sums = optimizer_step(FakeAccelerator(), trained, micro, max_grad_norm)
    after = torch.cat([p.detach().flatten() for p in trained.model.parameters()])
    assert all(p.grad is None for p in trained.model.parameters())  # zeroed after the step
    return sums, before - after, normalisers  # SGD with lr 1: the change is the gradient


def _reference_gradient() -> torch.Tensor:
    """The token mean of the squared outputs over the whole mini-batch (10 tokens), by autograd."""
    x, labels = _micro_batches()
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    mask = labels != -100
    loss = (model(x).squeeze(-1).square() * mask).sum() / mask.sum()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_optimizer_step_gradient_does_not_depend_on_micro_batching():
    reference = _reference_gradient()
    whole_sums, whole, whole_norms = _step([slice(0, 4)])
    split_sums, split, split_norms = _step([slice(0, 2), slice(2, 4)])  # 5 and 5 tokens
    uneven_sums, uneven, _ = _step([slice(0, 1), slice(1, 4)])  # 1 and 9 tokens
    assert whole_norms == [10.0] and split_norms == [10.0, 10.0]
    assert_close(whole, reference, atol=1e-6, rtol=0)
    assert_close(split, reference, atol=1e-6, rtol=0)
    assert_close(uneven, reference, atol=1e-6, rtol=0)
    assert whole_sums == split_sums == uneven_sums == {"tokens": 10.0}


def test_optimizer_step_reports_the_pre_clip_gradient_norm():
    reference = _reference_gradient()
    norm = float(reference.norm())
    sums, change, _ = _step([slice(0, 2), slice(2, 4)], max_grad_norm=norm / 2)
    assert sums["actor/grad_norm"] == pytest.approx(norm, rel=1e-5)
    assert_close(change, reference / 2, atol=1e-5, rtol=1e-4)


def test_optimizer_step_on_two_processes_normalises_by_all_their_tokens():
    """The other process has 6 tokens: normaliser (10 + 6) / 2, which DDP's average divides back out."""
    x, labels = _micro_batches()
    normalisers: list[float] = []
    trained = _trained(normalisers)
    acc = FakeAccelerator(num_processes=2, others=[[6.0]])
    micro = [{"x": x[:2], "labels": labels[:2]}, {"x": x[2:], "labels": labels[2:]}]
    optimizer_step(acc, trained, micro, None)
    assert acc.reduced == [[10.0]]
    assert normalisers == [8.0, 8.0]
    assert acc.no_sync_calls == 1  # every micro-batch but the last skips the gradient all-reduce


# ----------------------------------------------------------------------------- prompts from records


def test_prompt_messages_of_each_record_kind():
    u1, a1 = Message("user", "q1"), Message("assistant", "a1")
    u2, a2 = Message("user", "q2"), Message("assistant", "a2")
    system = Message("system", "sys")
    assert prompt_messages(Prompt((system, u1))) == [system, u1]
    assert prompt_messages(Conversation((system, u1, a1, u2, a2))) == [system, u1, a1, u2]
    assert prompt_messages(Conversation((u1, a1, a2))) == [u1]
    assert prompt_messages(Conversation((a1,))) == []
    assert prompt_messages(Preference((u1, a1, u2), (a2,), (a1,))) == [u1, a1, u2]
    assert prompt_messages(UnpairedPreference((u2,), (a2,), True)) == [u2]


def test_prompt_messages_of_a_record_without_a_prompt_is_an_error():
    with pytest.raises(ValueError, match="PlainText records carry no prompt"):
        prompt_messages(PlainText("just text"))


# ----------------------------------------------------------------------------- config validation


def test_grpo_needs_a_group_of_at_least_two():
    from alignkit.train.grpo import GRPOConfig

    with pytest.raises(ConfigError, match=r"^rollout\.samples_per_prompt=1 is not allowed"):
        load_config(GRPOConfig, None, ["rollout.samples_per_prompt=1", "reward.path=x:y"])
    config = load_config(GRPOConfig, None, ["rollout.samples_per_prompt=2", "reward.path=x:y"])
    assert config.rollout.samples_per_prompt == 2


def test_ppo_pretraining_mix_needs_ptx_data():
    from alignkit.train.ppo import PPOConfig

    with pytest.raises(ConfigError, match=r"^ptx=None is not allowed"):
        load_config(PPOConfig, None, ["ppo.ptx_coef=1", "reward.path=x:y"])
    config = load_config(
        PPOConfig, None, ["ppo.ptx_coef=1", "reward.path=x:y", "ptx.source=toyworld://data/sft"]
    )
    assert config.ptx is not None and config.ptx.source == "toyworld://data/sft"


def test_rollout_section_values_are_validated():
    from alignkit.train.ppo import PPOConfig

    with pytest.raises(ConfigError, match=r"^rollout\.temperature=-1"):
        load_config(PPOConfig, None, ["rollout.temperature=-1", "reward.path=x:y"])
    with pytest.raises(ConfigError, match=r"^rollout\.prompts_per_step=0"):
        load_config(PPOConfig, None, ["rollout.prompts_per_step=0", "reward.path=x:y"])


def test_safe_ppo_with_cost_set_to_null_is_an_error_naming_cost():
    from alignkit.train.safe_ppo import SafePPOConfig

    with pytest.raises(ConfigError, match=r"^cost=None is not allowed: expected a cost scorer section"):
        load_config(SafePPOConfig, None, ["cost=null", "reward.path=x:y"])
    config = load_config(
        SafePPOConfig, None, ["cost.path=alignkit.toyworld.oracle:harm_cost", "reward.path=x:y"]
    )
    assert config.cost is not None and config.cost.path == "alignkit.toyworld.oracle:harm_cost"


def test_safe_ppo_without_a_cost_path_is_a_config_error():
    from alignkit.train.safe_ppo import SafePPOConfig

    with pytest.raises(ConfigError, match=r"cost\.path"):
        load_config(SafePPOConfig, None, ["reward.path=x:y"])


def test_ppo_without_a_reward_path_is_a_config_error():
    from alignkit.train.ppo import PPOConfig

    with pytest.raises(ConfigError, match=r"reward\.path"):
        load_config(PPOConfig, None, [])


def test_vllm_rollouts_without_vllm_say_what_to_install(monkeypatch):
    """rollout.backend=vllm builds a VLLMGenerator; without the package the error names the extra."""
    import sys
    import types

    from alignkit.train.grpo import GRPOTrainer

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, installed or not
    trainer = GRPOTrainer.__new__(GRPOTrainer)  # no set-up: only the generator choice is under test
    trainer.config = types.SimpleNamespace(
        rollout=types.SimpleNamespace(backend="vllm", vllm_gpu_memory_utilization=0.3),
        model=types.SimpleNamespace(path="toyworld://models/tiny", dtype="float32", tokenizer=None),
        trainer=types.SimpleNamespace(seed=0),
    )
    trainer.actor = torch.nn.Linear(2, 2)
    with pytest.raises(ImportError, match=r"pip install 'alignkit\[vllm\]'"):
        trainer._generator()


def test_build_rollout_refuses_completions_without_token_ids(tokenizer):
    """Text-only completions (an HTTP endpoint without a tokenizer) cannot be trained on: say so."""
    completions = [Completion(0, "a", None, None, "stop")]
    with pytest.raises(ValueError, match="without token ids"):
        build_rollout(FakeGenerator(completions), tokenizer, PROMPTS[:1], SamplingConfig(n=1), seed=0)


def test_online_rl_switches_dropout_off_and_refuses_sharded_engines():
    import types

    from alignkit.train.online_trainer import disable_dropout, refuse_sharded_engines

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1), torch.nn.Dropout(0.3))
    model.config = types.SimpleNamespace(attention_dropout=0.2, hidden_size=2)
    disable_dropout(model)
    assert [m.p for m in model if isinstance(m, torch.nn.Dropout)] == [0.0, 0.0]
    assert model.config.attention_dropout == 0.0 and model.config.hidden_size == 2
    refuse_sharded_engines(types.SimpleNamespace(distributed_type="DistributedType.MULTI_CPU"))
    for kind in ("DistributedType.DEEPSPEED", "DistributedType.FSDP"):
        with pytest.raises(ConfigError, match="DDP"):
            refuse_sharded_engines(types.SimpleNamespace(distributed_type=kind))


def test_seeds_are_range_checked_and_derived_seeds_stay_in_range():
    from alignkit.train.grpo import GRPOConfig
    from alignkit.train.prompts import SEED_MODULUS, sampling_seed

    with pytest.raises(ConfigError, match="trainer.seed"):
        load_config(GRPOConfig, None, ["reward.path=a:b", "trainer.seed=1234567890123"])
    assert 0 <= sampling_seed(2**31 - 1, 10**6, 7) < SEED_MODULUS
    torch.Generator().manual_seed(sampling_seed(2**31 - 1, 10**6, 7) * 31 % SEED_MODULUS)
