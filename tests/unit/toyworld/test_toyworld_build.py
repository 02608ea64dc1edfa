"""Building, caching, determinism, resolve(), and the tiny model's round trip."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from alignkit.toyworld import VERSION, ToyWorld, build, resolve


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_build_is_deterministic_and_cached(world: ToyWorld, tmp_path: Path) -> None:
    again = build(tmp_path / "again", seed=0)
    assert digests(again.root) == digests(world.root)
    stamp = (again.root / "toyworld.json").stat().st_mtime_ns
    assert build(again.root, seed=0).root == again.root  # cached: nothing rewritten
    assert (again.root / "toyworld.json").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_build_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        build(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_model_round_trips_through_from_pretrained(world: ToyWorld) -> None:
    model = AutoModelForCausalLM.from_pretrained(world.model_path)
    tok = AutoTokenizer.from_pretrained(world.model_path)
    assert model.config.vocab_size == len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert model.generation_config.pad_token_id == tok.pad_token_id
    assert 2e5 < sum(p.numel() for p in model.parameters()) < 2e6
    ids = tok("What is 3 plus 4?", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tok)) and torch.isfinite(logits).all()


def test_resolve_maps_uris_into_alignkit_home(
    world: ToyWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIGNKIT_HOME", str(tmp_path))
    # Pre-seed the cache with a copy of the shared build, so this test checks mapping, not build speed.
    import shutil

    shutil.copytree(world.root, tmp_path / f"toyworld-v{VERSION}")
    path = resolve("toyworld://data/sft/train.jsonl")
    assert path == tmp_path / f"toyworld-v{VERSION}" / "data" / "sft" / "train.jsonl"
    assert path.is_file()
    assert resolve("toyworld://models/tiny/").is_dir()
    assert resolve("/some/where/file.jsonl") == Path("/some/where/file.jsonl")
    assert resolve(Path("relative/x.jsonl")) == Path("relative/x.jsonl")
    with pytest.raises(ValueError):
        resolve("toyworld://../escape")


def test_resolve_builds_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIGNKIT_HOME", str(tmp_path / "home"))
    path = resolve("toyworld://tokenizer")
    assert (path / "tokenizer.json").is_file()
    assert (tmp_path / "home" / f"toyworld-v{VERSION}" / "toyworld.json").is_file()
