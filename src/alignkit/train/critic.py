"""PPO's critics: where they start (loaded, checked, saved), their clipped value loss, and the fused
rollout-and-update pass.

A critic (reward or cost) reads the rollout twice in the textbook step: once for the values GAE needs,
once more in its update. When each model takes exactly one optimizer step per rollout
(``update_epochs x samples / mini_batch_size == 1``) both reads see the same weights, so the update's
forward *is* the rollout forward: :func:`fused_value_loss` runs GAE on each micro-batch's own values
(GAE is row-local; no statistic crosses rows), writes the values and returns into the step's buffers,
and takes the value loss from the same forward. Its old values equal the new ones, so the clip is inactive
exactly as it is on the first pass of the two-read step; the gradient is the same, one forward less.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alignkit.config import ConfigError, check
from alignkit.data.collate import pad_right
from alignkit.data.render import IGNORE_INDEX
from alignkit.losses.advantages import ESTIMATORS, AdvantageInputs
from alignkit.losses.logprobs import label_mask
from alignkit.losses.ppo import ppo_value_loss
from alignkit.models.forward import media_inputs, supports_shared_prompt
from alignkit.models.lora import freeze_media_towers
from alignkit.models.value import load_critic
from alignkit.score.config import ScorerConfig
from alignkit.sections import ModelConfig, OnlineTrainerConfig
from alignkit.train.common import make_optimizer
from alignkit.train.online_trainer import disable_dropout
from alignkit.train.recorder import SavedModel
from alignkit.train.rollout import Rollout, shared_prompt_rows
from alignkit.train.timing import PhaseTimer
from alignkit.train.update import Trained, make_scheduler, token_weighted, update_on_rollout

GAE = ESTIMATORS["gae"]
"""PPO's advantage estimator: GAE over the KL-shaped token rewards and the critic's values."""

LossFn = Callable[[Any, dict[str, torch.Tensor], float], tuple[torch.Tensor, dict[str, float]]]
Share = Callable[[torch.Tensor, dict[str, torch.Tensor], str], torch.Tensor]


@dataclass
class CriticConfig:
    path: str | None = None
    """Where the critic starts: a score model folder or a causal LM (fresh zero head). None: the reward
    (cost) model when that scorer is a model, else the policy's weights with a fresh head."""
    lr: float = 5e-6
    """Critic learning rate (AdamW, same schedule as the policy)."""
    shared: bool = False
    """A value head on the policy's own backbone instead of a separate model (``models/value_heads.py``):
    one forward and backward serve actor and critic, and the rollout's values are read off the sampling
    loop, so a PPO step costs about what a GRPO step does. The head starts at zero and learns at the
    policy's rate; path and lr do not apply. Off by default: InstructGPT and Safe RLHF train separate
    critics, started from the reward (cost) model."""
    loss_coef: float = 0.1
    """With ``shared``: weight of this head's value loss in the policy's loss (TRL's ``vf_coef``)."""

    def validate(self, prefix: str) -> None:
        check(self.lr > 0, f"{prefix}lr", self.lr, "a positive number")
        check(self.loss_coef > 0, f"{prefix}loss_coef", self.loss_coef, "a positive number")
        check(
            not (self.shared and self.path),
            f"{prefix}path",
            self.path,
            "null when shared=true (a shared critic is a head on the policy, not a model of its own)",
        )


def check_same_vocabulary(critic: Any, actor: Any, key: str, path: str) -> None:
    """A critic reads the policy's token ids, so it must share the policy's vocabulary."""
    # a VLM's vocabulary is its language model's (``get_text_config``; a text config returns itself)
    sizes = (critic.config.get_text_config().vocab_size, actor.config.get_text_config().vocab_size)
    if sizes[0] != sizes[1]:
        raise ConfigError(
            f"{key}={path!r} has a vocabulary of {sizes[0]} tokens but the policy has {sizes[1]}: a critic "
            "must share the policy's tokenizer (set it to a score model trained on the policy's base)"
        )


def default_critic_path(critic: CriticConfig, scorer: ScorerConfig, policy_path: str) -> str:
    from alignkit.score.base import looks_like_function

    if critic.path:
        return critic.path
    return policy_path if looks_like_function(scorer.path) else scorer.path


Stream = tuple[CriticConfig, ScorerConfig, str]
"""A separate critic's stream: its config, the scorer whose score it values, its kind ('reward' or 'cost')."""


def load_separate_critics(
    streams: Mapping[str, Stream], actor: Any, model: ModelConfig, renderer: Any, trainer: OnlineTrainerConfig
) -> list[Any]:
    """Each separate critic and its optimizer, in stream order (``[critic, optimizer, ...]``, for
    ``accelerator.prepare``): started where :func:`default_critic_path` says, dropout off, a VLM's vision
    tower frozen as the policy's, and its vocabulary checked against the policy's."""
    kwargs = {"dtype": model.dtype, "trust_remote_code": model.trust_remote_code}
    models: list[Any] = []
    for critic_cfg, scorer_cfg, kind in streams.values():
        path = default_critic_path(critic_cfg, scorer_cfg, model.path)
        critic = disable_dropout(load_critic(path, renderer, kind, **kwargs))
        if model.freeze_vision:  # a VLM critic's tower keeps its features, as the policy's
            freeze_media_towers(critic)
        check_same_vocabulary(critic, actor, f"{'critic' if kind == 'reward' else 'cost_critic'}.path", path)
        models += [critic, make_optimizer(critic, dataclasses.replace(trainer, lr=critic_cfg.lr))]
    return models


def separate_critics(
    streams: Mapping[str, Stream],
    prepared: Sequence[Any],
    trainer: OnlineTrainerConfig,
    total_updates: int,
    loss: tuple[float, str, Share],
    renderer: Any,
) -> tuple[list[Trained], list[SavedModel]]:
    """The prepared critics (``[critic, optimizer, ...]`` as :func:`load_separate_critics` gave them) as
    models the update trains on their clipped value loss (``loss``: clip, aggregation, share), and how each
    is saved (``critics/<kind>``; a VLM critic's folder holds the processor too)."""
    trained, saved = [], []
    for i, (prefix, (_, _, kind)) in enumerate(streams.items()):
        model, optimizer = prepared[2 * i], prepared[2 * i + 1]
        scheduler = make_scheduler(optimizer, trainer, total_updates)
        trained.append(Trained(f"{prefix}value", model, optimizer, scheduler, value_loss(prefix, *loss)))
        saved.append(SavedModel(f"critics/{kind}", model, lambda m, path, _: m.save(renderer, path)))
    return trained, saved


SHARED_PROMPT_KEYS = (
    "position_ids",
    "segment_ids",
    "prompt_segment_ids",
    "score_index",
    "score_place",
    "labels",
)
"""What a critic reads of a shared-prompt batch besides its ids (``TokenValueModel.forward``'s ``layout``)."""


def critic_inputs(batch: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The keyword arguments of a separate critic's forward for a rollout micro-batch in either layout."""
    if "score_place" in batch:
        return {"input_ids": batch["input_ids"], "layout": {k: batch[k] for k in SHARED_PROMPT_KEYS}}
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], **media_inputs(batch)}


@torch.no_grad()
def critic_reads_shared_prompts(critic: Any) -> bool:
    """Whether a separate critic (``TokenValueModel``, before ``prepare``) gives shared-prompt rows the
    values it gives padded rows: its score model's attention takes the 4D mask (``supports_shared_prompt``),
    proved on two answers to one prompt (else its batches stay padded)."""
    score_model = getattr(critic, "score_model", None)
    if score_model is None or not supports_shared_prompt(score_model):
        return False
    device = score_model.get_input_embeddings().weight.device
    rows = [[3, 4, 5, 6, 7], [3, 4, 5, 8, 9, 10]]
    ids = pad_right(rows, 0)
    labels = pad_right([[IGNORE_INDEX] * 3 + r[3:] for r in rows], IGNORE_INDEX)
    lengths = torch.tensor([len(r) for r in rows])
    layout = shared_prompt_rows(ids, labels, lengths, torch.tensor([0, 0]))
    layout["labels"] = labels
    was_training = critic.training
    critic.eval()
    try:
        padded = critic(ids.to(device), pad_right([[1] * len(r) for r in rows], 0).to(device))
        shared = critic(**critic_inputs({k: v.to(device) for k, v in layout.items()}))
    finally:
        critic.train(was_training)
    mask = label_mask(labels).to(device)
    tol = 1e-4 if score_model.get_input_embeddings().weight.dtype == torch.float32 else 2e-2
    return torch.allclose(padded[mask].float(), shared[mask].float(), atol=tol, rtol=tol)


def value_loss(prefix: str, clip: float, aggregation: str, share: Share) -> LossFn:
    """The clipped value loss of one critic against the step's ``{prefix}values`` and ``{prefix}returns``."""

    def loss_fn(model: Any, batch: dict[str, torch.Tensor], normaliser: float) -> tuple[torch.Tensor, dict]:
        values = model(**critic_inputs(batch))
        return stream_value_loss(prefix, values, batch, clip, aggregation, share, normaliser)

    return loss_fn


@dataclass
class CriticEstimates:
    """(B, T) values, advantages and returns of one critic's stream (filled in place by a fused pass)."""

    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor

    @classmethod
    def like(cls, shape: torch.Size) -> CriticEstimates:
        """Zeros of the rollout's shape, for a fused pass to fill."""
        return cls(torch.zeros(shape), torch.zeros(shape), torch.zeros(shape))


def fused_value_loss(
    prefix: str,
    clip: float,
    aggregation: str,
    share: Share,
    gamma: float,
    lam: float,
    buffers: CriticEstimates,
) -> LossFn:
    """The value loss whose forward also supplies the rollout's values (one optimizer step per rollout).

    The micro-batch carries ``{prefix}token_rewards`` and ``rollout_index``; GAE runs on its rows with
    the values just computed (detached), and values, advantages and returns go to ``buffers``.
    """

    def loss_fn(model: Any, batch: dict[str, torch.Tensor], normaliser: float) -> tuple[torch.Tensor, dict]:
        values = model(**critic_inputs(batch))
        mask = label_mask(batch["labels"])
        rollout_values = values.detach().float()
        own = gae(batch[f"{prefix}token_rewards"], rollout_values, mask, gamma, lam)
        rows, width = batch["rollout_index"].cpu(), values.shape[1]
        buffers.values[rows, :width] = torch.where(mask, rollout_values, 0.0).cpu()
        buffers.advantages[rows, :width] = own.advantages.cpu()
        buffers.returns[rows, :width] = own.returns.cpu()
        return value_loss_and_metrics(
            prefix, values, rollout_values, own.returns, batch, clip, aggregation, share, normaliser
        )

    return loss_fn


def fused_critic_update(
    accelerator: Any,
    critics: dict[str, Trained],
    losses: dict[str, tuple[float, str, Share, float, float]],
    rollout: Rollout,
    token_rewards: dict[str, torch.Tensor],
    trainer: OnlineTrainerConfig,
    step: int,
    timer: PhaseTimer,
    shared_prompt: bool = False,
) -> tuple[dict[str, CriticEstimates], dict[str, float]]:
    """The separate critics' one optimizer step on a rollout, whose forwards also supply its values
    (:func:`fused_value_loss`; ``losses[prefix]`` = its clip, aggregation, share, gamma and lambda):
    each stream's values, advantages and returns, and the update's metrics. ``shared_prompt``: micro-batches
    lay each prompt out once (every critic passed :func:`critic_reads_shared_prompts`)."""
    device = accelerator.device
    buffers = {prefix: CriticEstimates.like(rollout.input_ids.shape) for prefix in critics}
    fused = [
        dataclasses.replace(item, loss_fn=fused_value_loss(prefix, *losses[prefix], buffers[prefix]))
        for prefix, item in critics.items()
    ]

    per_token = {f"{p}token_rewards": token_rewards[p] for p in critics}

    def rows(chunk: list[int]) -> dict[str, torch.Tensor]:
        batch = rollout.rows(chunk, device, shared_prompt, per_token)
        batch["rollout_index"] = torch.tensor(chunk, device=device)
        return batch

    record = update_on_rollout(accelerator, fused, len(rollout), trainer, rows, step, timer, shared_prompt)
    return buffers, record


def gae(
    token_rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> CriticEstimates:
    """GAE over one stream's (B, T) KL-shaped token rewards and a critic's rollout values."""
    scores = token_rewards.new_zeros(token_rewards.shape[0])  # GAE reads the token rewards only
    advantages, returns = GAE(AdvantageInputs(scores, token_rewards, mask, 1, values, gamma, lam))
    assert returns is not None
    return CriticEstimates(values, advantages, returns)


def value_loss_and_metrics(
    prefix: str,
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    batch: dict[str, torch.Tensor],
    clip: float,
    aggregation: str,
    share: Share,
    normaliser: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    mask = label_mask(batch["labels"])
    out = ppo_value_loss(values, old_values, returns, mask, clip, normaliser, aggregation)
    metrics = token_weighted({f"{prefix}value/clipfrac": out.clipfrac}, mask)
    loss = share(out.loss, batch, aggregation)
    metrics[f"{prefix}value/loss"] = float(loss.detach()) * normaliser
    return loss, metrics


def stream_value_loss(
    prefix: str,
    values: torch.Tensor,
    batch: dict[str, torch.Tensor],
    clip: float,
    aggregation: str,
    share: Share,
    normaliser: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped value loss of ``values`` against the stream's rollout values and returns, which the
    micro-batch carries as ``{prefix}values`` and ``{prefix}returns``."""
    old, returns = batch[f"{prefix}values"], batch[f"{prefix}returns"]
    return value_loss_and_metrics(prefix, values, old, returns, batch, clip, aggregation, share, normaliser)


def shared_value_loss(
    prefixes: list[str],
    coefs: list[float],
    values: torch.Tensor,
    batch: dict[str, torch.Tensor],
    clip: float,
    aggregation: str,
    share: Share,
    normaliser: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The shared critics' part of the policy's loss: ``sum_i coef_i x`` the clipped value loss of head
    ``i`` (``values[..., i]``, read in the policy's forward) against its stream's rollout values and returns."""
    total = values.new_zeros(())
    metrics: dict[str, float] = {}
    for i, (prefix, coef) in enumerate(zip(prefixes, coefs, strict=True)):
        loss, own = stream_value_loss(prefix, values[..., i], batch, clip, aggregation, share, normaliser)
        total = total + coef * loss
        metrics.update(own)
    return total, metrics


VALUE_HEADS_FILE = "value_heads.safetensors"


def save_value_heads(heads: torch.nn.Module, folder: Path) -> None:
    """A shared critic's heads (``<stream>value.weight`` / ``.bias``) beside the run's other critics; the
    policy's own folder stays a plain causal LM."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in heads.state_dict().items()}
    save_file(state, str(folder / VALUE_HEADS_FILE))
