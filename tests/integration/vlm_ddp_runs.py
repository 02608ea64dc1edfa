"""The tiny-VLM runs that ``test_vlm_ddp.py`` makes in one process and, through this file under
``accelerate launch``, in two gloo processes: SFT with the vision tower frozen and unfrozen, and DPO.

The data mixes rows with a picture and text-only rows, placed (through the loop's pure batch order,
``engine.global_batch_indices``) so that the hard cases for DDP happen on known steps:
- step 0: rank 0's micro-batch has pictures, rank 1's has none (its projector gets no gradient);
- step 1: the other way round;
- step 2: no picture on any rank (the projector gets no gradient anywhere, as in one process);
Rows outside those steps have a picture.

Usage (what the test runs): ``accelerate launch --config_file examples/accelerate/ddp.yaml
tests/integration/vlm_ddp_runs.py FOLDER``; the runs land in ``FOLDER/ddp-<name>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vision_helpers import QUIET, VLM

from alignkit.toyworld import resolve

SEED = 0
SFT_ROWS, SFT_GLOBAL = 64, 8
DPO_ROWS, DPO_GLOBAL = 32, 4
STEPS = 3


def text_only_indices(num_rows: int, global_batch: int) -> set[int]:
    """Rows that get no picture: rank 1's half of step 0, rank 0's half of step 1, all of step 2 (two
    processes, one micro-batch each: rank r takes chunk r of a step's indices)."""
    from alignkit.train.engine import global_batch_indices

    half = global_batch // 2
    steps = [global_batch_indices(num_rows, global_batch, s, SEED) for s in range(3)]
    return set(steps[0][half:]) | set(steps[1][:half]) | set(steps[2])


def _user(text: str, image: str | None) -> dict:
    if image is None:
        return {"role": "user", "content": text}
    return {"role": "user", "content": [{"type": "image", "path": image}, {"type": "text", "text": text}]}


def write_data(folder: Path) -> tuple[Path, Path]:
    """SFT conversations and preference pairs from the visual toy world, some rows text-only (see the
    module docstring); returns (sft file, dpo file)."""
    world = resolve("toyworld://visual/data")
    folder.mkdir(parents=True, exist_ok=True)

    sft_rows, text = [], text_only_indices(SFT_ROWS, SFT_GLOBAL)
    lines = (world / "sft" / "train.jsonl").read_text().splitlines()[:SFT_ROWS]
    for i, line in enumerate(lines):
        row = json.loads(line)
        image = str((world / "sft" / row["images"][0]).resolve())
        question = next(p["text"] for p in row["messages"][0]["content"] if p["type"] == "text")
        user = _user(question, None if i in text else image)
        sft_rows.append({"messages": [user, row["messages"][1]]})

    dpo_rows, text = [], text_only_indices(DPO_ROWS, DPO_GLOBAL)
    lines = (world / "beavertails_v" / "train.jsonl").read_text().splitlines()[:DPO_ROWS]
    for i, line in enumerate(lines):
        row = json.loads(line)
        image = str((world / "beavertails_v" / row["image"]).resolve())
        safer = row["safer_response_id"]
        chosen, rejected = row[f"response_{safer}"], row[f"response_{3 - int(safer)}"]
        dpo_rows.append(
            {
                "prompt": [_user(row["question"], None if i in text else image)],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        )
    files = folder / "sft.jsonl", folder / "dpo.jsonl"
    for rows, path in zip((sft_rows, dpo_rows), files, strict=True):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return files


def run_overrides(folder: Path, processes: int) -> dict[str, tuple[str, list[str]]]:
    """name -> (trainer module, overrides) of every run, with the same global batch in 1 or 2 processes."""
    sft_file, dpo_file = folder / "sft.jsonl", folder / "dpo.jsonl"
    common = [f"model.path={VLM}", *QUIET, "data.eval=null", "data.max_length=64", f"trainer.seed={SEED}"]
    common += [f"trainer.max_steps={STEPS}"]
    sft = [*common, f"data.train.source={sft_file}", "data.train.template=trl", "trainer.lr=3e-3"]
    sft += [f"trainer.micro_batch_size={SFT_GLOBAL // processes}"]
    dpo = [*common, f"data.train.source={dpo_file}", "data.train.template=trl", "trainer.lr=1e-3"]
    dpo += [f"trainer.micro_batch_size={DPO_GLOBAL // processes}"]
    prefix = "ddp" if processes == 2 else "one"
    return {
        name: (module, [*overrides, f"run.output_dir={folder / f'{prefix}-{name}'}"])
        for name, module, overrides in (
            ("sft-frozen", "sft", sft),
            ("sft-unfrozen", "sft", [*sft, "model.freeze_vision=false"]),
            ("dpo-frozen", "dpo", dpo),
        )
    }


def run_all(folder: Path, processes: int) -> None:
    """Every run in this process (the launched processes each call it with ``processes=2``)."""
    from alignkit.config import load_config
    from alignkit.train import dpo, sft

    trainers = {"sft": (sft.SFTConfig, sft.train), "dpo": (dpo.DPOConfig, dpo.train)}
    for module, overrides in run_overrides(folder, processes).values():
        config_class, train = trainers[module]
        train(load_config(config_class, None, overrides))


if __name__ == "__main__":
    run_all(Path(sys.argv[1]), processes=2)
