"""Online RL with pictures in the prompt: what a vision-language policy's run needs beyond a text one.

A VLM's prompts are read with their media (``read_records(..., media=True)``), rendered through the
model's processor (image tokens expanded), sampled by ``HFGenerator(processor=)`` with the pictures in
the prefill, and every later forward over a rollout row (old log-probs, reference, the update, a shared
critic's values, a separate critic's values and update) gets that row's ``pixel_values`` from
``Rollout.rows``. A separate critic on a VLM is a ``models/vlm_score.py`` score model read at every token
(``models/value.TokenValueModel``), whose forward passes the rows' media to its vision tower. A text model
takes none of this: its renderer is its tokenizer and its rollouts carry no media.

What does not work yet is refused here, before the run folder is made, with the key to change:

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
