"""Aligner and Stream Aligner correctors: SFT of μ(correction | question, answer) (arXiv 2402.02416, 2501.05336).

No loop of its own: a corrector is a causal LM fine-tuned on one-turn conversations whose user turn is the
corrector prompt filled with (question, answer) — or (question, accepted prefix, last sentence) for Stream
Aligner — and whose assistant turn is the correction, so SFT's loss is exactly Aligner's
−log μ(y_c | y_o, x) on the correction tokens. The data templates ``aligner-chat`` and
``stream-aligner-chat`` do the rendering (their ``prompt`` option picks the layout a checkpoint is trained
with and ``AlignerGenerator`` must use at inference; ``identity: true`` gives the paper's warm-up data).
These configs only change SFT's defaults, so ``alignkit train aligner`` reads like ``alignkit train sft``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alignkit.sections import DataConfig, DatasetConfig, RunConfig, TrainerConfig
from alignkit.train.sft import SFTConfig
from alignkit.train.sft import train as train


@dataclass
class AlignerConfig(SFTConfig):
    data: DataConfig = field(
        default_factory=lambda: DataConfig(
            train=DatasetConfig(source="toyworld://data/corrections", template="aligner-chat")
        )
    )
    """Correction rows {question, answer, correction} read as corrector conversations (template aligner-chat)."""
    trainer: TrainerConfig = field(
        default_factory=lambda: TrainerConfig(lr=2e-5, lr_scheduler="cosine", warmup_ratio=0.03)
    )
    """The optimisation loop (Aligner's lr 2e-5, cosine, warm-up 0.03; Stream Aligner keeps it)."""
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/aligner"))
    """Where results go."""


@dataclass
class StreamAlignerConfig(AlignerConfig):
    data: DataConfig = field(
        default_factory=lambda: DataConfig(
            train=DatasetConfig(source="toyworld://data/stream_corrections", template="stream-aligner-chat")
        )
    )
    """Sentence rows {question, prefix, last, correction} read as corrector conversations."""
    run: RunConfig = field(default_factory=lambda: RunConfig(output_dir="runs/stream-aligner"))
    """Where results go."""
