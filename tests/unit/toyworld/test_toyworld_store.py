"""The pieces every toy world's build shares: ``store.CachedBuild`` and ``model.seeded_model``.

The worlds' own tests check their files; these check the shared flow once, with a toy ``write`` (no
model), so a change to the flow shows here in milliseconds rather than as three worlds rebuilding.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from alignkit.toyworld.model import seeded_model
from alignkit.toyworld.store import CachedBuild, write_datasets


def counting_build(version: int, calls: list[int]) -> CachedBuild:
    """A build whose ``write`` records each seed it is called with and writes one dataset of ``seed`` rows."""

    def write(root: Path, seed: int) -> dict[str, Any]:
        calls.append(seed)
        counts: dict[str, int] = {}
        write_datasets(root, "train", {"rows": [{"i": i, "text": "é"} for i in range(seed)]}, counts)
        return {"counts": counts}

    return CachedBuild("toy-thing", "thing.json", version, write)


def test_cached_build_writes_once_per_version_and_seed(tmp_path: Path) -> None:
    calls: list[int] = []
    thing = counting_build(1, calls)
    root = thing.build(tmp_path / "thing", seed=2)
    manifest = json.loads((root / "thing.json").read_text())
    # write's fields, plus the version and seed the flow adds; 2 rows for seed 2.
    assert manifest == {"counts": {"rows/train": 2}, "version": 1, "seed": 2}
    # UTF-8 as written, not \u escapes: one line per row.
    assert (root / "data" / "rows" / "train.jsonl").read_text(encoding="utf-8").splitlines() == [
        '{"i": 0, "text": "é"}',
        '{"i": 1, "text": "é"}',
    ]
    thing.build(root, seed=2)
    assert calls == [2]  # complete: not written again
    thing.build(root, seed=3)
    assert calls == [2, 3]  # another seed replaces the build
    counting_build(2, calls).build(root, seed=3)
    assert calls == [2, 3, 3]  # another version too
    assert json.loads((root / "thing.json").read_text())["version"] == 2
    assert not thing.is_complete(root, seed=None)  # version 1 no longer there
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_cached_build_default_copy_lives_in_home_by_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIGNKIT_HOME", str(tmp_path))
    calls: list[int] = []
    root = counting_build(7, calls).default()
    assert root == tmp_path / "toy-thing-v7"
    assert counting_build(7, calls).default() == root
    assert calls == [0]  # the default copy is seed 0, built on first use only


class Tokens(SimpleNamespace):
    bos_token_id = 1
    eos_token_id = 2
    pad_token_id = 0


def test_seeded_model_depends_on_the_seed_alone_and_leaves_the_callers_rng() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = seeded_model(lambda width: torch.nn.Linear(width, 2), 4, Tokens(), seed=5)
    assert torch.equal(torch.rand(3), expected_next)  # the global stream did not move
    again = seeded_model(lambda width: torch.nn.Linear(width, 2), 4, Tokens(), seed=5)
    other = seeded_model(lambda width: torch.nn.Linear(width, 2), 4, Tokens(), seed=6)
    assert torch.equal(first.weight, again.weight)
    assert not torch.equal(first.weight, other.weight)
    config = first.generation_config
    assert (config.eos_token_id, config.pad_token_id, config.do_sample, config.max_new_tokens) == (
        2,
        0,
        False,
        32,
    )
