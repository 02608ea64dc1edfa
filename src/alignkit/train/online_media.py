"""Online RL with pictures in the prompt: what a vision-language policy's run needs beyond a text one.

A VLM's prompts are read with their media (``read_records(..., media=True)``), rendered through the
model's processor (image tokens expanded), sampled by ``HFGenerator(processor=)`` with the pictures in
the prefill, and every later forward over a rollout row (old log-probs, reference, the update, a shared
critic's values) gets that row's ``pixel_values`` from ``Rollout.rows``. A text model takes none of
this: its renderer is its tokenizer and its rollouts carry no media.

What does not work yet is refused here, before the run folder is made, with the key to change:

- a **separate critic** (``critic.shared: false``): a critic is a score model read at every token, and
  score heads on VLMs are not built yet; a shared critic (value heads on the policy) reads the hidden
  states the policy's own forward computes from the pictures, so it needs nothing more;
- **vLLM** sampling (``rollout.backend=vllm``): the engine is given token ids only, no pictures.
"""

from __future__ import annotations

from typing import Any

from alignkit.config import ConfigError


def check_multimodal_online(config: Any, multimodal: bool) -> None:
    """Refuse what a vision-language policy cannot do online yet, naming the config key to change."""
    if not multimodal:
        return
    if config.rollout.backend == "vllm":
        raise ConfigError(
            "rollout.backend=vllm samples from token ids only and cannot see the prompts' pictures; "
            "with a vision-language model.path use rollout.backend=hf"
        )
    critics = ["critic"] if hasattr(config, "critic") else []
    if getattr(config, "cost", None) is not None and hasattr(config, "cost_critic"):
        critics.append("cost_critic")
    for name in critics:
        if not getattr(config, name).shared:
            raise ConfigError(
                f"{name}.shared=false trains a separate critic, a score model, which a vision-language "
                f"model.path cannot have yet (no score head on VLMs); set {name}.shared=true (a value "
                "head on the policy, which reads the pictures through the policy's own forward)"
            )
