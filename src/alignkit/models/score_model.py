"""Score models (reward and cost): a causal-LM backbone plus a bias-free linear head read at one token.

The score of ``(x, y)`` is ``w . h_T`` where ``h_T`` is the backbone's final hidden state at the
response's last labelled token: for a chat template that is the token closing the assistant turn
(``<|im_end|>``), i.e. the point where the policy stops generating. ChatML-style templates add a
newline *after* that token; it is scaffolding, not response, and a PPO rollout ends before it, so a
model trained to read the newline would be read at a different token at PPO time.

How the head is read, and why the saved model is a plain Hugging Face class:

- ``score_example`` cuts every sequence right after its last labelled token. A right-padded row then
  ends at exactly the token we want, so the ``*ForSequenceClassification`` classes' own pooling
  ("rightmost token that is not ``pad_token_id``") lands on it *by construction*. Training, the
  ``Scorer`` and anyone loading ``final/`` with ``AutoModelForSequenceClassification`` therefore run
  the same forward and get the same scores; there is no custom pooling code to keep in sync, and DDP
  sees an ordinary forward.
- That needs ``config.pad_token_id`` to differ from the closing token. Padding positions are masked
  out of attention, so *which* id pads a row is free; ``score_pad_token_id`` keeps the tokenizer's pad
  when it is distinct and otherwise (``pad = eos``, as ``load_tokenizer`` sets for Llama-3) picks
  another special token, and ``collate_scores`` refuses a row that would break the rule.
- ``config.score_kind`` and ``config.score_convention`` record what the number means (saved in
  ``config.json``), so a cost model cannot be mistaken for a reward model downstream.
- **A vision-language model** takes the same path: ``models/vlm_score.py`` registers a
  ``*ForSequenceClassification`` class for its family, rows are rendered through its processor (the
  ``renderer``: a processor or a tokenizer, as ``data/render.py`` takes), an example keeps its pictures'
  tensors, and ``collate_scores`` / ``sequence_scores`` hand them to the forward.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from alignkit.data.collate import pad_right
from alignkit.data.processor import (
    MEDIA_KEYS,
    check_media_fits,
    collate_media,
    media_token_ids,
    text_tokenizer,
)
from alignkit.data.render import IGNORE_INDEX, TokenizedExample, chat_dicts, render_response
from alignkit.models.vlm_score import register_vlm_classifier, set_pad_token_id

ScoreKind = Literal["reward", "cost"]
SCORE_CONVENTIONS: dict[str, str] = {
    "reward": "higher is better: Bradley-Terry score of helpfulness (chosen > rejected)",
    "cost": "c > 0 means unsafe, c < 0 safe; higher is more harmful (Safe RLHF cost model)",
}
"""What a score of each kind means; written into the saved config as ``score_convention``."""


def closing_token_id(tokenizer: Any) -> int:
    """The id that ends a rendered response (the last labelled token of a probe turn)."""
    tokenizer = text_tokenizer(tokenizer)
    probe = render_response(
        tokenizer, [{"role": "user", "content": "hi"}], [{"role": "assistant", "content": "hi"}], 10**6
    )
    return probe.input_ids[last_labelled_index(probe.labels)]


def score_pad_token_id(tokenizer: Any) -> int:
    """A padding id that never ends a response, so last-non-pad pooling finds the closing token.

    ``tokenizer`` may be a VLM's processor: its image (audio, video) tokens are never padding either, as the
    model counts them against the pictures it is given."""
    closing = closing_token_id(tokenizer)
    excluded = {closing, *media_token_ids(tokenizer)}
    tokenizer = text_tokenizer(tokenizer)
    candidates = [tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.unk_token_id]
    candidates += list(getattr(tokenizer, "all_special_ids", []))
    for candidate in candidates:
        if candidate is not None and candidate not in excluded:
            return int(candidate)
    raise ValueError(
        f"the tokenizer has no special token other than the one closing a response (id {closing}) to pad "
        "score-model batches with; add a pad token to the tokenizer"
    )


def new_score_model(
    path: str,
    tokenizer: Any,
    kind: ScoreKind,
    *,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    quantize: str = "none",
) -> Any:
    """A score model on the backbone of checkpoint ``path`` (causal LM or score model), head freshly set up.

    ``AutoModelForSequenceClassification`` keeps the backbone weights, drops the LM head and adds the
    bias-free ``score`` layer (``num_labels=1``); that is the class ``final/`` reloads as. A VLM gets the
    class ``register_vlm_classifier`` builds for its family. ``tokenizer``: the run's tokenizer or processor.
    """
    from transformers import AutoModelForSequenceClassification

    from alignkit.models.loading import resolve_path
    from alignkit.models.precision import DTYPES, quantization_kwargs

    register_vlm_classifier(path, trust_remote_code=trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_path(path),
        num_labels=1,
        dtype=DTYPES[dtype],
        trust_remote_code=trust_remote_code,
        **quantization_kwargs(quantize, dtype),
    )
    set_score_kind(model.config, kind, score_pad_token_id(tokenizer))
    return model


def set_score_kind(config: Any, kind: ScoreKind, pad_token_id: int) -> None:
    """Record what the score means (and how rows are padded) in a model config."""
    if kind not in SCORE_CONVENTIONS:
        raise ValueError(f"score kind must be one of {sorted(SCORE_CONVENTIONS)}, got {kind!r}")
    set_pad_token_id(config, pad_token_id)
    config.score_kind = kind
    config.score_convention = SCORE_CONVENTIONS[kind]
    config.id2label = {0: kind}
    config.label2id = {kind: 0}


def check_score_model(path: str, key: str, kind: str | None = None, fix: str = "") -> None:
    """Refuse, before any work, a ``path`` that is no alignkit score model, or one of the wrong ``kind``.

    Reads only the local ``config.json`` (``score_kind``, written by ``set_score_kind``), so a cost model
    given where a reward model belongs is caught before a run folder exists; a hub score model's kind is
    checked when it loads. ``fix`` is appended to a wrong-kind message (which key the model belongs in).
    """
    from alignkit.config import ConfigError
    from alignkit.models.loading import check_model_source, resolve_path

    check_model_source(path, key, what="score model")
    config = Path(resolve_path(path)).expanduser() / "config.json"
    if not config.is_file():
        return
    try:
        saved = json.loads(config.read_text(encoding="utf-8")).get("score_kind")
    except (ValueError, AttributeError):
        raise ConfigError(
            f"{key}={path!r}: {config} is not a JSON object; the model folder is damaged"
        ) from None
    if saved not in SCORE_CONVENTIONS:
        raise ConfigError(
            f"{key}={path!r} is not an alignkit reward or cost model (its config.json has no score_kind): "
            "give the final/ folder of `alignkit train reward` or `alignkit train cost`"
        )
    if kind is not None and saved != kind:
        raise ConfigError(f"{key}={path!r} is a {saved} model, but a {kind} model is needed here{fix}")


def load_score_model(path: str, *, dtype: str = "float32", trust_remote_code: bool = False) -> Any:
    """A saved score model (``final/`` of ``alignkit train reward|cost``), in eval mode."""
    from transformers import AutoModelForSequenceClassification

    from alignkit.models.loading import resolve_path
    from alignkit.models.precision import DTYPES

    register_vlm_classifier(path, trust_remote_code=trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_path(path), dtype=DTYPES[dtype], trust_remote_code=trust_remote_code
    )
    if getattr(model.config, "score_kind", None) not in SCORE_CONVENTIONS:
        raise ValueError(
            f"{path!r} is not an alignkit score model (its config has no score_kind); "
            "train one with `alignkit train reward` or `alignkit train cost`"
        )
    return model.eval()


def last_labelled_index(labels: Sequence[int]) -> int:
    """Index of the last token that carries a label (-1 when none does)."""
    return max((i for i, label in enumerate(labels) if label != IGNORE_INDEX), default=-1)


def labelled_runs(labels: Sequence[int]) -> int:
    """How many separate runs of labelled tokens ``labels`` holds (one per assistant turn kept)."""
    flags = [label != IGNORE_INDEX for label in labels]
    return sum(f and (i == 0 or not flags[i - 1]) for i, f in enumerate(flags))


def score_example(
    tokenizer: Any, prompt: Sequence[Any], response: Sequence[Any], max_length: int
) -> TokenizedExample | None:
    """``prompt`` + ``response`` cut right after the response's last labelled token; None when no token
    of the response's *last* assistant turn fits in ``max_length``.

    A response of several turns (an InterMT pair at ``level=global``: the shared history's answers, then
    the judged turn) labels every assistant turn. Were its last turn cut off, the last labelled token
    would close an earlier, shared turn: both sides of a pair would be scored at the same token of the
    same text, a tie the loss cannot move, so the example is refused like one with nothing labelled.
    With a processor the example keeps its pictures' tensors; a cut that would leave some of a picture's
    tokens out (a picture inside the response) is refused, as the count must match the pixels."""
    example = render_response(tokenizer, prompt, response, max_length)
    end = last_labelled_index(example.labels) + 1
    turns = sum(d["role"] == "assistant" for d in chat_dicts(response))
    if end == 0 or (example.truncated and labelled_runs(example.labels) < turns):
        return None
    if example.media:
        check_media_fits(tokenizer, example.input_ids, end)
    return TokenizedExample(example.input_ids[:end], example.labels[:end], example.truncated, example.media)


def collate_scores(examples: Sequence[TokenizedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask`` (B, T); every row ends at its scored token. Media
    tensors of the examples (``pixel_values`` ...) are concatenated in row order (``MEDIA_KEYS``)."""
    clash = next((i for i, e in enumerate(examples) if e.input_ids[-1] == pad_token_id), None)
    if clash is not None:
        raise ValueError(
            f"row {clash} ends with the padding id {pad_token_id}, so last-non-pad pooling would miss its "
            "scored token; use a pad token that never ends a response (see score_pad_token_id)"
        )
    return {
        "input_ids": pad_right([e.input_ids for e in examples], pad_token_id),
        "attention_mask": pad_right([[1] * len(e.input_ids) for e in examples], 0),
        **collate_media([e.media for e in examples]),
    }


def media_inputs(batch: Mapping[str, torch.Tensor], model: Any = None) -> dict[str, torch.Tensor]:
    """The media tensors of a collated batch (none for text), as the forward takes them: floating ones
    (pixels) in ``model``'s dtype when given, as a bf16 vision tower cannot take float32 pixels."""
    floats = (p.dtype for p in model.parameters() if p.is_floating_point()) if model is not None else ()
    dtype = next(iter(floats), None)
    return {
        k: batch[k].to(dtype) if dtype is not None and batch[k].is_floating_point() else batch[k]
        for k in MEDIA_KEYS
        if k in batch
    }


def sequence_scores(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, **media: torch.Tensor
) -> torch.Tensor:
    """(B,) scores: the model's own forward, which pools at each row's last non-pad (= scored) token.
    ``media``: a VLM batch's ``pixel_values`` (and the like), passed to the forward."""
    return model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **media).logits.squeeze(
        -1
    )
