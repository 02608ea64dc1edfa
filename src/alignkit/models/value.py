"""Critics for PPO: a score model's backbone and head read at *every* position (a value head).

A reward or cost model reads its head at the response's last token; a critic needs a value per token.
The same weights serve both, which is why Safe RLHF initialises the reward critic from the reward model
and the cost critic from the cost model: the critic starts out with the score model's reading of each
prefix (its value of the last action is the head read just before the closing token).

``TokenValueModel`` wraps the score model so accelerate/DDP see one ``forward`` (calling a wrapped
model's submodules directly would bypass DDP's gradient synchronisation), and saves as the plain
score-model class, so a saved critic reloads with ``AutoModelForSequenceClassification``.

On a vision-language model the score model is ``models/vlm_score.py``'s ``<Family>ForSequenceClassification``
and its ``base_model`` takes the rows' media tensors (``pixel_values`` ...): ``forward`` passes them through,
as the policy's forwards over rollout rows do (``Rollout.rows``), so the critic's value of a prefix depends on
the picture the prompt shows. A text critic is given none and computes exactly what it did before.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch


class TokenValueModel(torch.nn.Module):
    """Per-token values from a ``*ForSequenceClassification`` model with ``num_labels=1``."""

    def __init__(self, score_model: Any) -> None:
        super().__init__()
        head = getattr(score_model, "score", None)
        if not isinstance(head, torch.nn.Linear) or head.out_features != 1:
            raise ValueError(
                f"{type(score_model).__name__} has no one-output linear 'score' head to read values from; "
                "use a *ForSequenceClassification model with num_labels=1 (e.g. a reward model)"
            )
        self.score_model = score_model

    @property
    def config(self) -> Any:
        return self.score_model.config

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        layout: Mapping[str, torch.Tensor] | None = None,
        **media: torch.Tensor,
    ) -> torch.Tensor:
        """(B, T) values aligned with *actions*: ``values[:, t]`` is the estimate at the state where token
        ``t`` is chosen (after tokens < t), i.e. the head read at position ``t - 1``. Column 0 is 0.
        ``media``: a VLM batch's media tensors in row order (``models/forward.MEDIA_KEYS``, e.g. from
        ``Rollout.rows``); floating ones are cast to the model's dtype (a bf16 tower takes no float32 pixels).

        ``layout``: a shared-prompt batch (``Rollout.rows(shared_prompt=True)``: ``position_ids``,
        ``segment_ids``, ``prompt_segment_ids``, ``score_index``, ``score_place`` and the padded ``labels``):
        ``input_ids`` are its rows, and the values come back ``(B, T)`` in the layout of ``labels``, the head
        read only where a labelled token is chosen (0 elsewhere: GAE and the value loss read no other)."""
        if layout is not None:
            return self._shared_prompt_values(input_ids, layout)
        dtype = self.score_model.score.weight.dtype
        media = {k: v.to(dtype) if v.is_floating_point() else v for k, v in media.items()}
        hidden = self.score_model.base_model(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **media
        ).last_hidden_state  # (B, T, H)
        values = self.score_model.score(hidden).squeeze(-1).float()  # (B, T): value after reading token t
        return torch.cat([values.new_zeros(values.shape[0], 1), values[:, :-1]], dim=1)

    def _shared_prompt_values(
        self, input_ids: torch.Tensor, layout: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        from alignkit.models.forward import shared_prompt_mask

        mask = shared_prompt_mask(self.score_model, layout["segment_ids"], layout["prompt_segment_ids"])
        hidden = self.score_model.base_model(
            input_ids=input_ids, attention_mask=mask, position_ids=layout["position_ids"], use_cache=False
        ).last_hidden_state
        chosen = hidden.reshape(-1, hidden.shape[-1])[layout["score_index"]]  # (N, H): states choosing tokens
        values = self.score_model.score(chosen).squeeze(-1).float()
        labels = layout["labels"]
        return values.new_zeros(labels.numel()).index_put((layout["score_place"],), values).view(labels.shape)

    def save(self, tokenizer: Any, out_dir: Path) -> None:
        """The score model and ``tokenizer`` (a VLM's processor: tokenizer and image processor) beside it."""
        self.score_model.save_pretrained(out_dir, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)


def load_critic(
    path: str, tokenizer: Any, kind: str, *, dtype: str = "float32", trust_remote_code: bool = False
) -> TokenValueModel:
    """A critic from a score model folder (its head kept) or any causal LM (a fresh zero head).

    A fresh head starts at 0 so early advantages are the rewards themselves rather than noise.
    """
    from alignkit.models.loading import resolve_path
    from alignkit.models.score_model import load_score_model, new_score_model

    resolved = resolve_path(path)
    config_file = Path(resolved) / "config.json"
    is_score_model = config_file.exists() and '"score_kind"' in config_file.read_text()
    if is_score_model:
        model = load_score_model(resolved, dtype=dtype, trust_remote_code=trust_remote_code)
    else:
        model = new_score_model(resolved, tokenizer, kind, dtype=dtype, trust_remote_code=trust_remote_code)  # type: ignore[arg-type]
        torch.nn.init.zeros_(model.score.weight)
    return TokenValueModel(model.train())
