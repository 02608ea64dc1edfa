"""A vLLM engine as a Generator, with ``sync_weights`` so on-policy rollouts use the current policy.

vLLM loads its own copy of the weights from ``model_path``. A trainer that samples from it (PPO, GRPO)
must push its updated weights into that copy after every optimizer step, or every rollout comes from
the initial model and the "on-policy" algorithm silently trains off-policy (the bug align-anything's
vLLM path has). ``sync_weights(model)`` does that push through the model's own ``load_weights``, which
maps Hugging Face parameter names onto vLLM's fused layers (qkv, gate-up) and tensor-parallel shards.

``vllm`` is imported inside ``__init__`` only: importing this module (or ``alignkit.generate``) never
needs it, and a missing install fails with the extra to install.

Log-probabilities are those of the sampled tokens. vLLM's V1 engine (the default from 0.8; V0 was removed
in the 0.10/0.11 series) returns them from the raw logits, before temperature and top-p, matching ``Completion``'s
contract and a training forward; the V0 engine returned them after that processing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

from alignkit.data.render import chat_dicts
from alignkit.generate.base import Completion, FinishReason, SamplingConfig, missing_backend
from alignkit.models.loading import resolve_path

IN_PROCESS_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"
INSECURE_SERIALIZATION_ENV = "VLLM_ALLOW_INSECURE_SERIALIZATION"


@contextlib.contextmanager
def _env_default(name: str, value: str) -> Iterator[None]:
    """Set ``name`` while the block runs unless the user already set it; leave the environment as found."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def policy_weights(model: Any) -> dict[str, Any]:
    """``name -> tensor`` with Hugging Face names, from a possibly DDP- or torch.compile-wrapped model."""
    import torch

    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            break
    weights = {name: tensor.detach() for name, tensor in model.state_dict().items()}
    if any("lora_" in name for name in weights):
        raise ValueError(
            "sync_weights got a model with LoRA adapter weights, which vLLM's model has no slots for; "
            "merge the adapter first (peft's merge_and_unload on a copy, or merge_adapter/unmerge_adapter "
            "around the sync)"
        )
    return weights


def _load_weights_on_worker(worker: Any, weights: dict[str, Any]) -> None:
    """Runs inside each vLLM worker (via ``collective_rpc``): load the full weights into its shard.

    Module-level so it pickles by reference; it returns nothing so no tensor travels back.
    """
    runner = worker.model_runner
    model = runner.get_model() if hasattr(runner, "get_model") else runner.model
    model.load_weights(weights.items())


class VLLMGenerator:
    """Sample with ``vllm.LLM`` (chat template applied by vLLM, from the model's tokenizer).

    By default the V1 engine core runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` while the
    engine starts, unless you set it yourself), so ``sync_weights`` is a device-to-device copy instead of
    a state dict serialised to another process; TRL's colocated vLLM runs in-process for the same reason.
    """

    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.5,
        seed: int = 0,
        tokenizer: str | None = None,
        **engine_kwargs: Any,
    ) -> None:
        """``tokenizer``: a tokenizer path when it is not stored with the model; ``engine_kwargs`` go to
        ``vllm.LLM`` unchanged (``max_model_len``, ``tensor_parallel_size``, ``enforce_eager``, ...)."""
        try:
            import vllm
        except ImportError as error:
            raise missing_backend("vllm", "vllm", "the vLLM generator") from error
        self._sampling_params_cls = vllm.SamplingParams
        self.parallel_size = int(engine_kwargs.get("tensor_parallel_size", 1)) * int(
            engine_kwargs.get("pipeline_parallel_size", 1)
        )
        with _env_default(IN_PROCESS_ENV, "0"):
            self.llm = vllm.LLM(
                model=resolve_path(model_path),
                tokenizer=resolve_path(tokenizer) if tokenizer else None,
                dtype=dtype,
                gpu_memory_utilization=gpu_memory_utilization,
                seed=seed,
                **engine_kwargs,
            )

    def generate(
        self,
        prompts: Sequence[Sequence[Any]],
        sampling: SamplingConfig,
        *,
        logprobs: bool = False,
        seed: int | None = None,
    ) -> list[Completion]:
        """``len(prompts) * sampling.n`` completions, prompt-major; prompt ``i`` samples with ``seed + i``."""
        if not prompts:
            return []
        params = [
            self._sampling_params(sampling, logprobs, None if seed is None else seed + i)
            for i in range(len(prompts))
        ]
        outputs = self.llm.chat([chat_dicts(p) for p in prompts], params, use_tqdm=False)
        completions: list[Completion] = []
        for index, request in enumerate(outputs):
            for output in sorted(request.outputs, key=lambda o: o.index):
                completions.append(self._completion(index, output, logprobs))
        return completions

    def _sampling_params(self, sampling: SamplingConfig, logprobs: bool, seed: int | None) -> Any:
        return self._sampling_params_cls(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            # -1 means "off" in every vLLM release; only newer releases also take 0 for "off".
            top_k=sampling.top_k if sampling.top_k > 0 else -1,
            max_tokens=sampling.max_new_tokens,
            seed=seed,
            logprobs=0 if logprobs else None,  # 0: just the sampled token's logprob
        )

    @staticmethod
    def _completion(index: int, output: Any, logprobs: bool) -> Completion:
        token_ids = tuple(output.token_ids)
        token_logps = None
        if logprobs:
            if output.logprobs is None:
                raise RuntimeError("vLLM returned no logprobs although SamplingParams asked for them")
            token_logps = tuple(
                float(step[token].logprob) for token, step in zip(token_ids, output.logprobs, strict=True)
            )
        finish: FinishReason = "length" if output.finish_reason == "length" else "stop"
        return Completion(
            prompt_index=index,
            text=output.text.strip(),
            token_ids=token_ids,
            logprobs=token_logps,
            finish_reason=finish,
        )

    def sync_weights(self, model: Any) -> None:
        """Copy ``model``'s current weights into the engine, so the next ``generate`` samples from them.

        Call after each optimizer step (or each rollout phase). ``model`` is a Hugging Face causal LM of
        the architecture vLLM loaded (DDP / torch.compile wrappers are unwrapped; merge LoRA adapters
        first). Unquantised dtypes only: weights are copied into vLLM's parameters in place.
        """
        weights = policy_weights(model)
        local = self._local_model()
        if local is not None:
            # V0 engine (vLLM <= 0.10), and V1 with the engine core in this process (its LLMEngine
            # exposes the same model_executor "for v0 compatibility"); tensor parallel size 1 only,
            # since the driver worker holds rank 0's shard alone. TRL's colocate mode uses this path.
            local.load_weights(weights.items())
        elif hasattr(self.llm, "collective_rpc"):
            # V1 with the engine core in another process, or tensor/pipeline parallel: run the load on
            # every worker, each taking its own shard (LLM.collective_rpc: the 0.7 series on). We send our
            # module-level function plus CPU tensors rather than ``LLM.apply_model(lambda m:
            # m.load_weights(...))``, which would cloudpickle the whole state dict inside a closure.
            cpu_weights = {name: tensor.to("cpu") for name, tensor in weights.items()}
            try:
                self.llm.collective_rpc(_load_weights_on_worker, args=(cpu_weights,))
            except TypeError as error:
                if "serializ" not in str(error):
                    raise
                raise RuntimeError(
                    "vLLM refused to send the weight-loading function to its engine process. Set "
                    f"{INSECURE_SERIALIZATION_ENV}=1 before creating the VLLMGenerator (it allows pickle "
                    f"over vLLM's local IPC), or leave {IN_PROCESS_ENV} unset so the engine runs in-process"
                ) from error
        else:
            raise RuntimeError(
                "this vLLM version exposes neither an in-process model nor LLM.collective_rpc; "
                "sync_weights needs a vLLM with LLM.collective_rpc (0.7 or newer), or the V0 engine with "
                "tensor_parallel_size=1"
            )
        # Cached KV blocks were computed with the old weights; a prefix hit would mix the two policies.
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()

    def _local_model(self) -> Any:
        """vLLM's ``nn.Module`` when it lives in this process and holds the whole model, else None."""
        if self.parallel_size != 1:
            return None
        executor = getattr(self.llm.llm_engine, "model_executor", None)
        runner = getattr(getattr(executor, "driver_worker", None), "model_runner", None)
        if runner is None:
            return None
        # get_model() unwraps V1's CUDA-graph wrapper; older runners only have .model
        return runner.get_model() if hasattr(runner, "get_model") else getattr(runner, "model", None)
