"""An alignkit model as an lm-evaluation-harness ``LM``, and running named lm-eval tasks on it.

``AlignkitLM`` answers lm-eval's three request types:

- ``generate_until``: through any alignkit Generator (a local HF model, an OpenAI-compatible endpoint, vLLM,
  a guarded chain); a Generator answers conversations, so a context lm-eval built with
  ``apply_chat_template`` is sent as the chat it came from, and a plain-text context as one user turn. The
  answer is cut at the first of the request's ``until`` strings (Generators have no stop strings).
- ``loglikelihood`` and ``loglikelihood_rolling``: with the local Hugging Face model's forward pass,
  tokenized as lm-eval's own ``HFLM`` does (trailing spaces of the context move to the continuation, no
  special tokens added, the BOS token, else EOS, in front of an empty context; rolling windows from
  ``lm_eval.utils``). An endpoint has no log-probabilities of given text: multiple-choice and perplexity
  tasks need a local model, and say so.

This module imports ``lm_eval`` at once; nothing in alignkit imports it unless lm-eval is asked for
(``alignkit eval run lm-eval:TASK``, see ``eval/interop/external.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch

from alignkit.generate.base import SamplingConfig, missing_backend

try:
    from lm_eval.api.model import LM
except ImportError:  # pragma: no cover - exercised where lm_eval is absent
    raise missing_backend("lm_eval", "lm-eval", "running lm-evaluation-harness tasks") from None


class AlignkitLM(LM):
    """lm-eval's model interface over an alignkit Generator (generation) and, for log-likelihoods, a local
    Hugging Face model and tokenizer (``model``/``tokenizer``; taken from an ``HFGenerator`` when given)."""

    def __init__(
        self,
        generator: Any,
        *,
        model: Any = None,
        tokenizer: Any = None,
        batch_size: int = 16,
        max_new_tokens: int = 256,
        max_length: int | None = None,
        seed: int | None = 0,
        name: str = "alignkit",
    ) -> None:
        super().__init__()
        self.generator = generator
        self.model = model if model is not None else getattr(generator, "model", None)
        self.tokenizer = tokenizer if tokenizer is not None else getattr(generator, "tokenizer", None)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.name = name
        self._max_length = max_length
        self._chats: dict[str, list[dict[str, str]]] = {}
        """Text ``apply_chat_template`` returned -> the chat it rendered, so generation sends the chat."""

    # ------------------------------------------------------------------ generation

    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
        groups: dict[tuple, list[int]] = {}
        samplings: dict[tuple, SamplingConfig] = {}
        for i, request in enumerate(requests):
            sampling = self.sampling(request.args[1])
            key = (sampling.max_new_tokens, sampling.temperature, sampling.top_p, sampling.top_k)
            groups.setdefault(key, []).append(i)
            samplings[key] = sampling
        texts: list[str] = [""] * len(requests)
        for key, indices in groups.items():
            chats = [self.conversation(requests[i].args[0]) for i in indices]
            completions = self.generator.generate(chats, samplings[key], seed=self.seed)
            for i, completion in zip(indices, completions, strict=True):
                texts[i] = cut_at(completion.text, until_strings(requests[i].args[1]))
                self.cache_hook.add_partial("generate_until", requests[i].args, texts[i])
        return texts

    def sampling(self, gen_kwargs: Any) -> SamplingConfig:
        """lm-eval's ``gen_kwargs`` as alignkit decoding: greedy unless ``do_sample`` (or a temperature > 0)."""
        kwargs = dict(gen_kwargs or {})
        temperature = float(kwargs.get("temperature", 1.0 if kwargs.get("do_sample") else 0.0))
        if kwargs.get("do_sample") is False:
            temperature = 0.0
        return SamplingConfig(
            max_new_tokens=int(kwargs.get("max_gen_toks", self.max_new_tokens)),
            temperature=temperature,
            top_p=float(kwargs.get("top_p", 1.0) or 1.0),
            top_k=int(kwargs.get("top_k", 0) or 0),
        )

    def conversation(self, context: str) -> list[dict[str, str]]:
        """The chat behind a context lm-eval built with our ``apply_chat_template``; else one user turn."""
        return self._chats.get(context) or [{"role": "user", "content": context}]

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        if self.tokenizer is not None and getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                chat_history,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=not add_generation_prompt,
            )
        else:  # an endpoint renders its own chats: the text is only a key (no log-likelihoods anyway)
            text = json.dumps(chat_history, ensure_ascii=False)
        if add_generation_prompt:
            self._chats[text] = [dict(m) for m in chat_history]
        return text

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", None) or self.name).replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return getattr(self.tokenizer, "chat_template", None) or ""

    # ------------------------------------------------------------------ log-likelihoods

    def _need_model(self, what: str) -> None:
        if self.model is None or self.tokenizer is None:
            raise ValueError(
                f"lm-eval asked for {what}, which needs a local Hugging Face model (its forward pass); "
                f"{self.name} is a generation-only backend (an endpoint): run generate_until tasks on it, "
                "or give the local model folder"
            )

    @property
    def max_length(self) -> int:
        if self._max_length:
            return self._max_length
        positions = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        return int(positions or 2048)

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return int(bos if bos is not None else self.tokenizer.eos_token_id)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of context and continuation as lm-eval's ``TemplateLM._encode_pair`` makes them."""
        if not context:
            return [self.prefix_token_id], self._encode(continuation)
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self._encode(context + continuation)
        context_ids = self._encode(context)
        return whole[: len(context_ids)], whole[len(context_ids) :]

    def loglikelihood(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        self._need_model("loglikelihood (multiple-choice tasks)")
        pairs = [self.encode_pair(*request.args) for request in requests]
        results = self.score_tokens(pairs)
        for request, result in zip(requests, results, strict=True):
            self.cache_hook.add_partial("loglikelihood", request.args, result)
        return results

    def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[float]:
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        self._need_model("loglikelihood_rolling (perplexity tasks)")
        totals = []
        for request in requests:
            windows = [
                make_disjoint_window(w)
                for w in get_rolling_token_windows(
                    self._encode(request.args[0]), self.prefix_token_id, self.max_length, context_len=1
                )
            ]
            total = sum(logprob for logprob, _ in self.score_tokens(windows))
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
            totals.append(total)
        return totals

    @torch.no_grad()
    def score_tokens(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(sum of log p(continuation | context), whether greedy decoding gives the continuation) per pair,
        in right-padded batches; a context longer than the model's window loses its oldest tokens."""
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        out: list[tuple[float, bool]] = []
        try:
            for start in range(0, len(pairs), self.batch_size):
                chunk = pairs[start : start + self.batch_size]
                rows = [
                    (context + continuation)[-(self.max_length + 1) :][:-1] for context, continuation in chunk
                ]
                width = max(len(r) for r in rows)
                pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
                ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
                mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
                logprobs = torch.log_softmax(
                    self.model(input_ids=ids, attention_mask=mask).logits.float(), -1
                )
                for row, (_, continuation), lp in zip(rows, chunk, logprobs, strict=True):
                    n = len(continuation)
                    positions = lp[len(row) - n : len(row)]
                    target = torch.tensor(continuation, device=device)
                    picked = positions.gather(-1, target[:, None]).squeeze(-1)
                    out.append((float(picked.sum()), bool((positions.argmax(-1) == target).all())))
        finally:
            self.model.train(was_training)
        return out


def until_strings(gen_kwargs: Any) -> list[str]:
    until = (gen_kwargs or {}).get("until") or []
    return [until] if isinstance(until, str) else [u for u in until if u]


def cut_at(text: str, stops: Sequence[str]) -> str:
    """``text`` up to the first occurrence of any stop string (lm-eval's ``until``)."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def lm_from_spec(config: Any) -> AlignkitLM:
    """The ``AlignkitLM`` of ``config.model`` (a model spec), loaded now."""
    from alignkit.eval.models import build_generator, check_model_spec

    spec = check_model_spec(config.model, "model")
    generator = build_generator(
        spec,
        dtype=config.dtype,
        batch_size=config.batch_size,
        timeout=config.timeout,
        max_concurrency=config.max_concurrency,
        seed=config.seed,
    )
    return AlignkitLM(
        generator,
        batch_size=config.batch_size,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed,
        name=spec.text,
    )


def check_task_names(tasks: Sequence[str], manager: Any) -> None:
    """Unknown lm-eval task names stop the run before anything loads, with the closest known names."""
    import difflib

    from alignkit.config import ConfigError

    known = set(manager.all_tasks)
    unknown = [t for t in tasks if t not in known]
    if not tasks or unknown:
        hints = {t: difflib.get_close_matches(t, sorted(known), n=3) for t in unknown}
        said = "; ".join(f"{t!r} (did you mean {', '.join(h)}?)" if h else repr(t) for t, h in hints.items())
        raise ConfigError(
            f"lm-eval has no task {said or '(none given)'}: `lm-eval ls tasks` lists them; tasks of your own "
            "go in a folder of YAMLs given as include_path="
        )


def check_generation_only(tasks: Sequence[str], manager: Any, name: str) -> None:
    """Tasks that ask for log-likelihoods (multiple choice, perplexity) stop before the run folder when the
    model has no forward pass to give them (an endpoint)."""
    from alignkit.config import ConfigError

    if hasattr(manager, "load"):  # lm-eval >= 0.4.10: flat {"tasks": {name: Task}}
        loaded = manager.load(list(tasks))["tasks"].items()
    else:
        from lm_eval.tasks import get_task_dict

        def leaves(tree: Any) -> list[tuple[str, Any]]:
            found = []
            for key, value in tree.items():
                found += leaves(value) if isinstance(value, dict) else [(str(key), value)]
            return found

        loaded = leaves(get_task_dict(list(tasks), manager))
    needs = [task for task, obj in loaded if obj.OUTPUT_TYPE != "generate_until"]
    if needs:
        raise ConfigError(
            f"lm-eval task(s) {', '.join(needs)} score answers by log-likelihood, which needs a local Hugging "
            f"Face model (its forward pass); {name} is generation-only: give a local model folder, or run "
            "generate_until tasks"
        )


def run_lm_eval(tasks: Sequence[str], config: Any, *, lm: AlignkitLM | None = None, log: Any = print) -> dict:
    """lm-eval ``tasks`` on ``config.model`` (or on ``lm``, e.g. over a Generator object), into a run folder:
    ``results.json`` (lm-eval's results dict, ``samples`` left out), ``samples.jsonl`` (each logged sample
    with its ``task``), ``config.yaml``; lm-eval's request cache in ``lm_eval_cache/`` so a rerun with
    ``run.resume=true`` asks the model nothing twice. Returns the results dict."""
    import lm_eval
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import handle_non_serializable, make_table

    from alignkit.config import dump_yaml
    from alignkit.eval.interop.folders import default_output_dir
    from alignkit.runs import check_run_dir, prepare_run_dir, release_run_lock

    out_dir = config.run.output_dir or default_output_dir("lm-eval", ",".join(tasks))
    check_run_dir(out_dir, overwrite=config.run.overwrite, resume=config.run.resume)
    manager = TaskManager(include_path=config.include_path, include_defaults=config.builtin_tasks)
    check_task_names(tasks, manager)
    lm = lm or lm_from_spec(config)
    if lm.model is None:
        check_generation_only(tasks, manager, lm.name)
    out = prepare_run_dir(out_dir, overwrite=config.run.overwrite, resume=config.run.resume)
    try:
        (out / "config.yaml").write_text(dump_yaml(config))
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=list(tasks),
            num_fewshot=config.num_fewshot,
            limit=config.limit,
            bootstrap_iters=config.bootstrap_iters,
            use_cache=str(out / "lm_eval_cache"),
            log_samples=True,
            apply_chat_template=config.apply_chat_template,
            task_manager=manager,
            random_seed=config.seed,
            numpy_random_seed=config.seed,
            torch_random_seed=config.seed,
            fewshot_random_seed=config.seed,
        )
        samples = results.pop("samples", {}) or {}
        results["model_name"] = lm.name
        results["model_source"] = "alignkit"
        results.setdefault("config", {})["model"] = lm.name
        dump = {"default": handle_non_serializable, "ensure_ascii": False}
        with (out / "samples.jsonl").open("w", encoding="utf-8") as file:
            for task, rows in samples.items():
                for row in rows:
                    file.write(json.dumps({"task": task, **row}, **dump) + "\n")  # type: ignore[arg-type]
        (out / "results.json").write_text(json.dumps(results, indent=2, **dump) + "\n")  # type: ignore[arg-type]
    finally:
        release_run_lock(out)
    log(make_table(results))
    log(f"results: {out / 'results.json'}; samples: {out / 'samples.jsonl'}")
    return results
