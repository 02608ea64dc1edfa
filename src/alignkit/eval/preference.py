"""Held-out preference accuracy of a trained judge (``alignkit eval preference``).

For each kind of judge, an evaluator scores every held-out pair and returns metrics plus the score
distributions worth looking at; ``run`` writes them as ``report.json`` and ``scores.png`` in a run
folder, and prints them. Every check (run folder, model path and kind, data) comes before the folder is
made, and the evaluation itself runs before it too, so a failed evaluation leaves nothing behind. Kinds:

- ``reward``: accuracy = fraction of pairs with ``s(chosen) > s(rejected)`` (SafetyPreference pairs
  are ranked by helpfulness); the plot is the histogram of margins ``s_w - s_l``.
- ``cost``: pairwise accuracy (``c(less safe) > c(safer)``) and sign accuracy (``c > 0`` exactly for
  the responses labelled unsafe); the plot is the cost histogram of safe vs unsafe responses.

Extension point: a new kind (e.g. a DPO policy's implicit reward ``beta * log pi/pi_ref``) is one
function with the ``Evaluator`` signature registered in ``EVALUATORS`` and its name added to
``PreferenceEvalConfig.kind``; it may add its own config fields (reference model, beta).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from alignkit.config import check
from alignkit.score.pairs import PairSpec, preference_pairs, safety_pairs
from alignkit.sections import DatasetConfig, ModelConfig, OutputConfig


@dataclass
class PreferenceEvalConfig:
    model: ModelConfig = field(default_factory=lambda: ModelConfig(path=""))
    """The judge to evaluate: the final/ folder of `alignkit train reward` or `alignkit train cost`."""
    kind: Literal["reward", "cost", "dpo"] = "reward"
    """What the model is: a reward model (helpfulness ranking), a cost model (safety ranking and signs),
    or a DPO-trained policy (ranking by its implicit reward beta * (rho_w - rho_l))."""
    reference: str | None = None
    """kind=dpo: the reference policy pi_ref DPO started from (e.g. the SFT final/); null: log-prob accuracy only."""
    beta: float = 0.1
    """kind=dpo: the beta the policy was trained with (scales the implicit reward)."""
    label: Literal["helpfulness", "safety"] = "helpfulness"
    """kind=dpo: which label of PKU-SafeRLHF-style records decides the chosen response."""
    data: DatasetConfig = field(
        default_factory=lambda: DatasetConfig(
            source="toyworld://data/safe_pref", template="pku-saferlhf", split="test"
        )
    )
    """Held-out pairs: Preference or SafetyPreference records (SafetyPreference for a cost model)."""
    max_length: int = 512
    """Longest tokenized prompt + response; use the value the model was trained with."""
    batch_size: int = 32
    """Rows per forward pass."""
    run: OutputConfig = field(default_factory=lambda: OutputConfig(output_dir="runs/eval-preference"))
    """Where results go (config.yaml, report.json, scores.png): the same run.* keys as training."""

    def validate(self, prefix: str) -> None:
        check(bool(self.model.path), f"{prefix}model.path", self.model.path, "the folder of a trained model")
        check(self.max_length > 0, f"{prefix}max_length", self.max_length, "a positive integer")
        check(self.batch_size > 0, f"{prefix}batch_size", self.batch_size, "a positive integer")


@dataclass
class EvalResult:
    metrics: dict[str, float]
    """Scalar results, written to report.json."""
    histograms: dict[str, list[float]]
    """Named score samples drawn as overlaid histograms in scores.png."""
    xlabel: str
    """What the histograms' x axis is."""


Evaluator = Callable[[PreferenceEvalConfig, Sequence[Any]], EvalResult]


def _scorer(config: PreferenceEvalConfig) -> Any:
    from alignkit.score.score_model import ScoreModelScorer

    scorer = ScoreModelScorer(
        config.model.path,
        dtype=config.model.dtype,
        max_length=config.max_length,
        batch_size=config.batch_size,
        trust_remote_code=config.model.trust_remote_code,
    )
    if scorer.kind != config.kind:
        raise ValueError(
            f"{config.model.path!r} is a {scorer.kind} model, but kind={config.kind!r} was asked"
        )
    return scorer


def _score_pairs(scorer: Any, pairs: Sequence[PairSpec]) -> tuple[torch.Tensor, torch.Tensor]:
    prompts = [p.prompt for p in pairs]
    return scorer.score(prompts, [p.first for p in pairs]), scorer.score(prompts, [p.second for p in pairs])


def evaluate_reward(config: PreferenceEvalConfig, records: Sequence[Any]) -> EvalResult:
    chosen, rejected = _score_pairs(_scorer(config), preference_pairs(records, config.data.source))
    margins = chosen - rejected
    return EvalResult(
        metrics={
            "rewards/accuracy": (margins > 0).float().mean().item(),
            "rewards/chosen": chosen.mean().item(),
            "rewards/rejected": rejected.mean().item(),
            "rewards/margin": margins.mean().item(),
            "n_pairs": float(len(margins)),
        },
        histograms={"s(chosen) - s(rejected)": margins.tolist()},
        xlabel="reward margin",
    )


def evaluate_cost(config: PreferenceEvalConfig, records: Sequence[Any]) -> EvalResult:
    pairs = safety_pairs(records, config.data.source)
    unsafe, safe = _score_pairs(_scorer(config), pairs)
    costs = torch.cat([unsafe, safe])  # (2N,)
    signs = torch.tensor([p.first_sign for p in pairs] + [p.second_sign for p in pairs])  # +1 unsafe
    labelled_unsafe = signs > 0
    return EvalResult(
        metrics={
            "cost/accuracy": (unsafe > safe).float().mean().item(),
            "cost/sign_accuracy": ((costs > 0) == labelled_unsafe).float().mean().item(),
            "cost/unsafe_recall": (costs[labelled_unsafe] > 0).float().mean().item(),
            "cost/safe_recall": (costs[~labelled_unsafe] <= 0).float().mean().item(),
            "cost/unsafe": unsafe.mean().item(),
            "cost/safe": safe.mean().item(),
            "n_pairs": float(len(pairs)),
            "n_unsafe_responses": float(labelled_unsafe.sum()),
        },
        histograms={
            "labelled safe": costs[~labelled_unsafe].tolist(),
            "labelled unsafe": costs[labelled_unsafe].tolist(),
        },
        xlabel="cost (c > 0 means unsafe)",
    )


def evaluate_dpo(config: PreferenceEvalConfig, records: Sequence[Any]) -> EvalResult:
    """A DPO policy as its own reward model (alignkit.eval.dpo_eval), with per-pair margins plotted."""
    from alignkit.data.pair_examples import tokenize_pairs
    from alignkit.eval.dpo_eval import pair_logps, preference_metrics
    from alignkit.models.loading import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(config.model.path, trust_remote_code=config.model.trust_remote_code)
    examples, _, _ = tokenize_pairs(records, tokenizer, config.max_length, config.label)
    pad = tokenizer.pad_token_id

    def logps_of(path: str) -> Any:
        model = load_causal_lm(
            path, dtype=config.model.dtype, trust_remote_code=config.model.trust_remote_code
        )
        return pair_logps(model, examples, pad, batch_size=config.batch_size)

    policy = logps_of(config.model.path)
    reference = logps_of(config.reference) if config.reference else None
    histograms = {"log pi(y_w) - log pi(y_l)": (policy.chosen - policy.rejected).tolist()}
    if reference is not None:
        margins = config.beta * ((policy.chosen - reference.chosen) - (policy.rejected - reference.rejected))
        histograms = {"beta * (rho_w - rho_l)": margins.tolist()}
    return EvalResult(
        metrics=preference_metrics(policy, reference, config.beta),
        histograms=histograms,
        xlabel="implicit reward margin" if reference is not None else "log-prob margin",
    )


EVALUATORS: dict[str, Evaluator] = {"reward": evaluate_reward, "cost": evaluate_cost, "dpo": evaluate_dpo}
"""kind -> evaluator; the extension point for new kinds of judges (see the module docstring)."""


def plot_histograms(histograms: Mapping[str, list[float]], xlabel: str, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for name, values in histograms.items():
        if values:
            ax.hist(values, bins=40, alpha=0.6, label=f"{name} (n={len(values)})")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def check_models(config: PreferenceEvalConfig) -> None:
    """The model (and reference) must exist and be what ``kind`` says, before anything is loaded."""
    from alignkit.models.loading import TOKENIZER_FILES, check_model_source
    from alignkit.models.score_model import check_score_model

    if config.kind == "dpo":
        check_model_source(config.model.path, "model.path")
        if config.reference:
            check_model_source(config.reference, "reference")
    else:
        other = "cost" if config.kind == "reward" else "reward"
        fix = f" (kind={config.kind}); to evaluate it as what it is, set kind={other}"
        check_score_model(config.model.path, "model.path", config.kind, fix)
    check_model_source(config.model.path, "model.path", files=TOKENIZER_FILES, what="tokenizer")


def run(config: PreferenceEvalConfig) -> dict[str, Any]:
    """Evaluate as configured; prints the figures and returns (and writes to report.json) the report."""
    from alignkit.config import dump_yaml
    from alignkit.data.media import refuse_media
    from alignkit.eval.task import read_records
    from alignkit.models.loading import is_multimodal
    from alignkit.runs import check_run_dir, prepare_run_dir, write_json

    check_run_dir(config.run.output_dir, overwrite=config.run.overwrite, resume=False)
    check_models(config)
    ds = config.data
    records = read_records(ds)
    if config.kind == "dpo" or not is_multimodal(config.model.path):
        refuse_media(records, ds, "data")  # a score model on a VLM scores (picture, prompt, response)
    result = EVALUATORS[config.kind](config, records)

    out = prepare_run_dir(config.run.output_dir, overwrite=config.run.overwrite, resume=False)
    (out / "config.yaml").write_text(dump_yaml(config))
    report = {
        "kind": config.kind,
        "model": config.model.path,
        "data": {"source": ds.source, "template": ds.template, "split": ds.split},
        "metrics": result.metrics,
    }
    write_json(out / "report.json", report)
    plot_histograms(
        result.histograms, result.xlabel, f"{config.kind}: {ds.source} [{ds.split}]", out / "scores.png"
    )
    print(format_report(report, out))
    return report


def format_report(report: Mapping[str, Any], out: Path) -> str:
    """The figures of a report as a person reads them, and where the files are."""
    data = report["data"]
    lines = [f"{report['kind']} model {report['model']} on {data['source']} [{data['split']}]:"]
    width = max((len(name) for name in report["metrics"]), default=0)
    for name, value in report["metrics"].items():
        shown = f"{value:.0f}" if name.startswith("n_") else f"{value:.4f}"
        lines.append(f"  {name:<{width}}  {shown}")
    lines.append(f"report: {out / 'report.json'}; plot: {out / 'scores.png'}")
    return "\n".join(lines)


def evaluate_preference(
    model_path: str,
    source: str,
    template: str,
    split: str = "test",
    kind: str = "reward",
    *,
    output_dir: str = "runs/eval-preference",
    max_length: int = 512,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Held-out accuracy of the model in ``model_path`` on ``source``; see ``run`` for what is written."""
    from alignkit.config import from_dict

    config = from_dict(
        PreferenceEvalConfig,
        {
            "model": {"path": model_path},
            "kind": kind,
            "data": {"source": source, "template": template, "split": split},
            "max_length": max_length,
            "run": {"output_dir": output_dir, "overwrite": overwrite},
        },
    )
    return run(config)
