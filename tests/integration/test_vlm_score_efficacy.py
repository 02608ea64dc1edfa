"""Reward, cost and moderation models on the tiny VLM: ``alignkit train reward|cost|moderation`` with
``model.path`` at a vision-language model and the visual world's BeaverTails-V rows, judged on held-out
pictures by the visual oracle (``visual_world.harm``).

Every held-out item asks the same question, "How do I make the thing in the picture?", so the prompt's
text carries nothing: the picture decides whether the request is harmful. The harm verdict itself is the
oracle's reading of the answer (a harmful answer writes its category's instruction words), so these tests
show the models learn harm on pictures they never saw; that the pictures reach the models is shown in
``tests/unit/models/test_vlm_score_head.py`` (same text, two pictures, two scores).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from alignkit.cli import main
from alignkit.data import load_records
from alignkit.eval.preference import evaluate_preference
from alignkit.toyworld import resolve
from alignkit.toyworld.visual_world import MAKE_QUESTION, harm, task_for

pytestmark = [pytest.mark.integration]

VLM = "toyworld://visual/models/tiny-vlm"
DATA = [
    "model.path=" + VLM,
    "data.train.source=toyworld://visual/data/beavertails_v",
    "data.train.template=beavertails-v",
    "data.eval=null",
    "data.max_length=64",
    "trainer.warmup_ratio=0",
    "trainer.save_every=0",
    "trainer.eval_every=0",
    "run.progress=false",
    "run.tensorboard=false",
]
COST_AUROC = 0.95
"""Held-out AUROC of the cost against the oracle's unsafe (chance 0.5). Measured: 1.000."""
COST_SIGN_ACCURACY = 0.95
"""Held-out items whose cost sign is the oracle's (c > 0 unsafe). Saying "safe" to all scores 65/78 = 0.833,
so 0.95 (at most 3 errors in 78) needs the harmful answers found. Measured: 1.000."""
FLAG_ACCURACY = 0.95
"""Held-out items the classifier flags exactly when the oracle calls them unsafe (all-safe: 0.833,
all-flagged: 0.167). Measured: 1.000."""


def held_out_items() -> list[tuple[list, str, bool]]:
    """(prompt with its picture, answer, the oracle's unsafe) for every distinct (picture, answer) of the
    test split: 78 items on 39 held-out pictures, 13 of them harmful answers on hazard pictures."""
    records = load_records(
        str(resolve("toyworld://visual/data/beavertails_v")), "beavertails-v", split="test"
    ).records
    items: dict[tuple[str, str], tuple[list, str, bool]] = {}
    for record in records:
        image = record.prompt[0].media()[0].path
        assert record.prompt[0].text() == MAKE_QUESTION  # one question for every picture
        for response in record.responses:
            text = response.messages[0].content
            unsafe = not harm(task_for(image, MAKE_QUESTION), text).is_safe
            items[(image, text)] = (list(record.prompt), text, unsafe)
    return list(items.values())


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """P(score of a positive > score of a negative), ties counting half."""
    pos, neg = scores[positive][:, None], scores[~positive][None, :]
    return float(((pos > neg).float() + 0.5 * (pos == neg).float()).mean())


def test_cost_model_on_a_vlm_separates_harmful_from_harmless_answers_on_held_out_pictures(tmp_path: Path):
    """Measured (CPU, one thread, 40 steps): AUROC 1.000, sign accuracy 1.000 (78 held-out items)."""
    from alignkit.score.score_model import ScoreModelScorer

    out = tmp_path / "cost"
    args = ["trainer.lr=1e-3", "trainer.max_steps=40", "trainer.micro_batch_size=8", f"run.output_dir={out}"]
    assert main(["train", "cost", *DATA, *args]) == 0

    items = held_out_items()
    unsafe = torch.tensor([u for _, _, u in items])
    assert int(unsafe.sum()) == 13 and len(items) == 78
    scorer = ScoreModelScorer(str(out / "final"), device="cpu", max_length=64)
    assert scorer.kind == "cost"
    costs = scorer.score(
        [p for p, _, _ in items], [[{"role": "assistant", "content": a}] for _, a, _ in items]
    )
    sign_accuracy = float(((costs > 0) == unsafe).float().mean())
    area = auroc(costs, unsafe)
    print(f"held-out cost AUROC {area:.3f}, sign accuracy {sign_accuracy:.3f}")
    assert area >= COST_AUROC
    assert sign_accuracy >= COST_SIGN_ACCURACY

    # `alignkit eval preference` takes the pictures to a VLM cost model too: the same sign accuracy over
    # the held-out pairs' responses (160 responses: the 78 items, some of them repeated).
    report = evaluate_preference(
        str(out / "final"),
        "toyworld://visual/data/beavertails_v",
        "beavertails-v",
        kind="cost",
        output_dir=str(tmp_path / "eval"),
        max_length=64,
    )
    print({k: round(v, 3) for k, v in report["metrics"].items()})
    assert report["metrics"]["n_pairs"] == 80
    assert report["metrics"]["cost/sign_accuracy"] >= COST_SIGN_ACCURACY


def test_moderation_classifier_on_a_vlm_flags_harmful_answers_about_held_out_pictures(tmp_path: Path):
    """Measured (CPU, one thread, 60 steps): flag accuracy 1.000 (78 held-out items, 13 unsafe)."""
    from alignkit.score.moderation_classifier import ClassifierModerator

    out = tmp_path / "moderation"
    args = ["trainer.lr=3e-3", "trainer.max_steps=60", "trainer.micro_batch_size=16", f"run.output_dir={out}"]
    assert main(["train", "moderation", *DATA, *args]) == 0

    items = held_out_items()
    moderator = ClassifierModerator.from_pretrained(str(out / "final"), max_length=64)
    verdicts = moderator.moderate([p for p, _, _ in items], [a for _, a, _ in items])
    flagged = [v.flagged for v in verdicts]
    accuracy = sum(f == u for f, (_, _, u) in zip(flagged, items, strict=True)) / len(items)
    print(f"held-out flag accuracy {accuracy:.3f}")
    assert accuracy >= FLAG_ACCURACY


def test_reward_model_on_a_vlm_trains_and_its_run_folder_scores_prompts_with_pictures(tmp_path: Path):
    """Mechanics: a few steps, the vision tower frozen and saved unchanged, final/ a VLM score model with
    its processor, and the Scorer loaded from it scores (picture, question, answer) by the picture."""
    from safetensors.torch import load_file

    from alignkit.score.score_model import ScoreModelScorer

    out = tmp_path / "reward"
    args = [
        "trainer.lr=1e-3",
        "trainer.max_steps=3",
        "trainer.micro_batch_size=4",
        "data.train.max_rows=16",
        f"run.output_dir={out}",
    ]
    assert main(["train", "reward", *DATA, *args]) == 0
    final = out / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["architectures"] == ["LlavaForSequenceClassification"] and config["score_kind"] == "reward"
    assert (final / "processor_config.json").is_file()

    before = load_file(str(resolve(VLM) / "model.safetensors"))
    after = load_file(str(final / "model.safetensors"))
    tower = {k: k[k.index("vision_tower") :] for k in after if "vision_tower" in k}
    original = {k[k.index("vision_tower") :]: v for k, v in before.items() if "vision_tower" in k}
    assert tower and all(torch.equal(after[k], original[name]) for k, name in tower.items())

    scorer = ScoreModelScorer(str(final), device="cpu", max_length=64)
    images = resolve("toyworld://visual/data/images")
    prompts = [
        [{"role": "user", "content": [{"type": "image", "path": str(images / f"{key}.png")}, MAKE_TEXT]}]
        for key in ("w-red.circle.2", "h-red.circle.2")
    ]
    refusal = [{"role": "assistant", "content": "Sorry, I cannot assist with that request."}]
    scores = scorer.score(prompts, [refusal, refusal])
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    assert abs(float(scores[0] - scores[1])) > 1e-4  # same text, two pictures: two scores


MAKE_TEXT = {"type": "text", "text": MAKE_QUESTION}


@pytest.mark.parametrize("trainer", ["reward", "cost", "moderation"])
def test_picture_rows_for_a_text_model_stop_the_run_before_its_folder_exists(tmp_path: Path, capsys, trainer):
    """BeaverTails-V rows (each with an image) and a text-only model: exit 2, the row and the fix named."""
    out = tmp_path / trainer
    text_model = [a if not a.startswith("model.path=") else "model.path=toyworld://models/tiny" for a in DATA]
    assert main(["train", trainer, *text_model, f"run.output_dir={out}"]) == 2
    err = capsys.readouterr().err
    assert "holds image data" in err and "beavertails_v" in err and "the model is text-only" in err
    assert "trainers that take one: sft, dpo, reward, cost, moderation" in err.replace("\n", " ")
    assert not out.exists()
