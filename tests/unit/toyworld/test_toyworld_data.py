"""The data files follow the published schemas, and their labels agree with the oracles."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from alignkit.data.templates.aligner import STREAM_END
from alignkit.toyworld import HARM_CATEGORIES, ToyWorld, classify, find_task, harm, helpfulness
from alignkit.toyworld.build import ANSWER_PAIRS_PER_PROMPT

PKU_FIELDS: dict[str, type] = {
    "prompt": str,
    "prompt_source": str,
    "response_0": str,
    "response_1": str,
    "response_0_source": str,
    "response_1_source": str,
    "is_response_0_safe": bool,
    "is_response_1_safe": bool,
    "response_0_harm_category": dict,
    "response_1_harm_category": dict,
    "response_0_severity_level": int,
    "response_1_severity_level": int,
    "better_response_id": int,
    "safer_response_id": int,
    "response_0_sha256": str,
    "response_1_sha256": str,
}


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("name", ["safe_pref", "reward_pref"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_safe_pref_rows_match_pku_saferlhf(world: ToyWorld, split: str, name: str) -> None:
    rows = read(world.data_path(name, split))
    assert rows
    for row in rows:
        assert set(row) == set(PKU_FIELDS)
        for field, kind in PKU_FIELDS.items():
            assert type(row[field]) is kind, (field, row[field])
        for i in (0, 1):
            response = row[f"response_{i}"]
            verdict = harm(row["prompt"], response)
            assert row[f"is_response_{i}_safe"] == verdict.is_safe
            assert list(row[f"response_{i}_harm_category"]) == list(HARM_CATEGORIES)
            assert row[f"response_{i}_harm_category"] == verdict.category_flags()
            assert row[f"response_{i}_severity_level"] == verdict.severity
            assert row[f"response_{i}_sha256"] == hashlib.sha256(response.encode()).hexdigest()
        h0, h1 = helpfulness(row["prompt"], row["response_0"]), helpfulness(row["prompt"], row["response_1"])
        assert row["better_response_id"] == (0 if h0 > h1 else 1) and h0 != h1
        safe = (row["is_response_0_safe"], row["is_response_1_safe"])
        if safe[0] != safe[1]:  # safe-rlhf's rule: the safer one is the safe one
            assert safe[row["safer_response_id"]]
        else:
            s0, s1 = row["response_0_severity_level"], row["response_1_severity_level"]
            if s0 != s1:
                assert row["safer_response_id"] == (0 if s0 < s1 else 1)


def test_safe_pref_has_the_safe_rlhf_tension(world: ToyWorld) -> None:
    """Some pairs prefer the unsafe answer as more helpful: what a cost model must push back on."""
    rows = read(world.data_path("safe_pref", "train"))
    tension = [r for r in rows if r["better_response_id"] != r["safer_response_id"]]
    unsafe_better = [r for r in rows if not r[f"is_response_{r['better_response_id']}_safe"]]
    assert len(tension) > 0.1 * len(rows) and len(unsafe_better) > 0.05 * len(rows)


@pytest.mark.parametrize("split", ["train", "test"])
def test_reward_pref_adds_right_vs_wrong_pairs_to_safe_pref(world: ToyWorld, split: str) -> None:
    """The reward model's pairs: every safe_pref pair, plus pairs that only the facts can rank (the right and
    a wrong answer to the same benign request, in the same surface form)."""
    safe = read(world.data_path("safe_pref", split))
    reward = read(world.data_path("reward_pref", split))
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    left = Counter(map(key, reward))
    left.subtract(Counter(map(key, safe)))
    assert min(left.values()) >= 0  # every safe_pref pair is there
    extra = [json.loads(k) for k, n in left.items() for _ in range(n)]
    benign = sum(not find_task(r["prompt"]).is_harmful for r in read(world.data_path("prompts", split)))
    assert len(extra) == ANSWER_PAIRS_PER_PROMPT * benign
    for row in extra:
        kinds = [classify(row["prompt"], row[f"response_{i}"]) for i in (0, 1)]
        assert sorted(kinds) == ["correct", "wrong"]
        assert row["better_response_id"] == kinds.index("correct")
        # Same form ("The answer is X." / "It is X." / "X."): only the answer differs.
        forms = [row[f"response_{i}"].split()[:-1] for i in (0, 1)]
        assert forms[0] == forms[1]
    # Right-vs-wrong pairs are about a seventh of safe_pref and over half of the extra-rich reward_pref.
    right_wrong = [
        r
        for r in reward
        if {r["response_0_source"], r["response_1_source"]} == {"toyworld/correct", "toyworld/wrong"}
    ]
    assert len(right_wrong) > 0.4 * len(reward)


@pytest.mark.parametrize("split", ["train", "test"])
def test_sft_rows_are_trl_conversations_of_mixed_quality(world: ToyWorld, split: str) -> None:
    rows = read(world.data_path("sft", split))
    kinds = []
    for row in rows:
        assert list(row) == ["messages"]
        user, assistant = row["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert isinstance(user["content"], str) and isinstance(assistant["content"], str)
        kinds.append(classify(user["content"], assistant["content"]))
    assert None not in kinds
    # Mostly good, but with compliance and wrong answers on purpose.
    assert kinds.count("correct") > 0.5 * len(kinds)
    assert kinds.count("comply") > 0.03 * len(kinds) and kinds.count("wrong") > 0.03 * len(kinds)


@pytest.mark.parametrize("split", ["train", "test"])
def test_correction_rows_are_aligner_rows(world: ToyWorld, split: str) -> None:
    rows = read(world.data_path("corrections", split))
    for row in rows:
        assert list(row) == ["question", "answer", "correction"]
        task = find_task(row["question"])
        assert task is not None
        assert classify(task, row["correction"]) == ("refusal" if task.is_harmful else "correct")
        assert harm(row["question"], row["correction"]).is_safe
    assert any(r["answer"] == r["correction"] for r in rows)
    assert sum(r["answer"] != r["correction"] for r in rows) > 0.8 * len(rows)


@pytest.mark.parametrize("split", ["train", "test"])
def test_stream_correction_rows_correct_a_first_sentence_and_end_after_the_ideal(
    world: ToyWorld, split: str
) -> None:
    """Every ideal answer is one sentence: a row with an empty prefix corrects to it; a row whose prefix is
    already the ideal corrects to STREAM_END (drop what follows)."""
    rows = read(world.data_path("stream_corrections", split))
    assert rows
    for row in rows:
        assert list(row) == ["question", "prefix", "last", "correction"]
        task = find_task(row["question"])
        ideal = "refusal" if task.is_harmful else "correct"
        if row["prefix"]:
            assert classify(task, row["prefix"]) == ideal and row["correction"] == STREAM_END
        else:
            assert classify(task, row["correction"]) == ideal
    firsts = [r for r in rows if not r["prefix"]]
    assert len(firsts) == len(rows) / 2
    assert any(r["last"] == r["correction"] for r in firsts)  # good first sentences are kept
    assert any(
        r["last"] == "Sure." and find_task(r["question"]).is_harmful for r in firsts
    )  # compliance opens so


def test_held_out_prompts_appear_in_no_train_split(world: ToyWorld) -> None:
    test_prompts = {row["prompt"] for row in read(world.data_path("prompts", "test"))}
    assert test_prompts and all(
        list(r) == ["prompt", "prompt_source"] for r in read(world.data_path("prompts", "test"))
    )
    train_prompts = {row["prompt"] for row in read(world.data_path("prompts", "train"))}
    train_prompts |= {row["messages"][0]["content"] for row in read(world.data_path("sft", "train"))}
    train_prompts |= {row["prompt"] for row in read(world.data_path("safe_pref", "train"))}
    train_prompts |= {row["prompt"] for row in read(world.data_path("reward_pref", "train"))}
    train_prompts |= {row["question"] for row in read(world.data_path("corrections", "train"))}
    train_prompts |= {row["question"] for row in read(world.data_path("stream_corrections", "train"))}
    assert not test_prompts & train_prompts
    sources = {row["prompt_source"] for row in read(world.data_path("prompts", "test"))}
    assert sources == {f"toyworld/{f}" for f in ("capital", "sound", "add", "copy", "harmful")}


def test_manifest_counts_the_files(world: ToyWorld) -> None:
    manifest = world.manifest
    assert manifest["version"] >= 1 and manifest["seed"] == 0
    for key, count in manifest["counts"].items():
        name, split = key.split("/")
        assert len(read(world.data_path(name, split))) == count
