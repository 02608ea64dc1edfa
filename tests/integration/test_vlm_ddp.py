"""Two gloo DDP processes train the tiny VLM as one process does (issue 12 point 3: unused vision
parameters handled).

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
from vlm_ddp_runs import STEPS, run_all, run_overrides, write_data

from alignkit.toyworld import resolve

pytestmark = pytest.mark.integration

LOSS_ATOL = 1e-5
WEIGHT_ATOL = 1e-4
"""As ``test_sft_invariants.MULTI_PROCESS_WEIGHT_ATOL``: two processes sum gradients in another order."""


NEVER_READ = ("vision_tower.head.", "vision_tower.post_layernorm.")
"""SigLIP's pooling head and last layer norm: LLaVA reads the encoder's hidden states before them, so even
with pictures on every rank these get no gradient, the other kind of unused parameter DDP must allow
(they stay as initialised in both runs)."""


def tower(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in weights.items() if "vision_tower" in k}


def test_two_gloo_processes_train_the_vlm_as_one_does(tmp_path: Path):
    write_data(tmp_path)
    launch = [str(BIN / "accelerate"), "launch", "--config_file", str(REPO / "examples/accelerate/ddp.yaml")]
    result = subprocess.run(
        [*launch, str(Path(__file__).with_name("vlm_ddp_runs.py")), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_all(tmp_path, processes=1)

    initial = load_file(str(resolve(VLM) / "model.safetensors"))
    base = tower(initial)
    assert base, "the base model has no vision tower weights"
    for name in run_overrides(tmp_path, 2):
        one, two = tmp_path / f"one-{name}", tmp_path / f"ddp-{name}"
        state = json.loads((two / "final" / "trainer_state.json").read_text())
        assert state["num_processes"] == 2 and state["distributed_type"].endswith("MULTI_CPU"), state
        a, b = losses(one), losses(two)
        assert len(a) == len(b) == STEPS and all(math.isfinite(x) for x in a), (name, a)
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < LOSS_ATOL, (name, a, b)
        wa, wb = (load_file(str(run / "final" / "model.safetensors")) for run in (one, two))
        assert set(wa) == set(wb)
        print(f"{name}: losses {[round(x, 4) for x in a]}, max loss diff "
              f"{max(abs(x - y) for x, y in zip(a, b, strict=True)):.1e}, max weight diff "
              f"{max(float((wa[k] - wb[k]).abs().max()) for k in wa):.1e}")  # fmt: skip
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
    sft = losses(tmp_path / "one-sft-frozen")
    assert sft[-1] < sft[0]  # it trained
