"""Two gloo DDP processes train the tiny VLM and the tiny audio model as one process does, and run GRPO
with pictures (issue 12 point 3: unused vision parameters handled).

SFT (vision tower frozen, the default, and unfrozen) and DPO (frozen), 3 steps each, on data whose
text-only rows are placed so that one rank's micro-batch has pictures while the other's has none (steps
0 and 1), and no rank has any (step 2): see ``vlm_ddp_runs.py``. Before ``allow_unused_media_parameters``
(``train/common.py``) the first such step aborted gloo with "Received data size doesn't match expected
size": the text-only rank's projector got no gradient, so its reducer never filled that bucket.

Each 2-process run (micro-batch = half the global batch) is compared with the 1-process run of the same
global batch: losses per step within 1e-5, final weights within 1e-4 (as the text invariant test's
``MULTI_PROCESS_WEIGHT_ATOL``: two processes sum gradients in another order). Measured: loss differences
4.9e-7 / 2.5e-7 / 3.3e-7 and weight differences 5.9e-6 / 6.0e-6 / 9.8e-6 (SFT frozen / unfrozen, DPO).
A frozen tower stays bit-identical to the base model in both runs; an unfrozen one trains in both, except
SigLIP's pooling head, which LLaVA never reads and which neither run updates. The projector trains in
both. Cost: ~35 s of CPU (the launch ~20 s over two processes, the 1-process runs ~10 s), ~25 s of wall
time on two free cores.

Audio: SFT on the tiny Qwen2-Audio-style model, text-only rows placed the same way, same checks (audio
tower frozen). Measured: loss differences <= 3e-7, weight differences 2.6e-5. ~30 s launch + ~9 s.
GRPO: mechanics only (see its test). ~20 s. Without ``allow_unused_media_parameters`` both launches
abort gloo on step 0 as the VLM one did (checked by hand when they were written).
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from sft_helpers import BIN, REPO, losses
from vision_helpers import VLM
from vlm_ddp_runs import ALM, GRPO_STEPS, STEPS, run_all, run_overrides, write_data

from alignkit.data.records import ContentPart, Message
from alignkit.generate.base import SamplingConfig
from alignkit.generate.hf import HFGenerator
from alignkit.toyworld import resolve

pytestmark = pytest.mark.integration

LOSS_ATOL = 1e-5
WEIGHT_ATOL = 1e-4
"""As ``test_sft_invariants.MULTI_PROCESS_WEIGHT_ATOL``: two processes sum gradients in another order."""


NEVER_READ = ("vision_tower.head.", "vision_tower.post_layernorm.")
"""SigLIP's pooling head and last layer norm: LLaVA reads the encoder's hidden states before them, so even
with pictures on every rank these get no gradient, the other kind of unused parameter DDP must allow
(they stay as initialised in both runs)."""


def tower(weights: dict[str, torch.Tensor], part: str = "vision_tower") -> dict[str, torch.Tensor]:
    return {k: v for k, v in weights.items() if part in k}


def launch(folder: Path, group: str) -> None:
    """The group's runs of ``vlm_ddp_runs.py`` in two gloo processes."""
    launcher = [
        str(BIN / "accelerate"),
        "launch",
        "--config_file",
        str(REPO / "examples/accelerate/ddp.yaml"),
    ]
    result = subprocess.run(
        [*launcher, str(Path(__file__).with_name("vlm_ddp_runs.py")), str(folder), group],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def two_processes(run: Path) -> None:
    state = json.loads((run / "final" / "trainer_state.json").read_text())
    assert state["num_processes"] == 2 and state["distributed_type"].endswith("MULTI_CPU"), state


def compare_with_one_process(
    folder: Path, group: str, model: str, part: str
) -> dict[str, tuple[float, float]]:
    """Each 2-process run against the 1-process run of the same global batch (see the module docstring);
    ``part``: the name of the encoder tower. Returns run name -> (largest loss, largest weight difference)."""
    launch(folder, group)
    run_all(folder, processes=1, group=group)
    initial = load_file(str(resolve(model) / "model.safetensors"))
    base = tower(initial, part)
    assert base, f"the base model has no {part} weights"
    differences = {}
    for name in run_overrides(folder, 2, group):
        one, two = folder / f"one-{name}", folder / f"ddp-{name}"
        two_processes(two)
        a, b = losses(one), losses(two)
        assert len(a) == len(b) == STEPS and all(math.isfinite(x) for x in a), (name, a)
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < LOSS_ATOL, (name, a, b)
        wa, wb = (load_file(str(run / "final" / "model.safetensors")) for run in (one, two))
        assert set(wa) == set(wb)
        differences[name] = (
            max(abs(x - y) for x, y in zip(a, b, strict=True)),
            max(float((wa[k] - wb[k]).abs().max()) for k in wa),
        )
        print(f"{name}: losses {[round(x, 4) for x in a]}, max loss / weight diff {differences[name]}")
        for key in wa:
            torch.testing.assert_close(wa[key], wb[key], atol=WEIGHT_ATOL, rtol=0, msg=f"{name}: {key}")
        projector = [k for k in wa if "multi_modal_projector" in k]
        assert projector and all(not torch.equal(w[k], initial[k]) for w in (wa, wb) for k in projector)
        for w in (wa, wb):
            same = {k for k in base if torch.equal(w[k], base[k])}
            if name.endswith("unfrozen"):  # trained, but for what LLaVA never reads (see NEVER_READ)
                assert same == {k for k in base if k.startswith(NEVER_READ)}, (name, sorted(same))
            else:
                assert same == set(base), name  # bit-identical
        assert a[-1] < a[0] or not name.startswith(("sft-frozen", "audio")), (name, a)  # it trained
    return differences


def _within_tolerance(differences: dict[str, tuple[float, float]]) -> bool:
    return all(loss < LOSS_ATOL and weight <= WEIGHT_ATOL for loss, weight in differences.values())


def test_two_gloo_processes_train_the_vlm_as_one_does(tmp_path: Path):
    write_data(tmp_path)
    differences = compare_with_one_process(tmp_path, "vlm", VLM, "vision_tower")
    assert set(differences) == {"sft-frozen", "sft-unfrozen", "dpo-frozen"} and _within_tolerance(differences)


def test_two_gloo_processes_train_the_audio_model_as_one_does(tmp_path: Path):
    """SFT on the tiny Qwen2-Audio-style model, text-only rows placed as for the VLM: the frozen audio
    tower stays bit-identical, the projector trains, losses and weights match one process."""
    write_data(tmp_path)
    differences = compare_with_one_process(tmp_path, "audio", ALM, "audio_tower")
    assert set(differences) == {"audio-sft"} and _within_tolerance(differences)


def test_two_gloo_processes_run_grpo_with_pictures(tmp_path: Path):
    """GRPO on the tiny VLM, 2 steps of 4 prompts x 2 samples, in two gloo processes; rank 1's prompts of
    step 0 are text-only (its projector gets no gradient) and rank 0's of step 1. Each process samples its
    own share with its own seed, so no 1-process run is the same run: checked are the mechanics."""
    write_data(tmp_path)
    launch(tmp_path, "grpo")
    run = tmp_path / "ddp-grpo"
    two_processes(run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    policy = [r["policy/loss"] for r in rows if "policy/loss" in r]
    assert len(policy) == GRPO_STEPS and all(math.isfinite(x) for x in policy), rows
    assert all(math.isfinite(v) for r in rows for v in r.values() if isinstance(v, float))
    initial = load_file(str(resolve(VLM) / "model.safetensors"))
    final = load_file(str(run / "final" / "model.safetensors"))
    base = tower(initial)
    assert base and all(torch.equal(final[k], base[k]) for k in base)  # freeze_vision: bit-identical
    changed = {k.split(".")[0] for k in final if not torch.equal(final[k], initial[k])}
    print(f"grpo: policy losses {policy}, parts changed {sorted(changed)}")
    assert "multi_modal_projector" in changed and "language_model" in changed, changed
    generator = HFGenerator.from_pretrained(str(run / "final"), device="cpu")
    assert generator.renderer is not generator.tokenizer  # saved with its processor
    image = resolve("toyworld://visual/data/images") / "w-red.circle.0.png"
    question = [
        Message("user", (ContentPart("image", path=str(image)), ContentPart("text", text="What colour?")))
    ]
    (answer,) = generator.generate([question], SamplingConfig(temperature=0, max_new_tokens=4))
    assert answer.token_ids
