"""Value heads on the policy's own backbone: PPO's shared critic (``critic.shared: true``).

A separate critic doubles PPO's training compute: its forward and backward cost what the policy's do.
A value head on the policy reads the hidden states the LM head already reads, so one forward and one
backward serve the actor and the critic (the layout of TRL's original ``AutoModelForCausalLMWithValueHead``),
and the values of a rollout can be read off the sampling loop like its log-probs (``HFGenerator(readout=)``).

The heads are a submodule of the policy so that DDP, checkpoints and the optimizer see them as part of
it; they are applied inside the policy's forward (on the hidden states the output head receives), which
is where DDP expects every parameter to be used. Saving the policy leaves them out (:func:`without_heads`):
``final/`` stays a plain causal LM; the heads are written beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

ATTRIBUTE = "alignkit_value_heads"
"""Name of the heads' ``ModuleDict`` on the policy (and the prefix of their state-dict keys)."""


def attach_value_heads(model: torch.nn.Module, names: Sequence[str]) -> torch.nn.ModuleDict:
    """One zero-initialised ``Linear(hidden, 1)`` per name on ``model`` (values start at 0, so the first
    advantages are the rewards themselves rather than noise), in the dtype of its output head."""
    from alignkit.models.forward import output_head, unwrap

    head = output_head(model)
    weight = getattr(head, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError(
            f"{type(unwrap(model)).__name__} has no linear output head to read hidden states from; "
            "a shared critic needs one (set critic.shared=false to train a separate critic)"
        )
    hidden = weight.shape[1]
    heads = torch.nn.ModuleDict({name: torch.nn.Linear(hidden, 1) for name in names})
    for linear in heads.values():
        torch.nn.init.zeros_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
    heads.to(device=weight.device, dtype=weight.dtype)
    unwrap(model).add_module(ATTRIBUTE, heads)
    return heads


def value_heads(model: torch.nn.Module) -> torch.nn.ModuleDict | None:
    """The heads attached to ``model`` (through DDP / compile wrappers), or None."""
    from alignkit.models.forward import unwrap

    heads = getattr(unwrap(model), ATTRIBUTE, None)
    return heads if isinstance(heads, torch.nn.ModuleDict) else None


def read_values(heads: torch.nn.ModuleDict, hidden: torch.Tensor) -> torch.Tensor:
    """``(..., k)`` float32 values of hidden states ``(..., H)``, one column per head in order."""
    return torch.cat([head(hidden) for head in heads.values()], dim=-1).float()


def without_heads(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A state dict without the value heads' tensors (what the saved causal LM holds)."""
    return {k: v for k, v in state_dict.items() if not k.startswith(ATTRIBUTE) and f".{ATTRIBUTE}." not in k}
