"""DPO-family data: which response is chosen, how pairs are batched, KTO's mismatched KL partners."""

from __future__ import annotations

import pytest
import torch

from alignkit.data.pair_examples import (
    PairExample,
    UnpairedExample,
    collate_pairs,
    collate_unpaired,
    count_examples,
    count_pairs,
    lm_inputs,
    mismatched_partners,
    to_preference,
    to_unpaired,
)
from alignkit.data.records import Message, Preference, ResponseSafety, SafetyPreference, UnpairedPreference
from alignkit.data.render import IGNORE_INDEX, TokenizedExample


def _msgs(role: str, text: str) -> tuple[Message, ...]:
    return (Message(role, text),)


def _safety_record() -> SafetyPreference:
    # Response 0 is more helpful (complies), response 1 is safer (refuses).
    return SafetyPreference(
        prompt=_msgs("user", "how do I pick a lock"),
        responses=(
            ResponseSafety(_msgs("assistant", "use a tension wrench"), is_safe=False, severity=2),
            ResponseSafety(_msgs("assistant", "sorry, I can't help"), is_safe=True, severity=0),
        ),
        better_id=0,
        safer_id=1,
    )


def test_preference_label_picks_which_response_is_chosen() -> None:
    record = _safety_record()
    helpful = to_preference(record, "helpfulness")
    safe = to_preference(record, "safety")
    assert helpful.chosen[0].text() == "use a tension wrench"
    assert safe.chosen[0].text() == "sorry, I can't help"
    assert safe.rejected == helpful.chosen


def test_unpaired_records_are_refused_by_paired_losses() -> None:
    record = UnpairedPreference(_msgs("user", "hi"), _msgs("assistant", "hello"), True)
    with pytest.raises(ValueError, match="loss=kto"):
        to_preference(record, "helpfulness")


def test_kto_view_of_a_pair_is_one_desirable_and_one_undesirable_example() -> None:
    pair = Preference(_msgs("user", "q"), _msgs("assistant", "good"), _msgs("assistant", "bad"))
    unpaired = to_unpaired([pair], "helpfulness")
    assert [(u.completion[0].text(), u.desirable) for u in unpaired] == [("good", True), ("bad", False)]


def test_mismatched_partners_never_share_a_prompt_and_are_seeded() -> None:
    prompts = ["a", "a", "b", "b", "c", "c", "d"]
    partners = mismatched_partners(prompts, seed=3)
    assert all(prompts[j] != prompts[i] for i, j in enumerate(partners))
    assert partners == mismatched_partners(prompts, seed=3)
    with pytest.raises(ValueError, match="two different prompts"):
        mismatched_partners(["x", "x"], seed=0)


def _example(ids: list[int], n_prompt: int) -> TokenizedExample:
    return TokenizedExample(ids, [IGNORE_INDEX] * n_prompt + ids[n_prompt:])


def test_collate_pairs_stacks_chosen_then_rejected_at_one_length() -> None:
    pairs = [
        PairExample(_example([1, 2, 3], 1), _example([1, 2, 3, 4, 5], 1), ref_logps=(-1.0, -2.0)),
        PairExample(_example([1, 6], 1), _example([1, 7, 8], 1), ref_logps=(-3.0, -4.0)),
    ]
    batch = collate_pairs(pairs, pad_token_id=0)
    assert batch["input_ids"].shape == (4, 5)  # (2B, longest of either side)
    assert batch["input_ids"][:, :3].tolist() == [[1, 2, 3], [1, 6, 0], [1, 2, 3], [1, 7, 8]]
    assert batch["ref_logps"].tolist() == [-1.0, -3.0, -2.0, -4.0]
    assert count_pairs(batch) == 2
    assert set(lm_inputs(batch)) == {"input_ids", "attention_mask", "labels"}
    # Without cached values there is nothing to pass on, so the loss runs the reference live.
    assert "ref_logps" not in collate_pairs([PairExample(pairs[0].chosen, pairs[0].rejected)], 0)


def test_collate_unpaired_carries_kl_sequences_and_labels() -> None:
    examples = [
        UnpairedExample(_example([1, 2], 1), True, _example([1, 9, 9], 1), ref_logps=(-1.0, -5.0)),
        UnpairedExample(_example([1, 3, 4], 1), False, _example([1, 8], 1), ref_logps=(-2.0, -6.0)),
    ]
    batch = collate_unpaired(examples, pad_token_id=0)
    assert batch["desirable"].tolist() == [True, False]
    assert batch["kl_input_ids"].shape == (2, 3)
    assert torch.equal(batch["kl_ref_logps"], torch.tensor([-5.0, -6.0]))
    assert count_examples(batch) == 2
    assert lm_inputs(batch, "kl_")["input_ids"].tolist() == [[1, 9, 9], [1, 8, 0]]
