"""VLLMGenerator: the lazy import, the mapping to and from vLLM's objects (against a stand-in ``vllm``
module, so it runs on CPU), and a real engine on a GPU when vLLM is installed."""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from alignkit.generate import SamplingConfig
from alignkit.generate.vllm_engine import IN_PROCESS_ENV, VLLMGenerator

TINY = "toyworld://models/tiny"


def test_missing_vllm_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now fails, installed or not
    with pytest.raises(ImportError, match=re.escape("pip install 'alignkit[vllm]'")):
        VLLMGenerator(TINY)


def test_importing_the_package_does_not_import_vllm():
    code = (
        "import sys, alignkit.generate as g, alignkit.generate.vllm_engine as m\n"
        "assert g.VLLMGenerator is m.VLLMGenerator and g.OpenAIGenerator.__name__ == 'OpenAIGenerator'\n"
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] == 'vllm')\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_unknown_attribute_of_the_package_is_an_attribute_error():
    import alignkit.generate

    with pytest.raises(AttributeError, match="NoSuchGenerator"):
        alignkit.generate.NoSuchGenerator  # noqa: B018


# --- against a stand-in vllm module -------------------------------------------------------------------


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class FakeVLLMModel:
    """vLLM's nn.Module, reduced to the load_weights call sync_weights makes."""

    def __init__(self):
        self.loaded: list[tuple[str, torch.Tensor]] = []

    def load_weights(self, weights):
        self.loaded += [(name, tensor.clone()) for name, tensor in weights]


class FakeLLM:
    def __init__(self, **kwargs):
        import os

        self.kwargs = kwargs
        self.env_at_init = os.environ.get(IN_PROCESS_ENV)
        self.chats: list[tuple[list, list]] = []
        self.model = FakeVLLMModel()
        self.prefix_resets = 0
        self.rpc_calls = 0
        runner = SimpleNamespace(model=self.model)
        self.llm_engine = SimpleNamespace(
            model_executor=SimpleNamespace(driver_worker=SimpleNamespace(model_runner=runner))
        )

    def chat(self, messages, sampling_params, use_tqdm=True):
        self.chats.append((messages, sampling_params))
        requests = []
        for conversation, params in zip(messages, sampling_params, strict=True):
            outputs = [
                SimpleNamespace(
                    index=k,
                    text=f" {conversation[-1]['content']}|{k} ",
                    token_ids=[10 + k, 11, 3],
                    # the sampled token's entry plus a distractor vLLM may add (top-k logprobs)
                    logprobs=[
                        {99: SimpleNamespace(logprob=-9.0), 10 + k: SimpleNamespace(logprob=-0.5 - k)},
                        {11: SimpleNamespace(logprob=-0.25)},
                        {3: SimpleNamespace(logprob=-0.125)},
                    ],
                    finish_reason="length" if k == 1 else "stop",
                )
                for k in range(params.kwargs["n"])
            ]
            requests.append(SimpleNamespace(outputs=outputs[::-1]))  # order must come from .index
        return requests

    def reset_prefix_cache(self):
        self.prefix_resets += 1

    def collective_rpc(self, method, timeout=None, args=(), kwargs=None):
        self.rpc_calls += 1
        worker = SimpleNamespace(model_runner=SimpleNamespace(model=self.model))
        return [method(worker, *args, **(kwargs or {}))]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.delenv(IN_PROCESS_ENV, raising=False)
    return module


def test_engine_arguments_and_in_process_engine(fake_vllm):
    import os

    generator = VLLMGenerator(
        "some/model", dtype="bfloat16", gpu_memory_utilization=0.3, seed=5, max_model_len=128
    )
    llm = generator.llm
    assert llm.kwargs == {
        "model": "some/model",
        "tokenizer": None,
        "dtype": "bfloat16",
        "gpu_memory_utilization": 0.3,
        "seed": 5,
        "max_model_len": 128,
    }
    assert llm.env_at_init == "0"  # the engine core started in this process
    assert IN_PROCESS_ENV not in os.environ  # ... and the environment is left as it was


def test_a_user_choice_of_multiprocessing_is_kept(fake_vllm, monkeypatch):
    monkeypatch.setenv(IN_PROCESS_ENV, "1")
    assert VLLMGenerator("some/model").llm.env_at_init == "1"


def test_sampling_params_and_completions(fake_vllm):
    generator = VLLMGenerator("some/model")
    prompts = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]
    sampling = SamplingConfig(max_new_tokens=9, temperature=0.7, top_p=0.8, n=2)

    completions = generator.generate(prompts, sampling, logprobs=True, seed=7)

    (messages, params), *_ = generator.llm.chats
    assert messages == prompts
    assert [p.kwargs for p in params] == [
        {"n": 2, "temperature": 0.7, "top_p": 0.8, "top_k": -1, "max_tokens": 9, "seed": s, "logprobs": 0}
        for s in (7, 8)
    ]
    assert [(c.prompt_index, c.text) for c in completions] == [(0, "a|0"), (0, "a|1"), (1, "b|0"), (1, "b|1")]
    assert completions[1].token_ids == (11, 11, 3)
    assert completions[1].logprobs == (-1.5, -0.25, -0.125)  # the sampled token's, not the distractor's
    assert [c.finish_reason for c in completions] == ["stop", "length", "stop", "length"]


def test_top_k_and_no_logprobs(fake_vllm):
    generator = VLLMGenerator("some/model")
    (completion,) = generator.generate([[{"role": "user", "content": "a"}]], SamplingConfig(top_k=4))

    (params,) = generator.llm.chats[0][1]
    assert params.kwargs["top_k"] == 4
    assert params.kwargs["seed"] is None
    assert params.kwargs["logprobs"] is None
    assert completion.logprobs is None


class Compiled(torch.nn.Module):
    """Stands in for torch.compile's wrapper: the real module under ``_orig_mod``."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self._orig_mod = inner


@pytest.mark.parametrize("parallel", [1, 2])
def test_sync_weights_pushes_the_current_weights(fake_vllm, parallel):
    generator = VLLMGenerator("some/model", tensor_parallel_size=parallel)
    policy = torch.nn.Linear(2, 2)
    with torch.no_grad():
        policy.weight.fill_(3.0)

    generator.sync_weights(Compiled(policy))

    llm = generator.llm
    assert [name for name, _ in llm.model.loaded] == ["weight", "bias"]  # HF names, wrapper unwrapped
    assert torch.equal(llm.model.loaded[0][1], torch.full((2, 2), 3.0))
    assert llm.rpc_calls == (0 if parallel == 1 else 1)  # in-process copy unless sharded
    assert llm.prefix_resets == 1


def test_sync_weights_refuses_unmerged_lora(fake_vllm):
    generator = VLLMGenerator("some/model")
    policy = torch.nn.Module()
    policy.lora_A = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="merge the adapter"):
        generator.sync_weights(policy)


# --- a real engine ------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None,
    reason="needs a CUDA device and vllm",
)
def test_vllm_generates_and_sync_weights_changes_outputs():
    from alignkit.models.loading import load_causal_lm, resolve_path

    path = resolve_path(TINY)
    generator = VLLMGenerator(path, gpu_memory_utilization=0.2, enforce_eager=True, max_model_len=256)
    prompts = [[{"role": "user", "content": "hello"}]]

    sampled = generator.generate(prompts, SamplingConfig(max_new_tokens=8, n=2), logprobs=True, seed=0)
    assert [c.prompt_index for c in sampled] == [0, 0]
    for completion in sampled:
        assert completion.token_ids
        assert len(completion.logprobs) == len(completion.token_ids)

    greedy = SamplingConfig(max_new_tokens=8, temperature=0.0)
    uniform = -math.log(load_causal_lm(path).config.vocab_size)
    (before,) = generator.generate(prompts, greedy, logprobs=True)
    assert any(abs(lp - uniform) > 1e-3 for lp in before.logprobs)

    model = load_causal_lm(path)
    with torch.no_grad():
        model.get_output_embeddings().weight.zero_()  # every logit 0: a uniform next-token distribution
    generator.sync_weights(model)

    (after,) = generator.generate(prompts, greedy, logprobs=True)
    assert after.logprobs == pytest.approx([uniform] * len(after.logprobs), abs=1e-3)
